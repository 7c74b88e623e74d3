"""Segmentation metrics: Dice and IoU per image or pooled, and the meter that sums them up.

Masks are (N, 1, H, W) or (N, H, W), bool or 0/1; logits (N, 1, H, W) become masks by the one
threshold rule (threshold.binarize). Only torch and numpy: every room may score.
"""

import numpy as np
import torch

from .threshold import DEFAULT_THRESHOLD, binarize


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


def dice_score(logits: torch.Tensor, targets: torch.Tensor, threshold: float = DEFAULT_THRESHOLD,
               ignore: torch.Tensor | None = None, pooled: bool = False) -> torch.Tensor:
    """Dice of sigmoid(LOGITS) > THRESHOLD against TARGETS (a 0-dim tensor).

    pooled=False: the mean over the batch of each image's Dice, every image counting equally.
    pooled=True: one Dice of all the batch's pixels together, 2ΣI / (ΣP + ΣT).
    """
    counts = confusion_counts(binarize(logits, threshold), targets, ignore)
    return reduce_counts(dice_from_counts, counts, pooled)


def iou_score(logits: torch.Tensor, targets: torch.Tensor, threshold: float = DEFAULT_THRESHOLD,
              ignore: torch.Tensor | None = None, pooled: bool = False) -> torch.Tensor:
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

    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
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
