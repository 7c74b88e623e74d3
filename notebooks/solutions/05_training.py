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
# # Solutions to notebook 05 — try the exercises yourself first
#
# Worked solutions to the four exercises of `05_training`, each ending with `assert`s that
# check the answer. Every checkpoint written here goes to a temporary folder, never to the
# repository's `checkpoints/`, so nothing you trained in the notebooks is overwritten. In
# QUICK mode (`PETSEG_QUICK=1`) the runs are tiny: they show the mechanics in seconds.

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
import tempfile
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from petseg_lib.data.oxford_pet import find_dataset
from petseg_lib.evaluation.evaluate import evaluate
from petseg_lib.models import build_model
from petseg_lib.models.summary import count_parameters
from petseg_lib.speed import pick_device
from petseg_lib.train import make_loaders, train, train_one_epoch
from petseg_lib.training.checkpoint import (
    checkpoint_payload,
    load_weights,
    read_checkpoint,
    save_checkpoint,
)
from petseg_lib.training.config import quick_mode
from petseg_lib.training.course import course_config
from petseg_lib.training.history import new_history, record_epoch
from petseg_lib.training.lr_finder import find_learning_rate

QUICK = quick_mode()
DATA = find_dataset()  # the real dataset when downloaded, else the offline sample
WORKSPACE = tempfile.TemporaryDirectory(prefix="petseg-solutions-05-")  # removed at exit
TMP = Path(WORKSPACE.name)  # checkpoints and outputs of this file's runs
# The notebook's settings on fewer images: 16 (and 4 for validation) in QUICK mode, else 800.
SMALL = dict(limit=16 if QUICK else 800, epoch_samples=None)  # an epoch: those images, once
config = course_config("unet", data_path=str(DATA), progress=False, checkpoint_dir=str(TMP),
                       output_dir=str(TMP), **SMALL)
EPOCHS_PER_RUN = 2 if QUICK else 1  # the notebook's epoch cell, run four times below
device = pick_device(config.device)
train_loader, valid_loader = make_loaders(config, DATA)
criterion = nn.BCEWithLogitsLoss()
print(f"{config.model} {config.model_kwargs}, {config.image_size} px, "
      f"{len(train_loader.dataset)} training images, checkpoints in {TMP}")

# %% [markdown]
# ## Exercise 1 — run the epoch cell of section 8 three more times
#
# Does the validation Dice keep rising? When is the best checkpoint *not* overwritten, and
# why is that the right choice?
#
# We repeat the notebook's two cells: the set-up, then the epoch cell four times (once as in
# the notebook, three more times). We also count how often the best checkpoint is written.

# %%
torch.manual_seed(config.seed)
model = build_model(config.model, **config.model_kwargs).to(device)
optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
history = new_history()
best_dice, saves = -1.0, []
best_path = TMP / f"stepwise_{config.run_name}_best.pth"

for run in range(4):  # the epoch cell, run four times
    for _ in range(EPOCHS_PER_RUN):
        epoch = len(history["train_loss"])
        train_loss, train_dice = train_one_epoch(model, train_loader, criterion, optimizer,
                                                 device, epoch, progress=False)
        valid = evaluate(model, valid_loader, device, criterion)
        record_epoch(history, train_loss, train_dice, valid)
        if valid["dice"] > best_dice:
            best_dice = valid["dice"]
            save_checkpoint(checkpoint_payload(model, config, epoch + 1, valid), best_path)
            saves.append(epoch + 1)
        print(f"run {run + 1}, epoch {epoch + 1}: train loss {train_loss:.4f}, "
              f"validation Dice {valid['dice']:.4f}"
              f"{'  <- best so far: saved' if saves[-1] == epoch + 1 else ''}")

# %% [markdown]
# **Answer.** Not steadily. The validation Dice trends upwards, but it zig-zags: some epochs
# score lower than an earlier one (above, in QUICK mode, every other epoch or so). With few
# steps per epoch and a small validation set, one epoch's noisy steps and BatchNorm's
# lagging running statistics show directly in the score. With more epochs the curve levels
# off (on the real dataset after 10 to 15 epochs), while the training loss keeps falling for
# longer: the model starts to fit its training images better than new ones.
#
# The checkpoint is written only when the validation Dice *beats* the best so far, so it
# is not overwritten after an epoch that scores lower (or the same). That is the right
# choice: the file should hold the best model found, measured on images it did not train on,
# not merely the latest one. A late epoch that overfits, or that landed on a bad step, would
# otherwise replace a better model. (The `_last.pth` of `train()` keeps the latest weights
# for resuming; the two files have different jobs.)

