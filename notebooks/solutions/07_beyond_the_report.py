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
# # Solutions to notebook 07 — try the exercises yourself first
#
# Worked solutions to the four exercises of `07_beyond_the_report`, each ending with
# `assert`s that check the answer. The trainings are tiny (QUICK settings, a temporary folder)
# so that the file runs in well under a minute; the conclusions about noise hold all the more.

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

import torch

from petseg_lib.compare import run_comparison
from petseg_lib.data.oxford_pet import find_dataset
from petseg_lib.train import train
from petseg_lib.training.checkpoint import read_checkpoint
from petseg_lib.training.config import quick_config
from petseg_lib.training.losses import build_loss

FOLDER = Path(tempfile.mkdtemp(prefix="petseg-solutions-07-"))
TINY = dict(data_path=str(find_dataset()), checkpoint_dir=str(FOLDER / "checkpoints"),
            output_dir=str(FOLDER / "outputs"), progress=False, image_size=32, epochs=2,
            limit=24, epoch_samples=None, batch_size=4)  # an epoch: the 24 images, once

# %% [markdown]
# ## Exercise 1 — the Focal loss in the grid
#
# Focal loss multiplies each pixel's BCE by `(1 - p_t)^γ`, where `p_t` is the probability
# given to the right answer. A pixel the model already gets right (`p_t` near 1) then counts
# for almost nothing: the loss puts its weight on the hard pixels, the pet's outline and the
# look-alike background. Below, the ratio focal/BCE falls from about `0.25 · 0.5² ≈ 0.06`
# for an undecided pixel to nearly 0 for a confident right one. Whether that helps the Dice
# is an empirical question; in QUICK mode the answer is within the noise of the seeds.

# %%
pet = torch.ones(1, 1, 1, 1)
ratios = []
for probability in (0.5, 0.9, 0.99):
    logit = torch.logit(torch.tensor(probability)).reshape(1, 1, 1, 1)
    ratios.append((build_loss("focal")(logit, pet) / build_loss("bce")(logit, pet)).item())
print("focal / BCE for p = 0.5, 0.9, 0.99:", [f"{r:.4f}" for r in ratios])
grid = run_comparison(quick=True, report_dir=FOLDER / "grid", models=("unet",),
                      losses=("bce", "focal"), seeds=1, augments=(False,), **TINY)
print([(row["label"], round(row["dice"], 4)) for row in grid])

# %%
assert abs(ratios[0] - 0.25 * 0.5 ** 2) < 1e-6  # alpha 0.25 on a pet pixel, (1 - 0.5)^2
assert ratios[0] > ratios[1] > ratios[2] and ratios[2] < 1e-4
assert [row["label"] for row in grid] == ["UNet", "UNet + Focal loss"]

# %% [markdown]
# ## Exercise 2 — a third seed
#
# With two seeds the standard deviation is itself a rough guess. A third seed moves the mean
# by about one standard deviation divided by √3, and usually by less than the two-seed
# spread: if it moves it by much more, the configuration is noisier than two seeds showed.

# %%
two = run_comparison(quick=True, report_dir=FOLDER / "two", models=("unet",), seeds=2,
                     augments=(False,), **TINY)[0]
three = run_comparison(quick=True, report_dir=FOLDER / "three", models=("unet",), seeds=3,
                       augments=(False,), **TINY)[0]
moved = abs(three["dice"] - two["dice"])
print(f"two seeds {two['dice']:.4f} ± {two['dice_std']:.4f}; three seeds "
      f"{three['dice']:.4f} ± {three['dice_std']:.4f}; the mean moved by {moved:.4f}")

# %%
assert [run["run_name"] for run in three["runs"]][:2] == [run["run_name"] for run in two["runs"]]
assert all(run["status"] == "reused" for run in three["runs"][:2])  # only seed 2 trained
third = three["runs"][2]["dice"]
assert abs(three["dice"] - (2 * two["dice"] + third) / 3) < 1e-9  # the mean of the three

# %% [markdown]
# ## Exercise 3 — stronger augmentation over two seeds
#
# `augment_level="strong"` adds rotation, Cutout and CutMix to the report's crop, flip,
# greyscale and brightness. The runs are named `..._aug_strong` so they never overwrite the
# report's `..._aug` runs. On tiny QUICK trainings the stronger set mostly makes the task
# harder (the model sees fewer clean pets), so do not expect it to win here; it pays off with
# more epochs and real photos, where overfitting is the problem it solves.

# %%
report = run_comparison(quick=True, report_dir=FOLDER / "report", models=("unet",),
                        seeds=2, augments=(True,), **TINY)[0]
strong = run_comparison(quick=True, report_dir=FOLDER / "strong", models=("unet",),
                        seeds=2, augments=(True,), **{**TINY, "augment_level": "strong"})[0]
gap, spread = strong["dice"] - report["dice"], max(report["dice_std"], strong["dice_std"])
print(f"report's augmentation {report['dice']:.4f} ± {report['dice_std']:.4f}; strong "
      f"{strong['dice']:.4f} ± {strong['dice_std']:.4f}: a gap of {gap:+.4f}, "
      f"{'within' if abs(gap) < spread else 'beyond'} the spread of the seeds")

# %%
assert len(report["runs"]) == len(strong["runs"]) == 2, "two seeds each"
for plain_run, strong_run in zip(report["runs"], strong["runs"], strict=True):
    assert "_aug_strong" in strong_run["run_name"], "never the report's `_aug` files"
    assert strong_run["run_name"] == plain_run["run_name"].replace("_aug", "_aug_strong")
    assert strong_run["status"] == "trained", "its own runs: the report's are not reused"
    plain_config, strong_config = (
        read_checkpoint(Path(TINY["checkpoint_dir"]) / f"{run['run_name']}_best.pth")["config"]
        for run in (plain_run, strong_run))
    # Seed by seed the same run, but for the augmentation: a like-for-like comparison.
    assert {key for key in plain_config if plain_config[key] != strong_config[key]} == {
        "augment_level", "run_name"}
    assert strong_config["augment_level"] == "strong"
print("All checks passed.")

# %% [markdown]
# ## Exercise 4 — one class or three, over two seeds
#
# The same tiny settings twice over: one run with the binary mask (BCE + soft Dice, QUICK's
# loss) and one with three classes (cross-entropy), for seeds 0 and 1. Both are scored by the
# same validation Dice of the pet mask: for the three-class model, pet + boundary against
# background. Learning the boundary as a class of its own gives the model more to learn from
# each pixel, but also a harder target; which wins on the pet mask is for the seeds to say.

# %%
pet_dice = {}
for classes in (1, 3):
    runs = [train(quick_config(classes=classes, seed=seed, run_name=f"classes{classes}_s{seed}",
                               **TINY))
            for seed in (0, 1)]
    pet_dice[classes] = torch.tensor([max(history["valid_dice"]) for history in runs])
gap = (pet_dice[3].mean() - pet_dice[1].mean()).item()
spread = max(values.std().item() for values in pet_dice.values())
print(f"one class {pet_dice[1].tolist()}, three classes {pet_dice[3].tolist()}: a gap of "
      f"{gap:+.4f}, {'beyond' if abs(gap) > 2 * spread else 'within'} twice the seeds' spread")

# %%
assert read_checkpoint(Path(TINY["checkpoint_dir"]) / "classes3_s0_best.pth")["config"][
    "loss"] == "ce"
assert all(len(values) == 2 and ((values >= 0) & (values <= 1)).all()
           for values in pet_dice.values())
print("All checks passed.")
