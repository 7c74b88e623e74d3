"""A run's time budget (--time_budget; the laptop recipe's ten minutes): the epochs that fit."""

import math

import pytest
import torch

from petseg_lib import compare
from petseg_lib.train import train
from petseg_lib.training.checkpoint import CheckpointError, read_checkpoint
from petseg_lib.training.config import (
    LR_SCHEDULES,
    RECIPE_SECONDS,
    TrainConfig,
    parse_args,
    recipe_config,
)
from petseg_lib.training.schedules import learning_rates, make_scheduler, schedule_from
from petseg_lib.training.time_budget import (
    PACED_EPOCHS,
    TimeBudget,
    epochs_that_fit,
)

from .conftest import tiny_config


def test_epochs_that_fit_count_the_time_left_at_the_pace_of_the_timed_epoch():
    assert epochs_that_fit(600, elapsed=25, epoch_seconds=10, done=2, asked=100) == 59
    assert epochs_that_fit(600, elapsed=25, epoch_seconds=10, done=2, asked=48) == 48
    assert epochs_that_fit(600, elapsed=700, epoch_seconds=350, done=2, asked=48) == 2
    assert epochs_that_fit(600, elapsed=0.5, epoch_seconds=0.0, done=2, asked=9) == 9


class Clock:
    """A stopwatch's clock that moves only when told."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fresh_run(config: TrainConfig):
    """An optimizer with one weight at CONFIG's rate, and CONFIG's schedule."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    return optimizer, make_scheduler(optimizer, config)


def next_epoch(optimizer, scheduler) -> float:
    """One epoch's steps; returns the rate it trained with."""
    rate = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    return rate


def test_the_epochs_follow_the_pace_of_the_warm_epochs_never_beyond_those_asked(capsys):
    config = TrainConfig(epochs=60, lr_schedule="cosine", time_budget=600)
    optimizer, scheduler = fresh_run(config)
    clock = Clock()
    budget = TimeBudget(config.time_budget, config.epochs, clock)
    for done, seconds in enumerate([20, 9, 9, 9], start=1):  # a slow first epoch
        clock.now += seconds
        next_epoch(optimizer, scheduler)
        scheduler = budget.fit(config, optimizer, scheduler, done)
        if done <= PACED_EPOCHS:
            assert config.epochs == 60  # too few epochs timed to cut
    assert config.epochs == 60  # 47 s for 4 epochs, then 9 s an epoch: 61 more would fit
    clock.now += 21  # the machine gets busy: 12 s an epoch since the first
    next_epoch(optimizer, scheduler)
    scheduler = budget.fit(config, optimizer, scheduler, 5)
    assert config.epochs == 5 + math.floor((600 - 68) / 12)  # 49
    assert ("after epoch 5, at 12.0 s an epoch, this run trains 49 epochs instead of 60"
            in capsys.readouterr().out)
    clock.now += 3  # faster again: 10.2 s an epoch since the first, room for 52
    next_epoch(optimizer, scheduler)
    scheduler = budget.fit(config, optimizer, scheduler, 6)
    assert config.epochs == 6 + math.floor((600 - 71) / 10.2)  # 57
    assert "after epoch 6, at 10.2 s an epoch, this run trains 57 epochs instead of 49" in (
        capsys.readouterr().out)
    rate = next_epoch(optimizer, scheduler)  # epoch 7 trains at a 57-epoch run's rate
    assert rate == pytest.approx(learning_rates(TrainConfig(epochs=57, lr_schedule="cosine"))[6])
    clock.now += 10  # room for 58: one more is too few to grow (no flapping by one)
    assert budget.fit(config, optimizer, scheduler, 7) is scheduler and config.epochs == 57
    clock.now += 1  # very fast now: room for more than were asked, which stays the most
    next_epoch(optimizer, scheduler)
    scheduler = budget.fit(config, optimizer, scheduler, 8)
    assert config.epochs == 60
    assert budget.fit(config, optimizer, scheduler, 9) is scheduler  # no change, no new schedule
    assert TimeBudget(None, 60, clock).fit(config, optimizer, scheduler, 6) is scheduler


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_a_cut_redraws_the_schedule_to_end_at_the_new_last_epoch(schedule):
    config = TrainConfig(epochs=10, lr_schedule=schedule, learning_rate=1.0)
    optimizer, scheduler = fresh_run(config)
    for _ in range(2):
        next_epoch(optimizer, scheduler)
    config.epochs = 5
    scheduler = schedule_from(optimizer, config, epoch=2)
    rates = [next_epoch(optimizer, scheduler) for _ in range(3)]
    # The rates of a run asked for 5 epochs from the start, from its third epoch on.
    assert rates == pytest.approx(learning_rates(TrainConfig(epochs=5, lr_schedule=schedule,
                                                             learning_rate=1.0))[2:])


def test_a_run_trains_the_epochs_its_budget_allows_and_resumes_with_them(sample_root, tmp_path,
                                                                         capsys):
    settings = dict(epochs=6, lr_schedule="cosine", run_name="b")
    spent = tiny_config(sample_root, tmp_path, time_budget=1e-6, **settings)
    history = train(spent)
    cut = 1 + PACED_EPOCHS  # the budget was spent before the first cut: it ends the run there
    assert len(history["valid_dice"]) == cut and spent.epochs == cut
    assert f"Time budget 1e-06 s: after epoch {cut}, at " in capsys.readouterr().out
    last = tmp_path / "ckpt" / "b_last.pth"
    assert read_checkpoint(last)["config"]["epochs"] == cut
    again = train(tiny_config(sample_root, tmp_path, time_budget=1e-6, resume=True, **settings))
    assert len(again["valid_dice"]) == cut  # the same budget: the run is already complete
    with pytest.raises(CheckpointError, match=f"cosine schedule ends at epoch {cut}, not 6"):
        train(tiny_config(sample_root, tmp_path, resume=True, **settings))  # no budget now
    ample = train(tiny_config(sample_root, tmp_path / "ample", time_budget=1e9, **settings))
    assert len(ample["valid_dice"]) == 6
    assert "Time budget" not in capsys.readouterr().out


def test_the_laptop_recipe_bounds_its_time_unless_told_otherwise():
    assert recipe_config("laptop").time_budget == RECIPE_SECONDS == 600
    assert parse_args(["--recipe", "laptop", "--time_budget", "300"]).time_budget == 300
    assert parse_args(["--recipe", "laptop", "--time_budget", "0"]).time_budget is None
    assert parse_args([]).time_budget is None  # the report's settings: every epoch
    for wrong in (-1.0, math.nan, math.inf, "600"):
        with pytest.raises(ValueError, match="time_budget must be a number of seconds"):
            TrainConfig(time_budget=wrong)


def test_compare_gives_every_run_the_budget_asked_for(monkeypatch, tmp_path):
    given = {}
    monkeypatch.setattr(compare, "run_comparison", lambda *args, **shared: given.update(shared))
    monkeypatch.setattr(compare, "markdown_table", lambda rows: "")
    folders = ["--output_dir", str(tmp_path / "out"), "--checkpoint_dir", str(tmp_path / "ckpt")]
    for option, budget in ((["--time_budget", "0"], None), (["--time_budget", "300"], 300)):
        given.clear()
        compare.main(["--recipe", "laptop", *option, *folders])
        assert given["time_budget"] == budget
    given.clear()
    compare.main(["--recipe", "laptop", *folders])
    assert "time_budget" not in given  # the recipe's own
