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
# # 02 · Data augmentation: more varied pets from the same photos
#
# A few thousand training photos are not many for a network with millions of weights: it can
# learn the photos by heart instead of learning what a pet looks like. Data augmentation
# shows the model altered copies of each photo (zoomed in, mirrored, without colour, darker or
# brighter) so that it has to rely on what stays the same: the shape of the animal. In
# segmentation the mask must follow every geometric change of its image exactly.
#
# **After this notebook you will be able to**
#
# - name the four training augmentations and the kind of variation each one teaches;
# - apply a `torchvision.transforms.v2` transform to an image and its mask together, and check
#   that they stay aligned;
# - explain how `SimpleOxfordPetDataset` doubles the training set with even and odd indices.

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
import torch

from petseg_lib.data.augment import augment_sample, augmentation_steps, augmentations
from petseg_lib.data.oxford_pet import OxfordPetDataset, find_dataset, load_dataset
from petseg_lib.training.config import quick_mode
from petseg_lib.utils import show_augmentations

torch.manual_seed(0)  # the same random draws on every run
QUICK = quick_mode()  # PETSEG_QUICK=1 (set by the tests): smaller pictures
DATA = find_dataset(download_if_missing=True)  # the real dataset, else the offline sample
IMAGE_SIZE = 128 if QUICK else 256  # the side of the square images the models see
N_SHOW = 4  # how many photos each figure shows

# %% [markdown]
# ## 1. The training pipeline
#
# The library builds the augmentations with `augmentations(image_size)`. Printing it shows the
# four steps, in the order they are applied, with their settings:

# %%
print(augmentations(IMAGE_SIZE))

# %% [markdown]
# - **crop and zoom**, `CropAndZoom(scale=(0.5, 1.0))`: cuts out a random region holding
#   50-100% of the photo's area and resizes it to the square input. The region is shaped like
#   the photo (stretched by at most a third either way), because every photo the model is
#   scored on is squeezed whole into the square: a landscape photo's pet is always drawn
#   narrower than it is, and the crops squeeze it the same way (square crops of a landscape
#   photo would show pets wider than any test photo does).
#   Teaches **scale**: pets at many sizes and positions, sometimes partly cut off.
# - **horizontal flip**, `RandomHorizontalFlip(p=0.5)`: mirrors the photo half of the time.
#   Teaches that a pet facing left is still a pet.
# - **greyscale**, `RandomGrayscale(p=0.2)`: removes the colour of one photo in five.
#   Teaches to rely on **shape and texture** rather than fur **colour**.
# - **brightness**, `ColorJitter(brightness=0.3)`: multiplies the brightness by a random factor
#   between 0.7 and 1.3. Teaches to cope with dim and bright **illumination**.
#
# **How image and mask stay together.** The dataset wraps the photo as a `tv_tensors.Image`
# and the trimap as a `tv_tensors.Mask` and passes *both* to the same transform call. The
# transform then draws its random parameters once (the crop box, whether to flip) and applies
# them to both. It also knows that a mask holds labels: it resizes masks with nearest-neighbour
# interpolation, so a trimap keeps its values 1, 2, 3, and it leaves masks untouched in the
# colour steps. `augment_sample(sample, transform, image_size)` does exactly this for one
# original-size sample and one transform, and returns the sample the way the training set
# shows it to the model.

# %% [markdown]
# ## 2. Each augmentation on the same photos
#
# `augmentation_steps` returns the four steps of the pipeline one by one. For the pictures the
# flip and the greyscale step always act (in training they act half of the time and one time
# in five). Each row of the figure applies one step to the same photos; the mask is tinted and
# outlined (blue or orange, whichever contrasts with the fur), so you can check that it still
# sits exactly on the pet.

# %%
raw = OxfordPetDataset(DATA, "train")  # original sizes, numpy arrays
picks = np.linspace(0, len(raw) - 1, N_SHOW).round().astype(int).tolist()
photos = [raw[i] for i in picks]
steps = augmentation_steps(IMAGE_SIZE)
rows = {"original (resized)": [augment_sample(p, None, IMAGE_SIZE) for p in photos]}
for name, step in steps.items():
    rows[name] = [augment_sample(p, step, IMAGE_SIZE) for p in photos]
print("steps:", list(steps))

# %%
fig = show_augmentations(rows, title="Each augmentation alone: the outlined mask follows its pet")
plt.show()

# %% [markdown]
# What to look for, row by row:
#
# - **crop and zoom**: the pet grows and moves, and may lose its tail or ears at the border;
#   the mask is cut and zoomed with it. The model sees pets at many sizes, so it does not
#   expect every pet to fill the same part of the frame (*scale*).
# - **horizontal flip**: photo and mask are mirrored together. Pets are left-right symmetric
#   in the statistical sense, so each flipped photo is a plausible new photo for free.
#   (A vertical flip would not be: upside-down pets are rare.)
# - **greyscale**: the colour is gone, the mask is unchanged. A ginger cat and a grey cat of
#   the same shape must get the same mask, so the model learns outlines and fur texture rather
#   than "orange means cat" (*colour*).
# - **brightness**: the photo gets darker or brighter, the mask is unchanged. Indoor, outdoor,
#   flash and shadow all change the brightness of a pet without changing where it is
#   (*illumination*).
#
# Only the crop and the flip move pixels; that is why only they have to touch the mask.

# %% [markdown]
# ## 3. Randomness: one photo, several crops
#
# Every call draws new random parameters. Here is the crop-and-zoom step drawn five times on
# the first photo: zoom level, position and stretch change from draw to draw.

