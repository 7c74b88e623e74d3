"""Segmentation metrics (Dice, IoU) and the `evaluate()` loop run on the validation set.

A batch is a dict with "image" (N, 3, H, W) float in [0, 1] (or uint8 0-255), "mask"
(N, 1, H, W) float in {0, 1} (or None), "trimap" (N, 1, H, W) uint8 with 1 = pet,
2 = background, 3 = boundary (or None) and "name" (list of str). Models return logits (N, 1, H, W).

Per-image functions accept masks shaped (N, 1, H, W) or (N, H, W).
"""

import re
from collections.abc import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn
from torch.utils.data import DataLoader

from .batch import collate
from .masks import BOUNDARY_POLICIES, check_boundary_policy, scoring_target
from .predict import binarize, full_size_logits, predict_logits, to_float_images


def _as_bool(x: torch.Tensor) -> torch.Tensor:
    """Return a bool mask from a bool or 0/1 tensor, with a channel dim added to (N, H, W)."""
    if x.dim() == 3:
        x = x.unsqueeze(1)  # (N, H, W) -> (N, 1, H, W)
    return x if x.dtype == torch.bool else x > 0.5


def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Count per image |P∩T|, |P| and |T| (int64, shape (N,)), skipping ignored pixels."""
    pred, target = _as_bool(pred), _as_bool(target)
    if ignore is not None:
        keep = ~_as_bool(ignore)
        pred, target = pred & keep, target & keep
    intersection = (pred & target).flatten(1).sum(1)  # (N,)
    pred_sum = pred.flatten(1).sum(1)  # (N,)
    target_sum = target.flatten(1).sum(1)  # (N,)
    return intersection, pred_sum, target_sum


def dice_from_counts(
    intersection: torch.Tensor, pred_sum: torch.Tensor, target_sum: torch.Tensor
) -> torch.Tensor:
    """Dice = 2|P∩T| / (|P| + |T|); 1 when prediction and target are both empty."""
    denom = pred_sum + target_sum
    return torch.where(denom > 0, 2 * intersection / denom, 1.0)


def iou_from_counts(
    intersection: torch.Tensor, pred_sum: torch.Tensor, target_sum: torch.Tensor
) -> torch.Tensor:
    """IoU = |P∩T| / |P∪T|; 1 when prediction and target are both empty."""
    union = pred_sum + target_sum - intersection
    return torch.where(union > 0, intersection / union, 1.0)


def dice_score(
    logits: torch.Tensor,
    targets: torch.Tensor,
    threshold: float = 0.5,
    ignore: torch.Tensor | None = None,
    pooled: bool = False,
) -> torch.Tensor:
    """Dice of sigmoid(LOGITS) > THRESHOLD against TARGETS (a 0-dim tensor).

    pooled=False: the mean over the batch of each image's Dice, every image counting equally.
    pooled=True: one Dice of all the batch's pixels together, 2ΣI / (ΣP + ΣT).
    """
    counts = confusion_counts(binarize(logits, threshold), targets, ignore)
    return reduce_counts(dice_from_counts, counts, pooled)


def iou_score(
    logits: torch.Tensor,
    targets: torch.Tensor,
    threshold: float = 0.5,
    ignore: torch.Tensor | None = None,
    pooled: bool = False,
) -> torch.Tensor:
    """IoU of sigmoid(LOGITS) > THRESHOLD against TARGETS, per-image mean or pooled (0-dim)."""
    counts = confusion_counts(binarize(logits, threshold), targets, ignore)
    return reduce_counts(iou_from_counts, counts, pooled)


def reduce_counts(formula, counts: tuple, pooled: bool) -> torch.Tensor:
    """FORMULA (Dice or IoU) of per-image COUNTS: the mean over images, or of their sums."""
    if pooled:
        return formula(*(c.sum() for c in counts))
    return formula(*counts).float().mean()


def mask_dice(pred_mask, gt_mask) -> float:
    """Dice of two (H, W) bool or 0/1 masks, arrays or tensors; 1.0 when both are empty."""
    pred, gt = (torch.as_tensor(np.asarray(m) > 0.5).reshape(1, -1)
                for m in (pred_mask, gt_mask))
    return dice_from_counts(*(c.double() for c in confusion_counts(pred, gt))).item()


class SegmentationMeter:
    """Accumulate Dice and IoU over batches, both per image and pooled over the whole set.

    Per-image mean: every image counts equally, so small pets weigh as much as large ones.
    Pooled: pixel counts are summed over the set first, so large pets dominate the score.
    """

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.intersection = 0
        self.pred_sum = 0
        self.target_sum = 0
        self.per_image_dice: list[float] = []
        self.per_image_iou: list[float] = []
        self.names: list[str] = []

    def update(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        ignore: torch.Tensor | None = None,
        names: list[str] | None = None,
    ) -> None:
        """Add one batch; `names` (optional) are kept alongside the per-image scores."""
        counts = confusion_counts(binarize(logits, self.threshold), targets, ignore)
        intersection, pred_sum, target_sum = counts
        self.intersection += int(intersection.sum())
        self.pred_sum += int(pred_sum.sum())
        self.target_sum += int(target_sum.sum())
        self.per_image_dice += dice_from_counts(*counts).tolist()
        self.per_image_iou += iou_from_counts(*counts).tolist()
        if names is not None:
            self.names += list(names)

    def compute(self) -> dict[str, float]:
        """Return per-image mean and pooled Dice and IoU."""
        if not self.per_image_dice:
            raise ValueError("SegmentationMeter.compute() called before any update()")
        counts = [
            torch.tensor(c, dtype=torch.float64)
            for c in (self.intersection, self.pred_sum, self.target_sum)
        ]
        n = len(self.per_image_dice)
        return {
            "dice": sum(self.per_image_dice) / n,
            "dice_pooled": dice_from_counts(*counts).item(),
            "iou": sum(self.per_image_iou) / n,
            "iou_pooled": iou_from_counts(*counts).item(),
        }


def batch_target(batch: dict, boundary: str, device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch's mask to score against, and the pixels to ignore, under a BOUNDARY policy."""
    if batch.get("mask") is None:
        raise ValueError("evaluate(): this loader has no ground-truth masks to score")
    if check_boundary_policy(boundary) == "pet":
        return batch["mask"].float().to(device), None  # the training mask itself
    if batch.get("trimap") is None:
        raise ValueError(f"boundary={boundary!r} needs batches with a 'trimap'")
    target, ignore = scoring_target(batch["trimap"].to(device), boundary)
    return target.float(), ignore


