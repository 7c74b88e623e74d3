"""Multi-task learning: one encoder, two tasks, the pet's mask and its species or breed.

The design report suggests that classifying the pet beside segmenting it might make the
encoder learn richer features. `MultiTask` adds that task to a segmentation model without
changing it: a forward hook keeps the encoder's deepest feature map, and a `ClassHead` (global
average pooling, then one linear layer) turns it into class logits.

    images (N, 3, H, W) -> segmenter -> mask logits (N, 1, H, W)
                               deepest features (N, C, h, w) -> ClassHead -> class logits (N, K)

The loss is the segmentation loss + aux_weight x the cross-entropy of the class logits
(step.forward_loss), and the history records the head's accuracy beside Dice. The segmenter
stays the model: a checkpoint saves its weights as any run's ("state_dict") and the head's
beside them ("aux_head"), so inference and export load a multi-task run like any other.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.pet_labels import AUX_TASKS
from ..evaluation.predict import to_float_images
from ..models import ResNet34_UNet, SegFormer_B0, UNet
from ..models.segformer import HIDDEN_SIZES
from ..speed import amp_dtype

AUX_MODELS = ("unet", "resnet34_unet", "segformer_b0")  # the models with a ClassHead
AUX_WEIGHT = 0.2  # TrainConfig.aux_weight: the class head's share of the loss


def deepest_features(model: nn.Module) -> tuple[nn.Module, int]:
    """The layer of MODEL whose output is its deepest feature map, and that map's channels."""
    if isinstance(model, UNet):
        return model.down4, 16 * model.config["base_channels"]  # (N, 16c, H/16, W/16)
    if isinstance(model, ResNet34_UNet):
        return model.encoder.layer4, 8 * model.config["base_channels"]  # (N, 8b, H/32, W/32)
    if isinstance(model, SegFormer_B0):
        return model.encoder.stage4, HIDDEN_SIZES[-1]  # (N, 256, H/32, W/32)
    raise ValueError(f"{type(model).__name__} has no class head: a multi-task run trains one "
                     f"of {', '.join(AUX_MODELS)}")


class ClassHead(nn.Module):
    """Global average pooling, then one linear layer: a feature map into class logits."""

    def __init__(self, in_channels: int, classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x).flatten(1)  # (N, C, h, w) -> (N, C)
        return self.fc(x)  # (N, classes)


class MultiTask(nn.Module):
    """A segmentation model and a ClassHead on its deepest features; returns both logits."""

    def __init__(self, segmenter: nn.Module, classes: int):
        super().__init__()
        self.segmenter = segmenter
        deepest, channels = deepest_features(segmenter)
        self.head = ClassHead(channels, classes)
        self.features: torch.Tensor | None = None  # the deepest map of the running forward
        deepest.register_forward_hook(self.keep_features)

    def keep_features(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        """Forward hook on the deepest layer: keep its output for the head."""
        self.features = output

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.segmenter(x)  # (N, out_channels, H, W); the hook keeps the features
        features, self.features = self.features, None  # (N, C, h, w)
        return logits, self.head(features)  # (N, classes)


def with_aux_head(model: nn.Module, aux_task: str | None) -> nn.Module:
    """MODEL itself, or MODEL in a MultiTask whose head predicts AUX_TASK's classes."""
    return model if aux_task is None else MultiTask(model, AUX_TASKS[aux_task])


def split_outputs(outputs) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A model's mask logits, and its class logits (None from a segmentation-only model)."""
    return outputs if isinstance(outputs, tuple) else (outputs, None)


def correct_guesses(class_logits: torch.Tensor, labels: torch.Tensor) -> int:
    """How many rows of CLASS_LOGITS (N, K) score their label (N,) highest."""
    return int((class_logits.argmax(dim=1).cpu() == labels.cpu()).sum())


def class_accuracy(model: MultiTask, loader, device: torch.device | str,
                   amp: bool = False) -> float:
    """The share of LOADER's images whose class MODEL's head scores highest."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    right = seen = 0
    try:
        with torch.no_grad(), torch.autocast(device.type, amp_dtype(device), enabled=amp):
            for batch in loader:
                images = to_float_images(batch["image"]).to(device)  # (N, 3, H, W)
                _, class_logits = model(images)  # (N, classes)
                right += correct_guesses(class_logits, batch["label"])
                seen += images.shape[0]
    finally:
        model.train(was_training)
    return right / seen
