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
# # Solutions to notebook 04 — try the exercises yourself first
#
# Worked solutions to the three exercises of `04_resnet34_unet`, each ending with `assert`s
# that check the answer. Nothing here trains.

# %%
# Make petseg_lib importable when this file is opened from notebooks/solutions/.
import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("petseg_lib") is None:
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    sys.path.insert(0, str(next(p for p in [here, *here.parents] if (p / "petseg_lib").is_dir())))

# %%
import math

import torch

from petseg_lib.models.resnet34_unet import BasicBlock, ResNet34_UNet, ResNet34Encoder
from petseg_lib.models.summary import count_parameters, layer_shapes
from petseg_lib.models.unet import UNet

torch.manual_seed(0)
IMAGE_SIZE = 256
encoder = ResNet34Encoder()

# %% [markdown]
# ## Exercise 1 — a block whose shortcut is the identity: `encoder.layer3[1]`
#
# For a 256 × 256 image, `layer3` works on 256 channels of 16 × 16. Its second block keeps
# shape and channels, so it has no `downsample`: the shortcut is `x` itself.

# %%
block = encoder.layer3[1]
print(block)
print("downsample:", block.downsample)
block.train()  # as during training: BatchNorm uses the batch's statistics
x = torch.randn(2, 256, IMAGE_SIZE // 16, IMAGE_SIZE // 16)  # (N, C, H, W) from layer3[0]
with torch.no_grad():
    after_conv1 = block.conv1(x)  # 3x3 conv, stride 1: (2, 256, 16, 16)
    after_bn1 = block.bn1(after_conv1)
    after_relu = torch.relu(after_bn1)
    after_conv2 = block.conv2(after_relu)
    residual = block.bn2(after_conv2)  # F(x)
    ours = torch.relu(residual + x)  # the shortcut adds x unchanged
    library = block(x)
torch.testing.assert_close(ours, library)
print("step-by-step result == BasicBlock(x):", tuple(ours.shape))

# %% [markdown]
# **Answer.** The computation is section 2's without the `downsample` step: `F(x)` already
# has the shape of `x` (stride 1, 256 channels in and out), so the block adds `x` itself and
# applies the last ReLU. Our step-by-step result equals `block(x)`. (In training mode every
# call also updates the BatchNorms' running statistics, but the output uses the batch's own
# statistics, so the two calls agree.)

# %%
assert block.downsample is None, "an identity shortcut"
assert ours.shape == x.shape == (2, 256, 16, 16), "same shape in and out"
torch.testing.assert_close(ours, library)
assert (ours >= 0).all(), "the block ends with a ReLU"

# %% [markdown]
# ## Exercise 2 — the parameters of a `BasicBlock(64, 64)`, on paper
#
# - `conv1`: 3 × 3 kernel, 64 input and 64 output channels, no bias:
#   `3 · 3 · 64 · 64 = 36 864`;
# - `bn1`: a scale and a shift per channel: `2 · 64 = 128` (its running mean and variance
#   are buffers, not parameters: they are not trained);
# - `conv2` and `bn2`: the same again, `36 864 + 128`.
#
# In total `2 · (36 864 + 128) = 73 984`, or `18 C² + 4 C` for `C = 64`.
#
# The first block of `layer2`, with `downsample`, adds a 1 × 1 convolution from 64 to 128
# channels and a BatchNorm, on top of a 3 × 3 convolution 64 → 128, one 128 → 128 and two
# BatchNorms of 128: `9·64·128 + 9·128·128 + 2·(2·128) + 64·128 + 2·128 = 230 144`.

# %%
by_hand = 2 * (3 * 3 * 64 * 64 + 2 * 64)
by_hand_downsample = 9 * 64 * 128 + 9 * 128 * 128 + 2 * (2 * 128) + 64 * 128 + 2 * 128
print(f"layer1[0]: by hand {by_hand:,}, count_parameters {count_parameters(encoder.layer1[0]):,}")
print(f"layer2[0]: by hand {by_hand_downsample:,}, "
      f"count_parameters {count_parameters(encoder.layer2[0]):,}")

# %% [markdown]
# **Answer.** 73 984 parameters, as `count_parameters` confirms; nearly all of them (99.7 %)
# in the two convolutions.

# %%
assert by_hand == 73_984 == count_parameters(encoder.layer1[0])
assert count_parameters(BasicBlock(64, 64)) == 18 * 64**2 + 4 * 64
assert by_hand_downsample == count_parameters(encoder.layer2[0])
buffers = sum(b.numel() for b in encoder.layer1[0].buffers())
assert buffers == 2 * (2 * 64 + 1), "running mean and variance (and a counter): not counted"

# %% [markdown]
# ## Exercise 3 — a 250 × 333 image
#
# Which encoder sizes are rounded up? Why does `ResNet34_UNet.forward` need its final
# `F.interpolate`, and `UNet` only as a safety net?

# %%
model = ResNet34_UNet().eval()
image = torch.rand(1, 3, 250, 333)  # (N, C, H, W): height 250, width 333
with torch.no_grad():
    features = model.encoder(image)
    output = model(image)
names = ["stem", "layer1", "layer2", "layer3", "layer4"]
sizes = [tuple(f.shape[-2:]) for f in features]
expected, h, w = [], 250, 333
for _ in names:  # every stage halves with stride 2, rounding up: ceil(n / 2)
    h, w = math.ceil(h / 2), math.ceil(w / 2)
    expected.append((h, w))
for name, size, (f_h, f_w) in zip(names, sizes, [(250, 333), *sizes[:-1]], strict=True):
    rounded = [f"{a} -> {b}" for a, b in zip((f_h, f_w), size, strict=True) if a % 2]
    print(f"{name:<7} {size}  rounded up: {', '.join(rounded) or 'nothing (even sizes)'}")
decoder = dict(layer_shapes(model, image, ["up1", "up2", "up3", "up4", "outc"]))
for name, shape in decoder.items():
    print(f"{name:<9} {shape}")
print("model output:", tuple(output.shape))
unet_last = dict(layer_shapes(UNet(base_channels=16), image, ["outc"]))["outc"]
print("UNet outc:", unet_last)

# %% [markdown]
# **Answer.** Each stride-2 stage of the encoder (the 7 × 7 stem, the max-pooling, the
# first convolution of `layer2`, `layer3` and `layer4`) computes `ceil(n / 2)`: an odd size
# is rounded **up**. With 250 × 333: the width 333 → 167 (stem), 167 → 84 (max-pooling),
# 21 → 11 (`layer4`), and the height 125 → 63 (max-pooling) and 63 → 32 (`layer2`).
#
# The decoder doubles these sizes and meets a skip tensor at each step. Doubling a rounded
# up size overshoots by one (11 → 22 against `layer3`'s 21, 63 → 126 against the stem's
# 125), and `Up` fits it to the skip tensor (its padding amount is negative then: it
# crops a row or column). The last `Up` ends at the stem's 125 × 167, and there the decoder
# stops, as in the design report: `outc` gives 125 × 167 logits, half the input's size,
# rounded up. Only the final `F.interpolate` brings them to 250 × 333; for an even input it
# doubles them exactly, for an odd one it stretches them by a little less than 2.
#
# `UNet` max-pools with rounding *down* (333 → 166 → ...), and every decoder step, the
# last one included, ends at a skip tensor of the encoder: its last `Up` fits the map to
# `inc`'s output, which has the input's size. So the logits already have the input's size
# before the interpolation, which never runs for `UNet`: it is only a safety net.

# %%
assert sizes == expected, "ceil(n / 2) at every stage"
assert sizes == [(125, 167), (63, 84), (32, 42), (16, 21), (8, 11)]
assert decoder["up1"][-2:] == sizes[3] and decoder["up4"][-2:] == sizes[0], "fitted to skips"
assert decoder["outc"] == (1, 1, 125, 167), "the decoder stops at the stem's size"
assert output.shape == (1, 1, 250, 333), "interpolated to the input's size"
assert unet_last == (1, 1, 250, 333), "UNet's last layer already has the input's size"
print("All checks passed.")
