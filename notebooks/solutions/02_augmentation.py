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
# # Solutions to notebook 02 — try the exercises yourself first
#
# Worked solutions to the three exercises of `02_augmentation`, each ending with `assert`s
# that check the answer.

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
import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from petseg_lib.data.augment import CropAndZoom, augment_sample
from petseg_lib.data.masks import BACKGROUND
from petseg_lib.data.oxford_pet import OxfordPetDataset, find_dataset, load_dataset
from petseg_lib.training.config import quick_mode
from petseg_lib.utils import show_augmentations

torch.manual_seed(0)  # the same random draws on every run
QUICK = quick_mode()
DATA = find_dataset()  # the real dataset when downloaded, else the offline sample
IMAGE_SIZE = 64 if QUICK else 256
DRAWS = 50  # random crops per photo in exercise 1
raw = OxfordPetDataset(DATA, "train")  # original sizes, as in the notebook
picks = np.linspace(0, len(raw) - 1, 4).round().astype(int).tolist()
photos = [raw[i] for i in picks]

# %% [markdown]
# ## Exercise 1 — crops with `scale=(0.1, 1.0)`
#
# What happens to the pet in many crops, and why could that hurt training?
#
# We draw 50 crops of each of four photos with both settings and measure, on the cropped
# mask, how far the pet's share of the picture moves from the uncropped photo's, how often
# the crop has (almost) no pet left, and how often the crop's border cuts through the pet.

