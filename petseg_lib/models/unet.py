"""U-Net for binary segmentation of pet images (pet vs background).

The network follows the encoder-decoder design of the original U-Net: an encoder of
DoubleConv blocks and max-pooling, a bottleneck, and a decoder that upsamples and fuses
each level with the matching encoder features through a skip connection.

Changes compared to the original U-Net paper:

1. Batch normalisation after every 3x3 convolution (the paper has none); the convolutions
   therefore have no bias, since BatchNorm adds its own shift.
2. ReLU(inplace=True) to save memory.
3. "Same" padding in the 3x3 convolutions and two upsampling options: transposed convolution
   (``bilinear=False``, the default) or bilinear ``nn.Upsample`` followed by a 1x1 convolution
   (``bilinear=True``, cheaper, no checkerboard artefacts). The upsampled tensor is padded to
   the skip tensor's size instead of cropping the skip tensor, so odd sizes work.
4. A 1x1 output convolution followed by bilinear interpolation (``F.interpolate``) to the
   input size, so the output always matches the input image without any cropping.

Input: float images in [0, 1] of shape (N, in_channels, H, W), as the dataset gives them,
with H, W >= 32 (any size, odd or non-square). Output: logits of shape (N, out_channels, H, W);
apply ``torch.sigmoid`` to get probabilities.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DoubleConv", "Down", "Up", "UNet"]


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) twice; keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        if mid_channels is None:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """2x2 max-pooling (halves H and W) followed by a DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2),
            DoubleConv(in_channels, out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upsample by 2, pad to the skip tensor's size, concatenate with it, then DoubleConv.

    The upsampling halves the channels: in_channels -> in_channels // 2. The skip tensor has
    ``skip_channels`` channels (default in_channels // 2, as in U-Net), so the DoubleConv sees
    in_channels // 2 + skip_channels channels and outputs out_channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bilinear: bool = False,
        skip_channels: int | None = None,
    ):
        super().__init__()
        if skip_channels is None:
            skip_channels = in_channels // 2
        if bilinear:
            # Bilinear upsampling has no weights; a 1x1 conv then halves the channels.
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, in_channels // 2, kernel_size=1),
            )
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels // 2 + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (N, C_in/2, 2h, 2w)
        # Pad x to the skip tensor's size (odd sizes lose a row/column when pooling).
        # A negative difference crops instead, which F.pad also handles.
        diff_y = skip.size(2) - x.size(2)
        diff_x = skip.size(3) - x.size(3)
        if diff_y != 0 or diff_x != 0:
            x = F.pad(x, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        x = torch.cat([skip, x], dim=1)  # (N, C_skip + C_in/2, H_skip, W_skip)
        return self.conv(x)


class UNet(nn.Module):
    """U-Net with BatchNorm, padded convolutions and output resized to the input size.

    With the default base_channels=64 the channels are 64, 128, 256, 512 and 1024 at the
    bottleneck (about 31.0 M parameters). base_channels=32 gives a quarter of the parameters
    and of the compute, which suits CPU experiments.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_channels: int = 64,
        bilinear: bool = False,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("base_channels", base_channels)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "base_channels": base_channels,
            "bilinear": bilinear,
        }
        c = base_channels
        # Encoder
        self.inc = DoubleConv(in_channels, c)
        self.down1 = Down(c, 2 * c)
        self.down2 = Down(2 * c, 4 * c)
        self.down3 = Down(4 * c, 8 * c)
        self.down4 = Down(8 * c, 16 * c)  # bottleneck
        # Decoder
        self.up1 = Up(16 * c, 8 * c, bilinear)
        self.up2 = Up(8 * c, 4 * c, bilinear)
        self.up3 = Up(4 * c, 2 * c, bilinear)
        self.up4 = Up(2 * c, c, bilinear)
        self.outc = nn.Conv2d(c, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]  # (H, W)
        x1 = self.inc(x)  # (N, c, H, W)
        x2 = self.down1(x1)  # (N, 2c, H/2, W/2)
        x3 = self.down2(x2)  # (N, 4c, H/4, W/4)
        x4 = self.down3(x3)  # (N, 8c, H/8, W/8)
        x5 = self.down4(x4)  # (N, 16c, H/16, W/16)
        x = self.up1(x5, x4)  # (N, 8c, H/8, W/8)
        x = self.up2(x, x3)  # (N, 4c, H/4, W/4)
        x = self.up3(x, x2)  # (N, 2c, H/2, W/2)
        x = self.up4(x, x1)  # (N, c, H, W)
        logits = self.outc(x)  # (N, out_channels, H, W)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits
