# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
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
# # 03 · The U-Net: an encoder, a decoder and skip connections
#
# U-Net is the first of the two models of the course. Its encoder shrinks the image step by
# step into coarse features that know *what* is in the picture; its decoder grows them back
# to full size, and skip connections hand it the fine detail of *where* things are. Here we
# build it, follow a tensor through every stage, and look at the choices the course's
# version makes differently from the original 2015 design.
#
# **After this notebook you will be able to**
#
# - list the stages of `UNet` and the shape of the tensor after each one;
# - count its parameters and say where most of them live;
# - compare transposed-convolution and bilinear upsampling, and recognise checkerboard
#   artefacts;
# - explain the four changes to the original U-Net: BatchNorm, in-place ReLU, upsampling with
#   padding, and the final interpolation to the input size.

# %%
# On Colab: fetch the course and make its package importable. In a local checkout: nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    if not os.path.isdir("/content/petseg"):
        subprocess.run(["git", "clone", "-q", "https://github.com/petseg-course/petseg",
                        "/content/petseg"], check=True)
    sys.path.insert(0, "/content/petseg")
    os.chdir("/content/petseg/notebooks")

# %%
import matplotlib.pyplot as plt
import torch
from torch import nn

from petseg_lib.data.oxford_pet import find_dataset, load_dataset
from petseg_lib.models.resnet34_unet import ResNet34_UNet
from petseg_lib.models.summary import count_parameters, layer_shapes
from petseg_lib.models.unet import UNet, Up
from petseg_lib.training.config import quick_mode
from petseg_lib.utils import show_images

torch.manual_seed(0)  # the same random weights at every run
QUICK = quick_mode()  # PETSEG_QUICK=1 (set by the tests)
DATA = find_dataset(download_if_missing=True)  # the real dataset, else the offline sample
# The report's input size. One forward pass at 256 x 256 takes about a second on a CPU, so
# QUICK mode keeps it: nothing in this notebook trains.
IMAGE_SIZE = 256

# %% [markdown]
# ## 1. Build the model
#
# `UNet()` takes a batch of RGB images `(N, 3, H, W)` with values in [0, 1] and returns one
# **logit** per pixel, `(N, 1, H, W)`: a positive logit means "pet", a negative one
# "background". Its stages carry the names used in the code:
#
# - `inc`: a `DoubleConv` (two 3×3 convolutions, each followed by BatchNorm and ReLU) at full
#   resolution, 64 channels;
# - `down1` ... `down4`: each halves height and width with 2×2 max-pooling, then a
#   `DoubleConv` doubles the channels: 128, 256, 512 and 1024 at the bottleneck (`down4`);
# - `up1` ... `up4`: each doubles height and width, concatenates the encoder features of the
#   same size (the skip connection) and mixes them with a `DoubleConv`;
# - `outc`: a 1×1 convolution from 64 channels to 1 logit per pixel.

# %%
model = UNet()  # base_channels=64, transposed-convolution upsampling: the report's model
print(model.inc)
print(f"UNet: {count_parameters(model):,} trainable parameters")

# %% [markdown]
# ## 2. Follow a 256 × 256 image through every stage
#
# `layer_shapes(model, x, names)` runs one forward pass (without gradients, in evaluation
# mode) and records the output shape of each named stage with forward hooks: small functions
# that PyTorch calls every time a module produces an output.

# %%
STAGES = ["inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "outc"]
x = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)  # (N, C, H, W)
shapes = layer_shapes(model, x, STAGES)
print(f"{'stage':<6} {'output shape (N, C, H, W)':<28} {'H x W':>10}  parameters")
for name, shape in shapes:
    n = count_parameters(getattr(model, name))
    print(f"{name:<6} {str(shape):<28} {f'{shape[2]} x {shape[3]}':>10}  {n:>10,}")

# %% [markdown]
# Read the table from top to bottom: the encoder trades resolution for channels (256 → 16
# pixels across, 64 → 1024 channels), the decoder trades them back. The parameter column shows
# where the weights are: a 3×3 convolution with `C_in` inputs and `C_out` outputs holds
# `9 · C_in · C_out` weights, so the deep, wide stages (`down4` and `up1`) hold most of the
# model although they work on the smallest maps. The skip connections are visible in the
# decoder: `up1` receives 1024 channels from below, halves them to 512 when upsampling, and
# concatenates 512 more from `down3` before its `DoubleConv`.

# %% [markdown]
# ## 3. One forward pass on a real sample
#
# The untrained model has random weights, so its output means nothing yet; what matters here
# is the *plumbing*: a sample from the dataset goes in, a logit map of the same height and
# width comes out, and `torch.sigmoid` turns logits into probabilities between 0 and 1.

