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
# # Solutions to notebook 06 — try the exercises yourself first
#
# Worked solutions to the three exercises of `06_evaluation_and_comparison`, each ending
# with `assert`s that check the answer.
#
# The exercises need the four trained configurations. So that this file runs on its own,
# in seconds, and never touches the checkpoints of the notebook, it first trains the four
# configurations again in a temporary folder, *very* briefly in QUICK mode (2 epochs on
# 24 small images each). Their scores are therefore low and close together; the reasoning
# is the same for the notebook's models.

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

import matplotlib

if "ipykernel" not in sys.modules:  # run as a script: figures are drawn, never shown
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch.utils.data import DataLoader

from petseg_lib.data.oxford_pet import collate, find_dataset, load_dataset
from petseg_lib.evaluation.evaluate import (
    SegmentationMeter,
    confusion_counts,
    dice_from_counts,
    dice_score,
    evaluate,
    mask_dice,
    worst_predictions,
)
from petseg_lib.speed import pick_device
from petseg_lib.train import train
from petseg_lib.training.checkpoint import model_from_checkpoint, read_checkpoint
from petseg_lib.training.config import TrainConfig, quick_config, quick_mode
from petseg_lib.use.widgets import draw_prediction

QUICK = quick_mode()
DATA = find_dataset()  # the real dataset when downloaded, else the offline sample
WORKSPACE = tempfile.TemporaryDirectory(prefix="petseg-solutions-06-")  # removed at exit
TMP = Path(WORKSPACE.name)  # checkpoints and outputs of this file's runs
# The four configurations of the report and their names, as in petseg_lib.compare.
CONFIGURATIONS = (("unet", False), ("resnet34_unet", False), ("unet", True),
                  ("resnet34_unet", True))
LABELS = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}
WIDTHS = {"unet": {"base_channels": 16}, "resnet34_unet": {}}  # QUICK runs below
SHARED = dict(data_path=str(DATA), checkpoint_dir=str(TMP), output_dir=str(TMP), progress=False)
TEST_LIMIT = 50 if QUICK else 200  # test images scored (the sample's test split has 50)
DEVICE = pick_device()

# %%
results = []
for name, augment in CONFIGURATIONS:
    if QUICK:  # seconds: 2 epochs on 24 images of 48 x 48, in batches of 4, with a UNet of
        # base width 16 and a ResNet34-UNet of full width, whatever QUICK's own widths are
        config = quick_config(model=name, augment=augment, image_size=48, epochs=2, limit=24,
                              epoch_samples=None,  # each epoch: the 24 images, once
                              batch_size=4, model_kwargs=WIDTHS[name], **SHARED)
    else:  # minutes on a GPU: the report's settings, 3 epochs on 400 images
        config = TrainConfig(model=name, augment=augment, epochs=3, limit=400, **SHARED)
    train(config)
    path = TMP / f"{config.run_name}_best.pth"
    state = read_checkpoint(path)
    model = model_from_checkpoint(state, path)
    results.append({"label": LABELS[name] + (" + augmentation" if augment else ""),
                    "model": model.to(DEVICE).eval(), "image_size": config.image_size})
test_set = load_dataset(DATA, "test", image_size=results[0]["image_size"], limit=TEST_LIMIT)
loader = DataLoader(test_set, batch_size=8, shuffle=False, collate_fn=collate)
for r in results:
    r.update(evaluate(r["model"], loader, DEVICE))
    print(f"{r['label']:<30} test Dice {r['dice']:.4f} (pooled {r['dice_pooled']:.4f})")
best = max(results, key=lambda r: r["dice"])
worst = min(results, key=lambda r: r["dice"])
print(f"best: {best['label']}, worst: {worst['label']}")

# %% [markdown]
# ## Exercise 1 — a Dice that rises when the threshold falls, and one that falls
#
# In the explorer you move the threshold by hand; here we compare every test image's Dice
# at the default threshold 0.5 and at 0.3, with the best model's probabilities.

# %%
batch = collate([test_set[i] for i in range(len(test_set))])  # the whole (limited) split
with torch.no_grad():  # 8 images at a time, as in the notebook
    logits_of = {r["label"]: torch.cat([r["model"](chunk.to(DEVICE)).cpu()
                                        for chunk in batch["image"].split(8)])
                 for r in (best, worst)}  # (N, 1, H, W) each
