"""One training step, shared by the training loop and the learning-rate range test.

`make_optimizer` builds the Adam of every run; `forward_loss` runs a batch through the model
in the step's precision and scores it; `optimizer_step` turns that loss into one update of the
weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.predict import to_float_images
from ..models.classes import pet_logits, training_target
from ..speed import amp_dtype, memory_format
from .masked_loss import masked_loss
from .multitask import split_outputs


def make_optimizer(model: nn.Module, learning_rate: float, weight_decay: float,
                   device: torch.device, amp: bool
                   ) -> tuple[torch.optim.Adam, torch.amp.GradScaler]:
    """Adam with decoupled weight decay (AdamW), and the gradient scaler (on with CUDA's AMP)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay,
                                 decoupled_weight_decay=True)
    return optimizer, torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")


def forward_loss(model: nn.Module, batch: dict, criterion: nn.Module, device: torch.device,
                 amp: bool = False, channels_last: bool = False, classes: int = 1,
                 aux_weight: float = 0.0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The pet logits (N, 1, H, W), masks, loss and class logits of one batch.

    With three CLASSES the loss is taken over the class logits (N, 3, H, W); the returned
    logits are then pet against background (classes.pet_logits), as for one class. A
    multi-task model (multitask.py) also gives class logits (N, K): the loss adds AUX_WEIGHT
    x their cross-entropy with the batch's "label". Other models give None for them.
    """
    images = to_float_images(batch["image"]).to(device, non_blocking=True)  # (N, 3, H, W)
    images = images.contiguous(memory_format=memory_format(channels_last))
    target = training_target(batch, classes).to(device, non_blocking=True)
    ignore = batch.get("ignore")  # pixels the loss leaves out, e.g. unsure pseudo-labels
    with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
        logits, class_logits = split_outputs(model(images))  # class logits: a MultiTask's
        logits = logits.float()  # (N, classes, H, W)
        loss = (criterion(logits, target) if ignore is None else
                masked_loss(criterion, logits, target, ignore.to(device, non_blocking=True)))
        if class_logits is not None:  # + the species or breed the head should name
            labels = batch["label"].to(device, non_blocking=True)  # (N,)
            loss = loss + aux_weight * F.cross_entropy(class_logits.float(), labels)
    return pet_logits(logits), batch["mask"].to(device, non_blocking=True), loss, class_logits


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler) -> None:
    """Backward pass and one optimizer step (the scaler is a no-op when disabled)."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)  # a plain optimizer.step() when the scaler is disabled
    scaler.update()
