"""Three classes instead of two (--classes 3): pet, background and the boundary band.

The trimap already holds three classes, so a model can learn all of them: it returns one
logit per class (N, 3, H, W), softmax turns them into probabilities and cross-entropy trains
them. Channel c predicts trimap value c + 1 (1 pet, 2 background, 3 boundary).

Every other part of the course reads a pet-against-background logit (N, 1, H, W). `pet_logits`
gives it from the three: the pet's probability is p(pet) + p(boundary) (the boundary belongs
to the pet, as in the binary mask), and the logit whose sigmoid is that probability is
log(p(pet) + p(boundary)) - log(p(background)). So the threshold rule, Dice, the sliders and
the exported model treat a three-class model as a binary one; `ClassIoU` scores the classes.
"""

from __future__ import annotations

import torch
from torch import nn

TRIMAP_CLASSES = ("pet", "background", "boundary")  # channel c: trimap value c + 1
CLASS_COUNTS = (1, 3)  # TrainConfig.classes: the binary mask, or the trimap's three classes


def training_target(batch: dict, classes: int) -> torch.Tensor:
    """What the loss compares a batch's logits with: the mask (N, 1, H, W) or classes (N, H, W)."""
    if classes == 1:
        return batch["mask"].float()
    return batch["trimap"][:, 0].long() - 1  # trimap values 1, 2, 3 -> classes 0, 1, 2


def pet_logits(logits: torch.Tensor) -> torch.Tensor:
    """Pet-against-background logits (N, 1, H, W): LOGITS themselves, or from three classes."""
    if logits.shape[1] == 1:
        return logits
    pet_or_boundary = torch.logsumexp(logits[:, [0, 2]], dim=1, keepdim=True)
    return pet_or_boundary - logits[:, 1:2]  # log((p_pet + p_boundary) / p_background)


class PetLogits(nn.Module):
    """A three-class model seen as a binary one: its forward returns `pet_logits`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pet_logits(self.model(x))  # (N, 1, H, W)


def as_binary(model: nn.Module) -> nn.Module:
    """MODEL itself when it has one output, else MODEL wrapped in PetLogits."""
    outputs = getattr(model, "config", {}).get("out_channels", 1)
    return PetLogits(model) if outputs == len(TRIMAP_CLASSES) else model


def describe_class_iou(scores: dict) -> str:
    """One line: the IoU of each class and their mean, from `ClassIoU.compute`."""
    each = ", ".join(f"{name} {iou:.4f}" for name, iou in scores["class_iou"].items())
    return f"IoU per class: {each}; mean IoU {scores['mean_iou']:.4f}"


class ClassIoU:
    """IoU of each trimap class, pooled over every pixel seen, and their mean (mIoU)."""

    def __init__(self) -> None:
        self.intersection = torch.zeros(len(TRIMAP_CLASSES), dtype=torch.long)
        self.union = torch.zeros(len(TRIMAP_CLASSES), dtype=torch.long)

    def update(self, logits: torch.Tensor, trimaps: torch.Tensor) -> None:
        """Add a batch: class logits (N, 3, H, W) and trimaps (N, 1, H, W) of values 1-3."""
        predicted = logits.argmax(dim=1).cpu()  # (N, H, W)
        actual = trimaps[:, 0].long().cpu() - 1
        for c in range(len(TRIMAP_CLASSES)):
            self.intersection[c] += int(((predicted == c) & (actual == c)).sum())
            self.union[c] += int(((predicted == c) | (actual == c)).sum())

    def compute(self) -> dict:
        """{"class_iou": {class: IoU}, "mean_iou": their mean}; a class never seen scores 1."""
        iou = {name: (self.intersection[c] / self.union[c]).item() if self.union[c] else 1.0
               for c, name in enumerate(TRIMAP_CLASSES)}
        return {"class_iou": iou, "mean_iou": sum(iou.values()) / len(iou)}