probabilities = torch.sigmoid(logits_of[best["label"]])
HIGH, LOW = 0.5, 0.3
dice_high = dice_from_counts(*confusion_counts(probabilities > HIGH, batch["mask"]))
dice_low = dice_from_counts(*confusion_counts(probabilities > LOW, batch["mask"]))
change = dice_low - dice_high
rises, falls = int(change.argmax()), int(change.argmin())
for what, i in (("rises most", rises), ("falls most", falls)):
    p, pet = probabilities[i, 0], batch["mask"][i, 0] > 0.5
    between = (p > LOW) & (p <= HIGH)  # the pixels that the lower threshold adds
    print(f"{what}: {batch['name'][i]}, Dice {dice_high[i]:.3f} at {HIGH} -> "
          f"{dice_low[i]:.3f} at {LOW}\n    pet pixels: {(p[pet] > HIGH).float().mean():.0%} "
          f"above {HIGH}, {between[pet].float().mean():.0%} between {LOW} and {HIGH}; "
          f"background pixels between {LOW} and {HIGH}: {between[~pet].float().mean():.0%}")
print(f"{(change > 0).sum()} images rise, {(change < 0).sum()} fall, "
      f"{(change == 0).sum()} stay the same")

# %%
for what, i in (("rises", rises), ("falls", falls)):
    fig = plt.figure(figsize=(14, 3.8))
    draw_prediction(fig, batch["image"][i], probabilities[i], batch["mask"][i], threshold=LOW,
                    name=batch["name"][i])
    fig.suptitle(f"{best['label']}: the Dice {what} when the threshold goes from {HIGH} "
                 f"to {LOW} ({dice_high[i]:.3f} -> {dice_low[i]:.3f})")
    plt.show()

# %% [markdown]
# **Answer.** Lowering the threshold adds the pixels whose probability lies between the two
# thresholds to the mask. Whether that helps depends on *where those lukewarm pixels are*:
#
# - the image whose Dice **rises** has a washed-out pet: much of it lies just below 0.5 in
#   the probability map (the model sees the pet, but not confidently), so little of it is
#   found at 0.5 and a lower threshold recovers it, even if some background comes along;
# - the image whose Dice **falls** has its pet already above 0.5, and a lukewarm haze on
#   the background around it: a lower threshold only adds false alarms.
#
# There is an exact rule behind it. Say the mask had Dice `D = 2I / (P + T)`, and lowering
# the threshold adds `a` pixels of which `k` are pet. The new Dice is
# `2(I + k) / (P + a + T)`, which is higher exactly when `k / a > D / 2`: the added pixels
# must be pet more often than half the old Dice. The check below verifies the rule on every
# test image.

# %%
added = (probabilities > LOW) & (probabilities <= HIGH)  # the pixels the lower threshold adds
a = added.flatten(1).sum(1).double()
k = (added & (batch["mask"] > 0.5)).flatten(1).sum(1).double()
some = a > 0
rule = k[some] / a[some] > dice_high[some] / 2
assert torch.equal(rule, dice_low[some] > dice_high[some]), "the k / a > D / 2 rule"
assert torch.equal(dice_low[~some], dice_high[~some]), "nothing added, nothing changes"
assert abs(dice_high[rises].item() - mask_dice(probabilities[rises] > HIGH,
                                               batch["mask"][rises])) < 1e-6
if change[rises] > 0 and change[falls] < 0:  # both kinds exist among these test images
    assert k[rises] / a[rises] > k[falls] / a[falls], "rises: the added pixels are pet"

# %% [markdown]
# ## Exercise 2 — the worked example with the large pet missed and the small one found
#
# Which Dice changes more, per-image or pooled? Why?

# %%
truth = torch.zeros(2, 1, 10, 10)
truth[0, 0, :, :8] = 1  # a large pet: 80 pixels
truth[1, 0, 4:6, 4:6] = 1  # a small pet: 4 pixels
guess = truth.clone()
guess[0] = 0  # this time the large pet is missed, the small one found
logits = (guess - 0.5) * 20  # confident logits for that guess
per_image = dice_score(logits, truth)
pooled = dice_score(logits, truth, pooled=True)
print(f"per-image Dice: (0.0 + 1.0) / 2 = {per_image.item():.3f}   (before: 0.500)")
print(f"pooled Dice:    2 * 4 / (4 + 84) = {pooled.item():.3f}   (before: {160 / 164:.3f})")

# %% [markdown]
# **Answer.** The per-image Dice does not change at all: it is still `(0 + 1) / 2 = 0.5`,
# because every image counts the same and one image is still perfect and one still missed.
# The pooled Dice collapses from `2·80 / (80 + 84) = 0.976` to `2·4 / (4 + 84) = 0.091`:
# it adds up pixels, and the large pet holds 80 of the 84 pet pixels, so whether *it* is
# found decides almost everything. Pooled scores measure how many pixels are right and are
# dominated by large pets; per-image scores measure how many images are right and give a
# small pet the same weight as a large one.

