"""ResNet34-UNet: a ResNet34 encoder with a U-Net decoder, for binary pet segmentation.

The encoder is ResNet34 written out by hand (stem, then layer1..layer4 of BasicBlocks with
64, 128, 256 and 512 channels). Its parameter and buffer names equal those of torchvision's
``resnet34()`` without ``fc``, so torchvision's ImageNet weights load into it directly.

Changes compared to the ResNet34 classifier:

1. The classification head is removed: no global average pooling, no fully connected layer,
   no softmax. The encoder ends with the 512-channel feature map at H/32 x W/32, which keeps
   the spatial information.
2. Skip connections to a U-Net decoder: the stem (conv1 after ReLU), layer1, layer2 and
   layer3 outputs are fused with the upsampled deeper features by the ``Up`` modules of the
   U-Net (upsample, concatenate, DoubleConv).
3. Channel reduction while upsampling: each ``Up`` halves the channels with a transposed
   convolution (or bilinear upsampling and a 1x1 convolution). As in the design report, the
   decoder ends after the last ``Up`` (at H/2, the stem's resolution): a 1x1 convolution
   gives ``out_channels`` logits and bilinear interpolation enlarges them to the input size.

Decoder widths: 256 (H/16), 128 (H/8), 64 (H/4), 32 (H/2): like the U-Net decoder, every
doubling of the resolution halves the channels. The high-resolution steps are the expensive
ones (a 3x3 convolution costs 4 times more per channel at H/2 than at H/4), so they are kept
narrow, and there is no convolution at full resolution at all: the encoder does the heavy
lifting, and a pet's outline is smooth enough for logits at half resolution. This makes the
model faster than common ResNet34 U-Nets (see benchmarks/README.md).

Width: ``base_channels`` (default 64, ResNet34's own) sets the stem's channels; every layer
scales with it, so ``base_channels=16`` keeps ResNet34's depth and layout at a quarter of
its width and about a sixteenth of its operations (the course's quick mode on a CPU). The
ImageNet weights exist for the default width only.

Input: float images in [0, 1] of shape (N, 3, H, W) with H, W >= 32 (odd or non-square
sizes work). When the encoder uses ImageNet weights, the ImageNet mean/std normalisation is
applied inside ``forward``, so callers always pass [0, 1] images. In training mode use inputs
of at least 64x64 when the batch size is 1, so that layer4 has more than one value per channel
for BatchNorm. Output: logits of shape (N, out_channels, H, W).

Checkpoints: ``model.config`` holds the constructor arguments that rebuild the architecture
without downloading anything: ``pretrained_encoder`` is left out (the checkpoint's state dict
already holds the trained weights) while ``normalize_input`` is kept. So a model built with
``pretrained_encoder=True`` rebuilds as ``ResNet34_UNet(pretrained_encoder=False,
normalize_input=True)`` and then loads its state dict. ``model.pretrained_encoder`` records
whether the encoder started from ImageNet weights.
"""

import os

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import ResNet34_Weights

from .unet import Up

