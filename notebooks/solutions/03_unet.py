# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Solutions to notebook 03 — try the exercises yourself first
#
# Worked solutions to the three exercises of `03_unet`, each ending with `assert`s that
# check the answer. Nothing here trains.

# %%
# Make petseg_lib importable when this file is opened from notebooks/solutions/.
import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("petseg_lib") is None:
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    sys.path.insert(0, str(next(p for p in [here, *here.parents] if (p / "petseg_lib").is_dir())))

# %%
import matplotlib

if "ipykernel" not in sys.modules:  # run as a script: figures are drawn, never shown
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

from petseg_lib.models.summary import count_parameters, layer_shapes
from petseg_lib.models.unet import UNet
from petseg_lib.utils import show_images

torch.manual_seed(0)
IMAGE_SIZE = 256  # as in the notebook: nothing trains, a forward pass takes about a second
STAGES = ["inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "outc"]

# %% [markdown]
# ## Exercise 1 — predict the parameters of `UNet(base_channels=32)`
#
# **Quick estimate.** Almost every weight sits in a convolution whose input *and* output
# channels are multiples of `base_channels`, so it holds `k·k·C_in·C_out` weights: halving
# both channels divides it by 4. The estimate is a quarter of `UNet()`'s count.
#
# **Exact count.** Only the first convolution (3 input channels), the BatchNorms (a scale
# and a shift per channel), the biases of the upsampling convolutions and `outc` grow
# linearly with `c = base_channels`. Adding up the layers:
#
# - a `DoubleConv(a, b)` holds `9ab + 9b² + 4b` (two bias-free 3×3 convolutions, two
#   BatchNorms);
# - `inc` is `DoubleConv(3, c)`, `down_i` is `DoubleConv(2^(i-1)c, 2^i c)`;
# - each `up` is a `ConvTranspose2d(C, C/2, 2)` (`4·C·C/2` weights and `C/2` biases) plus
#   `DoubleConv(C, C/2)`; `outc` is a 1×1 convolution `c → 1` with a bias.

# %%
def double_conv(a: int, b: int) -> int:
    return 9 * a * b + 9 * b * b + 4 * b


def unet_parameters(c: int) -> int:
    encoder = double_conv(3, c) + sum(double_conv(c << i, c << (i + 1)) for i in range(4))
    decoder = sum(2 * (c << i) ** 2 + (c << i) // 2 + double_conv(c << i, c << (i - 1))
                  for i in range(1, 5))  # up blocks with C = 2c, 4c, 8c, 16c
    return encoder + decoder + c + 1  # + outc


n64 = count_parameters(UNet())
estimate = n64 / 4
n32 = count_parameters(UNet(base_channels=32))
print(f"UNet():                 {n64:>12,}")
print(f"quick estimate (1/4):   {estimate:>12,.0f}")
print(f"formula for c = 32:     {unet_parameters(32):>12,}")
print(f"UNet(base_channels=32): {n32:>12,} "
      f"(the estimate is off by {abs(estimate - n32) / n32:.2%})")

# %% [markdown]
# **Answer.** About 7.76 million: a quarter of the 31.04 million of `UNet()`. The quarter
# rule is off by less than 0.1 %, because only a few thousand parameters (the first
# convolution, the BatchNorms, the biases) grow linearly instead of quadratically. The same
# reasoning says that `base_channels=16` has a sixteenth of the weights of `UNet()`, and
# about a quarter of the computation of `base_channels=32`.

# %%
assert unet_parameters(64) == n64, "the formula counts every parameter of UNet()"
assert unet_parameters(32) == n32, "and of UNet(base_channels=32)"
assert unet_parameters(16) == count_parameters(UNet(base_channels=16))
assert abs(estimate - n32) / n32 < 0.001, "a quarter, to better than 0.1 %"

# %% [markdown]
# ## Exercise 2 — `layer_shapes` of `UNet(bilinear=True)`
#
# Does any shape differ from the table of section 2? Explain why none should.

# %%
x = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)
transposed = layer_shapes(UNet(), x, STAGES)
bilinear = layer_shapes(UNet(bilinear=True), x, STAGES)
print(f"{'stage':<6} {'transposed conv':<22} {'bilinear':<22}")
for (name, a), (_, b) in zip(transposed, bilinear, strict=True):
    print(f"{name:<6} {str(a):<22} {str(b):<22}{'' if a == b else '  <- differs'}")

# %% [markdown]
# **Answer.** No shape differs. The encoder is the same module in both models, so its
# shapes cannot change. In the decoder, each `up` has to produce the same tensor in both
# variants: twice the height and width, half the channels, so that it can be concatenated
# with the skip tensor and fed to the same `DoubleConv`. The transposed convolution does both
# in one layer (kernel 2, stride 2, `C → C/2`); the bilinear variant doubles the size with
# `nn.Upsample` and halves the channels with a 1×1 convolution. Only *how* the numbers are
# computed differs (and the parameter count), never the shapes. Had a shape differed, the
# concatenation or the next `DoubleConv` would have failed with a size error.

