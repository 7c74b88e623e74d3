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
# # 04 · ResNet34-UNet: a classifier's backbone as a segmentation encoder
#
# The second model of the course keeps the U-Net decoder of notebook 03 but swaps its encoder
# for ResNet34, a network designed to classify ImageNet photos. ResNet34 is built from
# *residual blocks*, which let a deep network train as easily as a shallow one. Here we take
# one block apart, follow an image through the encoder, prove that our encoder is exactly
# torchvision's ResNet34 minus its classification head, and see what the decoder adds.
#
# **After this notebook you will be able to**
#
# - compute a `BasicBlock` by hand, layer by layer, and explain what the shortcut adds;
# - give the shape of every encoder stage for a 256 × 256 input, and say which stage feeds
#   which skip connection;
# - check an architecture against a reference implementation with a strict state-dict load
#   and equal outputs;
# - explain why the average pooling and the fully connected layer are removed for
#   segmentation;
# - compare the parameter budgets of UNet and ResNet34-UNet, and start from ImageNet weights
#   when they are available.

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
import copy
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import torchvision
from IPython.display import Markdown, display
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from petseg_lib.data.download import network_available
from petseg_lib.data.oxford_pet import find_dataset, load_dataset
from petseg_lib.evaluation.evaluate import mask_dice
from petseg_lib.models.resnet34_unet import ResNet34_UNet, ResNet34Encoder
from petseg_lib.models.summary import count_parameters
from petseg_lib.models.unet import UNet
from petseg_lib.training.config import quick_mode
from petseg_lib.utils import markdown_grid, show_images

QUICK = quick_mode()  # PETSEG_QUICK=1 (set by the tests): small images, few epochs
DATA = find_dataset(download_if_missing=True)  # the real dataset, else the offline sample
torch.manual_seed(0)  # the same random weights at every run
# The report's input size. Nothing trains in this notebook and a forward pass at 256 x 256
# takes well under a second on a CPU, so QUICK mode keeps it.
IMAGE_SIZE = 256

# %% [markdown]
# ## 1. Why residual blocks
#
# Stacking more convolution layers should never hurt in principle: the extra layers could
# simply learn to pass their input through. In practice plain deep networks train *worse*
# than shallower ones, because an identity mapping is hard to learn from a stack of
# convolutions and ReLUs, and because the gradient shrinks as it travels back through many
# layers.
#
# A residual block changes what its layers have to learn. Instead of producing the output
# directly, the two convolutions compute a *correction* `F(x)` that is **added** to the
# block's input `x` through a shortcut:
#
# $$\text{out} = \text{ReLU}\big(F(x) + x\big), \qquad
#   F(x) = \text{BN}(\text{conv}_2(\text{ReLU}(\text{BN}(\text{conv}_1(x)))))$$
#
# Doing nothing is now easy (`F(x) = 0`), and during backpropagation the `+` hands the
# gradient back to `x` unchanged, however deep the stack. ResNet34 stacks 16 such blocks
# (plus a first convolution and the classifier: 34 layers with weights).

# %% [markdown]
# ## 2. One `BasicBlock`, step by step
#
# We take a real block out of the encoder: the first block of `layer2`. It is special in two
# ways: its first convolution has **stride 2** (height and width halve) and it widens the
# features from 64 to 128 channels. Its input `x` is what `layer1` hands over for a
# 256 × 256 image: 64 channels of 64 × 64.

# %%
encoder = ResNet34Encoder()
block = encoder.layer2[0]
print(block)

# %% [markdown]
# The block is in training mode, as during training: each BatchNorm normalises every channel
# with the mean and standard deviation of the current batch, then applies its learned scale
# and shift (1 and 0 at the start). The residual branch `F(x)`, one layer at a time:

# %%
block.train()
x = torch.randn(2, 64, 64, 64)  # (N, C, H, W): the output of layer1 for two 256 x 256 images
with torch.no_grad():
    after_conv1 = block.conv1(x)  # 3x3 conv, stride 2: (2, 128, 32, 32)
    after_bn1 = block.bn1(after_conv1)  # per channel: normalise, then scale and shift
    after_relu = torch.relu(after_bn1)  # negatives -> 0 (block.relu does this in place)
    after_conv2 = block.conv2(after_relu)  # 3x3 conv, stride 1: (2, 128, 32, 32)
    residual = block.bn2(after_conv2)  # F(x)
