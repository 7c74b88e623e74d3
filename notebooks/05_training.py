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
# # 05 · Training: one step at a time, then epoch after epoch
#
# Training a network is one small step repeated thousands of times: take a batch, predict,
# measure how wrong the prediction is, find out which way each weight should move, move it a
# little. This notebook takes the first step by hand, one cell per stage, and looks at what
# each stage changes. Then it repeats the step over whole epochs, draws the curves as they
# grow, keeps the best model, and finally runs the course's `train()` function, which does
# all of it in one call.
#
# **After this notebook you will be able to**
#
# - build the training and validation loaders and describe a batch;
# - run a forward pass, compute the `BCEWithLogitsLoss`, backpropagate and take an Adam step,
#   and say what each of these changes;
# - train epoch by epoch, track the loss and Dice on both splits, and save the best model;
# - run a complete training with `train()` and read its curves;
# - estimate how long the report's settings take on your machine.

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
import math
import time
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display
from torch import nn

from petseg_lib.data.oxford_pet import find_dataset
from petseg_lib.evaluation.evaluate import evaluate
from petseg_lib.evaluation.threshold import binarize
from petseg_lib.inference import load_model
from petseg_lib.models import build_model
from petseg_lib.models.summary import count_parameters
from petseg_lib.speed import pick_device, synchronize
from petseg_lib.train import train, train_one_epoch
from petseg_lib.training.checkpoint import checkpoint_payload, save_checkpoint
from petseg_lib.training.config import TrainConfig, quick_mode
from petseg_lib.training.course import course_config
from petseg_lib.training.history import new_history, print_epoch, record_epoch
from petseg_lib.training.loaders import make_loaders
from petseg_lib.training.lr_finder import find_learning_rate
from petseg_lib.training.schedules import learning_rates
from petseg_lib.use.widgets import live_metrics_plot
from petseg_lib.utils import (
    markdown_grid,
    plot_curves,
    plot_lr_finder,
    plot_training_metrics,
    visualize_comparison,
)

QUICK = quick_mode()  # PETSEG_QUICK=1 (set by the tests): small images, few epochs
DATA = find_dataset(download_if_missing=True)  # the real dataset, else the offline sample
# The report's settings, or small ones in QUICK mode (64 px, a narrow UNet, short epochs).
config = course_config("unet", data_path=str(DATA), progress=False)
EPOCHS_PER_RUN = 3 if QUICK else 1  # epochs trained each time the epoch cell of section 8 runs

# %% [markdown]
# ## 1. The settings
#
# `course_config` returns a `TrainConfig`: every setting of a run in one object. Without
# `PETSEG_QUICK` it holds the design report's choices: 256 × 256 images, batches of 8, Adam
# with a learning rate of 1e-4, 20 epochs, and the full-width UNet. The report explains
# them: a batch of 8 fits in a GPU's memory at 256 px and still gives a steady loss curve;
# 1e-4 is a common Adam rate for segmentation, fast enough without making the loss jump
# around. In QUICK mode (the tests) everything shrinks so the notebook runs in a minute on a
# laptop CPU: 64 px images, a narrow UNet, batches of 16, and a larger learning rate with a
# cosine schedule to make up for the few steps. A QUICK epoch is not a pass over the whole
# training split but `epoch_samples` images drawn from all of it at random, and validation
# uses `valid_limit` images spread over its split: the run takes as long on the full
# dataset (3 312 training photos) as on a small one. The table shows the numbers.

# %%
reference = TrainConfig()  # the defaults: the report's settings
names = ["image_size", "batch_size", "learning_rate", "epochs", "epoch_samples",
         "valid_limit", "model_kwargs"]
rows = [[f"`{n}`", getattr(config, n), getattr(reference, n)] for n in names]
display(Markdown(markdown_grid(["setting", "this run", "the report"], rows)))