# %%
crops = [augment_sample(photos[0], steps["crop and zoom"], IMAGE_SIZE) for _ in range(5)]
fig = show_augmentations({"crop and zoom": crops},
                         title=f"Five random crops of {photos[0]['name']}")
plt.show()

# %% [markdown]
# ## 4. Why image and mask must be transformed together
#
# A mistake that is easy to make and hard to notice in the loss curve: transforming the image
# alone. Below, the photo is mirrored with `torch.flip` but its mask is not; the outline no
# longer matches the pet, and a model trained on such pairs would learn nonsense at every
# flipped photo.

# %%
original = rows["original (resized)"]
wrong = [{"image": s["image"].flip(-1), "mask": s["mask"], "name": s["name"]} for s in original]
fig = show_augmentations({"flipped together": rows["horizontal flip"],
                          "image flipped alone (wrong)": wrong},
                         title="Joint transform (top) vs image-only transform (bottom)")
plt.show()

# %% [markdown]
# ## 5. The full pipeline, and how the dataset doubles the training set
#
# In training, all four steps run one after the other, each with its own random draw. With
# `augment=True`, `SimpleOxfordPetDataset` (what `load_dataset` returns) makes the training
# split **twice as long**: index `2k` is photo `k` only resized, index `2k + 1` is photo `k`
# through the augmentation pipeline. Every epoch therefore sees each photo once as it is and
# once altered, and because the odd items are drawn again at every access, the altered copy
# is different in every epoch. Validation and test are never augmented: we want to measure
# the model on real photos.

# %%
plain = load_dataset(DATA, "train", image_size=IMAGE_SIZE)
doubled = load_dataset(DATA, "train", image_size=IMAGE_SIZE, augment=True)
valid = load_dataset(DATA, "valid", image_size=IMAGE_SIZE, augment=True)
print(f"train without augmentation: {len(plain)} samples")
print(f"train with augmentation:    {len(doubled)} samples (x2)")
print(f"valid with augment=True:    {len(valid)} samples (never augmented)")

# %%
even = [doubled[2 * k] for k in picks]
odd = [doubled[2 * k + 1] for k in picks]
again = [doubled[2 * k + 1] for k in picks]
for k, a, b in zip(picks, even, odd, strict=True):
    print(f"index {2 * k:3d}: {a['name']:<24} index {2 * k + 1:3d}: {b['name']}")

# %%
fig = show_augmentations({"index 2k (original)": even, "index 2k+1 (augmented)": odd,
                          "index 2k+1, read again": again},
                         title="Even/odd doubling: same photos, a new random draw at each read")
plt.show()

# %% [markdown]
# ## Exercises
#
# 1. Change `scale=(0.5, 1.0)` to `scale=(0.1, 1.0)` in your head, or build
#    `CropAndZoom(IMAGE_SIZE, scale=(0.1, 1.0))` and pass it to `augment_sample`.
#    What happens to the pet in many crops, and why could that hurt training?
# 2. Add a rotation: pass `v2.RandomRotation(30)` to `augment_sample` and check in the figure
#    that the mask rotates with the photo. What fills the corners of the image and of the mask?
# 3. The report's configurations compare training with and without augmentation. Before you
#    see the results in notebook 06, predict: which one has the lower *training* loss after
#    the same number of epochs, and which one the higher *test* Dice?
#
# Try them first; worked solutions, with checks, are in `solutions/02_augmentation.py` (open
# it as a notebook in JupyterLab: right click → Open With → Notebook).

# %% [markdown]
# ## Self-check
#
# The cell below fails loudly if augmentation breaks a mask or the doubling rule.

# %%
all_samples = [s for row in rows.values() for s in row] + crops + even + odd + again
for s in all_samples:
    assert s["image"].shape == (3, IMAGE_SIZE, IMAGE_SIZE), s["name"]
    assert s["mask"].shape == (1, IMAGE_SIZE, IMAGE_SIZE), s["name"]
    assert set(s["mask"].unique().tolist()) <= {0.0, 1.0}, "masks stay binary"
    assert 0.0 <= s["mask"].mean() <= 1.0
    assert s["image"].min() >= 0.0 and s["image"].max() <= 1.0
assert all(0.0 < s["mask"].mean() < 1.0 for s in original), "each photo holds pet and background"
for before, grey, bright in zip(original, rows["greyscale"], rows["brightness"], strict=True):
    assert torch.equal(grey["mask"], before["mask"]), "colour steps leave the mask alone"
    assert torch.equal(bright["mask"], before["mask"])
    assert torch.allclose(grey["image"][0], grey["image"][1]), "greyscale: equal channels"
for before, flipped in zip(original, rows["horizontal flip"], strict=True):
    # Nearest-neighbour resizing may shift an edge by one pixel; everything else must match.
    assert (flipped["mask"] != before["mask"].flip(-1)).float().mean() < 0.05, "flip aligned"
assert len(doubled) == 2 * len(plain), "augment=True doubles the training split"
assert len(valid) == len(valid.names), "validation is never doubled"
assert all(a["name"] == b["name"] for a, b in zip(even, odd, strict=True)), "2k, 2k+1: same photo"
assert all(torch.equal(a["image"], plain[k]["image"]) for a, k in zip(even, picks, strict=True))
assert any(not torch.equal(a["image"], b["image"]) for a, b in zip(odd, again, strict=True))
print("All checks passed.")