steps = {"x": x, "conv1": after_conv1, "bn1": after_bn1, "relu": after_relu,
         "conv2": after_conv2, "bn2 = F(x)": residual}
for name, t in steps.items():
    print(f"{name:<11} {str(tuple(t.shape)):<18} mean {t.mean():+.3f}  std {t.std():.3f}  "
          f"zeros {(t == 0).float().mean():.0%}")

# %% [markdown]
# `F(x)` has 128 channels of 32 × 32, but `x` has 64 channels of 64 × 64: they cannot be
# added. So this block's shortcut is not the bare identity but `downsample`, a 1×1
# convolution with stride 2 followed by BatchNorm, which brings `x` to the same shape. (The
# other blocks of `layer2` keep shape and channels, and their shortcut is `x` itself:
# `downsample` is `None`.)

# %%
print("shortcut:", block.downsample)
with torch.no_grad():
    shortcut = block.downsample(x)  # (2, 64, 64, 64) -> (2, 128, 32, 32)
    ours = torch.relu(residual + shortcut)  # add, then the last ReLU
print("shortcut", tuple(shortcut.shape))
print("output  ", tuple(ours.shape))
print("blocks of layer2 without a downsample:",
      [i for i, b in enumerate(encoder.layer2) if b.downsample is None])

# %% [markdown]
# Our hand computation used the block's own layers in the block's order. It must give
# exactly what the library's `BasicBlock.forward` gives:

# %%
with torch.no_grad():
    library = block(x)
torch.testing.assert_close(ours, library)
print("step-by-step result == BasicBlock(x):", tuple(library.shape))

# %% [markdown]
# **A block can switch itself off.** Set the scale of the last BatchNorm to zero and the
# residual branch outputs nothing (its shift starts at zero too). The block then returns
# `ReLU(x)`: its input, passed on. This is why adding residual blocks does not make a
# network harder to train: a useless block costs nothing.

# %%
quiet = copy.deepcopy(encoder.layer1[0]).eval()  # a 64 -> 64 block with an identity shortcut
nn.init.zeros_(quiet.bn2.weight)
x1 = torch.randn(2, 64, 64, 64)
with torch.no_grad():
    passed_on = quiet(x1)
torch.testing.assert_close(passed_on, torch.relu(x1))
print("with bn2.weight = 0 the block returns ReLU(x)")

# %% [markdown]
# ## 3. The encoder: a stem and four layers
#
# `ResNet34Encoder` is ResNet34 up to its last convolution:
#
# - the **stem**: a 7×7 convolution with stride 2, BatchNorm and ReLU (half size, 64
#   channels), then a 3×3 max-pooling with stride 2 (quarter size);
# - `layer1` ... `layer4`: 3, 4, 6 and 3 `BasicBlock`s with 64, 128, 256 and 512 channels;
#   the first block of layers 2, 3 and 4 has stride 2, like the block above.
#
# Its `forward` returns five feature maps, one per stage, because the decoder needs all of
# them. For a 256 × 256 image:

# %%
model = ResNet34_UNet()  # random weights: pretrained_encoder=False is the default
model.eval()
image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)
with torch.no_grad():
    features = model.encoder(image)  # [stem, layer1, layer2, layer3, layer4]
stages = ["stem", "layer1", "layer2", "layer3", "layer4"]
what = ["7x7 conv stride 2, BN, ReLU", "max-pool stride 2, 3 blocks", "4 blocks, first stride 2",
        "6 blocks, first stride 2", "3 blocks, first stride 2"]
used_by = ["skip to `up4`", "skip to `up3`", "skip to `up2`", "skip to `up1`",
           "input of `up1`"]
