"""Two torchvision segmentation models as baselines, wrapped to behave like the course's models.

- ``LRASPP_MobileNetV3``: Lite R-ASPP on a MobileNetV3-Large backbone. Small and fast, made
  for phones; about 3.2 M parameters.
- ``DeepLabV3_ResNet50``: DeepLabV3 (atrous spatial pyramid pooling) on a dilated ResNet50
  backbone. Large and slow, but a strong reference; about 39.6 M parameters.

What the wrappers change compared to calling torchvision's builders directly:

1. The models are built with ``num_classes=out_channels`` (1 logit: pet vs background),
   ``weights=None`` (torchvision's COCO weights predict 21 Pascal VOC classes, not our
   task) and no auxiliary head. By default no backbone weights either: torchvision's builders
   download the ImageNet backbone unless told ``weights_backbone=None``.
2. ``forward`` returns the logits tensor (N, out_channels, H, W) instead of torchvision's dict
   ``{"out": logits}``, so the training and evaluation code of the course works unchanged.
3. ``pretrained_backbone=True`` starts the backbone from torchvision's ImageNet weights, and
   then, as in ``ResNet34_UNet``, the ImageNet mean/std normalisation is applied to the [0, 1]
   input inside ``forward`` (``normalize_input``, default: same as pretrained_backbone).

Input: float images in [0, 1] of shape (N, 3, H, W), H, W >= 32. Both backbones look at the
image at 1/8 (DeepLabV3) or 1/16 (LR-ASPP) of its size and the output is upsampled bilinearly
to the input size. In training mode DeepLabV3 needs a batch of at least 2: its image pooling
branch applies BatchNorm to a single value per channel and image.

BatchNorm: every BatchNorm layer updates its running statistics with momentum 0.1 (PyTorch's
default) instead of MobileNetV3's 0.01, so that short trainings evaluate correctly.

Checkpoints: ``model.config`` holds the constructor arguments that rebuild the architecture
without downloading anything: ``pretrained_backbone`` is left out (the checkpoint's state dict
already holds the trained weights) while ``normalize_input`` is kept, as in ``ResNet34_UNet``.
"""

import torch
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet50_Weights
from torchvision.models.segmentation import deeplabv3_resnet50, lraspp_mobilenet_v3_large

from .resnet34_unet import IMAGENET_MEAN, IMAGENET_STD, imagenet_state_dict, weights_download_error

__all__ = ["DeepLabV3_ResNet50", "LRASPP_MobileNetV3", "TorchvisionBaseline"]

BATCHNORM_MOMENTUM = 0.1  # PyTorch's default; see TorchvisionBaseline.__init__


class TorchvisionBaseline(nn.Module):
    """Common part of the baselines: the build, input normalisation, config and the logits.

    A subclass names torchvision's BUILDER, its BACKBONE and that backbone's ImageNet WEIGHTS.
    """

    builder = None  # torchvision's model builder, as a staticmethod
    backbone, weights, options = "", None, {}  # its backbone's name and weights, other options

    def __init__(self, out_channels: int = 1, pretrained_backbone: bool = False,
                 normalize_input: bool | None = None):
        super().__init__()
        if normalize_input is None:
            normalize_input = pretrained_backbone
        self.pretrained_backbone = pretrained_backbone
        self.normalize_input = normalize_input
        # Everything needed to rebuild the architecture without downloading (see module doc).
        self.config = {"out_channels": out_channels, "normalize_input": normalize_input}
        # Not saved in the state dict, so its keys are the same with or without normalisation.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)
        weights = self.weights if pretrained_backbone else None
        try:
            if weights is not None:  # into the hub cache, checked to hold tensors only
                imagenet_state_dict(weights.url)
            self.net = self.builder(weights=None, weights_backbone=weights,
                                    num_classes=out_channels, **self.options)
        except Exception as err:
            if weights is None:  # nothing to download: a genuine error, raise it as it is
                raise
            raise weights_download_error(weights.url, f"the {self.backbone} backbone",
                                         "pretrained_backbone=False", err) from err
        # torchvision's MobileNetV3 updates BatchNorm's running statistics with momentum 0.01:
        # after a few hundred steps they still mostly hold their starting values, and in
        # evaluation mode the model fails (validation Dice 0 after 8 quick epochs, while the
        # training Dice reached 0.73). PyTorch's default 0.1, as in the course's own models,
        # follows the batches within tens of steps. The momentum is not part of checkpoints.
        for module in self.net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = BATCHNORM_MOMENTUM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_input:
            x = (x - self.mean) / self.std
        return self.net(x)["out"]  # (N, out_channels, H, W)


class LRASPP_MobileNetV3(TorchvisionBaseline):
    """torchvision's LR-ASPP MobileNetV3-Large; outputs logits of the input's size."""

    builder = staticmethod(lraspp_mobilenet_v3_large)
    backbone, weights = "MobileNetV3-Large", MobileNet_V3_Large_Weights.IMAGENET1K_V1


class DeepLabV3_ResNet50(TorchvisionBaseline):
    """torchvision's DeepLabV3 ResNet50, no auxiliary head; outputs logits of the input's size."""

    builder = staticmethod(deeplabv3_resnet50)
    backbone, weights = "ResNet50", ResNet50_Weights.IMAGENET1K_V1
    options = {"aux_loss": False}
