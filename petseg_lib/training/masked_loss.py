"""A loss over some pixels only: the batch's "ignore" map says which pixels do not count.

Some targets are known for part of an image only, e.g. a pseudo-label keeps the pixels its
model was sure of and leaves the others unknown (pseudo_labels.py). Such a batch carries
"ignore" (N, 1, H, W), True where a pixel's target is unknown, and `masked_loss` computes a
course loss (losses.py) over the other pixels:

- a mean over pixels (BCE, focal) is the mean over the kept pixels;
- a soft overlap (Dice, IoU) sums each image's kept pixels only: an ignored pixel gets
  probability 0 and target 0, so it adds nothing to the intersection or the total;
- BCE + Dice (or IoU) is the sum of the two, each masked.

An ignored pixel's logit and target change nothing, and with nothing ignored the result is the
loss itself. A batch without "ignore" never comes here (step.forward_loss): the ordinary
training step is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .losses import BCEOverlapLoss, FocalLoss, SoftOverlapLoss

PIXEL_MEANS = (nn.BCEWithLogitsLoss, FocalLoss)  # losses that average over every pixel


def masked_loss(criterion: nn.Module, logits: torch.Tensor, targets: torch.Tensor,
                ignore: torch.Tensor) -> torch.Tensor:
    """CRITERION's loss of LOGITS against TARGETS (N, 1, H, W) over the pixels IGNORE leaves."""
    if ignore.shape != logits.shape:
        raise ValueError(f"the ignore map {tuple(ignore.shape)} must have the logits' shape "
                         f"{tuple(logits.shape)}")
    if isinstance(criterion, BCEOverlapLoss):
        return (masked_loss(criterion.bce, logits.float(), targets.float(), ignore)
                + masked_loss(criterion.overlap, logits, targets, ignore))
    if isinstance(criterion, SoftOverlapLoss):
        hidden = logits.float().masked_fill(ignore, -torch.inf)  # sigmoid(-inf) = 0
        return criterion(hidden, targets.float().masked_fill(ignore, 0.0))
    if isinstance(criterion, PIXEL_MEANS):
        keep = ~ignore
        if not keep.any():  # nothing to learn from: a loss of 0 that still has a gradient
            return logits.sum() * 0.0
        return criterion(logits[keep], targets[keep])
    raise ValueError(f"{type(criterion).__name__} cannot leave pixels out: a masked loss is "
                     "BCE, Dice, IoU, focal or their sums (losses.py), for one class")