stage_params = [count_parameters(model.encoder.conv1) + count_parameters(model.encoder.bn1)]
stage_params += [count_parameters(getattr(model.encoder, f"layer{i}")) for i in range(1, 5)]
rows = [[name, how, str(tuple(f.shape)), f"{f.shape[2]} x {f.shape[3]}",
         f"1/{IMAGE_SIZE // f.shape[2]}", f"{n:,}", use]
        for name, how, f, n, use in zip(stages, what, features, stage_params, used_by,
                                        strict=True)]
display(Markdown(markdown_grid(["stage", "what it does", "output (N, C, H, W)", "H x W",
                                "of the input", "parameters", "used as"], rows)))

# %% [markdown]
# The encoder divides the resolution by 32 in total, and multiplies the channels to 512.
# Almost all of its 21 M parameters sit in `layer3` and `layer4`, which work on the smallest
# maps: a 3×3 convolution from 512 to 512 channels alone holds 2.4 M weights.
#
# What do the stages keep of a real photo? Below, one map per stage: the mean over channels
# of the absolute activations. The weights are still random, so the maps only show *how
# much* spatial detail each stage can carry, not what it has learned.

# %%
sample = load_dataset(DATA, "test", image_size=IMAGE_SIZE)[0]
with torch.no_grad():
    photo_features = model.encoder(sample["image"][None])
panels = {f"Input {sample['name']}": sample["image"]}
for name, f in zip(stages, photo_features, strict=True):
    panels[f"{name}: {f.shape[2]} x {f.shape[3]}"] = f[0].abs().mean(0)  # (H, W)
fig = show_images(panels, cmap="viridis",
                  title="Encoder feature maps (mean |activation| over channels, random weights)")
plt.show()

# %% [markdown]
# ## 4. Our encoder *is* torchvision's ResNet34 without its head
#
# Two checks make this precise.
#
# 1. **Same parameters, same names.** torchvision's `resnet34(weights=None)` (random weights,
#    no download) has a state dict: a mapping from names like `layer2.0.downsample.0.weight`
#    to tensors. Without its `fc.` entries it loads into our encoder with `strict=True`,
#    which fails on any missing key, unexpected key or shape mismatch.
# 2. **Same computation.** Fed the same images in evaluation mode, torchvision's network cut
#    before `avgpool` gives the same `layer4` output as our encoder.

# %%
reference = torchvision.models.resnet34(weights=None)
state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
checked = ResNet34Encoder()
result = checked.load_state_dict(state, strict=True)
print(result)
print(f"{len(state)} tensors loaded; dropped: "
      f"{[k for k in reference.state_dict() if k.startswith('fc.')]}")

# %%
trunk = nn.Sequential(*list(reference.children())[:-2])  # everything but avgpool and fc
reference.eval()
checked.eval()
images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE)
with torch.no_grad():
    ours_layer4 = checked(images)[-1]
    theirs_layer4 = trunk(images)
torch.testing.assert_close(ours_layer4, theirs_layer4)
print("layer4 outputs agree:", tuple(ours_layer4.shape))
print("last two children of torchvision's ResNet34:",
      [name for name, _ in reference.named_children()][-2:])

# %% [markdown]
# ## 5. What was removed, and why
#
# For classification, ResNet34 ends with a global **average pooling** that averages each of
# the 512 channels over the whole 8 × 8 grid, and a **fully connected layer** `fc` that turns
# those 512 numbers into 1000 ImageNet class scores (a softmax then makes them
# probabilities). After the pooling, the network knows *what* is in the image but no longer
# *where*: exactly the information a mask needs.

# %%
with torch.no_grad():
    pooled = reference.avgpool(theirs_layer4)  # (2, 512, 1, 1): one number per channel
    class_scores = reference.fc(torch.flatten(pooled, 1))  # (2, 1000)
    moved = torch.roll(theirs_layer4, shifts=(3, 2), dims=(2, 3))  # features moved around
    pooled_moved = reference.avgpool(moved)
print("layer4 features ", tuple(theirs_layer4.shape))
print("after avgpool   ", tuple(pooled.shape))
print("after fc        ", tuple(class_scores.shape))
print(f"fc parameters: {count_parameters(reference.fc):,}")
print("pooled vector unchanged after moving the features:",
      torch.allclose(pooled, pooled_moved, atol=1e-6))

