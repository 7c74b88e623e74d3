"""Evaluation runs: the `evaluate()` loop over a loader, scores at original size, protocols.

A batch is a dict with "image" (N, 3, H, W) float in [0, 1] (or uint8 0-255), "mask"
(N, 1, H, W) float in {0, 1} (or None), "trimap" (N, 1, H, W) uint8 with 1 = pet,
2 = background, 3 = boundary (or None) and "name" (list of str). Models return logits (N, 1, H, W).

The metrics themselves (Dice, IoU, SegmentationMeter) are in metrics.py; they are named here
too, where the design report puts `evaluate`.
"""

import re
from collections.abc import Callable

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn
from torch.utils.data import DataLoader

from ..data.batch import collate
from ..data.masks import BOUNDARY_POLICIES, check_boundary_policy, scoring_target
from ..models.classes import TRIMAP_CLASSES, ClassIoU, pet_logits, training_target
from .metrics import (  # noqa: F401  (the metric names stay importable from here)
    SegmentationMeter,
    confusion_counts,
    dice_from_counts,
    dice_score,
    iou_from_counts,
    iou_score,
    mask_dice,
    reduce_counts,
)
from .predict import full_size_logits, predict_logits, to_float_images
from .threshold import DEFAULT_THRESHOLD, binarize


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
    threshold: float = DEFAULT_THRESHOLD,
    boundary: str = "pet",
    tta: bool = False,
    amp: bool = False,
    reduce: Callable | None = None,
) -> dict:
    """Return loss (or None), per-image and pooled Dice and IoU of `model` over `loader`.

    BOUNDARY says how the trimap's boundary band is scored: "pet" (the design report),
    "background" or "ignore". The loss always uses the training mask, every pixel included.
    TTA adds the mirror image's logits; AMP runs the model in reduced precision (speed.py).
    REDUCE(meter, class_meter, loss_sum, n_images) -> (loss_sum, n_images) adds other
    processes' scores (distributed.merge_meters).
    """
    was_training = model.training
    model.eval()
    meter, class_meter = SegmentationMeter(threshold), ClassIoU()
    total_loss, n_images = 0.0, 0
    try:
        with torch.no_grad():
            for batch in loader:
                target, ignore = batch_target(batch, boundary, device)  # (N, 1, H, W)
                images = to_float_images(batch["image"]).to(device)  # (N, 3, H, W)
                logits = predict_logits(model, images, tta, amp, as_pet=False)  # (N, C, H, W)
                if criterion is not None:
                    training = training_target(batch, logits.shape[1]).to(device)
                    total_loss += criterion(logits, training).item() * images.shape[0]
                if logits.shape[1] == len(TRIMAP_CLASSES):  # a three-class model
                    class_meter.update(logits, batch["trimap"])
                n_images += images.shape[0]
                meter.update(pet_logits(logits), target, ignore, names=batch.get("name"))
    finally:
        model.train(was_training)
    if reduce is not None:
        total_loss, n_images = reduce(meter, class_meter, total_loss, n_images)
    results = meter.compute()
    classes = class_meter.compute() if class_meter.union.sum() else {}  # IoU of each class
    loss = total_loss / n_images if criterion is not None else None
    return {"loss": loss, **results, **classes}


def evaluate_at_original_size(model: nn.Module, dataset, image_size: int,
                              threshold: float = DEFAULT_THRESHOLD, boundary: str = "pet",
                              tta: bool = False, amp: bool = False) -> dict:
    """Dice and IoU with each prediction resized back to its image's original size.

    DATASET gives original-size samples (an OxfordPetDataset): the model sees each image at
    IMAGE_SIZE, its logits are resized (bilinear) to the image's size, and they are scored
    against the original trimap, so no annotation detail is lost to resizing.
    """
    return scores_at_original_size(model, dataset, image_size, (boundary,), threshold, tta,
                                   amp)[boundary]


def scores_at_original_size(model: nn.Module, dataset, image_size: int,
                            boundaries: tuple[str, ...], threshold: float = DEFAULT_THRESHOLD,
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
                      threshold: float = DEFAULT_THRESHOLD, batch_size: int = 8) -> list[dict]:
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
                images = to_float_images(batch["image"]).to(device)
                logits = predict_logits(model, images).cpu()  # (N, 1, H, W)
                predictions = binarize(logits, threshold)  # (N, 1, H, W) bool
                counts = confusion_counts(predictions, batch["mask"])
                for i, dice in enumerate(dice_from_counts(*counts).tolist()):
                    worst.append({"name": batch["name"][i], "dice": dice,
                                  "image": batch["image"][i], "mask": batch["mask"][i],
                                  "probability": torch.sigmoid(logits[i]),  # (1, H, W)
                                  "prediction": predictions[i]})
                worst = sorted(worst, key=lambda item: item["dice"])[:n]  # keep N at a time
    finally:
        model.train(was_training)
    return worst
