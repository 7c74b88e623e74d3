"""Loss functions for binary segmentation, and helpers to build them by name.

Every loss takes the model's logits (N, 1, H, W) and float target masks (N, 1, H, W) with
values in {0, 1} (1 = pet), and returns a 0-dim tensor: the mean loss of the batch.

- "bce": binary cross-entropy, ``nn.BCEWithLogitsLoss`` (the course's default). Every pixel
  counts the same, so large pets and the background dominate.
- "dice": soft Dice loss, 1 - Dice computed on probabilities instead of a thresholded mask.
  Each image counts the same, whatever the size of its pet.
- "bce_dice": the sum of the two.
- "focal": binary focal loss, a BCE that down-weights the pixels that are already right.
- "iou": soft IoU (Jaccard) loss, 1 - IoU on probabilities, the score the report gives
  beside Dice; "bce_iou": BCE + it.
- "ce": cross-entropy over the trimap's three classes (--classes 3, classes.py): logits
  (N, 3, H, W) against each pixel's class (N, H, W).

The losses compute in float32 even when the logits are bfloat16 or float16 (mixed precision):
sums over many pixels lose too much precision in 16 bits.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LOSSES", "BCEDiceLoss", "BCEIoULoss", "FocalLoss", "SoftDiceLoss", "SoftIoULoss",
           "build_loss"]


def _check_shapes(logits: torch.Tensor, targets: torch.Tensor) -> None:
    """Raise a ValueError unless logits and targets have the same shape."""
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} "
                         "must have the same shape (N, 1, H, W)")


class SoftOverlapLoss(nn.Module):
    """1 - a soft overlap score of each image (``overlap``), averaged over the batch."""

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        self.smooth = smooth

    def overlap(self, intersection: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """Each image's score from sum(p * t) and sum(p) + sum(t), both (N,)."""
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_shapes(logits, targets)
        probabilities = torch.sigmoid(logits.float()).flatten(1)  # (N, H*W)
        targets = targets.float().flatten(1)  # (N, H*W)
        intersection = (probabilities * targets).sum(1)  # (N,)
        total = probabilities.sum(1) + targets.sum(1)  # (N,)
        return (1 - self.overlap(intersection, total)).mean()


class SoftDiceLoss(SoftOverlapLoss):
    """1 - soft Dice of each image, averaged over the batch.

    With p = sigmoid(logits) and t = targets, summed over the pixels of one image:

        Dice = (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)
        loss = mean over the batch of (1 - Dice)

    ``smooth`` (default 1.0, about one pixel) keeps the fraction defined when the image has no
    pet and the model predicts none: then Dice = smooth / smooth = 1 and the loss is 0. A
    perfect prediction (p close to t) gives a loss close to 0, an inverted one close to 1.
    """

    def overlap(self, intersection: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """Soft Dice of each image."""
        return (2 * intersection + self.smooth) / (total + self.smooth)


class SoftIoULoss(SoftOverlapLoss):
    """1 - soft IoU (Jaccard index) of each image, averaged over the batch.

    With p = sigmoid(logits) and t = targets, summed over the pixels of one image:

        IoU  = (sum(p * t) + smooth) / (sum(p) + sum(t) - sum(p * t) + smooth)
        loss = mean over the batch of (1 - IoU)

    IoU = Dice / (2 - Dice), so a mask that is partly wrong loses more IoU than Dice: the
    loss pushes harder on the images that are not yet right. ``smooth`` as in SoftDiceLoss.
    """

    def overlap(self, intersection: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """Soft IoU of each image: the union is the total less the intersection."""
        return (intersection + self.smooth) / (total - intersection + self.smooth)


class BCEOverlapLoss(nn.Module):
    """BCE + a soft overlap loss (``overlap_loss``): every pixel a gradient, each pet as a whole."""

    overlap_loss = SoftDiceLoss

    def __init__(self, smooth: float = 1.0):
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss()
        self.overlap = self.overlap_loss(smooth)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_shapes(logits, targets)
        return self.bce(logits.float(), targets.float()) + self.overlap(logits, targets)


class BCEDiceLoss(BCEOverlapLoss):
    """BCE + soft Dice: BCE gives every pixel a gradient, Dice looks at each pet as a whole."""

    overlap_loss = SoftDiceLoss


class BCEIoULoss(BCEOverlapLoss):
    """BCE + soft IoU."""

    overlap_loss = SoftIoULoss


class FocalLoss(nn.Module):
    """Binary focal loss (Lin et al., 2017), averaged over all pixels.

    For one pixel, with p = sigmoid(logit) and t its target in {0, 1}:

        bce     = -(t * log(p) + (1 - t) * log(1 - p))
        p_t     = p if t = 1 else 1 - p   (the probability given to the right class)
                = exp(-bce)
        alpha_t = alpha if t = 1 else 1 - alpha
        loss    = alpha_t * (1 - p_t) ** gamma * bce

    The factor (1 - p_t) ** gamma is close to 0 for pixels that are already right (p_t near 1),
    so the loss concentrates on the hard pixels. gamma=0 and alpha=None give plain BCE.
    alpha=None leaves out the alpha_t weight; alpha=0.25 is the paper's choice (it weights the
    pet pixels less, which the paper found to work best together with gamma=2). bce comes from
    ``F.binary_cross_entropy_with_logits``, which stays finite for very large logits where
    log(sigmoid(logit)) computed by hand would give -inf.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = 0.25):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, not {gamma}")
        if alpha is not None and not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be None or in [0, 1], not {alpha}")
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_shapes(logits, targets)
        logits, targets = logits.float(), targets.float()
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        p_t = torch.exp(-bce)
        # 1 - p_t rounds to 0 on sure, right pixels (|logit| > ~17). The clamp keeps the
        # gradient of (1 - p_t) ** gamma finite there when gamma < 1 (0 * inf would give nan).
        loss = (1 - p_t).clamp(min=1e-12) ** self.gamma * bce
        if self.alpha is not None:
            alpha_t = self.alpha * targets + (1 - self.alpha) * (1 - targets)
            loss = alpha_t * loss
        return loss.mean()


LOSSES = {
    "bce": nn.BCEWithLogitsLoss,
    "dice": SoftDiceLoss,
    "bce_dice": BCEDiceLoss,
    "focal": FocalLoss,
    "iou": SoftIoULoss,
    "bce_iou": BCEIoULoss,
    "ce": nn.CrossEntropyLoss,  # three classes (--classes 3): softmax and cross-entropy
}


def build_loss(name: str, **kwargs) -> nn.Module:
    """Build the loss called `name` (a key of LOSSES) with the given kwargs."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    return LOSSES[name](**kwargs)