# %%
sample = load_dataset(DATA, "train", image_size=IMAGE_SIZE, limit=4)[0]  # 4 photos suffice
model.eval()  # BatchNorm uses its running statistics; no batch statistics from one image
with torch.no_grad():
    logits = model(sample["image"][None])  # (1, 3, 256, 256) -> (1, 1, 256, 256)
probabilities = torch.sigmoid(logits)
print("input ", tuple(sample["image"][None].shape))
print("logits", tuple(logits.shape), f"range [{logits.min():.2f}, {logits.max():.2f}]")
print("probabilities", f"range [{probabilities.min():.3f}, {probabilities.max():.3f}]")

# %%
fig = show_images({f"Input {sample['name']}": sample["image"],
                   "Untrained: sigmoid(logits)\n(colour scale stretched)": probabilities,
                   "Ground-truth mask": sample["mask"]},
                  cmap="gray", colorbar=True,
                  title="One forward pass of the untrained UNet (training starts in notebook 05)")
plt.show()

# %% [markdown]
# Look at the colour bar of the middle panel: every probability is within a hair of 0.5. The
# untrained model has no opinion about any pixel; thresholded at 0.5 it would call the whole
# image one class. Stretched to that tiny range, the map only echoes edges and textures of
# the photo, picked up by random filters. Training (notebook 05) turns this into a mask.

# %% [markdown]
# ## 4. Upsampling: transposed convolution or bilinear
#
# The decoder must double the height and width of its maps. There are two common ways.
#
# - **Transposed convolution** (`nn.ConvTranspose2d`, the default here, `bilinear=False`):
#   every input pixel "stamps" a learned `k × k` kernel onto the output, with stride 2. The
#   upsampling is learned, and it halves the channels at the same time.
# - **Bilinear upsampling** (`nn.Upsample`, `bilinear=True`): each new pixel is a weighted
#   average of its four nearest input pixels. It has no weights, so a 1×1 convolution follows
#   to halve the channels. It is cheaper, and always smooth.
#
# First the cost in parameters:

# %%
model_bilinear = UNet(bilinear=True)
print(f"{'stage':<8} {'transposed conv':>16} {'bilinear + 1x1':>16}")
for name in ["up1", "up2", "up3", "up4"]:
    a = count_parameters(getattr(model, name).up)
    b = count_parameters(getattr(model_bilinear, name).up)
    print(f"{name + '.up':<8} {a:>16,} {b:>16,}")
n_transposed, n_bilinear = count_parameters(model), count_parameters(model_bilinear)
print(f"{'UNet':<8} {n_transposed:>16,} {n_bilinear:>16,}")
print(f"the bilinear variant has {n_transposed - n_bilinear:,} fewer parameters "
      f"({1 - n_bilinear / n_transposed:.1%})")

# %% [markdown]
# **Checkerboard artefacts.** When the kernel size is not a multiple of the stride, the
# stamps of neighbouring input pixels overlap unevenly: with a 3×3 kernel and stride 2, some
# output pixels receive one stamp, some two, some four. The output then carries a grid
# pattern even when the input is perfectly smooth. Below, a smooth blob is upsampled by:
#
# 1. a `ConvTranspose2d(kernel_size=3, stride=2)` whose weights are all 1, so the picture
#    shows nothing but the overlap count;
# 2. the same layer with its random initial weights, as at the start of training;
# 3. a `ConvTranspose2d(kernel_size=2, stride=2)`, as in our `Up` blocks: no overlap, but each
#    of the four output pixels of a stamp uses a different weight, so a 2-pixel pattern
#    appears until training makes the weights agree;
# 4. bilinear upsampling: smooth, by construction.

# %%
rows, cols = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
blob = torch.exp(-(rows**2 + cols**2) / 0.5)[None, None]  # (1, 1, 16, 16), smooth
overlap = nn.ConvTranspose2d(1, 1, kernel_size=3, stride=2, padding=1, output_padding=1,
                             bias=False)
random_k3 = nn.ConvTranspose2d(1, 1, kernel_size=3, stride=2, padding=1, output_padding=1,
                               bias=False)
random_k2 = nn.ConvTranspose2d(1, 1, kernel_size=2, stride=2, bias=False)
bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
with torch.no_grad():
    overlap.weight.fill_(1.0)
    upsampled = {"Input: smooth blob, 16 x 16": blob,
                 "Transposed conv k=3, s=2\n(weights all 1)": overlap(blob),
                 "Transposed conv k=3, s=2\n(random initial weights)": random_k3(blob),
                 "Transposed conv k=2, s=2\n(random initial weights)": random_k2(blob),
                 "Bilinear upsampling": bilinear(blob)}
print({name.split("\n")[0]: tuple(t.shape) for name, t in upsampled.items()})

# %%
fig = show_images(upsampled, cmap="gray", colorbar=True,
                  title="Upsampling a smooth input by 2: checkerboard artefacts vs bilinear")
plt.show()

