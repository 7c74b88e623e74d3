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
# # Solutions to notebook 08 — try the exercises yourself first
#
# Worked solutions to the four exercises of `08_further_directions`, each ending with
# `assert`s that check the answer. The trainings are tiny (QUICK settings shrunk to a few
# dozen steps, a temporary folder) so that the file runs in well under a minute: they show
# how to ask each question, not what the answer is on the real photos.

# %%
# Make petseg_lib importable when this file is opened from notebooks/solutions/.
import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("petseg_lib") is None:
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    sys.path.insert(0, str(next(p for p in [here, *here.parents] if (p / "petseg_lib").is_dir())))

# %%
import tempfile

import matplotlib.pyplot as plt
import torch

from petseg_lib import pseudo_labels
from petseg_lib.data.oxford_pet import find_dataset, load_dataset
from petseg_lib.data.pet_labels import read_labels
from petseg_lib.inference import load_model
from petseg_lib.models import build_model
from petseg_lib.models.summary import layer_shapes
from petseg_lib.train import train
from petseg_lib.training.checkpoint import read_checkpoint
from petseg_lib.training.config import quick_config
from petseg_lib.utils import deepest_pixel, show_attention

DATA = find_dataset()
FOLDER = Path(tempfile.mkdtemp(prefix="petseg-solutions-08-"))
TINY = dict(data_path=str(DATA), checkpoint_dir=str(FOLDER / "checkpoints"),
            output_dir=str(FOLDER / "outputs"), progress=False, epochs=2, epoch_samples=64,
            valid_limit=8, batch_size=8)

# %% [markdown]
# ## Exercise 1 — four pixels, head by head
#
# `attention_map` returns (N, heads, h, w): one map per head, and each is a softmax over the
# keys, so its weights sum to 1. The query is a stage-4 *token*, 32 × 32 pixels of the
# photo: two pixels in the same token get the very same maps. Heads are free to look at
# different tokens, and even after a short training they often do: below, the strongest key
# of each head, for each of the four pixels.

# %%
segformer_run = quick_config(model="segformer_b0", run_name="segformer_s0", **TINY)
train(segformer_run)
segformer = load_model(Path(TINY["checkpoint_dir"]) / "segformer_s0_best.pth")
photo = load_dataset(DATA, "test", 256, limit=1)[0]
pet, background = photo["mask"][0] > 0.5, photo["mask"][0] < 0.5
inner = -torch.nn.functional.max_pool2d(-pet[None].float(), 3, stride=1, padding=1)[0]
edge = pet & (inner < 0.5)  # pet pixels with a background neighbour
points = {"deep in the pet": deepest_pixel(pet), "on the pet's edge": tuple(
              torch.nonzero(edge)[0].tolist()),
          "deep in the background": deepest_pixel(background), "the top-left corner": (0, 0)}
maps = {name: segformer.attention_map(photo["image"][None], *point)[0]
        for name, point in points.items()}  # each (8 heads, 8, 8)
for name, attention in maps.items():
    strongest = attention.flatten(1).argmax(dim=1).tolist()  # the key each head weighs most
    print(f"{name:<24} strongest key of each head: {strongest} "
          f"({len(set(strongest))} different tokens)")
fig = show_attention(photo["image"], {n: (points[n], maps[n]) for n in maps},
                     title="Four query pixels: where stage 4 looks (mean of the heads)")
plt.close(fig)

# %%
for attention in maps.values():
    assert attention.shape == (8, 8, 8)  # 8 heads over the 8 x 8 tokens of a 256 px photo
    assert torch.allclose(attention.sum(dim=(1, 2)), torch.ones(8), atol=1e-4)
same_token = segformer.attention_map(photo["image"][None], 40, 70)  # token (1, 2) ...
assert torch.equal(same_token, segformer.attention_map(photo["image"][None], 63, 95))  # too
assert len(fig.axes) == 4 * 2 + 4  # two panels and a colour bar per pixel
print("All checks passed.")

# %% [markdown]
# ## Exercise 2 — the shapes of a 320 × 480 photo
#
# Every stage divides the size: stage i works at H/4, H/8, H/16, H/32, so stage 4 gives
# (1, 256, 10, 15). Stage 1's tokens are 80 × 120, and its keys come from that map shrunk 8
# times: 10 × 15. Nothing depends on the size but these maps (no position embedding), so
# the output is (1, 1, 320, 480). The smallest size: stage 1's key convolution has an 8 × 8
# kernel of stride 8, so the H/4 map must be at least 8 tokens across, H ≥ 32. A 28 px
# image gives a 7 × 7 map, smaller than the kernel, and PyTorch refuses it.

