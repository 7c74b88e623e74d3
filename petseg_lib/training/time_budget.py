"""A time budget for a training run (--time_budget): as many epochs as fit in it.

The laptop recipe promises ten minutes of training on 2 CPU cores, but laptops' CPUs differ
by two or three times, and one CPU slows down or speeds up as its neighbours come and go.
With a budget, the run times its epochs from the second on (the first one also warms up the
kernels and fills the caches). From the end of epoch PACED_EPOCHS + 1 on, after each epoch,
it works out how many epochs fit in the budget at the mean pace so far, never more than it
was asked for, and trains that many: fewer when the pace is slow, more again (up to the
epochs asked, and only when GROW_BY more fit) when it picks up, so a few slow epochs early
on do not cost the whole run. The learning-rate schedule is drawn again to end at the new
last epoch, so the rate still comes down to its end. A printed line says so each time. A
resumed run starts from the epochs it was saved with (checkpoint.epochs_match).
"""

from __future__ import annotations

import math
import time

import torch

from . import distributed
from .config import TrainConfig
from .schedules import schedule_from

PACED_EPOCHS = 3  # epochs timed before the first cut: one slow epoch does not decide alone
GROW_BY = 2  # a cut run grows again when at least this many more epochs fit: no flapping by one


def epochs_that_fit(budget: float, elapsed: float, epoch_seconds: float, done: int,
                    asked: int) -> int:
    """How many epochs fit in BUDGET seconds: DONE took ELAPSED, each next one EPOCH_SECONDS."""
    more = math.floor((budget - elapsed) / max(epoch_seconds, 1e-9))
    return max(done, min(asked, done + more))


class TimeBudget:
    """The stopwatch of one run's training; `fit` sets its epochs to what fits (None: never)."""

    def __init__(self, seconds: float | None, asked: int, clock=time.perf_counter):
        self.seconds, self.asked, self.clock = seconds, asked, clock  # ASKED: the most epochs
        self.laps = [clock()]  # the start, then the end of each epoch

    def fit(self, config: TrainConfig, optimizer: torch.optim.Optimizer, scheduler, done: int):
        """After epoch DONE: CONFIG.epochs set to what fits, and the schedule to go on with."""
        self.laps.append(self.clock())
        paced = len(self.laps) - 2  # epochs timed, after the first one, which warms up
        if self.seconds is None or paced < PACED_EPOCHS:
            return scheduler
        elapsed = self.laps[-1] - self.laps[0]
        pace = (self.laps[-1] - self.laps[1]) / paced  # seconds an epoch, once warm
        elapsed, pace = distributed.mean_over_processes((elapsed, pace))  # torchrun: agree
        epochs = epochs_that_fit(self.seconds, elapsed, pace, done, self.asked)
        if 0 <= epochs - config.epochs < GROW_BY:
            return scheduler  # as many as planned fit, or too few more to grow
        print(f"Time budget {self.seconds:g} s: after epoch {done}, at {pace:.1f} s an epoch, "
              f"this run trains {epochs} epochs instead of {config.epochs}, its learning rate "
              "coming down over them (--time_budget 0 trains every epoch).")
        config.epochs = epochs
        return schedule_from(optimizer, config, done)  # the same kind, ending at EPOCHS