# %% [markdown]
# ## 2. The data loaders
#
# `make_loaders` builds the two `DataLoader`s of a run. The training loader **shuffles**:
# each epoch visits the images in a new order, so the batches differ from epoch to epoch
# and the model cannot learn anything from the order. The validation loader keeps a fixed
# order: its job is to measure, the same way every time. On a GPU both start 4 worker
# processes (`num_workers`) that read and augment images while the GPU computes; on a CPU the
# notebook's own process reads them, since workers would take the cores that compute.

# %%
train_loader, valid_loader = make_loaders(config, DATA)
print(f"training:   {len(train_loader.dataset):>5} images in {len(train_loader):>4} batches")
print(f"validation: {len(valid_loader.dataset):>5} images in {len(valid_loader):>4} batches")
print(f"worker processes: {train_loader.num_workers}")

# %% [markdown]
# ## 3. One batch
#
# A batch is a dictionary. Images are floats in [0, 1], masks are 1 for pet and 0 for
# background (the trimap's boundary band counts as pet, see notebook 01).

# %%
batch = next(iter(train_loader))
for key in ("image", "mask", "trimap"):
    t = batch[key]
    print(f"{key:<7} {str(tuple(t.shape)):<18} {str(t.dtype):<14} "
          f"values {t.min().item():.2f} to {t.max().item():.2f}")
print("names  ", batch["name"][:4], "...")
pet_share = batch["mask"].mean().item()
print(f"share of pet pixels in this batch: {pet_share:.1%}")

# %% [markdown]
# ## 4. Forward: images in, logits out
#
# We build the model with a fixed seed, so every run starts from the same random weights.
# `model.train()` puts BatchNorm in training mode: it normalises with the statistics of
# the current batch. The output has one **logit** per pixel: any real number, positive for
# "pet", negative for "background"; `torch.sigmoid` would turn it into a probability.

# %%
torch.manual_seed(config.seed)
device = pick_device(config.device)
model = build_model(config.model, **config.model_kwargs).to(device)
print(f"{config.model} with {count_parameters(model):,} parameters on {device}")
images = batch["image"].to(device)  # (N, 3, H, W)
masks = batch["mask"].to(device)  # (N, 1, H, W)
model.train()
logits = model(images)  # (N, 1, H, W)
print("images", tuple(images.shape), "-> logits", tuple(logits.shape))
print(f"logits from {logits.min().item():.2f} to {logits.max().item():.2f}")

# %% [markdown]
# ## 5. The loss: `BCEWithLogitsLoss`
#
# Binary cross-entropy scores each pixel's predicted probability `p = sigmoid(z)` against
# its label `m`: the loss is `-log p` on pet pixels and `-log(1 - p)` on background pixels,
# averaged over all pixels. A confident right answer costs almost nothing, a confident wrong
# one costs a lot. `BCEWithLogitsLoss` takes the logits `z` directly and applies the sigmoid
# inside, in a numerically safe way, which is why the model has no sigmoid at its end.
# Below, the same number computed from the formula:

# %%
criterion = nn.BCEWithLogitsLoss()
loss = criterion(logits, masks)
p = torch.sigmoid(logits)
by_hand = -(masks * torch.log(p) + (1 - masks) * torch.log(1 - p)).mean()
torch.testing.assert_close(loss, by_hand)
best_constant = -(pet_share * math.log(pet_share) + (1 - pet_share) * math.log(1 - pet_share))
print(f"loss on this batch: {loss.item():.4f} (by hand: {by_hand.item():.4f})")
print(f"for comparison: p = 0.5 everywhere gives ln 2 = {math.log(2):.4f}; "
      f"p = {pet_share:.2f} (the pet share) everywhere gives {best_constant:.4f}")

# %% [markdown]
# The untrained model scores about as well as a constant guess. To beat the second number
# it must look at the image.
#
# ## 6. Backward: a gradient for every weight
#
# Before `backward()` no weight has a gradient. `loss.backward()` walks the computation back
# from the loss and fills `.grad` of every parameter with the derivative of the loss with
# respect to it: the direction in which that weight would *increase* the loss.

