"""Learning-rate schedules: the rate each epoch trains with (--lr_schedule).

`constant` is the design report's; `cosine` anneals the rate to 0 over the run; `one_cycle`
warms up over the first 30 % of the epochs, then anneals; `step` trains the last third at a
tenth of the rate. `make_scheduler` builds the one a run asks for, `schedule_from` draws it
again part way (a time budget's cut), and `learning_rates` lists its rate per epoch, for a
figure.
"""

from __future__ import annotations

import math

import torch

from .config import TrainConfig

STEP_AT = 2 / 3  # lr_schedule "step": the share of the epochs trained at the full rate


def make_scheduler(optimizer: torch.optim.Optimizer,
                   config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate per epoch: constant (the report), half a cosine down to 0, one cycle,
    or a step: the rate times 0.1 from two thirds of the epochs on (STEP_AT)."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":
        milestone = max(1, round(STEP_AT * config.epochs))  # the first epoch at a tenth
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [milestone], gamma=0.1)
    if config.lr_schedule == "one_cycle":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda epoch: one_cycle(epoch, config.epochs))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def schedule_from(optimizer: torch.optim.Optimizer, config: TrainConfig,
                  epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """CONFIG's schedule drawn again from its first rate and stepped to EPOCH (time_budget.py)."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"]  # the chained schedules go on from the current rate
    scheduler = make_scheduler(optimizer, config)
    for _ in range(epoch):
        scheduler.step()
    return scheduler


def one_cycle(epoch: int, epochs: int, warmup: float = 0.3, start: float = 0.04) -> float:
    """The one-cycle factor of the rate at EPOCH: up from START to 1, then half a cosine to 0."""
    rise = max(1, round(warmup * epochs))  # epochs of warm-up
    if epoch < rise:
        return start + (1.0 - start) * epoch / rise
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - rise) / max(1, epochs - rise)))


def learning_rates(config: TrainConfig) -> list[float]:
    """The learning rate each epoch of CONFIG trains with, as make_scheduler sets it."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    scheduler = make_scheduler(optimizer, config)
    rates = []
    for _ in range(config.epochs):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()  # the order PyTorch expects: the optimizer, then the scheduler
        scheduler.step()
    return rates
