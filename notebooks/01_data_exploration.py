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
# # 01 · Data exploration: the Oxford-IIIT Pet dataset and its trimaps
#
# Before training anything we look at the data: how many images each split holds, how large
# the photos are, how much of each photo the pet covers, and what the annotation (a *trimap*)
# looks like. These facts decide the choices made later: the input size, the binary mask, and
# how we score a prediction.
#
# **After this notebook you will be able to**
#
# - explain how the train, validation and test splits are formed;
# - describe the spread of image sizes and pet sizes, and why we resize every image;
# - read a trimap and turn it into the binary pet mask used for training;
# - draw a grid of samples with their masks.

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
import numpy as np

from petseg_lib.data.masks import trimap_to_mask
from petseg_lib.data.oxford_pet import (
    MODES,
    VALID_EVERY,
    OxfordPetDataset,
    find_dataset,
    load_dataset,
    read_split_file,
    split_names,
    trimap_statistics,
)
from petseg_lib.training.config import quick_mode
from petseg_lib.utils import show_samples, show_trimap

QUICK = quick_mode()  # PETSEG_QUICK=1 (set by the tests): fewer images, smaller pictures
DATA = find_dataset(download_if_missing=True)  # the real dataset, else the offline sample
IMAGE_SIZE = 64 if QUICK else 256  # the side of the square images the models see
LIMIT = 120 if QUICK else None  # how many training trimaps the statistics read (None: all)
print("data:", DATA)

# %% [markdown]
# ## 1. The splits
#
# The dataset ships two lists: `annotations/trainval.txt` and `annotations/test.txt`. The test
# list is kept aside until the very end. We need a validation set too, to pick the best epoch
# while training, so we carve it out of `trainval`: **every 10th name** (positions 9, 19,
# 29, ... counting from 0) goes to `valid`, the rest to `train`. The list is sorted by breed,
# so this simple rule gives the validation set every breed in the same proportion as the
# training set, and it is the same on every machine (no random seed to keep track of).

# %%
counts = {mode: len(split_names(DATA, mode)) for mode in MODES}
for mode, n in counts.items():
    print(f"{mode:>5}: {n:5d} images")
print(f"trainval = train + valid = {counts['train'] + counts['valid']}")

# %% [markdown]
# The rule at work on the first 20 names of `trainval.txt`:

# %%
trainval = read_split_file(DATA / "annotations" / "trainval.txt")
valid_names = set(split_names(DATA, "valid"))
for position, name in enumerate(trainval[:20]):
    split = "valid" if name in valid_names else "train"
    print(f"{position:3d}  {name:<28} -> {split}")

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.bar(list(counts), list(counts.values()), color=["tab:blue", "tab:orange", "tab:green"])
for i, n in enumerate(counts.values()):
    ax.text(i, n, str(n), ha="center", va="bottom")
ax.set(title="Images per split", xlabel="split", ylabel="number of images")
ax.margins(y=0.15)
plt.show()

# %% [markdown]
# ## 2. Image sizes
#
# The photos come from the web and have all sorts of sizes and shapes. A network trained in
# batches needs tensors of one size, so every image (and its mask) is resized to a square,
# 256 × 256 in the full course. The scatter below shows how far that is from the originals:
# most photos are a few hundred pixels wide and not square, so resizing both shrinks and
# slightly squashes them.
#
# `trimap_statistics` reads each training trimap once (a trimap has its image's size) and
# returns the sizes and the share of each trimap class per image.

# %%
train_raw = OxfordPetDataset(DATA, "train", limit=LIMIT)
stats = trimap_statistics(train_raw)
print(f"{len(train_raw)} training images read")
print(f"width:  {stats['width'].min():.0f} to {stats['width'].max():.0f} px, "
      f"median {np.median(stats['width']):.0f}")
