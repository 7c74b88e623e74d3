"""LR-ASPP on a ShuffleNetV2 backbone: the lightest baseline, about 1.5 M parameters.

ShuffleNetV2 (Ma et al., 2018) is built for phones: each unit splits its channels in two,
sends one half through cheap convolutions (1x1, depthwise 3x3, 1x1) and then shuffles the
channels of both halves together. torchvision has it as a classifier only, so this module
makes a segmentation model of it, the way torchvision makes LR-ASPP of MobileNetV3:

1. The backbone is torchvision's ``shufflenet_v2_x1_0`` without its classifier (global
   pooling and ``fc``): conv1 and maxpool (H/4), stage2 (116 channels, H/8), stage3 (232,
   H/16), stage4 (464, H/32) and conv5 (a 1x1 convolution to 1024 channels, H/32).
2. The head is torchvision's Lite R-ASPP (``LRASPP``): the H/32 features, reweighted per
   channel by their image average (a squeeze-and-excitation-like gate), become 128 channels
   and a class map; the H/8 features of stage2 add a class map of their own, and the sum is
   upsampled bilinearly to the input.

It is wrapped like the other baselines (``baselines.TorchvisionBaseline``): ``forward``
returns the logits tensor, ``weights=None`` by default (``pretrained_backbone=True`` starts the
backbone from torchvision's ImageNet weights and then normalises the input inside ``forward``),
BatchNorm momentum 0.1, and ``model.config`` rebuilds it without downloading anything.

Input: float images in [0, 1] of shape (N, 3, H, W), H, W >= 32. In training mode a batch of
one needs images larger than 32 px, so that stage4 has more than one value per channel.
"""

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import ShuffleNet_V2_X1_0_Weights, ShuffleNetV2, shufflenet_v2_x1_0
from torchvision.models.segmentation.lraspp import LRASPP

from .baselines import TorchvisionBaseline

__all__ = ["LRASPP_ShuffleNetV2", "ShuffleNetFeatures", "lraspp_shufflenet_v2"]

LOW_CHANNELS, HIGH_CHANNELS = 116, 1024  # stage2 and conv5 of shufflenet_v2_x1_0


class ShuffleNetFeatures(nn.Module):
    """ShuffleNetV2 without pooling and fc; returns stage2's ("low") and conv5's ("high") maps."""

    def __init__(self, net: ShuffleNetV2):
        super().__init__()
        self.conv1, self.maxpool = net.conv1, net.maxpool
        self.stage2, self.stage3, self.stage4 = net.stage2, net.stage3, net.stage4
        self.conv5 = net.conv5

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(self.conv1(x))  # (N, 24, H/4, W/4)
        low = self.stage2(x)  # (N, 116, H/8, W/8)
        x = self.stage4(self.stage3(low))  # (N, 232, H/16, W/16), then (N, 464, H/32, W/32)
        return OrderedDict(low=low, high=self.conv5(x))  # high: (N, 1024, H/32, W/32)


def lraspp_shufflenet_v2(weights: None = None,
                         weights_backbone: ShuffleNet_V2_X1_0_Weights | None = None,
                         num_classes: int = 1) -> LRASPP:
    """LR-ASPP on ShuffleNetV2 x1.0, built as torchvision's segmentation builders are.

    There are no trained weights of the whole model (WEIGHTS must be None); WEIGHTS_BACKBONE
    are the classifier's ImageNet weights, downloaded into the torch hub cache.
    """
    if weights is not None:
        raise ValueError("there are no trained weights of LR-ASPP ShuffleNetV2: weights=None")
    backbone = ShuffleNetFeatures(shufflenet_v2_x1_0(weights=weights_backbone))
    return LRASPP(backbone, LOW_CHANNELS, HIGH_CHANNELS, num_classes)


class LRASPP_ShuffleNetV2(TorchvisionBaseline):
    """LR-ASPP on ShuffleNetV2 x1.0; outputs logits of the input's size."""

    builder = staticmethod(lraspp_shufflenet_v2)
    backbone, weights = "ShuffleNetV2", ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1
