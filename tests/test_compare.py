"""The four-configuration comparison, on tiny runs of the sample dataset."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from petseg_lib import compare
from petseg_lib.cli import UserError
from petseg_lib.data.oxford_pet import collate, load_dataset, original_size_dataset
from petseg_lib.evaluation.evaluate import evaluate, evaluate_at_original_size
from petseg_lib.inference import load_model
from petseg_lib.models import build_model
from petseg_lib.speed import channels_last_helps
from petseg_lib.train import train
from petseg_lib.training.config import TrainConfig
from petseg_lib.utils import plot_scores

from .conftest import tiny_comparison
from .test_inference import write_checkpoint, write_mask_folder


def test_comparison_trains_scores_and_reports_then_reuses(sample_root, tmp_path, monkeypatch):
    shared = tiny_comparison(sample_root, tmp_path)
    rows = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                  **shared)
    assert [r["label"] for r in rows] == ["UNet", "ResNet34-UNet", "UNet + augmentation",
                                          "ResNet34-UNet + augmentation"]
    assert [r["run_name"] for r in rows] == ["unet_quick", "resnet34_unet_quick",
                                             "unet_aug_quick", "resnet34_unet_aug_quick"]
    for r in rows:
        for key in ("dice", "dice_pooled", "iou", "iou_pooled", "dice_no_boundary"):
            assert 0.0 <= r[key] <= 1.0
        assert r["iou"] <= r["dice"] + 1e-9  # IoU never exceeds Dice
        assert len(r["history"]["valid_dice"]) == 1
    table = (tmp_path / "cmp" / "results.md").read_text().splitlines()
    assert table[0].startswith("Protocol: test split, boundary counted as pet, at 32 px")
    assert len(table) == 8 and table[4].startswith("| UNet |")
    assert f"{rows[0]['dice']:.4f}" in table[4]
    assert all(r["train_seconds"] > 0 for r in rows)  # all trained just now, and timed
    assert table[4].endswith(f" | 1 epoch at 32 px, cosine, weight decay 0.5 | "
                             f"{rows[0]['train_seconds']:.0f} s |")  # the plain quick UNet
    assert " | 1 epoch at 32 px, one_cycle, weight decay 0.05 | " in table[5]  # ResNet34-UNet
    assert " | 1 epoch at 32 px, cosine, weight decay 0.05 | " in table[6]  # with augmentation
    for name in ("test_scores.png", "validation_curves.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 1000

    def no_training(config):
        raise AssertionError(f"{config.run_name} was trained again")

    monkeypatch.setattr(compare, "train", no_training)
    again = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                   **shared)
    assert [r["dice"] for r in again] == pytest.approx([r["dice"] for r in rows])
    assert all(r["train_seconds"] is None for r in again)  # reused: no training time
    assert compare.markdown_table(again).splitlines()[4].endswith(" — |")


def test_a_checkpoint_that_no_longer_fits_is_trained_again(sample_root, tmp_path, monkeypatch,
                                                           capsys):
    shared = tiny_comparison(sample_root, tmp_path)
    compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4, **shared)
    # As if saved by an older version whose UNet was wider: the weights no longer fit.
    path = tmp_path / "ckpt" / "unet_quick_best.pth"
    state = torch.load(path, weights_only=False)
    state["model_kwargs"]["base_channels"] *= 2
    torch.save(state, path)

    trained, real_train = [], compare.train

    def recording_train(config):
        trained.append(config.run_name)
        return real_train(config)

    monkeypatch.setattr(compare, "train", recording_train)
    rows = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                  **shared)
    assert trained == ["unet_quick"]
    assert "unet_quick_best.pth cannot be reused" in capsys.readouterr().out
    assert all(0.0 <= r["dice"] <= 1.0 for r in rows)


def test_test_scores_use_the_fast_paths_and_give_the_same_scores(pets, tmp_path):
    assert channels_last_helps(torch.device("cpu")) and channels_last_helps(torch.device("cuda"))
    assert not channels_last_helps(torch.device("mps"))
    train(TrainConfig(data_path=str(pets), model_kwargs={"base_channels": 4}, image_size=128,
                      epochs=1, limit=8, progress=False, run_name="fast",
                      checkpoint_dir=str(tmp_path / "c"), output_dir=str(tmp_path / "o")))
    best = tmp_path / "c" / "fast_best.pth"
    cpu = torch.device("cpu")
    fast = compare.test_scores(best, pets, cpu, limit=6)  # 128 px: NHWC, memory kept
    loader = DataLoader(load_dataset(pets, "test", 128, limit=6), batch_size=8,
                        collate_fn=collate)
    plain = evaluate(load_model(best), loader, cpu)  # NCHW, glibc's defaults
    assert fast["dice"] == pytest.approx(plain["dice"], abs=1e-4)
    assert fast["iou_pooled"] == pytest.approx(plain["iou_pooled"], abs=1e-4)


def test_a_run_is_reused_only_when_trained_with_the_same_settings(sample_root, tmp_path,
                                                                  monkeypatch, capsys):
    shared = tiny_comparison(sample_root, tmp_path)
    compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4, **shared)
    trained, real_train = [], compare.train
    monkeypatch.setattr(compare, "train", lambda c: trained.append(c.run_name) or real_train(c))
    rows = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                  **{**shared, "epochs": 2})
    assert len(trained) == 4 and all(r["status"] == "trained" for r in rows)
    assert "made with epochs=1 (now 2)" in capsys.readouterr().out
    assert all(len(r["history"]["valid_dice"]) == 2 for r in rows)


def test_scores_use_the_checkpoints_image_size_and_state_the_protocol(sample_root, tmp_path):
    train(TrainConfig(data_path=str(sample_root), model_kwargs={"base_channels": 4},
                      image_size=64, epochs=1, limit=8, progress=False, run_name="s64",
                      checkpoint_dir=str(tmp_path / "c"), output_dir=str(tmp_path / "o")))
    scores = compare.test_scores(tmp_path / "c" / "s64_best.pth", sample_root,
                                 torch.device("cpu"), limit=4, boundary="background")
    assert scores["image_size"] == 64
    assert scores["protocol"] == "test split, boundary counted as background, at 64 px"
    original = compare.test_scores(tmp_path / "c" / "s64_best.pth", sample_root,
                                   "cpu", limit=4, original_size=True)  # a name will do
    assert original["protocol"].endswith("at each image's original size")
    originals = original_size_dataset(load_dataset(sample_root, "test", 64, limit=4), 4)
    expected = evaluate_at_original_size(load_model(tmp_path / "c" / "s64_best.pth"), originals,
                                         64)
    assert original["dice"] == pytest.approx(expected["dice"], abs=1e-4)
    table = compare.markdown_table([{**scores, "label": "UNet"}])
    assert table.startswith("Protocol: test split, boundary counted as background, at 64 px")


def test_an_altered_checkpoint_is_trained_again_not_a_traceback(tmp_path, capsys):
    best = write_checkpoint(tmp_path / "unet_best.pth",
                            model_kwargs={"base_channels": 4, "dropout": 0.1})
    history = tmp_path / "unet_history.json"
    history.write_text("{}")
    assert not compare.reusable(best, history, TrainConfig())
    assert "unet_best.pth cannot be reused" in capsys.readouterr().out


def test_scores_at_original_size_on_your_own_mask_folder(tmp_path):
    folder = write_mask_folder(tmp_path / "mine")  # 4 photos of 50 x 38 pixels
    model = build_model("unet", base_channels=4)
    torch.nn.init.constant_(model.outc.bias, 10.0)  # every pixel is pet
    checkpoint = write_checkpoint(tmp_path / "m.pth", state_dict=model.state_dict())
    scores = compare.test_scores(checkpoint, folder, "cpu", original_size=True)
    assert scores["protocol"].endswith("at each image's original size")
    pets = np.array([(np.asarray(Image.open(path)) > 0).sum()
                     for path in (folder / "masks").glob("*.png")])
    pixels = 50 * 38  # all predicted pet, each image at its own size
    assert scores["dice"] == pytest.approx(np.mean(2 * pets / (pixels + pets)))
    assert scores["iou_pooled"] == pytest.approx(pets.sum() / (4 * pixels))
    for key in ("dice", "dice_pooled", "iou", "iou_pooled"):
        assert scores[f"{key}_no_boundary"] == scores[key]  # a mask folder has no boundary band


def test_a_grid_of_models_losses_and_seeds_reports_mean_and_spread(sample_root, tmp_path):
    shared = tiny_comparison(sample_root, tmp_path)
    rows = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                  models=("unet",), losses=("bce", "dice"), seeds=2, **shared)
    assert [r["label"] for r in rows] == ["UNet", "UNet + augmentation", "UNet + Dice loss",
                                          "UNet + augmentation + Dice loss"]
    assert [run["run_name"] for run in rows[2]["runs"]] == ["unet_dice_quick",
                                                            "unet_dice_s1_quick"]
    for row in rows:
        values = [run["dice"] for run in row["runs"]]
        assert row["dice"] == pytest.approx(sum(values) / 2)
        assert row["dice_std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "Mean ± standard deviation over 2 seeds" in table and " ± " in table.splitlines()[4]
    fig = plot_scores(rows)
    assert "± 1 std over 2 seeds" in fig.axes[0].get_title()
    assert any(len(c.lines) > 1 for c in fig.axes[0].containers if hasattr(c, "lines"))


@pytest.mark.parametrize("option", ["--test_limit", "--seeds"])
def test_compare_refuses_a_count_of_zero_before_training(option, tmp_path):
    with pytest.raises(UserError, match=f"{option} must be at least 1, not 0"):
        compare.main(["--quick", option, "0", "--checkpoint_dir", str(tmp_path / "c"),
                      "--output_dir", str(tmp_path / "cmp")])
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # nothing ran


def test_compare_command_line_grid(sample_root, tmp_path, capsys, monkeypatch):
    rows = compare.main(["--quick", "--data_path", str(sample_root), "--epochs", "1",
                         "--image_size", "32", "--limit", "8", "--test_limit", "4",
                         "--models", "unet", "unet", "--loss", "focal", "focal",  # each once
                         "--checkpoint_dir",
                         str(tmp_path / "c"), "--output_dir", str(tmp_path / "cmp")])
    assert [r["label"] for r in rows] == ["UNet + Focal loss",
                                          "UNet + augmentation + Focal loss"]
    table = compare.markdown_table(rows)
    assert capsys.readouterr().out.count(table) == 1  # the command line prints it, once
    assert (tmp_path / "cmp" / "results.md").read_text() == table

    def disk_full(path, text):  # half of the new report reaches the disk, then the write fails
        with open(path, "w") as f:
            f.write(text[: len(text) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(compare.Path, "write_text", disk_full)
    with pytest.raises(OSError, match="No space"):
        compare.write_report(rows[:1], tmp_path / "cmp")
    assert (tmp_path / "cmp" / "results.md").read_text() == table  # the earlier report, whole
    assert not list((tmp_path / "cmp").glob(".*partial"))


def test_a_run_trained_on_another_dataset_is_not_reused(tmp_path, capsys):
    config = TrainConfig(data_path=str(tmp_path / "real"), model_kwargs={"base_channels": 4})
    saved = dataclasses.asdict(config)
    best = write_checkpoint(tmp_path / "unet_best.pth", config=saved)
    history = tmp_path / "unet_history.json"
    history.write_text("{}")
    assert compare.reusable(best, history, config)
    (tmp_path / "real").mkdir()  # the same folder, spelled another way: still the same run
    respelled = TrainConfig(data_path=str(tmp_path / "real" / ".." / "real"),
                            model_kwargs={"base_channels": 4})
    assert compare.reusable(best, history, respelled)
    other = TrainConfig(data_path=str(tmp_path / "sample"), model_kwargs={"base_channels": 4})
    assert not compare.reusable(best, history, other)
    assert "retrained, its checkpoint was made with data_path=" in capsys.readouterr().out


def test_a_run_its_time_budget_cut_short_is_reused_under_the_same_budget(tmp_path, capsys):
    config = TrainConfig(model_kwargs={"base_channels": 4}, epochs=60, time_budget=600)
    best = write_checkpoint(tmp_path / "unet_best.pth",
                            config=dict(dataclasses.asdict(config), epochs=44))
    history = tmp_path / "unet_history.json"
    history.write_text("{}")
    assert compare.reusable(best, history, config)
    for other in (dict(time_budget=None), dict(time_budget=300), dict(epochs=40)):
        changed = TrainConfig(**{**dataclasses.asdict(config), **other})
        assert not compare.reusable(best, history, changed)
        assert "epochs=44 (now" in capsys.readouterr().out