# %% [markdown]
# Rolling the features to other positions leaves the pooled vector unchanged: the pooling
# has thrown the positions away. So the encoder stops at `layer4` and keeps its 8 × 8 map of
# 512 channels. The 513 000 parameters of `fc` go too (they are trained for ImageNet's 1000
# classes, not for pet or background), and with them the softmax. What replaces the head is
# a decoder that turns the coarse map back into one logit per pixel.

# %% [markdown]
# ## 6. The decoder and its skip connections
#
# The decoder reuses the `Up` module of the UNet: upsample by 2 (a transposed convolution
# that also halves the channels), **concatenate** the encoder map of the same size, and mix
# both with a `DoubleConv`. The stem's map is the shallowest skip, at half resolution, and
# that is where the decoder stops, as in the design report: the 1×1 `outc` turns its 32
# channels into one logit per pixel at 128 × 128, and bilinear interpolation enlarges the
# logits to the input's 256 × 256. The encoder has no full-resolution map that a further
# step could fuse, and a pet's outline is smooth enough to be drawn from half-resolution
# logits. We run the decoder by hand, as `ResNet34_UNet.forward` does:

# %%
x0, x1, x2, x3, x4 = features
with torch.no_grad():
    d1 = model.up1(x4, x3)  # (1, 256, 16, 16)
    d2 = model.up2(d1, x2)  # (1, 128, 32, 32)
    d3 = model.up3(d2, x1)  # (1, 64, 64, 64)
    d4 = model.up4(d3, x0)  # (1, 32, 128, 128)
    half = model.outc(d4)  # (1, 1, 128, 128)
    logits = F.interpolate(half, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                           align_corners=False)  # (1, 1, 256, 256)
    torch.testing.assert_close(logits, model(image))  # the same as the whole forward pass
steps = [("up1", "layer4", "layer3", d1), ("up2", "up1", "layer2", d2),
         ("up3", "up2", "layer1", d3), ("up4", "up3", "stem", d4),
         ("outc", "up4", "none", half)]
rows = [[f"`{name}`", below, skip, str(tuple(t.shape)),
         f"{count_parameters(getattr(model, name)):,}"] for name, below, skip, t in steps]
display(Markdown(markdown_grid(["step", "input from", "skip from", "output (N, C, H, W)",
                                "parameters"], rows)))

# %% [markdown]
# The skip connections are what make this a *U-Net*: `layer4` alone knows that there is a
# pet somewhere in each 32 × 32 patch, and the skips from `layer3` down to the stem give the
# decoder the sharper maps it needs to draw the outline. Compared to the UNet's decoder
# (512 → 64 channels) this one is narrow: the encoder does the heavy lifting. Its channels
# halve at every step, down to 32 at half resolution, because the larger maps are where
# pixels are many: a 3×3 convolution with the same channels costs 4 times more at
# 128 × 128 than at 64 × 64, and 256 times more than at the encoder's 8 × 8. For the same
# reason the decoder has no convolution at full resolution: one there would cost 4 times
# more again, for an outline that the interpolated logits already draw.

# %% [markdown]
# How much can logits at half resolution draw? An upper bound: shrink the **true** mask of
# the test pet from section 3 to 128 × 128 (each value the mean of a 2 × 2 block, as much as
# a half-resolution map can hold), enlarge it the way `forward` enlarges the logits, and
# score it against the original with Dice.

# %%
true_mask = sample["mask"][None]  # (1, 1, 256, 256), 1 = pet
half_mask = F.avg_pool2d(true_mask, 2)  # (1, 1, 128, 128): one value per 2 x 2 block
redrawn = F.interpolate(half_mask, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                        align_corners=False) > 0.5  # (1, 1, 256, 256)
round_trip = mask_dice(redrawn, true_mask)
changed = redrawn != (true_mask > 0.5)
fig = show_images({"true mask, 256 x 256": true_mask, "kept at 128 x 128": half_mask,
                   f"redrawn at 256 x 256: Dice {round_trip:.4f}": redrawn.float(),
                   f"{int(changed.sum())} of {changed.numel():,} pixels changed": changed.float()},
                  cmap="gray", vmin=0, vmax=1,
                  title="A pet mask drawn from half resolution (white = pet, or changed)")