__all__ = ["BasicBlock", "ResNet34Encoder", "ResNet34_UNet", "imagenet_weights_problem",
           "load_imagenet_weights"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's ImageNet ResNet34 weights; the file's name ends with the start of its SHA-256,
# which a download is checked against. Read again at each use, so a test can serve its own.
RESNET34_IMAGENET_URL = ResNet34_Weights.IMAGENET1K_V1.url


class BasicBlock(nn.Module):
    """Residual block: (3x3 conv, BN, ReLU, 3x3 conv, BN) + shortcut, then ReLU."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)  # match the shape of out
        out = out + identity
        return self.relu(out)


class ResNet34Encoder(nn.Module):
    """ResNet34 without avgpool and fc; returns the features used as skip connections."""

    def __init__(self, in_channels: int = 3, width: int = 64, zero_init_residual: bool = False):
        super().__init__()
        self.inplanes = width  # 64 in ResNet34; a narrower encoder keeps its depth and layout
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, 3)
        self.layer2 = self._make_layer(2 * width, 4, stride=2)
        self.layer3 = self._make_layer(4 * width, 6, stride=2)
        self.layer4 = self._make_layer(8 * width, 3, stride=2)
        if zero_init_residual:  # each block starts as its shortcut: a shallow net that deepens
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """Stack `blocks` BasicBlocks; the first one may change stride and channels."""
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(planes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x0 = self.relu(self.bn1(self.conv1(x)))  # (N, 64, H/2, W/2)
        x1 = self.layer1(self.maxpool(x0))  # (N, 64, H/4, W/4)
        x2 = self.layer2(x1)  # (N, 128, H/8, W/8)
        x3 = self.layer3(x2)  # (N, 256, H/16, W/16)
        x4 = self.layer4(x3)  # (N, 512, H/32, W/32)
        return [x0, x1, x2, x3, x4]


def weights_download_error(url: str, part: str, switch: str, err: Exception) -> RuntimeError:
    """One clear error for ImageNet weights at URL, for PART, that could not be had (offline)."""
    hub_dir = torch.hub.get_dir()
    path = os.path.join(hub_dir, "checkpoints", os.path.basename(url))
    return RuntimeError(
        f"Could not download the ImageNet weights for {part} ({err}). "
        f"The torch hub cache is at {hub_dir}: download {url} on a machine "
        f"with network access and place the file at {path}, "
        f"or build the model with {switch}.")


def imagenet_state_dict(url: str) -> dict:
    """The state dict at URL, downloaded once into the torch hub cache and hash-checked.

    It is read with weights_only=True: a file in the cache holds tensors, never code to run.
    """
    return torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True,
                                              weights_only=True)


def imagenet_weights_problem() -> str | None:
    """Why the ImageNet ResNet34 weights cannot be had here, in one line; None once cached."""
    try:
        imagenet_state_dict(RESNET34_IMAGENET_URL)
    except Exception as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        return f"the ImageNet weights of ResNet34 cannot be downloaded here ({reason})"
    return None


def load_imagenet_weights(encoder: ResNet34Encoder) -> None:
    """Load torchvision's ImageNet ResNet34 weights (without fc) into the encoder."""
    url = RESNET34_IMAGENET_URL
    try:
        state_dict = imagenet_state_dict(url)
    except Exception as err:
        raise weights_download_error(url, "the ResNet34 encoder", "pretrained_encoder=False",
                                     err) from err
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    encoder.load_state_dict(state_dict, strict=True)


def encoder_settings(in_channels: int, base_channels: int, pretrained_encoder: bool,
                     normalize_input: bool | None) -> bool:
    """A ValueError for settings a ResNet34 encoder cannot have; else normalize_input's value.

    normalize_input None means: as pretrained_encoder.
    """
    if normalize_input is None:
        normalize_input = pretrained_encoder
    if (pretrained_encoder or normalize_input) and in_channels != 3:
        raise ValueError("ImageNet weights and normalisation need in_channels=3")
    if not (isinstance(base_channels, int) and base_channels >= 8 and base_channels % 4 == 0):
        raise ValueError(f"base_channels must be a multiple of 4 of at least 8, "
                         f"not {base_channels!r}")
    if pretrained_encoder and base_channels != 64:
        raise ValueError("ImageNet weights exist for ResNet34's own width only: "
                         "base_channels=64")
    return normalize_input


class ResNet34_UNet(nn.Module):
    """ResNet34 encoder + U-Net decoder; outputs logits of the input's size.

    pretrained_encoder=True loads ImageNet weights into the encoder (needs network access or
    the file in the torch hub cache). normalize_input (default: same as pretrained_encoder)
    applies the ImageNet mean/std normalisation to the [0, 1] input inside forward.
    Two regularisers for training from scratch, off by default: zero_init_residual starts each
    residual block as its shortcut (its last BatchNorm's scale at 0, as torchvision's resnet34
    offers it), and dropout drops whole channels of the deepest features during training.
    Neither raised the validation Dice of the quick runs on real photos (benchmarks/README.md).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        pretrained_encoder: bool = False,
        normalize_input: bool | None = None,
        bilinear: bool = False,
        base_channels: int = 64,
        zero_init_residual: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        normalize_input = encoder_settings(in_channels, base_channels, pretrained_encoder,
                                           normalize_input)
        self.pretrained_encoder = pretrained_encoder
        self.normalize_input = normalize_input
        # Everything needed to rebuild the architecture without downloading (see module doc).
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "normalize_input": normalize_input,
            "bilinear": bilinear,
            "base_channels": base_channels,
        }
        # Not saved in the state dict, so its keys are the same with or without normalisation.
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

        b = base_channels  # 64: ResNet34; every width below scales with it
        self.encoder = ResNet34Encoder(in_channels, width=b, zero_init_residual=zero_init_residual)
        if pretrained_encoder:
            load_imagenet_weights(self.encoder)

        self.dropout = nn.Dropout2d(dropout)  # whole channels of the deepest features, in training
        self.up1 = Up(8 * b, 4 * b, bilinear)  # with layer3
        self.up2 = Up(4 * b, 2 * b, bilinear)  # with layer2
        self.up3 = Up(2 * b, b, bilinear)  # with layer1
        self.up4 = Up(b, b // 2, bilinear, skip_channels=b)  # with the stem
        self.outc = nn.Conv2d(b // 2, out_channels, kernel_size=1)  # at H/2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]  # (H, W)
        if self.normalize_input:
            x = (x - self.mean) / self.std
        x0, x1, x2, x3, x4 = self.encoder(x)
        x = self.up1(self.dropout(x4), x3)  # (N, 256, H/16, W/16)
        x = self.up2(x, x2)  # (N, 128, H/8, W/8)
        x = self.up3(x, x1)  # (N, 64, H/4, W/4)
        x = self.up4(x, x0)  # (N, 32, H/2, W/2)
        logits = self.outc(x)  # (N, out_channels, H/2, W/2)
        # Back to the input's size (odd sizes too: the stride-2 layers round up).
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
