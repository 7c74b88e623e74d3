"""DeepLabv3+ on the course's ResNet34 encoder, for binary pet segmentation.

DeepLabv3+ (Chen et al., 2018) keeps the encoder's deep features at H/16 and looks at them at
several scales at once; a light decoder then brings back the outlines from the H/4 features.

1. Encoder: the ResNet34 of ``ResNet34_UNet`` (``resnet34_unet.ResNet34Encoder``), with its
   last layer at H/16 instead of H/32: layer4's first block keeps stride 1, and the 3x3
   convolutions after the stride that was removed are dilated by 2, so each still sees as far
   into the image as before. The weights keep their shapes: torchvision's ImageNet ResNet34
   loads as it does into the ResNet34-UNet.
2. ASPP (atrous spatial pyramid pooling), torchvision's ``ASPP``: on the H/16 features, a 1x1
   convolution, three 3x3 convolutions dilated by 6, 12 and 18, and the image's average,
   concatenated and projected to 256 channels (with dropout 0.5).
3. Decoder: a 1x1 convolution reduces layer1's H/4 features to 48 channels; the ASPP output,
   upsampled 4 times, is concatenated with them; two 3x3 convolutions (256 channels) fuse
   the two; a 1x1 convolution gives ``out_channels`` logits at H/4, and bilinear interpolation
   enlarges them to the input size.

Width: ``base_channels`` (default 64, ResNet34's own) scales the encoder as in
``ResNet34_UNet``, and the head with it (ASPP and decoder 4 x base_channels, the low-level
reduction 3/4 x base_channels). ImageNet weights exist for the default width only.

Input: float images in [0, 1] of shape (N, 3, H, W), H, W >= 32. With ImageNet weights the
ImageNet normalisation is applied inside ``forward``, as in ``ResNet34_UNet``. In training
mode the batch needs at least 2 images: ASPP's image-average branch applies BatchNorm to one
value per channel and image. Output: logits of shape (N, out_channels, H, W).

Checkpoints: ``model.config`` rebuilds the architecture without downloading anything, as in
``ResNet34_UNet``: ``pretrained_encoder`` is left out, ``normalize_input`` is kept.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from .resnet34_unet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ResNet34Encoder,
    encoder_settings,
    load_imagenet_weights,
)

__all__ = ["DeepLabV3Plus_ResNet34", "dilate_layer4"]

ATROUS_RATES = (6, 12, 18)  # at output stride 16, as in the paper


def dilate_layer4(encoder: ResNet34Encoder) -> None:
    """Layer4 at H/16 instead of H/32: no stride, the 3x3 convolutions after it dilated by 2."""
    first = encoder.layer4[0]
    first.conv1.stride = (1, 1)
    first.downsample[0].stride = (1, 1)
    convs = [first.conv2] + [conv for block in encoder.layer4[1:]
                             for conv in (block.conv1, block.conv2)]
    for conv in convs:
        conv.dilation, conv.padding = (2, 2), (2, 2)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """A convolution keeping the size, BatchNorm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DeepLabV3Plus_ResNet34(nn.Module):
    """ResNet34 encoder (output stride 16) + ASPP + the v3+ decoder; logits of the input's size.

    The encoder's settings (ImageNet weights, input normalisation, width) are ResNet34_UNet's.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1,
                 pretrained_encoder: bool = False, normalize_input: bool | None = None,
                 base_channels: int = 64):
        super().__init__()
        self.pretrained_encoder = pretrained_encoder
        self.normalize_input = normalize_input = encoder_settings(
            in_channels, base_channels, pretrained_encoder, normalize_input)
        # Everything needed to rebuild the architecture without downloading (see module doc).
        self.config = {"in_channels": in_channels, "out_channels": out_channels,
                       "normalize_input": normalize_input, "base_channels": base_channels}
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
                             persistent=False)

        b = base_channels  # 64: ResNet34; every width below scales with it
        self.encoder = ResNet34Encoder(in_channels, width=b)
        if pretrained_encoder:
            load_imagenet_weights(self.encoder)
        dilate_layer4(self.encoder)
        self.aspp = ASPP(8 * b, ATROUS_RATES, out_channels=4 * b)
        self.low_level = conv_bn_relu(b, 3 * b // 4, kernel_size=1)  # 48 channels at b=64
        self.decoder = nn.Sequential(
            conv_bn_relu(4 * b + 3 * b // 4, 4 * b, kernel_size=3),
            conv_bn_relu(4 * b, 4 * b, kernel_size=3),
        )
        self.classifier = nn.Conv2d(4 * b, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]  # (H, W)
        if self.normalize_input:
            x = (x - self.mean) / self.std
        _, x1, _, _, x4 = self.encoder(x)  # (N, 64, H/4, W/4), (N, 512, H/16, W/16)
        high = self.aspp(x4)  # (N, 256, H/16, W/16)
        low = self.low_level(x1)  # (N, 48, H/4, W/4)
        high = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        x = self.decoder(torch.cat([high, low], dim=1))  # (N, 256, H/4, W/4)
        logits = self.classifier(x)  # (N, out_channels, H/4, W/4)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