plt.show()

# %% [markdown]
# Only scattered pixels along the outline change, and the Dice in the figure's title stays
# close to 1 (the self-check asserts above 0.98; thin legs and tails are the hardest).
# The design report's models reach 0.90 to 0.92: their errors are in *which* regions are
# pet, not in how finely the edge is drawn, so the decoder can stop at half resolution, as
# the report's does.

# %% [markdown]
# ## 7. Parameter budgets: UNet vs ResNet34-UNet
#
# Where do the weights of each model live? We split both into encoder and decoder.

# %%
unet = UNet()  # the report's UNet: base_channels=64
unet_encoder = sum(count_parameters(getattr(unet, n)) for n in
                   ["inc", "down1", "down2", "down3", "down4"])
resnet_encoder = count_parameters(model.encoder)
budgets = {"UNet": (unet_encoder, count_parameters(unet) - unet_encoder),
           "ResNet34-UNet": (resnet_encoder, count_parameters(model) - resnet_encoder)}
fig, ax = plt.subplots(figsize=(7, 4))
names = list(budgets)
enc = [budgets[n][0] / 1e6 for n in names]
dec = [budgets[n][1] / 1e6 for n in names]
ax.bar(names, enc, label="encoder")
bars = ax.bar(names, dec, bottom=enc, label="decoder")
ax.bar_label(bars, labels=[f"{e + d:.1f} M" for e, d in zip(enc, dec, strict=True)])
ax.set(title="Trainable parameters", xlabel="model", ylabel="millions of parameters",
       ylim=(0, 36))
ax.legend()
plt.show()
rows = [[n, f"{e:,}", f"{d:,}", f"{e + d:,}"] for n, (e, d) in budgets.items()]
display(Markdown(markdown_grid(["model", "encoder", "decoder", "total"], rows)))

# %% [markdown]
# ResNet34-UNet has about a fifth fewer parameters than the UNet, and a very different
# balance: 87 % of them sit in the encoder, against 61 % for the UNet.
#
# Parameters are not the same as computation. A weight used on a large map is used many
# more times than one used on a small map. `FlopCounterMode` counts the floating-point
# operations of one forward pass:

# %%
flops = {}
for name, net in (("UNet", unet), ("ResNet34-UNet", model)):
    net.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(image)
    flops[name] = counter.get_total_flops()
    print(f"{name:<14} {flops[name] / 1e9:6.1f} GFLOP per {IMAGE_SIZE} x {IMAGE_SIZE} image")

# %% [markdown]
# ResNet34 shrinks the image to a quarter of its side in its stem, before any wide layer,
# while the UNet runs 64 and 128 channels at full and half resolution. So ResNet34-UNet
# needs about seven times less computation per image than the report's UNet.
#
# The design report found both models close on the test set (Dice 0.9054 for UNet, 0.9038
# for ResNet34-UNet, after 20 epochs from random weights). A deep encoder trained from
# scratch on a few thousand images does not reach its full strength; that is where
# pretrained weights come in.
#
# One more knob: `ResNet34_UNet(base_channels=16)` keeps ResNet34's depth and layout (3, 4, 6
# and 3 BasicBlocks, the same strides and skips) at a quarter of every width, so a sixteenth
# of the parameters and operations. QUICK mode trains that one in notebook 06, at 128 px:
# the stem (section 3) shrinks an image four times before the first BasicBlock, and at
# 64 px too little of a pet would be left for the blocks to learn from.

# %%
narrow = ResNet34_UNet(base_channels=16)
print(f"ResNet34_UNet(base_channels=16): {count_parameters(narrow):,} parameters "
      f"({count_parameters(narrow) / count_parameters(model):.1%} of the full width)")