# %%
first_conv = model.inc.double_conv[0].weight  # the first 3x3 convolution of the UNet
print("gradient before backward:", first_conv.grad)
loss.backward()
print("gradient after backward: ", tuple(first_conv.grad.shape), "same shape as the weight")
grad_norm = torch.linalg.vector_norm(torch.stack([q.grad.norm() for q in model.parameters()]))
print(f"size (L2 norm) of the whole gradient: {grad_norm.item():.4f}")
print(f"first convolution's share: {first_conv.grad.norm().item():.4f}")

# %% [markdown]
# ## 7. The Adam step
#
# The optimizer moves every weight against its gradient. Adam scales each weight's step by a
# running estimate of how large that weight's gradient usually is, so every weight moves by
# about the learning rate, whatever the size of its gradient; on the very first step exactly
# by the learning rate (up to a tiny epsilon). We keep a copy of the first convolution's
# weights to see the change, and then ask the real question: is the loss **on the same
# batch** lower now?

# %%
optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
before = first_conv.detach().clone()
optimizer.step()
change = (first_conv.detach() - before).abs()
print(f"learning rate {config.learning_rate:g}; weight changes: "
      f"mean {change.mean().item():.2e}, max {change.max().item():.2e}")
with torch.no_grad():
    loss_after = criterion(model(images), masks)
print(f"loss on the same batch: {loss.item():.4f} before the step, {loss_after.item():.4f} after")
optimizer.zero_grad(set_to_none=True)  # gradients add up otherwise: clear them for the next step

# %% [markdown]
# That is one training step. The last line matters: PyTorch **adds** new gradients to the
# old ones, so every step starts by clearing them.
#
# **How long will training take?** Below, one more complete step (the four lines of a
# training loop) is timed; an epoch repeats it once per batch. With the report's settings
# on 2 CPU cores one step of 8 images at 256 px takes about 20 seconds, so an epoch over the
# 3 312 training images (414 steps) takes more than two hours. `train()` (section 9) turns
# on the CPU speed-ups: the channels-last memory layout and memory kept between steps get
# the step down to about 12 seconds, and bfloat16 autocast, on a CPU that computes in
# bfloat16 natively, to about 7 (`benchmarks/README.md`): still most of a day for 20 epochs.
# A GPU such as Colab's T4 does the same step in well under a second: a few minutes per
# epoch, about an hour for the whole run. That is why QUICK mode exists, and why the report
# trained on a GPU.

# %%
started = time.perf_counter()
timed_loss = criterion(model(images), masks)  # forward and loss
timed_loss.backward()  # backward
optimizer.step()  # Adam step
optimizer.zero_grad(set_to_none=True)
synchronize(device)  # a GPU works asynchronously: wait for it before reading the clock
step_seconds = time.perf_counter() - started
print(f"one step here: {step_seconds:.3f} s; {len(train_loader)} steps per epoch "
      f"-> about {step_seconds * len(train_loader):.1f} s per epoch, "
      f"{step_seconds * len(train_loader) * config.epochs / 60:.1f} min for {config.epochs} epochs")

# %% [markdown]
# ## 8. Epoch after epoch, with a live plot
#
# `train_one_epoch` repeats the step of sections 4 to 7 over every batch of the training
# loader. After each epoch, `evaluate` measures loss and Dice on the validation set with the
# model in evaluation mode and without gradients. We keep the four numbers per epoch in a
# `history` dictionary, redraw the curves, and save the model whenever the validation Dice
# beats its best value so far: the **best checkpoint**, the one used later for testing.
#
# Run the next cell once to set up the record. Then run the cell after it as often as you
# like: each run trains the *same* model for `EPOCHS_PER_RUN` more epochs and the plot
# grows.

# %%
history = new_history()  # the four curves, as train() keeps them
best_dice = -1.0
best_path = Path(config.checkpoint_dir) / f"stepwise_{config.run_name}_best.pth"