# %%
crop_stats = {}
for scale in ((0.5, 1.0), (0.1, 1.0)):
    crop = CropAndZoom(IMAGE_SIZE, scale=scale)
    change, empty, cut = [], [], []
    for photo in photos:
        share = augment_sample(photo, None, IMAGE_SIZE)["mask"].mean().item()
        for _ in range(DRAWS):
            mask = augment_sample(photo, crop, IMAGE_SIZE)["mask"][0]  # (S, S)
            change.append(abs(mask.mean().item() - share))
            empty.append(mask.mean().item() < 0.05)
            edges = torch.cat([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
            cut.append(bool(edges.any()))
    crop_stats[scale] = {"change": np.mean(change), "empty": np.mean(empty), "cut": np.mean(cut)}
    print(f"scale={scale}: pet share moves by {np.mean(change):.3f} on average; "
          f"{np.mean(empty):.1%} of crops with under 5% pet; "
          f"{np.mean(cut):.0%} cut through the pet")

# %%
wide = CropAndZoom(IMAGE_SIZE, scale=(0.1, 1.0))
narrow = CropAndZoom(IMAGE_SIZE, scale=(0.5, 1.0))
fig = show_augmentations(
    {"scale=(0.5, 1.0)": [augment_sample(photos[0], narrow, IMAGE_SIZE) for _ in range(5)],
     "scale=(0.1, 1.0)": [augment_sample(photos[0], wide, IMAGE_SIZE) for _ in range(5)]},
    title=f"Five random crops of {photos[0]['name']} with each scale range")
plt.show()

# %% [markdown]
# **Answer.** With `scale=(0.1, 1.0)` a crop may keep as little as a tenth of the photo's
# area, which is then zoomed up about three times in each direction. In many crops the pet
# is cut to a patch of fur, an ear or a paw, or is missing altogether (the crop lands on the
# background), and the pet's share of the picture jumps far from the photo's: the
# statistics above show all three effects growing against `scale=(0.5, 1.0)`. That can
# hurt training in three ways: (1) the model is asked to segment pieces that carry no shape
# (a close-up of fur has no outline to learn), so the labels look arbitrary; (2) the
# training images no longer look like the test photos, where the whole pet is visible at a
# modest size, so the model spends capacity on a situation it never meets; (3) near-empty
# or all-pet crops push the model towards a constant answer. A moderate zoom teaches scale;
# an extreme one mostly adds noise.

# %%
assert crop_stats[(0.1, 1.0)]["change"] > crop_stats[(0.5, 1.0)]["change"], "more upheaval"
assert crop_stats[(0.1, 1.0)]["cut"] >= crop_stats[(0.5, 1.0)]["cut"], "more cut-off pets"
assert crop_stats[(0.1, 1.0)]["empty"] >= crop_stats[(0.5, 1.0)]["empty"], "more empty crops"

# %% [markdown]
# ## Exercise 2 — a random rotation
#
# Pass `v2.RandomRotation(30)` to `augment_sample`: does the mask rotate with the photo?
# What fills the corners of the image and of the mask?

# %%
rotation = v2.RandomRotation(30)
rotated = [augment_sample(photo, rotation, IMAGE_SIZE) for photo in photos]
fixed_angle = v2.RandomRotation((30, 30))  # exactly 30 degrees: the corners lie outside the photo
plain_fill = augment_sample(photos[0], fixed_angle, IMAGE_SIZE)
print("corner pixel with the default fill: image", plain_fill["image"][:, 0, 0].tolist(),
      "trimap", plain_fill["trimap"][0, 0, 0].item(), "mask", plain_fill["mask"][0, 0, 0].item())

# %% [markdown]
# The image corners are black (fill value 0), as expected. The trimap's corners are filled
# with 0 too, but 0 is not a trimap value: the dataset's rule "everything but background
# (2) is pet" then turns the empty corners into **pet**. The fix is to give the mask its own
# fill value, the background's:

# %%
background_fill = v2.RandomRotation(30, fill={tv_tensors.Image: 0, tv_tensors.Mask: BACKGROUND})
fixed_30 = v2.RandomRotation((30, 30), fill={tv_tensors.Image: 0, tv_tensors.Mask: BACKGROUND})
fixed = [augment_sample(photo, background_fill, IMAGE_SIZE) for photo in photos]
fig = show_augmentations({"RandomRotation(30)": rotated, "mask filled with background": fixed},
                         title="Rotation: the mask turns with the pet; the default fill "
                               "makes the corners pet")
plt.show()

# %% [markdown]
# To check the alignment with numbers, we rotate a "photo" painted from its own trimap
# (white pet and boundary, grey background): after the joint rotation, the bright pixels of
# the image must be the mask's pixels, up to the resizing at the edges. As a control, the
# same image rotated *alone* (the mask left as it was) must agree much less.

# %%
painted = dict(photos[0])
painted["image"] = np.where(painted["trimap"][..., None] == BACKGROUND, 90, 255).astype(np.uint8)
painted["image"] = np.repeat(painted["image"], 3, axis=2)  # (H, W, 3)
turned = augment_sample(painted, fixed_30, IMAGE_SIZE)  # 30 degrees, corners as background
unturned = augment_sample(painted, None, IMAGE_SIZE)
bright = turned["image"][0] > 172 / 255  # halfway between the grey and the white
agreement = (bright == (turned["mask"][0] > 0.5)).float().mean().item()
control = (bright == (unturned["mask"][0] > 0.5)).float().mean().item()
print(f"rotated image vs rotated mask: {agreement:.1%} of the pixels agree; "
      f"vs the mask left unrotated: {control:.1%}")

# %% [markdown]
# **Answer.** Yes: `augment_sample` hands image and trimap to the same transform call, so
# the rotation draws one angle and turns both by it (the painted check agrees almost
# everywhere; the few disagreeing pixels lie on the outline, which the image's smooth
# resizing blurs and the mask's nearest-neighbour resizing keeps sharp). The corners that the
# rotation uncovers are filled with 0 in both: black in the image, and value 0 in the
# trimap, which is neither pet nor background and which the binary rule turns into **pet**.
# A model trained like this would learn "black triangles in the corners are pet". Fill the
# mask with the background value (`fill={tv_tensors.Image: 0, tv_tensors.Mask: 2}`), or
# mark the corners to be ignored in the loss.

# %%
assert plain_fill["trimap"][0, 0, 0] == 0 and plain_fill["mask"][0, 0, 0] == 1, "the trap"
assert plain_fill["image"][:, 0, 0].abs().max() == 0, "black image corners"
for photo in photos:
    sample = augment_sample(photo, fixed_30, IMAGE_SIZE)
    assert set(sample["trimap"].unique().tolist()) <= {1, 2, 3}, "only trimap values"
    assert sample["mask"][0, 0, 0] == 0, "corners are background with the fix"
assert all(set(s["trimap"].unique().tolist()) <= {1, 2, 3} for s in fixed)
assert agreement > 0.95, "image and mask rotate together"
assert control < agreement - 0.05, "the check would notice a mask left behind"

# %% [markdown]
# ## Exercise 3 — predict before notebook 06
#
# Which configuration has the lower *training* loss after the same number of epochs, and
# which the higher *test* Dice?
#
# **Prediction.** Without augmentation the *training* loss is lower: the model sees the
# same 3 312 pictures every epoch and can fit them ever more closely, down to memorising
# them. With augmentation half of every epoch is new, altered pictures that cannot be
# memorised, so its training loss stays higher. The *test* Dice goes the other way:
# memorised details of the training photos do not carry over to new photos, while the
# augmented model had to learn the pet's shape at many sizes, in any colour and light. The
# report agrees: augmentation raised the test Dice of both models (0.9054 → 0.9221 and
# 0.9038 → 0.9195). Note that "the same number of epochs" is not the same number of steps:
# with augmentation an epoch is twice as long, which favours the augmented run, and its
# training loss typically stays higher all the same. (In QUICK mode, with a few epochs on a
# few dozen images, the differences between the four runs of notebook 06 are mostly noise.)
#
# The measurable part, without training anything: the simplest "memoriser" is a per-pixel
# pet probability averaged over the plain training masks (it knows where pets usually
# are). Its loss on the plain training samples is what memorising buys; on the augmented
# copies of the same photos it is worse, because crops and flips move the pets.

# %%
n = 32 if QUICK else 256
plain = load_dataset(DATA, "train", image_size=IMAGE_SIZE, limit=n)
doubled = load_dataset(DATA, "train", image_size=IMAGE_SIZE, augment=True, limit=n)
plain_masks = torch.stack([plain[i]["mask"] for i in range(len(plain))])  # (n, 1, S, S)
augmented_masks = torch.stack([doubled[2 * i + 1]["mask"] for i in range(len(plain))])
prior = torch.logit(plain_masks.mean(0).clamp(0.02, 0.98))  # (1, S, S) logits
loss_plain = F.binary_cross_entropy_with_logits(prior.expand_as(plain_masks), plain_masks)
loss_augmented = F.binary_cross_entropy_with_logits(prior.expand_as(augmented_masks),
                                                    augmented_masks)
print(f"BCE of the memorised prior: {loss_plain:.4f} on the plain samples, "
      f"{loss_augmented:.4f} on their augmented copies")

# %%
assert loss_augmented > loss_plain, "augmented samples are harder to fit by memorising"
assert len(doubled) == 2 * len(plain), "an augmented epoch is twice as long"
moved = (augmented_masks != plain_masks).flatten(1).any(1).float().mean().item()
assert moved > 0.5, f"most augmented copies move the pet ({moved:.0%})"
print("All checks passed.")