# %% [markdown]
# The same effect along one row near the middle of the blob: the transposed convolution
# zig-zags from pixel to pixel around the smooth curve, the bilinear upsampling does not.

# %%
row = 15  # an odd row of the 32 x 32 outputs: its pixels receive 2 or 4 stamps, 3 on average
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.plot(upsampled["Transposed conv k=3, s=2\n(weights all 1)"][0, 0, row] / 3, "o-",
        markersize=3, label="transposed conv k=3, s=2, weights 1 (divided by 3)")
ax.plot(upsampled["Bilinear upsampling"][0, 0, row], "s-", markersize=3,
        label="bilinear upsampling")
ax.set(title=f"Row {row} of the upsampled blob", xlabel="column (output pixel)",
       ylabel="value", ylim=(0.0, 1.75))
ax.legend(loc="upper left", fontsize=9)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Training can learn weights that hide the pattern, and the skip connections and the
# following `DoubleConv` smooth a lot of it away, which is why the transposed convolution is a
# fine default. The bilinear option is there when artefacts show up in the masks or when
# fewer parameters matter.

# %% [markdown]
# ## 5. Four changes to the original U-Net
#
# The course's `UNet` keeps the original encoder-decoder with skip connections, and changes
# four details.
#
# ### 5.1 BatchNorm after every 3×3 convolution
#
# The original has none. Batch normalisation rescales each channel of a mini-batch to mean 0
# and standard deviation 1 (then applies a learned scale and shift), so the next layer sees
# inputs of a steady size whatever the weights before it do. Training becomes faster and less
# sensitive to the initial weights and the learning rate. Since BatchNorm adds its own shift,
# the convolutions before it need no bias (`bias=False` in the printout of `inc` above).
# Here is its effect on the first convolution's output for a batch of four photos:

# %%
train = load_dataset(DATA, "train", image_size=64, limit=4)
batch = torch.stack([train[i]["image"] for i in range(4)])  # (4, 3, 64, 64)
batch_norm = nn.BatchNorm2d(64)  # a fresh one, in training mode: uses the batch statistics
with torch.no_grad():
    features = model.inc.double_conv[0](batch)  # (4, 64, 64, 64), first conv of the model
    normalised = batch_norm(features)
channel_means = features.mean(dim=(0, 2, 3))
channel_stds = features.std(dim=(0, 2, 3))
print(f"before BatchNorm: channel means {channel_means.min():+.3f} to {channel_means.max():+.3f}, "
      f"stds {channel_stds.min():.3f} to {channel_stds.max():.3f}")
norm_means, norm_stds = normalised.mean(dim=(0, 2, 3)), normalised.std(dim=(0, 2, 3))
print(f"after BatchNorm:  channel means {norm_means.min():+.3f} to {norm_means.max():+.3f}, "
      f"stds {norm_stds.min():.3f} to {norm_stds.max():.3f}")
n_batchnorm = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
n_conv3 = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
print(f"the model has {n_batchnorm} BatchNorm layers for {n_conv3} 3x3 convolutions")

# %% [markdown]
# ### 5.2 ReLU with `inplace=True`
#
# The paper does not say how ReLU is computed. With `inplace=True` the ReLU overwrites its
# input tensor instead of allocating a new one. The result is the same; the memory for one
# full feature map per ReLU is saved, which counts at 256 × 256 with 64 channels and more.
# The catch: the input is gone afterwards, so this is only safe where nothing else needs it
# (after a BatchNorm it is).

# %%
t = torch.tensor([-2.0, -0.5, 0.0, 1.5, 3.0])
out = nn.ReLU(inplace=True)(t)
print("output:", out)
print("input afterwards:", t, "(overwritten)")
print("same memory:", out.data_ptr() == t.data_ptr())
n_inplace = sum(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())
print(f"in-place ReLUs in the model: {n_inplace}")

# %% [markdown]
# ### 5.3 Upsampling with padding instead of cropping
#
# The original U-Net uses unpadded convolutions, so every 3×3 convolution trims a pixel on
# each side: a 572 × 572 input gives a 388 × 388 output, and the encoder features must be
# **cropped** before they are concatenated in the decoder. Our convolutions are padded
# ("same" size), and the decoder offers both upsampling kinds of section 4 (`bilinear=True`
# or `False`).
#
# One size problem remains: max-pooling an odd size rounds down (83 → 41), and doubling gives
# 82, one short of the skip tensor's 83. `Up` therefore **pads** the upsampled tensor to the
# skip tensor's size before concatenating, instead of cropping anything away:

# %%
block = Up(16, 8)  # a small decoder block: 16 channels from below, skip with 8
below = torch.rand(1, 16, 41, 31)  # (N, C, H, W) coming up from the deeper stage
skip = torch.rand(1, 8, 83, 62)  # the encoder features of this level: odd height
with torch.no_grad():
    upsampled_only = block.up(below)
    merged = block(below, skip)