# %%
for _ in range(EPOCHS_PER_RUN):
    epoch = len(history["train_loss"])  # 0, 1, 2, ... across runs of this cell
    train_loss, train_dice = train_one_epoch(model, train_loader, criterion, optimizer, device,
                                             epoch, progress=False)
    valid = evaluate(model, valid_loader, device, criterion)
    record_epoch(history, train_loss, train_dice, valid)  # the same bookkeeping as train()
    live_metrics_plot(epoch, history)  # replaces this cell's output with the new curves
    if valid["dice"] > best_dice:
        best_dice = valid["dice"]
        save_checkpoint(checkpoint_payload(model, config, epoch + 1, valid), best_path)
        print(f"epoch {epoch + 1}: validation Dice {best_dice:.4f}, the best so far: saved")
    else:
        print(f"epoch {epoch + 1}: validation Dice {valid['dice']:.4f}; best {best_dice:.4f}")

# %% [markdown]
# The saved file holds more than the weights: the model's name and constructor arguments,
# the image size, the epoch and its scores. So `load_model` can rebuild the model from the
# file alone, as notebook 06 and the inference command do. Here is what the best model of
# the run predicts for a validation image (the mask areas are painted black):

# %%
best_model = load_model(best_path, device)
sample = valid_loader.dataset[0]
with torch.no_grad():
    prediction = binarize(best_model(sample["image"][None].to(device)))[0]  # sigmoid > 0.5
fig = visualize_comparison(sample["image"], sample["mask"], prediction.cpu())
plt.show()
print(f"{best_path.name} (best of {len(history['train_loss'])} epochs) on the validation "
      f"image {sample['name']}")

# %% [markdown]
# ## 9. The whole run in one call: `train()`
#
# `train(config)` does everything above: seed, loaders, model, Adam, and for each epoch one
# `train_one_epoch`, one `evaluate`, the history and the best checkpoint. It also saves
# `<run_name>_last.pth` after every epoch, with the optimizer's state, so an interrupted run
# can continue (`resume=True`), and it writes the history and its plot to `outputs/`.
# `on_epoch_end` is called after every epoch with the epoch and the history: we pass the
# live plot (`partial` fixes its `every` argument: in QUICK mode it redraws every fourth
# epoch, since drawing takes about as long as one short epoch).
#
# Without `PETSEG_QUICK` this is the report's full run: 20 epochs at 256 px. **Start it on
# a GPU**, or expect it to take more than a day on a laptop CPU. With `resume=True` the run
# continues from `checkpoints/unet_last.pth` if it was interrupted, and returns at once if it
# has already finished; a run saved with other settings or on other data (say, before you
# changed a setting or downloaded the dataset) is not resumed: a line says why, and the run
# starts afresh.
#
# Between QUICK mode and the report's run lies the laptop recipe, `python -m
# petseg_lib.train --recipe laptop --augment`: settings chosen on real photos for 2 CPU
# cores, with a **time budget** of ten minutes (`time_budget=600` in a `TrainConfig`). The
# run times its epochs and, when they are too slow for all of them to fit, trains fewer
# (and more again, up to those asked, if the pace picks up), drawing its learning-rate
# schedule again so that the rate still comes down to its end; a printed line says so. A
# slower CPU gets fewer epochs, and a somewhat lower Dice, instead of a longer wait (README,
# "Results to expect").

# %%
full_config = course_config("unet", data_path=str(DATA), resume=True, progress=False)
every = 4 if QUICK else 1  # QUICK epochs last a second: draw every 4th
full_history = train(full_config, on_epoch_end=partial(live_metrics_plot, every=every))

# %% [markdown]
# ## 10. Reading the curves
#
# `plot_training_metrics` draws the four curves of the finished run; the same picture is
# saved as `outputs/<run_name>_metrics.png`.

# %%
fig = plot_training_metrics(full_history, title=f"{full_config.run_name}: {full_config.epochs} "
                            f"epochs at {full_config.image_size} px")
plt.show()
print(f"best validation Dice {max(full_history['valid_dice']):.4f} "
      f"at epoch {full_history['valid_dice'].index(max(full_history['valid_dice'])) + 1}")

