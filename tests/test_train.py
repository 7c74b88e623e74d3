"""Training, checkpoints and inference, on tiny configurations of the sample dataset."""

import dataclasses
import json
import math
import sys

import pytest
import torch
from torch import nn

from petseg_lib import train as train_module
from petseg_lib.data.oxford_pet import collate, load_dataset
from petseg_lib.inference import main as inference_main
from petseg_lib.models import build_model
from petseg_lib.train import train, train_one_epoch
from petseg_lib.training import losses
from petseg_lib.training.checkpoint import CheckpointError, resume_problem
from petseg_lib.training.config import TrainConfig, parse_args
from petseg_lib.training.course import course_config
from petseg_lib.training.history import diverged_epoch
from petseg_lib.training.loaders import make_loaders
from petseg_lib.training.schedules import make_scheduler

from .conftest import tiny_config


def test_training_writes_checkpoints_history_and_plot(sample_root, tmp_path):
    config = tiny_config(sample_root, tmp_path, run_name="t")
    history = train(config)
    assert set(history) == {"train_loss", "valid_loss", "train_dice", "valid_dice"}
    assert all(len(v) == 2 for v in history.values())
    for name in ("ckpt/t_best.pth", "ckpt/t_last.pth", "out/t_metrics.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "out/t_history.json").read_text()) == history
    best = torch.load(tmp_path / "ckpt/t_best.pth", weights_only=False)
    assert best["model_name"] == "unet" and best["image_size"] == 32
    assert best["model_kwargs"]["base_channels"] == 4
    assert best["metrics"]["dice"] == max(history["valid_dice"])
    assert best["config"]["learning_rate"] == 1e-3
    assert not list((tmp_path / "ckpt").glob(".*tmp*"))  # no temporary files left


def test_loss_decreases_on_a_small_batch(sample_root):
    torch.manual_seed(0)
    batch = collate([load_dataset(sample_root, "train", 32)[i] for i in range(4)])
    model = build_model("unet", base_channels=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = [batch] * 15
    first, _ = train_one_epoch(model, loader[:1], nn.BCEWithLogitsLoss(), optimizer, "cpu",
                               progress=False)
    last, _ = train_one_epoch(model, loader, nn.BCEWithLogitsLoss(), optimizer, "cpu",
                              progress=False)
    after, _ = train_one_epoch(model, loader[:1], nn.BCEWithLogitsLoss(), optimizer, "cpu",
                               progress=False)
    assert after < 0.7 * first, (first, last, after)


def test_same_seed_gives_the_same_history_bit_for_bit(sample_root, tmp_path):
    a = train(tiny_config(sample_root, tmp_path / "a", augment=True))
    b = train(tiny_config(sample_root, tmp_path / "b", augment=True))
    assert a == b
    c = train(tiny_config(sample_root, tmp_path / "c", augment=True, seed=1))
    assert c != a


@pytest.mark.parametrize("loading", [
    dict(augment=True),  # augmentations drawn in this process
    dict(num_workers=2, persistent_workers=True),  # workers kept alive, as with CUDA
])
def test_resume_continues_to_the_same_history(sample_root, tmp_path, loading):
    settings = dict(epochs=3, lr_schedule="cosine", **loading)
    whole = train(tiny_config(sample_root, tmp_path / "whole", **settings))

    class Interrupted(Exception):
        pass

    def stop_after_first_epoch(epoch, history):
        raise Interrupted

    with pytest.raises(Interrupted):  # as if the run had been stopped after epoch 1
        train(tiny_config(sample_root, tmp_path / "split", **settings), stop_after_first_epoch)
    resumed = train(tiny_config(sample_root, tmp_path / "split", resume=True, **settings))
    assert resumed == whole


def test_a_fresh_run_keeps_the_earlier_runs_best_model(sample_root, tmp_path, capsys):
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="r"))
    first = (tmp_path / "ckpt" / "r_best.pth").read_bytes()
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="r", seed=1))
    assert (tmp_path / "ckpt" / "r_best.previous.pth").read_bytes() == first
    assert (tmp_path / "ckpt" / "r_best.pth").read_bytes() != first
    out = capsys.readouterr().out
    assert "r_best.pth from an earlier run is kept as r_best.previous.pth" in out


def test_resume_from_a_checkpoint_that_does_not_fit_says_so(sample_root, tmp_path):
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="r"))
    wider = tiny_config(sample_root, tmp_path, epochs=2, run_name="r", resume=True,
                        model_kwargs={"base_channels": 8})
    with pytest.raises(RuntimeError, match="Cannot resume from .*r_last.pth"):
        train(wider)
    assert (tmp_path / "ckpt" / "r_best.pth").is_file()  # nothing was overwritten


def test_resume_refuses_a_run_trained_on_other_data(tmp_path):
    config = TrainConfig(data_path=str(tmp_path / "real"))
    saved = vars(TrainConfig(data_path=str(tmp_path / "sample")))
    assert "it was trained on" in resume_problem(saved, config)
    same = {**saved, "data_path": str(tmp_path / "sample" / ".." / "real")}  # another spelling
    assert resume_problem(same, config) is None