print("from below     ", tuple(below.shape))
print("upsampled      ", tuple(upsampled_only.shape), "<- one row short of the skip tensor")
print("skip           ", tuple(skip.shape))
print("Up output      ", tuple(merged.shape), "<- padded to the skip tensor's size")

# %% [markdown]
# ### 5.4 Bilinear interpolation to the input size at the end
#
# In the original, the output map is smaller than the input and has to be matched to the
# image by cropping. Our models end with `F.interpolate(..., size=input size)` whenever the
# last layer's map differs from the input, so the mask always has exactly the size of the
# image, for any height and width, even odd and non-square ones. For `UNet` the padding of 5.3
# already restores the exact size, so the interpolation is a safety net. For `ResNet34_UNet`
# (notebook 04) it does real work: as in the design report, its decoder stops at half the
# input's resolution (its stride-2 layers round odd sizes up on the way down), and the
# interpolation enlarges the logits to the input's size. A 333 × 250 input shows both:

# %%
odd = torch.rand(1, 3, 333, 250)
small_unet = UNet(base_channels=16)  # a narrow UNet: the sizes do not depend on the width
unet_shapes = layer_shapes(small_unet, odd, STAGES)
for name, shape in unet_shapes:
    print(f"UNet {name:<6} {shape}")
resnet_unet = ResNet34_UNet()
resnet_last = dict(layer_shapes(resnet_unet, odd, ["outc"]))["outc"]
small_unet.eval()
resnet_unet.eval()
with torch.no_grad():
    unet_out, resnet_out = small_unet(odd), resnet_unet(odd)
print(f"\nUNet          last layer {dict(unet_shapes)['outc']} -> output {tuple(unet_out.shape)}")
print(f"ResNet34_UNet last layer {resnet_last} -> output {tuple(resnet_out.shape)} "
      "(interpolated)")

# %% [markdown]
# ## Exercises
#
# 1. Build `UNet(base_channels=32)`. Predict its parameter count from the one of `UNet()`
#    before you run `count_parameters` (hint: most weights sit in 3×3 convolutions whose
#    input and output channels both halve).
# 2. Run `layer_shapes` on `UNet(bilinear=True)` with a 256 × 256 input. Does any shape
#    differ from the table of section 2? Explain why none should.
# 3. Use a `ConvTranspose2d(kernel_size=4, stride=2, padding=1)` with weights all 1 on the
#    blob. Is there a checkerboard? Relate your answer to "kernel size a multiple of the
#    stride".
#
# Try them first; worked solutions, with checks, are in `solutions/03_unet.py` (open it as a
# notebook in JupyterLab: right click → Open With → Notebook).

# %% [markdown]
# ## Self-check
#
# The cell below fails loudly if the model or the demonstrations above are not as described.

# %%
shape_of = dict(shapes)
assert shape_of["inc"] == (1, 64, IMAGE_SIZE, IMAGE_SIZE)
assert shape_of["down4"] == (1, 1024, IMAGE_SIZE // 16, IMAGE_SIZE // 16), "bottleneck"
assert shape_of["up1"] == (1, 512, IMAGE_SIZE // 8, IMAGE_SIZE // 8)
assert shape_of["outc"] == (1, 1, IMAGE_SIZE, IMAGE_SIZE), "one logit per pixel"
assert count_parameters(model) == sum(count_parameters(getattr(model, s)) for s in STAGES)
assert 30e6 < count_parameters(model) < 32e6, "about 31 M parameters"
assert n_bilinear < n_transposed, "bilinear upsampling has fewer parameters"
assert logits.shape == (1, 1, IMAGE_SIZE, IMAGE_SIZE)
assert 0.0 <= probabilities.min() and probabilities.max() <= 1.0
checker = upsampled["Transposed conv k=3, s=2\n(weights all 1)"][0, 0]
smooth = upsampled["Bilinear upsampling"][0, 0]
# Neighbouring pixels of the checkerboard differ far more than those of the bilinear output.
assert checker.diff(dim=1).abs().mean() / 4 > 3 * smooth.diff(dim=1).abs().mean()
assert norm_means.abs().max() < 1e-3 and (norm_stds - 1).abs().max() < 0.05, "BatchNorm"
assert n_batchnorm == n_conv3, "a BatchNorm after every 3x3 convolution"
assert out.data_ptr() == t.data_ptr() and t.min() >= 0, "in-place ReLU"
assert merged.shape[-2:] == skip.shape[-2:], "Up pads to the skip tensor's size"
assert unet_out.shape == (1, 1, 333, 250) and resnet_out.shape == (1, 1, 333, 250)
assert resnet_last[-2:] != (333, 250), "ResNet34_UNet really needs the final interpolation"
print("All checks passed.")