def evaluate(
    model: nn.Module,
    loader,
    device: torch.device | str,
    criterion: nn.Module | None = None,
    threshold: float = 0.5,
    boundary: str = "pet",
    tta: bool = False,
    amp: bool = False,
    reduce: Callable | None = None,
) -> dict:
    """Return loss (or None), per-image and pooled Dice and IoU of `model` over `loader`.

    BOUNDARY says how the trimap's boundary band is scored: "pet" (the design report),
    "background" or "ignore". The loss always uses the training mask, every pixel included.
    TTA adds the mirror image's logits; AMP runs the model in reduced precision (speed.py).
    REDUCE(meter, loss_sum, n_images) -> (loss_sum, n_images) adds other processes' scores
    (distributed.merge_meters).
    """
    was_training = model.training
    model.eval()
    meter = SegmentationMeter(threshold)
    total_loss, n_images = 0.0, 0
    try:
        with torch.no_grad():
            for batch in loader:
                target, ignore = batch_target(batch, boundary, device)  # (N, 1, H, W)
                images = to_float_images(batch["image"]).to(device)  # (N, 3, H, W)
                logits = predict_logits(model, images, tta, amp)  # (N, 1, H, W)
                if criterion is not None:
                    total_loss += criterion(logits, batch["mask"].float().to(device)).item() \
                        * images.shape[0]
                n_images += images.shape[0]
                meter.update(logits, target, ignore, names=batch.get("name"))
    finally:
        model.train(was_training)
    if reduce is not None:
        total_loss, n_images = reduce(meter, total_loss, n_images)
    results = meter.compute()
    loss = total_loss / n_images if criterion is not None else None
    return {"loss": loss, **results}