# %%
model = build_model("segformer_b0")
shapes = dict(layer_shapes(model, torch.rand(1, 3, 320, 480),
                           ["encoder.stage1", "encoder.stage1.blocks.0.attn.sr",
                            "encoder.stage4", "decoder.linear_pred"]))
print(shapes)
try:
    layer_shapes(model, torch.rand(1, 3, 28, 28), ["encoder.stage1"])
    too_small = None
except RuntimeError as error:
    too_small = str(error).splitlines()[0]
print("28 px:", too_small)

# %%
assert shapes["encoder.stage1"] == (1, 32, 80, 120)
assert shapes["encoder.stage1.blocks.0.attn.sr"] == (1, 32, 10, 15)
assert shapes["encoder.stage4"] == (1, 256, 10, 15)
assert shapes["decoder.linear_pred"] == (1, 1, 80, 120)  # H/4; enlarged to 320 x 480 after
assert too_small is not None, "a 28 px image must be refused"
print("All checks passed.")

# %% [markdown]
# ## Exercise 3 — a breed head
#
# The breed has 37 classes, so the head is a linear layer with 37 outputs. Its accuracy
# means little on its own: compare it with always answering the breed most validation
# photos show. On the real photos beside the course, three breeds make up most of the set,
# so that share is high; a head trained this briefly rarely beats it.

# %%
breed_run = quick_config(aux_task="breed", run_name="unet_breed_s0", **TINY)
history = train(breed_run)
breeds = read_labels(DATA, "breed")
valid = [breeds[name] for name in load_dataset(DATA, "valid", 64).names]
commonest = max(valid.count(label) for label in set(valid)) / len(valid)
head = read_checkpoint(Path(TINY["checkpoint_dir"]) / "unet_breed_s0_best.pth")["aux_head"]
print(f"validation accuracy of the breed head, epoch by epoch: {history['valid_accuracy']}; "
      f"always the commonest breed: {commonest:.3f}")

# %%
assert head["fc.weight"].shape[0] == 37, "one output per breed"
assert len(history["valid_accuracy"]) == TINY["epochs"]
assert all(0 <= accuracy <= 1 for accuracy in history["valid_accuracy"])
assert 1 / 37 <= commonest <= 1
print("All checks passed.")

# %% [markdown]
# ## Exercise 4 — stricter or looser pseudo-labels
#
# The thresholds trade quantity for quality. Stricter ones (0.05, 0.95) keep only the pixels
# the first model is surest of, so fewer pixels teach the second model, but fewer of them
# are wrong; looser ones (0.3, 0.7) keep more, mistakes included. Every pixel kept at the
# strict thresholds is kept at the looser ones. The pixels left out are those the model
# hesitates on: mostly near the pet's outline and on fur that looks like the background.

# %%
# Trained on a tenth of the labels, a little longer than the tiny runs above: a model
# trained for a few steps is sure of no pixel at all.
first = quick_config(run_name="unet_tenth_s0", **{**TINY, "epochs": 8, "epoch_samples": 128})
train_photos = load_dataset(DATA, "train", first.image_size)
tenth = pseudo_labels.labelled_indices(len(train_photos.names), 0.1, seed=0)
train(first, train_set=pseudo_labels.LabelledPhotos(train_photos, tenth))
unet = load_model(Path(TINY["checkpoint_dir"]) / "unet_tenth_s0_best.pth")
photos = load_dataset(DATA, "train", first.image_size, limit=24)
images = pseudo_labels.read_photos(photos, list(range(len(photos.names))))
kept = {}
for low, high in ((0.05, 0.95), (0.1, 0.9), (0.3, 0.7)):
    labels = pseudo_labels.predict_pseudo_labels(unet, images, photos.names, low, high)
    kept[(low, high)] = labels
    print(f"low {low}, high {high}: {labels.kept():.1%} of the pixels kept")

# %%
strict, loose = kept[(0.05, 0.95)], kept[(0.3, 0.7)]
assert strict.kept() <= kept[(0.1, 0.9)].kept() <= loose.kept() and loose.kept() > 0
assert not (~strict.ignore & loose.ignore).any(), "kept when strict, kept when loose"
assert torch.equal(strict.masks & ~strict.ignore, loose.masks & ~strict.ignore)  # same answer
print("All checks passed.")