# %% [markdown]
# ## 8. Optional: an encoder pretrained on ImageNet
#
# Because our encoder has torchvision's names, torchvision's ImageNet weights load into it
# unchanged: `ResNet34_UNet(pretrained_encoder=True)`. The encoder then starts with filters
# that already detect edges, textures and object parts, and usually converges faster and
# further than from random weights. Two details:
#
# - the weights (83 MB) are **downloaded** the first time into torch's hub cache; without
#   network access they cannot be, unless you put the file there by hand
#   (`torch.hub.get_dir()` names the folder);
# - ImageNet models expect images normalised with the ImageNet mean and standard deviation;
#   with a pretrained encoder, the model applies that normalisation itself inside `forward`
#   (`normalize_input=True`), so it still takes images in [0, 1].
#
# The cell below loads them when it can; offline it says so in one line instead.

# %%
weights_url = torchvision.models.ResNet34_Weights.IMAGENET1K_V1.url
cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights_url).name
pretrained = None
OFFLINE = ("Pretrained ImageNet weights cannot be downloaded offline: the course trains its "
           "encoders from random weights.")
if cached.exists() or network_available(weights_url):
    try:
        pretrained = ResNet34_UNet(pretrained_encoder=True)
    except RuntimeError:
        print(OFFLINE)
else:
    print(OFFLINE)
if pretrained is not None:
    first = pretrained.encoder.conv1.weight
    print(f"loaded; normalize_input = {pretrained.normalize_input}; first convolution "
          f"{tuple(first.shape)}, weight std {first.std():.3f} (random initialisation: "
          f"{model.encoder.conv1.weight.std():.3f})")

# %% [markdown]
# To train with it, pass `model_kwargs={"pretrained_encoder": True}` to a `TrainConfig` (see
# notebook 05). A checkpoint then records `normalize_input=True`, so loading it later needs
# no download.

# %% [markdown]
# ## Exercises
#
# 1. Repeat section 2 with `encoder.layer3[1]`, a block whose shortcut is the identity:
#    compute it step by step with its own layers and check your result with
#    `torch.testing.assert_close`.
# 2. A `BasicBlock(64, 64)` has two 3×3 convolutions without bias and two BatchNorms (a
#    scale and a shift per channel). Work out its parameter count on paper, then check it
#    with `count_parameters(encoder.layer1[0])`.
# 3. Feed the model a 250 × 333 image. Which encoder sizes are rounded up? Why does
#    `ResNet34_UNet.forward` need its final `F.interpolate`, and `UNet` only as a safety
#    net?
#
# Try them first; worked solutions, with checks, are in `solutions/04_resnet34_unet.py` (open
# it as a notebook in JupyterLab: right click → Open With → Notebook).

# %% [markdown]
# ## Self-check
#
# The cell below fails loudly if the model or the checks above are not as described.

# %%
torch.testing.assert_close(ours, library)  # the hand-made block is the library's block
assert ours.shape == (2, 128, 32, 32), "stride 2 and 128 channels"
expected = [(64, 2), (64, 4), (128, 8), (256, 16), (512, 32)]
for f, (channels, divisor) in zip(features, expected, strict=True):
    assert f.shape == (1, channels, IMAGE_SIZE // divisor, IMAGE_SIZE // divisor), f.shape
assert not result.missing_keys and not result.unexpected_keys, "strict load"
torch.testing.assert_close(ours_layer4, theirs_layer4)
assert not hasattr(model.encoder, "fc") and not hasattr(model.encoder, "avgpool")
assert count_parameters(model.encoder) == count_parameters(reference) - 513_000
torch.testing.assert_close(pooled, pooled_moved)  # pooling forgets positions
assert half.shape == (1, 1, IMAGE_SIZE // 2, IMAGE_SIZE // 2), "the decoder stops at H/2"
assert round_trip > 0.98, "half resolution can draw a pet's outline"
assert logits.shape == (1, 1, IMAGE_SIZE, IMAGE_SIZE), "one logit per pixel"
assert count_parameters(model) < count_parameters(unet)
assert flops["ResNet34-UNet"] < flops["UNet"] / 3
print("All checks passed.")