def evaluate_at_original_size(model: nn.Module, dataset, image_size: int,
                              threshold: float = 0.5, boundary: str = "pet",
                              tta: bool = False, amp: bool = False) -> dict:
    """Dice and IoU with each prediction resized back to its image's original size.

    DATASET gives original-size samples (an OxfordPetDataset): the model sees each image at
    IMAGE_SIZE, its logits are resized (bilinear) to the image's size, and they are scored
    against the original trimap, so no annotation detail is lost to resizing.
    """
    return scores_at_original_size(model, dataset, image_size, (boundary,), threshold, tta,
                                   amp)[boundary]


def scores_at_original_size(model: nn.Module, dataset, image_size: int,
                            boundaries: tuple[str, ...], threshold: float = 0.5,
                            tta: bool = False, amp: bool = False) -> dict[str, dict]:
    """evaluate_at_original_size under each of BOUNDARIES, reading and predicting an image once."""
    meters = {boundary: SegmentationMeter(threshold) for boundary in boundaries}
    for sample in dataset:
        if sample.get("trimap") is None:
            raise ValueError("evaluate_at_original_size(): this dataset has no trimaps to score")
        pixels = torch.from_numpy(np.asarray(sample["image"])).permute(2, 0, 1)  # (3, H, W)
        small = TF.resize(pixels, [image_size, image_size], antialias=True)  # as in training
        logits = full_size_logits(model, small, pixels.shape[-2:], tta, amp)[None, None]
        trimap = torch.from_numpy(np.asarray(sample["trimap"]))[None, None]  # (1, 1, H, W)
        for boundary, meter in meters.items():
            target, ignore = scoring_target(trimap, boundary)
            meter.update(logits, target, ignore, names=[sample["name"]])
    return {boundary: {"loss": None, **meter.compute()} for boundary, meter in meters.items()}


def describe_protocol(split: str, boundary: str, image_size: int | None,
                      original_size: bool = False, tta: bool = False) -> str:
    """The scoring protocol in words, e.g. 'test split, boundary counted as pet, at 64 px'."""
    where = "at each image's original size" if original_size else f"at {image_size} px"
    return (f"{split} split, {BOUNDARY_POLICIES[check_boundary_policy(boundary)]}, {where}"
            + (", mirror TTA" if tta else ""))


def describe_protocols(protocols: list[str]) -> str:
    """Several rows' protocols in one phrase; sizes alone that differ are named together.

    ['test split, ..., at 128 px', 'test split, ..., at 64 px'] -> 'test split, ..., at 64
    or 128 px (each model at its training size)'; other differences are listed with '; '.
    """
    distinct = sorted(set(protocols))
    sizes = sorted({int(size) for text in distinct for size in re.findall(r"at (\d+) px", text)})
    sizeless = {re.sub(r"at \d+ px", "at SIZE", text) for text in distinct}
    if len(distinct) < 2 or len(sizeless) > 1 or len(sizes) != len(distinct):
        return "; ".join(distinct)
    together = " or ".join(str(size) for size in sizes)
    return sizeless.pop().replace("at SIZE", f"at {together} px (each model at its training size)")


def worst_predictions(model: nn.Module, dataset, device: torch.device | str = "cpu", n: int = 6,
                      threshold: float = 0.5, batch_size: int = 8) -> list[dict]:
    """The N samples of DATASET with the lowest per-image Dice, worst first, with predictions.

    Each item holds the very image, mask and prediction that were scored, so an augmented
    dataset (a new random crop at every read) still shows what its Dice belongs to.
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    worst: list[dict] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                logits = model(to_float_images(batch["image"]).to(device)).cpu()  # (N, 1, H, W)
                counts = confusion_counts(binarize(logits, threshold), batch["mask"])
                for i, dice in enumerate(dice_from_counts(*counts).tolist()):
                    probability = torch.sigmoid(logits[i])  # (1, H, W)
                    worst.append({"name": batch["name"][i], "dice": dice,
                                  "image": batch["image"][i], "mask": batch["mask"][i],
                                  "probability": probability,
                                  "prediction": probability > threshold})
                worst = sorted(worst, key=lambda item: item["dice"])[:n]  # keep N at a time
    finally:
        model.train(was_training)
    return worst