# %% [markdown]
# What to look for:
#
# - **Both losses fall, both Dice curves rise.** The training loss falls fastest early,
#   while the model learns the easy part (pets are usually in the middle and differ in colour
#   from the background), then slowly.
# - **A gap between training and validation** means the model fits its training images
#   better than new ones. A growing gap with a validation loss that turns upwards is
#   overfitting: that is when augmentation (notebook 02) helps.
# - **The best epoch** is not always the last one: that is why training keeps the best
#   checkpoint rather than the final weights.
# - **Jumps in the first epochs.** The validation Dice can drop sharply for an epoch (even
#   to 0) while the training curves improve. In evaluation mode BatchNorm normalises with
#   *running averages* of the batch statistics seen in training, and these lag behind while
#   the weights still change fast; with only a few steps per epoch, as in QUICK mode, the
#   lag shows. It fades as training goes on.
#
# With the report's settings on the real dataset the curves flatten after 10 to 15 epochs,
# with a validation Dice above 0.9. The QUICK run trains a narrow UNet on small images for
# well under a minute; the line under the figure says what it reached on the data in use
# (the first line of the training output names it). A small training set shows the gap
# between the two Dice curves early: the model starts to learn its training photos by heart.

# %% [markdown]
# ## 11. The same run with augmentation
#
# Notebook 02 built the augmentations; here is what they do to training. `augment=True`
# adds a randomly changed copy of every training image to each epoch (crop and zoom, flip,
# greyscale, brightness), so with the report's settings an epoch is twice as long. A QUICK
# epoch still draws `epoch_samples` images, now from the originals and their changed copies
# together, and the run trains a few more epochs than the one above: changed copies are
# harder to learn from. Like the run above, it continues where it stopped if it was
# interrupted. Notebook 06 reuses both runs in its comparison.

# %%
augmented_config = course_config("unet", augment=True, data_path=str(DATA), resume=True,
                                 progress=False)  # one plain line per epoch: print_epoch
augmented_history = train(augmented_config, on_epoch_end=print_epoch)

# %%
runs = {"UNet": full_history, "UNet + augmentation": augmented_history}
fig = plot_curves([{"label": name, "history": curves} for name, curves in runs.items()])
fig.suptitle("The same UNet trained without and with augmentation (x: epochs of each run)")
plt.show()
for name, curves in runs.items():
    gap = curves["train_dice"][-1] - curves["valid_dice"][-1]
    print(f"{name}: best validation Dice {max(curves['valid_dice']):.4f}; last epoch: "
          f"training Dice {curves['train_dice'][-1]:.4f}, {abs(gap):.4f} "
          f"{'above' if gap >= 0 else 'below'} validation")

# %% [markdown]
# With augmentation the training Dice is expected to be *lower*: the changed copies are
# harder than the photos themselves, and the model never sees the same picture twice. What
# counts is the validation Dice, on images it never trained on, and the printed gap between
# training and validation Dice, which augmentation is meant to shrink. These are one run of
# each, so compare the printed numbers but do not conclude from a small difference: two seeds
# of the same run differ too (notebook 07), and a gap must exceed about twice the seeds'
# spread. Whether the augmented model scores higher on the test split is for notebook 06. The
# design report found that augmentation raised its test Dice by about 0.02 for both models
# (its table is in notebook 06), from one run of each.

# %% [markdown]
# ## 12. Choosing the learning rate: the range test and a one-cycle schedule
#
# Of all the settings, the learning rate matters most: too small and the loss barely moves in
# the time you have, too large and it jumps around or explodes (exercise 2). The report took
# 1e-4, a common choice for Adam; QUICK mode's UNet takes 3e-3 because it has few steps. How
# would you choose one for your own data? The **learning-rate range test** asks the data: a
# fresh model trains for a few dozen batches while the rate grows from 1e-6 to 1, and the loss
# is recorded at each rate. Plotted against the rate, the loss first stays flat (the steps are
# too small to change anything), then falls, then stops falling and climbs: the steps have
# become so large that they overshoot. The suggestion is the rate in the middle of the
# steepest fall: steps as large as possible while they still help. The command line does the
# same:
# `python -m petseg_lib.train --find_lr` (with your usual options).

# %%
found = find_learning_rate(config, end=10.0, steps=70 if QUICK else 100)
plot_lr_finder(found)
plt.show()
print(f"{len(found['rates'])} batches; suggested learning rate {found['suggested']:.1e} "
      f"(this notebook's runs used {config.learning_rate:g})")