def test_a_notebook_run_saved_with_other_settings_starts_afresh(sample_root, tmp_path, capsys):
    settings = dict(data_path=str(sample_root), model_kwargs={"base_channels": 4},
                    image_size=32, epochs=1, batch_size=4, limit=8, progress=False,
                    checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "out"),
                    run_name="nb", resume=True)
    train(course_config("unet", **settings))
    assert course_config("unet", **settings).resume  # the same run: it goes on
    changed = course_config("unet", **{**settings, "learning_rate": 5e-4})
    assert not changed.resume
    assert ("nb_last.pth is not resumed (it was trained with learning_rate="
            in capsys.readouterr().out)
    train(changed)
    assert (tmp_path / "ckpt" / "nb_best.previous.pth").is_file()  # the earlier model is kept


def test_non_finite_loss_stops_with_epoch_and_batch_and_keeps_the_best(
        sample_root, tmp_path, monkeypatch):
    config = tiny_config(sample_root, tmp_path, epochs=1, run_name="nan")
    train(config)
    best = tmp_path / "ckpt/nan_best.pth"
    before = best.read_bytes()

    class NanLoss(nn.BCEWithLogitsLoss):
        def forward(self, logits, target):
            return super().forward(logits, target) * float("nan")

    monkeypatch.setitem(losses.LOSSES, "bce", NanLoss)
    with pytest.raises(FloatingPointError, match="epoch 2, batch 1"):
        train(tiny_config(sample_root, tmp_path, epochs=3, run_name="nan", resume=True))
    assert best.read_bytes() == before


def test_train_cli_help_lists_defaults(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--data_path", "--epochs", "--batch_size", "--learning_rate", "--model",
                 "--augment", "--resume", "--quick"):
        assert flag in text
    text = " ".join(text.split())
    assert "--epochs EPOCHS passes over the training set (default: 20)" in text
    assert "Adam learning rate (default: 0.0001)" in text


def test_every_switch_of_train_config_has_an_on_and_an_off_flag(capsys):
    switches = [f.name for f in dataclasses.fields(TrainConfig) if f.type == "bool | None"]
    assert {"cache", "amp", "pin_memory", "cudnn_benchmark"} <= set(switches)
    for name in switches:
        assert getattr(parse_args([f"--{name}"]), name) is True
        assert getattr(parse_args([f"--no-{name}"]), name) is False
        assert getattr(parse_args([]), name) is None  # None: speed.speedups decides
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    # Decided at run time, so no fixed default is shown for them:
    assert "<model>_aug) --checkpoint_dir" in text and "(default: True)" not in text


def test_quick_flag_shrinks_unless_told_otherwise():
    quick = parse_args(["--quick"])
    assert quick.image_size < 256 and quick.batch_size == 16 and quick.lr_schedule == "cosine"
    assert quick.model_kwargs == {"base_channels": 8}  # a narrow UNet
    assert parse_args(["--quick", "--epochs", "5"]).epochs == 5
    full = parse_args(["--model", "resnet34_unet", "--augment"])
    assert (full.epochs, full.batch_size, full.learning_rate) == (20, 8, 1e-4)
    assert full.run_name == "resnet34_unet_aug"


def test_progress_bars_only_in_a_terminal(monkeypatch):
    assert parse_args(["--progress"]).progress is True
    assert parse_args(["--no-progress"]).progress is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert parse_args([]).progress is True and parse_args(["--quick"]).progress is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert parse_args([]).progress is False and parse_args(["--quick"]).progress is False


def test_train_and_inference_command_lines(sample_root, tmp_path, capsys):
    train_module.main(["--quick", "--data_path", str(sample_root), "--epochs", "1",
                       "--limit", "8", "--image_size", "32", "--base_channels", "4",
                       "--checkpoint_dir", str(tmp_path / "c"), "--output_dir",
                       str(tmp_path / "o")])
    scores = inference_main(["--model", str(tmp_path / "c/unet_best.pth"), "--data_path",
                             str(sample_root), "--num_figures", "3", "--output_dir",
                             str(tmp_path / "inf")])
    captured = capsys.readouterr()
    out = captured.out
    assert "pooled" in out and 0.0 <= scores["dice"] <= 1.0
    assert "epoch 1: train loss" in out and "\r" not in captured.err  # no bars in a log
    assert len(list((tmp_path / "inf").glob("*.png"))) == 3




