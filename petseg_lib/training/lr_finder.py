"""The learning-rate range test: which rate to train with, read off one short run.

A fresh model trains for a few dozen batches while the rate grows geometrically, from far
too small (the loss barely moves) to far too large (the loss stops falling, or shoots up).
Plotted against the rate, the smoothed loss stays flat, falls, then levels off or climbs; the
suggested rate is where it falls fastest, on the way down to its lowest value.

    python -m petseg_lib.train --find_lr --quick

The model is thrown away afterwards: only the curve and the suggestion are kept.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.oxford_pet import find_dataset
from ..models import build_model
from ..speed import memory_format, pick_device, speedups
from ..threads import step_threads
from .config import TrainConfig, model_settings
from .loaders import make_loaders
from .losses import build_loss
from .multitask import with_aux_head
from .step import forward_loss, make_optimizer, optimizer_step

SMOOTHING = 0.9  # weight of the running average in the smoothed loss
STOP_FACTOR = 4.0  # stop once the smoothed loss is this many times its lowest value


def find_learning_rate(config: TrainConfig, start: float = 1e-6, end: float = 1.0,
                       steps: int = 100) -> dict:
    """Train CONFIG's model for up to STEPS batches, the rate growing from START to END.

    Returns {"rates", "losses" (smoothed), "suggested"}; the run stops early when the loss
    stops being a number or climbs to STOP_FACTOR times its lowest value.
    """
    if not 0 < start < end or steps < 2:
        raise ValueError(f"the range test needs 0 < start < end and 2 or more steps, not "
                         f"start={start}, end={end}, steps={steps}")
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    fast = speedups(config, device)
    train_loader, _ = make_loaders(config, find_dataset(config.data_path), fast)
    model = build_model(config.model, **model_settings(config))
    model = model.to(device, memory_format=memory_format(fast["channels_last"]))
    model = with_aux_head(model, config.aux_task).to(device).train()  # as train() builds it
    optimizer, scaler = make_optimizer(model, start, config.weight_decay, device, fast["amp"])
    criterion = build_loss(config.loss)
    rates, losses, average = [], [], 0.0
    for step, batch in zip(range(steps), endless(train_loader), strict=False):
        rate = start * (end / start) ** (step / (steps - 1))  # geometric growth
        for group in optimizer.param_groups:
            group["lr"] = rate
        with step_threads(model, batch["image"], device):  # as train's steps (threads.py)
            _, _, loss, _ = forward_loss(model, batch, criterion, device, fast["amp"],
                                      fast["channels_last"], config.classes, config.aux_weight)
            if not torch.isfinite(loss):
                break
            optimizer_step(loss, optimizer, scaler)
        average = SMOOTHING * average + (1 - SMOOTHING) * loss.item()
        rates.append(rate)
        losses.append(average / (1 - SMOOTHING ** (step + 1)))  # without the start's bias
        if losses[-1] > STOP_FACTOR * min(losses):
            break
    if not rates:
        raise FloatingPointError(f"the loss was not a number at the first rate, {start:g}")
    return {"rates": rates, "losses": losses, "suggested": suggest_rate(rates, losses)}


def suggest_rate(rates: list[float], losses: list[float]) -> float:
    """The middle of the smoothed loss's steepest fall (a tenth of the steps), before its lowest.

    The first tenth of the steps is left out: there the running average has seen few losses.
    """
    span, lowest = max(1, len(losses) // 10), int(np.argmin(losses))
    starts = range(len(losses) // 10, lowest - span + 1)
    if not starts:  # the loss was lowest almost at once: nothing to fall along
        return rates[lowest]
    log_rates = np.log(rates)
    steepest = min(starts, key=lambda i: (losses[i + span] - losses[i])
                   / (log_rates[i + span] - log_rates[i]))
    return rates[steepest + span // 2]


def endless(loader: DataLoader) -> Iterator[dict]:
    """LOADER's batches, epoch after epoch, for as long as they are asked for."""
    while True:
        yield from loader