# %% [markdown]
# The suggestion is a starting point, not an answer: the smoothed loss of a few dozen batches
# is noisy, so a second test with another seed can suggest another rate, and the rate that
# helps most in one step is often too large for a whole run (QUICK mode's rates, 3e-3 for the
# UNet and 1e-3 for the ResNet34-UNet, were chosen by validation Dice over many runs). What the
# test reliably tells you is the order of magnitude: where the loss starts to move, and where
# larger steps stop helping.
#
# **How the rate changes during a run** is the other half. The report keeps it constant.
# QUICK mode anneals it to zero along half a cosine: large steps while far from a good model,
# small ones to settle at the end. The **one-cycle** schedule (`lr_schedule="one_cycle"`)
# first warms up from a twenty-fifth of the rate over the first 30 % of the epochs, which
# spares a fresh model the largest steps while its BatchNorm statistics and Adam's running
# estimates are still unsettled, then anneals like the cosine. QUICK mode's ResNet34-UNet
# without augmentation trains with it: its validation Dice was higher with the warm-up in five
# folds of the real training photos out of five (benchmarks/README.md). The step schedule
# (`lr_schedule="step"`) divides the rate by 10 for the last third. Each is one setting of
# `TrainConfig`; the figure shows the rate each epoch trains with.

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for schedule in ("constant", "cosine", "one_cycle", "step"):
    rates = learning_rates(TrainConfig(epochs=20, learning_rate=3e-3, lr_schedule=schedule))
    ax.plot(range(1, 21), rates, marker="o", markersize=3, label=schedule)
ax.set_xlabel("epoch")
ax.set_ylabel("learning rate")
ax.set_title("Learning-rate schedules over 20 epochs (peak rate 3e-3)")
ax.legend()
plt.show()

# %% [markdown]
# ## Exercises
#
# 1. Run the epoch cell of section 8 three more times. Does the validation Dice keep rising?
#    When is the best checkpoint *not* overwritten, and why is that the right choice?
# 2. Repeat sections 4 to 7 with a learning rate 100 times larger (build a new model and
#    optimizer). Does the loss on the same batch still go down after one step? What does
#    this suggest about the loss "jumping around" that the report warns of?
# 3. Train `course_config("resnet34_unet")` with `train()`. Compare the time per epoch with
#    the UNet's and relate it to the operation counts of notebook 04.
# 4. Train the UNet with `lr_schedule="one_cycle"` and the rate section 12 suggested, with
#    two seeds, and compare with the cosine schedule's two seeds. Is the difference larger
#    than twice the seeds' spread?
#
# Try them first; worked solutions, with checks, are in `solutions/05_training.py` (open it
# as a notebook in JupyterLab: right click → Open With → Notebook).

# %% [markdown]
# ## Self-check
#
# The cell below fails loudly if a step above did not do what it should.

# %%
assert logits.shape == masks.shape == (config.batch_size, 1, config.image_size,
                                       config.image_size)
assert grad_norm > 0 and torch.isfinite(grad_norm)
assert change.max() <= config.learning_rate * 1.01, "Adam's first step moves by the lr at most"
assert change.mean() > config.learning_rate * 0.5, "and almost every weight moves by about it"
assert loss_after < loss, "one step lowered the loss on the same batch"
assert len(history["valid_dice"]) >= EPOCHS_PER_RUN
assert best_path.exists() and best_dice == max(history["valid_dice"])
reloaded = evaluate(best_model, valid_loader, device)
assert abs(reloaded["dice"] - best_dice) < 1e-6, "the checkpoint holds the best model"
assert len(full_history["valid_dice"]) == full_config.epochs
assert len(augmented_history["valid_dice"]) == augmented_config.epochs
assert all(math.isfinite(v) for values in full_history.values() for v in values)
assert found["rates"] == sorted(found["rates"]) and all(map(math.isfinite, found["losses"]))
assert found["rates"][0] < found["suggested"] < found["rates"][-1]
print("All checks passed.")