def test_explicit_values_win_over_quick_even_when_equal_to_the_defaults():
    config = parse_args(["--quick", "--epochs", "20", "--image_size", "256",
                         "--learning_rate", "1e-4", "--lr_schedule", "constant"])
    assert (config.epochs, config.image_size, config.learning_rate) == (20, 256, 1e-4)
    assert config.lr_schedule == "constant" and config.batch_size == 16  # the rest: quick
    assert parse_args(["--quick"]).run_name == "unet"


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_the_learning_rate_of_each_epoch(schedule):
    lr0, epochs = 1e-3, 4
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr0)
    scheduler = make_scheduler(optimizer, TrainConfig(epochs=epochs, lr_schedule=schedule))
    rates = []
    for _ in range(epochs + 1):  # the rate of each epoch, then the one after the last
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    if schedule == "cosine":
        expected = [lr0 * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs + 1)]
    else:
        expected = [lr0] * (epochs + 1)
    assert rates == pytest.approx(expected, rel=1e-9, abs=1e-15)
    if schedule == "cosine":
        assert rates[-1] == pytest.approx(0, abs=1e-15)  # the end of half a cosine


@pytest.mark.parametrize("epochs, full", [(6, 4), (20, 13), (1, 1)])
def test_the_step_schedule_divides_the_rate_by_10_for_the_last_third(epochs, full):
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = make_scheduler(optimizer, TrainConfig(epochs=epochs, lr_schedule="step"))
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1e-3] * full + [1e-4] * (epochs - full), rel=1e-9)
    assert parse_args(["--lr_schedule", "step"]).lr_schedule == "step"


def test_resume_with_another_schedule_stops_with_one_clear_message(sample_root, tmp_path):
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="s"))
    last = tmp_path / "ckpt" / "s_last.pth"
    before = last.read_bytes()
    with pytest.raises(CheckpointError, match="lr_schedule='constant', not 'cosine'"):
        train(tiny_config(sample_root, tmp_path, epochs=2, run_name="s", resume=True,
                          lr_schedule="cosine"))
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="c", lr_schedule="cosine"))
    with pytest.raises(CheckpointError, match="cosine schedule ends at epoch 1, not 3"):
        train(tiny_config(sample_root, tmp_path, epochs=3, run_name="c", resume=True,
                          lr_schedule="cosine"))
    assert last.read_bytes() == before  # nothing was overwritten
    longer = train(tiny_config(sample_root, tmp_path, epochs=3, run_name="s", resume=True))
    assert len(longer["valid_dice"]) == 3  # a constant rate may simply go on for longer


def test_checkpoints_load_without_pickled_code(sample_root, tmp_path):
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="w", augment=True))
    for name in ("w_best.pth", "w_last.pth"):
        state = torch.load(tmp_path / "ckpt" / name, weights_only=True)  # no error
        assert state["format"] == "petseg-checkpoint"


def test_resume_without_a_last_checkpoint_says_it_starts_from_scratch(sample_root, tmp_path,
                                                                     capsys):
    history = train(tiny_config(sample_root, tmp_path, epochs=1, resume=True, run_name="new"))
    assert len(history["train_loss"]) == 1
    out = capsys.readouterr().out
    assert f"--resume: there is no {tmp_path / 'ckpt' / 'new_last.pth'} yet" in out


def test_a_diverged_run_says_so_and_names_the_epoch(sample_root, tmp_path, capsys,
                                                   monkeypatch):
    bce = nn.BCEWithLogitsLoss()

    def nan_in_validation(logits, masks):  # validation runs without gradients
        return bce(logits, masks) * (1.0 if torch.is_grad_enabled() else float("nan"))

    monkeypatch.setattr(train_module, "build_loss", lambda name: nan_in_validation)
    train(tiny_config(sample_root, tmp_path, epochs=2))
    assert ("The validation loss stopped being a number at epoch 1: the run diverged. Train "
            "again with a lower --learning_rate (this run: 0.001).") in capsys.readouterr().out
    assert diverged_epoch({"valid_loss": [0.6, float("inf")]}) == 2
    assert diverged_epoch({"valid_loss": [0.6, 0.5]}) is None


@pytest.mark.parametrize("limit, sizes", [(9, [8]), (10, [8, 2]), (16, [8, 8])])
def test_a_lone_last_training_image_is_left_out_of_the_epoch(sample_root, limit, sizes):
    config = TrainConfig(data_path=str(sample_root), image_size=32, batch_size=8, limit=limit)
    train_loader, valid_loader = make_loaders(config, sample_root)
    assert [len(batch["image"]) for batch in train_loader] == sizes  # never a batch of one
    seen = {name for _ in range(4) for batch in train_loader for name in batch["name"]}
    assert len(seen) == limit  # shuffled anew each epoch: no image is always left out


def test_one_training_image_trains_a_model_that_can_and_is_refused_by_one_that_cannot(
        sample_root, tmp_path):
    history = train(tiny_config(sample_root, tmp_path, limit=1, epochs=2))  # overfit one image
    assert all(len(v) == 2 and all(map(math.isfinite, v)) for v in history.values())
    config = tiny_config(sample_root, tmp_path, limit=1, model="deeplabv3_resnet50",
                         model_kwargs={})
    with pytest.raises(ValueError, match="One training image cannot train deeplabv3_resnet50 "
                                         r"\(its ASPP head pools each image to 1 x 1"):
        make_loaders(config, sample_root)