# %%
dice = history["valid_dice"]
best_epoch = dice.index(max(dice)) + 1
records = [i + 1 for i, d in enumerate(dice) if d > max(dice[:i], default=-1.0)]
state = read_checkpoint(best_path)
reloaded = load_weights(build_model(state["model_name"], **state["model_kwargs"]), state,
                        best_path).to(device)
print(f"saved after epochs {saves}; best epoch {best_epoch}; checkpoint from epoch "
      f"{state['epoch']}")
assert len(dice) == 4 * EPOCHS_PER_RUN
assert saves == records, "saved exactly when the validation Dice beat its best so far"
assert state["epoch"] == best_epoch and state["metrics"]["dice"] == max(dice)
assert abs(evaluate(reloaded, valid_loader, device)["dice"] - max(dice)) < 1e-6, "the best"

# %% [markdown]
# ## Exercise 2 — a learning rate 100 times larger
#
# Repeat sections 4 to 7 with a new model and optimizer: does the loss on the same batch
# still go down after one step?

# %%
batch = next(iter(train_loader))
images, masks = batch["image"].to(device), batch["mask"].to(device)
losses = {}
for factor in (1, 100):
    torch.manual_seed(config.seed)  # the same starting weights for both
    net = build_model(config.model, **config.model_kwargs).to(device)
    net.train()
    adam = torch.optim.Adam(net.parameters(), lr=config.learning_rate * factor)
    weight = net.inc.double_conv[0].weight
    before = weight.detach().clone()
    loss = criterion(net(images), masks)  # forward and loss (sections 4 and 5)
    loss.backward()  # section 6
    adam.step()  # section 7
    with torch.no_grad():
        loss_after = criterion(net(images), masks)
    losses[factor] = (loss.item(), loss_after.item(), (weight.detach() - before).abs().max())
    print(f"learning rate {config.learning_rate * factor:g}: loss {loss.item():.4f} -> "
          f"{loss_after.item():.4f}; largest weight change {losses[factor][2]:.2e}")

# %% [markdown]
# **Answer.** With the usual rate the loss on the same batch goes down after one step.
# With a rate 100 times larger it goes down much less, or (as in QUICK mode, at 0.3) it
# goes **up**: the gradient says in which direction the loss falls *near* the current
# weights, and Adam moves every weight by about the learning rate, here far beyond where
# that direction holds, so the step overshoots. Repeated over many steps, the loss then
# jumps up and down from batch to batch instead of falling smoothly, or diverges. That is
# the "jumping around" the report warns of, and why it keeps Adam at 1e-4: small steps that
# stay where the gradient is a good guide.

# %%
(start, small_after, small_move), (start_big, big_after, big_move) = losses[1], losses[100]
assert start == start_big, "both start from the same weights and batch"
assert small_after < start, "the usual rate lowers the loss on the batch"
assert big_after > small_after, "100 x the rate: the loss falls less, or rises"
assert big_move > 50 * small_move, "Adam's first step moves each weight by about the rate"

# %% [markdown]
# ## Exercise 3 — `train()` a ResNet34-UNet, and compare the time per epoch with the UNet's
#
# Relate the times to the operation counts of notebook 04. We train both models with the
# same settings (a few epochs at the UNet's image size, written to the temporary folder;
# QUICK mode otherwise trains the ResNet34-UNet at 128 px), time each epoch with
# `on_epoch_end`, and count the operations of one forward pass at that image size.

