"""The learning-rate range test (lr_finder.py, train --find_lr) and the one-cycle schedule."""

import math

import pytest
import torch

from petseg_lib.train import main
from petseg_lib.training.checkpoint import resume_problem
from petseg_lib.training.config import TrainConfig, parse_command
from petseg_lib.training.lr_finder import find_learning_rate, suggest_rate
from petseg_lib.training.schedules import learning_rates, make_scheduler, one_cycle

from .conftest import tiny_config


def test_suggested_rate_is_where_the_loss_falls_fastest_before_its_lowest():
    rates = [10.0 ** (e / 4) for e in range(-24, 1)]  # 1e-6 to 1, four per decade
    # Noise at the start (left out), flat, a gentle fall, a steep one around 1e-2, a valley,
    # then a climb: the suggestion lies in the steep fall, not at the start or the valley.
    losses = [2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.98, 0.96, 0.94, 0.92, 0.9,
              0.88, 0.86, 0.7, 0.5, 0.3, 0.28, 0.27, 0.26, 0.4, 0.8, 1.5]
    assert rates[15] <= suggest_rate(rates, losses) <= rates[18]
    rising = [0.5 + 0.01 * i for i in range(len(rates))]  # never falls: the smallest rate
    assert suggest_rate(rates, rising) == rates[0]


def test_range_test_grows_the_rate_geometrically_and_keeps_the_smoothed_loss(sample_root,
                                                                             tmp_path):
    config = tiny_config(sample_root, tmp_path)
    result = find_learning_rate(config, start=1e-5, end=1e-1, steps=9)
    rates = result["rates"]
    assert rates[0] == pytest.approx(1e-5)
    assert all(b / a == pytest.approx(10 ** 0.5) for a, b in zip(rates, rates[1:], strict=False))
    assert len(result["losses"]) == len(rates) and all(map(math.isfinite, result["losses"]))
    assert result["suggested"] == pytest.approx(suggest_rate(rates, result["losses"]))
    assert result["suggested"] in rates


def test_range_test_stops_when_the_loss_explodes(sample_root, tmp_path):
    config = tiny_config(sample_root, tmp_path, loss="bce")
    result = find_learning_rate(config, start=1e-3, end=1e6, steps=40)
    assert len(result["rates"]) < 40  # a rate of a million sends the loss far up, or to NaN
    assert result["suggested"] < 1e5


def test_range_test_trains_the_class_head_of_a_multitask_run(sample_root, tmp_path):
    def first_losses(**settings) -> list[float]:
        config = tiny_config(sample_root, tmp_path, **settings)
        return find_learning_rate(config, start=1e-5, end=1e-4, steps=3)["losses"]

    plain = first_losses()
    assert first_losses(aux_task="species", aux_weight=0.0) == pytest.approx(plain, rel=1e-5)
    with_head = first_losses(aux_task="species", aux_weight=1.0)  # + cross-entropy of 2 classes
    assert with_head[0] - plain[0] == pytest.approx(math.log(2), abs=0.3)


def test_range_test_refuses_an_empty_range(sample_root, tmp_path):
    with pytest.raises(ValueError, match="0 < start < end"):
        find_learning_rate(tiny_config(sample_root, tmp_path), start=1.0, end=1e-3)


def test_find_lr_command_prints_a_rate_and_saves_the_figure(sample_root, tmp_path, capsys):
    main(["--find_lr", "--quick", "--data_path", str(sample_root), "--limit", "8",
          "--batch_size", "4", "--output_dir", str(tmp_path / "out"),
          "--checkpoint_dir", str(tmp_path / "ckpt"), "--run_name", "probe"])
    printed = capsys.readouterr().out
    assert "Suggested --learning_rate" in printed
    assert (tmp_path / "out" / "probe_lr_finder.png").stat().st_size > 0
    assert not (tmp_path / "ckpt").exists() or not any((tmp_path / "ckpt").iterdir())


def test_find_lr_is_a_flag_of_the_train_command():
    config, find_lr = parse_command(["--find_lr", "--quick"])
    assert find_lr and config.epochs > 0
    assert parse_command(["--quick"])[1] is False


def test_one_cycle_warms_up_then_anneals_to_zero():
    factors = [one_cycle(epoch, 10) for epoch in range(11)]
    assert factors[0] == pytest.approx(0.04)
    assert factors[:4] == sorted(factors[:4])  # rising over the first 30 % (3 epochs)
    assert factors[3] == pytest.approx(1.0)
    assert factors[3:] == sorted(factors[3:], reverse=True)
    assert factors[10] == pytest.approx(0.0, abs=1e-12)


def test_one_cycle_schedule_drives_the_optimizer():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make_scheduler(optimizer, TrainConfig(epochs=10, lr_schedule="one_cycle"))
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.1 * one_cycle(e, 10) for e in range(10)])


def test_learning_rates_lists_each_epochs_rate():
    config = TrainConfig(epochs=10, learning_rate=0.1, lr_schedule="one_cycle")
    assert learning_rates(config) == pytest.approx([0.1 * one_cycle(e, 10) for e in range(10)])
    assert learning_rates(TrainConfig(epochs=3)) == pytest.approx([1e-4] * 3)


def test_one_cycle_run_cannot_resume_with_other_epochs():
    config = TrainConfig(epochs=6, lr_schedule="one_cycle")
    saved = {"epochs": 4, **{k: getattr(config, k) for k in ("model", "lr_schedule")}}
    problem = resume_problem({**vars(config), **saved}, config)
    assert problem == "its one_cycle schedule ends at epoch 4, not 6"


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="one_cycle"):
        TrainConfig(lr_schedule="triangle")