# %%
assert transposed == bilinear, "the same shape after every stage"
assert dict(bilinear)["outc"] == (1, 1, IMAGE_SIZE, IMAGE_SIZE)

# %% [markdown]
# ## Exercise 3 — `ConvTranspose2d(kernel_size=4, stride=2, padding=1)`, weights all 1
#
# Is there a checkerboard? Relate the answer to "kernel size a multiple of the stride".
#
# With all weights 1, a transposed convolution's output on a **constant** input is exactly
# the number of stamps that land on each output pixel, so a checkerboard shows up as
# unequal values. We compare three kernels, and then look at the smooth blob of the notebook.

# %%
def transposed_ones(kernel_size: int, padding: int, output_padding: int = 0) -> nn.Module:
    layer = nn.ConvTranspose2d(1, 1, kernel_size, stride=2, padding=padding,
                               output_padding=output_padding, bias=False)
    nn.init.ones_(layer.weight)
    return layer


layers = {"k=3, s=2": transposed_ones(3, padding=1, output_padding=1),
          "k=4, s=2": transposed_ones(4, padding=1),
          "k=2, s=2": transposed_ones(2, padding=0)}
ones = torch.ones(1, 1, 16, 16)
with torch.no_grad():
    counts = {name: layer(ones)[0, 0] for name, layer in layers.items()}  # (32, 32) each
for name, count in counts.items():
    interior = count[1:-1, 1:-1]  # the outermost pixels of any kernel get fewer stamps
    print(f"{name}: output {tuple(count.shape)}, stamps per interior pixel "
          f"{sorted(set(interior.flatten().int().tolist()))}")

# %%
rows, cols = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
blob = torch.exp(-(rows**2 + cols**2) / 0.5)[None, None]  # the notebook's smooth blob
bilinear_up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
with torch.no_grad():
    upsampled = {name: layer(blob) / counts[name][8:24, 8:24].mean()  # divide by the stamps
                 for name, layer in layers.items()}
    upsampled["bilinear"] = bilinear_up(blob)
steps = {name: t[0, 0, 1:-1, 1:-1].diff(dim=1) for name, t in upsampled.items()}
# A zig-zag goes up, down, up, ...: neighbouring steps along a row have opposite signs.
zigzag = {name: (d[:, 1:] * d[:, :-1] < 0).float().mean().item() for name, d in steps.items()}
print("share of steps that reverse the previous one:",
      {name: f"{v:.0%}" for name, v in zigzag.items()})
fig = show_images({f"Transposed conv {name}\n(weights 1)" if name != "bilinear" else
                   "Bilinear upsampling": t for name, t in upsampled.items()},
                  cmap="gray", colorbar=True,
                  title="Upsampling the smooth blob by 2: only k=3, s=2 makes a checkerboard")
plt.show()

# %% [markdown]
# **Answer.** No checkerboard. Along one axis, an output pixel `o` receives the input pixels
# `i` with `0 ≤ o + padding − 2i < kernel_size`: for a kernel of 4 that is always exactly
# two of them, so every interior output pixel receives 2 × 2 = 4 stamps and a constant
# input gives a constant output. For a kernel of 3, the count alternates between 1 and 2
# along each axis (1, 2 or 4 in two dimensions): the checkerboard. In general each output
# pixel receives `kernel_size / stride` stamps per axis when the kernel size is a multiple
# of the stride, and a count alternating between the two integers around that ratio when it
# is not. Kernels 2 and 4 (with stride 2) overlap evenly; kernel 3 does not.
#
# On the blob, the k=4 output is smooth up to a gentle 2-pixel staircase (with weights 1
# it repeats each input pixel and averages neighbouring pairs), like the k=2 output; only
# the k=3 output zig-zags up and down from one pixel to the next.
#
# Two caveats. An even overlap only removes the pattern that comes from *counting*
# stamps: with learned or random weights the four stamps of an output pixel use different
# kernel entries depending on the pixel's parity, so a 2-pixel pattern can still appear
# until training makes the weights agree (the k=2 panel of the notebook). And the outermost
# row and column get fewer stamps for kernels larger than the stride, which `padding=1`
# mostly hides at the image border.

# %%
for name in ("k=4, s=2", "k=2, s=2"):
    interior = counts[name][1:-1, 1:-1]
    assert interior.max() == interior.min(), f"{name}: every interior pixel, same stamps"
interior = counts["k=3, s=2"][1:-1, 1:-1]
assert interior.max() != interior.min(), "k=3, s=2: a checkerboard of stamp counts"
assert set(interior.flatten().int().tolist()) == {1, 2, 4}
assert counts["k=4, s=2"][1:-1, 1:-1].unique().tolist() == [4.0], "2 x 2 stamps each"
assert zigzag["k=3, s=2"] > 0.5 > 0.1 > zigzag["k=4, s=2"], "on the blob, only k=3 zig-zags"
print("All checks passed.")