# %%
EPOCHS = 2  # the second epoch is timed: the first one also warms up
SIZE = course_config("unet").image_size  # one size for both: like is compared with like
seconds, flops, parameters, last_bytes = {}, {}, {}, {}
for name in ("unet", "resnet34_unet"):
    run_config = course_config(name, data_path=str(DATA), progress=False, epochs=EPOCHS,
                               image_size=SIZE, checkpoint_dir=str(TMP), output_dir=str(TMP),
                               limit=8 if QUICK else 400, epoch_samples=None)
    stamps = []  # the time at the end of each epoch
    run_history = train(run_config, on_epoch_end=lambda epoch, h, stamps=stamps: stamps.append(
        time.perf_counter()))
    seconds[name] = stamps[-1] - stamps[-2]  # the last epoch: training, validation, saving
    last_bytes[name] = (TMP / f"{run_config.run_name}_last.pth").stat().st_size
    net = build_model(run_config.model, **run_config.model_kwargs).eval()
    parameters[name] = count_parameters(net)
    image = torch.rand(1, 3, run_config.image_size, run_config.image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(image)
    flops[name] = counter.get_total_flops()
    assert len(run_history["valid_dice"]) == EPOCHS
    assert all(math.isfinite(v) for values in run_history.values() for v in values)

for name in seconds:
    print(f"{name:<14} {parameters[name]:>11,} parameters, {flops[name] / 1e9:6.2f} GFLOP per "
          f"image, {seconds[name]:.2f} s per epoch")
flop_ratio = flops["resnet34_unet"] / flops["unet"]
time_ratio = seconds["resnet34_unet"] / seconds["unet"]
print(f"ResNet34-UNet / UNet: {flop_ratio:.2f} x the operations, {time_ratio:.2f} x the time")

# %% [markdown]
# **Answer.** It depends on *which* models. Notebook 04 compared the report's UNet
# (`base_channels=64`) with ResNet34-UNet at 256 px: the ResNet34-UNet needed about five
# times fewer operations, so with the report's settings its epochs are the faster ones. In
# QUICK mode both models are narrow: `course_config("unet")` has `base_channels=8` (a
# sixty-fourth of the report's UNet's operations) and `course_config("resnet34_unet")` has
# `base_channels=16` (ResNet34's layers at a quarter of their width, about a sixteenth of the
# operations). The narrow ResNet34-UNet still needs fewer operations per image than the
# narrow UNet, but it has three times the parameters and many more, smaller layers.
#
# The times follow the operation counts in direction at the report's sizes, not exactly in
# ratio, and on tiny runs not always in direction. Some of each epoch costs the same for both
# models (reading and resizing images), which pulls the ratio of times towards 1. Other costs
# grow with the *parameters*: Adam's update after every batch, and the checkpoints that
# `train()` writes after every epoch (with the optimizer's state, about 12 bytes per
# parameter). And a small layer keeps the processor busy for a shorter time than its start-up
# costs, so many small layers are slower than their operation count says. So an operation
# count is a good first guess of which model trains faster on large images, and the clock has
# the last word.

# %%
for name, size in last_bytes.items():  # written every epoch: weights and Adam's 2 moments
    assert 12 <= size / parameters[name] < 13, f"{name}: {size / parameters[name]:.2f} bytes"
if QUICK:  # both narrow: ResNet34-UNet does less work per image, with more parameters
    assert flop_ratio < 1, flop_ratio
    assert parameters["resnet34_unet"] > 2 * parameters["unet"], parameters
else:  # the report's UNet: ResNet34-UNet does about five times less work per image
    assert flop_ratio < 1 / 3, flop_ratio
print("All checks passed.")

# %% [markdown]
# ## Exercise 4 — one-cycle against cosine, at the rate the range test suggests
#
# The range test runs first, on this file's few images; then each schedule trains the UNet
# twice (seeds 0 and 1) at the suggested rate, with every other setting equal. The best
# validation Dice of each run is the score. With two seeds each, a gap between the schedules
# is a finding only when it exceeds about twice the larger standard deviation; on runs this
# small it rarely does, which is the answer the exercise is after: one run of each would have
# "shown" a winner either way.

# %%
found = find_learning_rate(config, end=10.0, steps=30)
best = {}
for schedule in ("cosine", "one_cycle"):
    runs = [train(course_config("unet", data_path=str(DATA), progress=False,
                                checkpoint_dir=str(TMP), output_dir=str(TMP), seed=seed,
                                lr_schedule=schedule, learning_rate=found["suggested"],
                                run_name=f"schedule_{schedule}_s{seed}", **SMALL))
            for seed in (0, 1)]
    best[schedule] = torch.tensor([max(history["valid_dice"]) for history in runs])
gap = (best["one_cycle"].mean() - best["cosine"].mean()).item()
spread = max(values.std().item() for values in best.values())
print(f"suggested rate {found['suggested']:.1e}; best validation Dice "
      + "; ".join(f"{name} {values.tolist()}" for name, values in best.items())
      + f"; gap {gap:+.4f}, " + ("beyond" if abs(gap) > 2 * spread else "within")
      + " twice the seeds' spread")

# %%
assert all(len(values) == 2 and torch.isfinite(values).all() for values in best.values())
assert found["rates"][0] < found["suggested"] < found["rates"][-1]
print("All checks passed.")