print(f"height: {stats['height'].min():.0f} to {stats['height'].max():.0f} px, "
      f"median {np.median(stats['height']):.0f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.scatter(stats["width"], stats["height"], s=12, alpha=0.5, label="one training image")
ax.scatter([IMAGE_SIZE], [IMAGE_SIZE], marker="x", s=120, color="red",
           label=f"model input {IMAGE_SIZE} x {IMAGE_SIZE}")
top = max(stats["width"].max(), stats["height"].max()) * 1.05
ax.plot([0, top], [0, top], ":", color="grey", label="square images")
shown = ("all" if LIMIT is None else f"{len(train_raw)} spread over the split,")
ax.set(title=f"Image sizes: {shown} training images", xlabel="width (px)",
       ylabel="height (px)", xlim=(0, top), ylim=(0, top))
ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# ## 3. How much of the picture is pet?
#
# The *foreground fraction* of an image is the share of its pixels that belong to the pet
# (pet plus boundary, see below). If pets filled almost every photo, a model answering "pet"
# everywhere would already score well; if they were tiny, the opposite. The histogram shows
# the spread. It also tells us the **chance level**: a model that paints every pixel as pet
# scores a Dice of `2f / (1 + f)` on an image with foreground fraction `f`. A trained model
# must beat that clearly.

# %%
fractions = stats["foreground"]
print(f"foreground fraction: mean {fractions.mean():.2f}, "
      f"from {fractions.min():.2f} to {fractions.max():.2f}")
print(f"share of boundary pixels: mean {stats['boundary'].mean():.3f}")
all_pet_dice = 2 * fractions / (1 + fractions)
print(f"Dice of the 'everything is pet' guess: mean {all_pet_dice.mean():.2f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
bins = np.linspace(0, 1, 21)
ax.hist(fractions, bins=bins, alpha=0.7, label="pet + boundary (training mask)")
ax.hist(stats["pet"], bins=bins, alpha=0.5, label="pet only")
ax.axvline(fractions.mean(), color="black", linestyle="--",
           label=f"mean foreground {fractions.mean():.2f}")
ax.set(title="Share of each image covered by the pet", xlabel="fraction of pixels",
       ylabel="number of images")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. A trimap and its three classes
#
# The annotation of each image is a *trimap*, a grey PNG of the image's size whose pixels hold
# one of three values:
#
# | value | meaning |
# |------:|---------|
# | 1 | pet |
# | 2 | background |
# | 3 | boundary: a thin band along the pet's outline that the annotators left undecided |
#
# The raw values 1, 2, 3 look almost black when shown as a grey picture, so we draw them with
# three named colours.

# %%
sample = train_raw[0]
trimap = sample["trimap"]
values, pixels = np.unique(trimap, return_counts=True)
print(sample["name"], "image", sample["image"].shape, "trimap", trimap.shape, trimap.dtype)
print("trimap values and pixel counts:", dict(zip(values.tolist(), pixels.tolist(),
                                                  strict=True)))

# %%
fig = show_trimap(sample["image"], trimap, title=f"{sample['name']}: trimap and binary masks")
plt.show()

# %% [markdown]
# ## 5. From trimap to binary mask
#
# We segment *pet versus background*, so the model learns one number per pixel. The rule
# (`trimap_to_mask`, the dataset's `_preprocess_mask`): **pet (1) and boundary (3) become
# foreground 1, background (2) becomes 0.** Counting the boundary as pet keeps the whole
# outline inside the mask: fur, whiskers and ears are what the boundary band mostly covers.
#
# When we *score* predictions later there is a second, equally valid reading: the boundary is
# ambiguous even for people, so some evaluations **ignore** the boundary pixels altogether
# (neither right nor wrong), the grey band in the last panel above. Notebook 06 reports Dice
# both ways; training always uses the first rule.

# %%
mask = trimap_to_mask(trimap)
print("mask values:", np.unique(mask), "dtype", mask.dtype)
print(f"pet pixels:      {(trimap == 1).mean():.3f} of the image")
print(f"boundary pixels: {(trimap == 3).mean():.3f}")
print(f"mask pixels:     {mask.mean():.3f}  (= pet + boundary)")

# %% [markdown]
# ## 6. The samples the models see
#
# `load_dataset` returns `SimpleOxfordPetDataset`: every image resized to a square and scaled
# to floats in [0, 1] (shape `(3, S, S)`), its mask resized with nearest-neighbour
# interpolation so it stays binary (shape `(1, S, S)`). `show_samples` draws a few, spread
# over the split, with the mask tinted and outlined (blue on a yellowish pet, orange on a
# grey or dark one, so that it shows on any fur): check that it sits exactly on each pet.

# %%
train = load_dataset(DATA, "train", image_size=IMAGE_SIZE)
item = train[0]
print("image", tuple(item["image"].shape), item["image"].dtype,
      f"range [{item['image'].min():.2f}, {item['image'].max():.2f}]")
print("mask ", tuple(item["mask"].shape), item["mask"].dtype, "values", item["mask"].unique())

# %%
fig = show_samples(train, n=8, cols=4,
                   title=f"8 training samples at {IMAGE_SIZE} x {IMAGE_SIZE}, "
                         "pet mask tinted and outlined")
plt.show()

# %% [markdown]
# ## Exercises
#
# 1. Change the validation rule in your head to "the last 10% of `trainval.txt`". Why would
#    that be a poor validation set for this dataset? (Hint: the list is sorted by breed.)
# 2. Find the training image with the smallest foreground fraction (`np.argmin`) and draw it
#    with `show_trimap`. Is the pet small, or is the annotation unusual?
# 3. Compute the mean share of boundary pixels for the test split too (build an
#    `OxfordPetDataset(DATA, "test")` and call `trimap_statistics`). How much could the Dice
#    of one model change between "boundary as pet" and "boundary ignored"?
#
# Try them first; worked solutions, with checks, are in `solutions/01_data_exploration.py`
# (open it as a notebook in JupyterLab: right click → Open With → Notebook).

# %% [markdown]
# ## Self-check
#
# Run this cell: it fails loudly when the data or the rules above are not what we expect.

# %%
train_names, valid_list = split_names(DATA, "train"), split_names(DATA, "valid")
assert not set(train_names) & set(valid_list), "train and valid overlap"
assert valid_list == trainval[VALID_EVERY - 1::VALID_EVERY], "valid is every 10th name"
assert len(train_names) + len(valid_list) == len(trainval)
assert counts["test"] > 0 and counts["valid"] > 0
assert set(np.unique(trimap)) <= {1, 2, 3}, "a trimap holds only 1, 2 and 3"
assert np.array_equal(mask, (trimap != 2).astype(np.float32)), "boundary counts as pet"
assert np.allclose(stats["pet"] + stats["background"] + stats["boundary"], 1.0)
assert 0.0 < fractions.mean() < 1.0, "pets cover part of each picture"
assert item["image"].shape == (3, IMAGE_SIZE, IMAGE_SIZE)
assert item["mask"].shape == (1, IMAGE_SIZE, IMAGE_SIZE)
assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}, "resized masks stay binary"
print("All checks passed.")