# %%
assert abs(per_image.item() - (0.0 + 1.0) / 2) < 1e-6, "per-image: unchanged"
assert abs(pooled.item() - 2 * 4 / (4 + 84)) < 1e-6, "pooled: by hand"
meter = SegmentationMeter()
meter.update(logits, truth)
assert abs(meter.compute()["dice_pooled"] - 8 / 88) < 1e-9, "the meter agrees"
assert abs(meter.compute()["dice"] - 0.5) < 1e-9
assert abs(pooled.item() - 160 / 164) > abs(per_image.item() - 0.5), "pooled changes more"

# %% [markdown]
# ## Exercise 3 — the worst images of the worst configuration
#
# Are they the same as the best model's? What does that say about their difficulty?

# %%
N_WORST = 6
worst_of = {r["label"]: worst_predictions(r["model"], test_set, DEVICE, n=N_WORST)
            for r in (best, worst)}
names = {label: [item["name"] for item in items] for label, items in worst_of.items()}
shared = set(names[best["label"]]) & set(names[worst["label"]])
for label, items in worst_of.items():
    print(f"{label}: " + ", ".join(f"{item['name']} ({item['dice']:.2f})" for item in items))
print(f"in both lists: {sorted(shared)}")
# How much the two models agree on which images are hard: per-image Dice over the test split.
dice_of = {}
for label, logits_all in logits_of.items():
    meter = SegmentationMeter()
    meter.update(logits_all, batch["mask"], names=batch["name"])
    dice_of[label] = torch.tensor(meter.per_image_dice)
pet_share = batch["mask"].flatten(1).mean(1)  # (N,)
chance = N_WORST * N_WORST / len(test_set)  # expected overlap of two random choices of 6
correlation = torch.corrcoef(torch.stack(list(dice_of.values())))[0, 1].item()
shared_share = [pet_share[batch["name"].index(n)].item() for n in sorted(shared)]
print(f"overlap {len(shared)} (two random lists would share {chance:.1f} on average); "
      f"correlation of the two models' per-image Dice: {correlation:.2f}")
both = sum(dice_of.values()) / len(dice_of)  # each image's Dice, averaged over the models
size_link = torch.corrcoef(torch.stack([pet_share, both]))[0, 1].item()
print(f"pet share of the images in both lists: {[round(v, 2) for v in shared_share]}; "
      f"median of the test split {pet_share.median():.2f}; correlation of pet share and the "
      f"models' mean Dice over the split: {size_link:.2f}")

# %% [markdown]
# **Answer.** Largely the same images. Two models of different architecture, trained
# differently, fail on several of the same test images, far more often than two random
# lists of six would overlap, and their per-image Dice go up and down together over the
# whole split. So the difficulty belongs to the *images* more than to either model. What the
# hard images tend to have in common is a **small pet**: over the whole split, the models'
# Dice rises with the pet's share of the picture (the correlation printed above), since a
# small pet leaves few pixels to get right, and every wrong pixel at its outline costs a lot
# of Dice. Six images are too few to show it on their own: a list may also hold a large pet
# that one model missed. On real photos other causes join in: a pet whose colour or texture
# blends into the background, an unusual pose, several animals, a pet cut off by the frame.
#
# Two remarks. The worst configuration of these tiny runs is close to the "everything is
# pet" guess (its Dice is near the chance level of notebook 01), whose worst images are
# exactly the smallest pets; the notebook's longer runs are more interesting to compare,
# and the same code works on them. And images that only one model gets wrong are the
# instructive exceptions: they show what that model has not learnt. Images that every
# model gets wrong call for more (or augmented) training photos of their kind, rather than
# for another architecture.

# %%
assert [w["dice"] for w in worst_of[best["label"]]] == sorted(
    w["dice"] for w in worst_of[best["label"]]), "worst first"
for label, items in worst_of.items():
    for item in items:  # the same Dice as the meter's, image by image
        i = batch["name"].index(item["name"])
        assert abs(item["dice"] - dice_of[label][i].item()) < 1e-6
hard_for_best = [batch["name"].index(name) for name in names[best["label"]]]
assert dice_of[worst["label"]][hard_for_best].mean() < worst["dice"], "hard for both models"
assert len(shared) > chance, "more images in common than chance would give"
assert correlation > 0, "the two models find the same images hard"
assert size_link > 0, "small pets are hard"
print("All checks passed.")
