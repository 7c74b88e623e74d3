"""Where things live: the repository root, or the current folder outside a checkout."""

import json
from pathlib import Path

import pytest
import torch

from petseg_lib import paths
from petseg_lib.evaluation.figures import save_training_curves
from petseg_lib.paths import (
    default_checkpoint_dir,
    default_data_path,
    default_output_dir,
    default_sample_root,
    project_root,
    written_atomically,
)
from petseg_lib.training.checkpoint import save_checkpoint
from petseg_lib.training.history import write_history


def test_default_root(tmp_path, monkeypatch):
    checkout = Path(__file__).resolve().parents[1]
    assert project_root() == checkout
    assert default_sample_root() == checkout / "data" / "oxford-iiit-pet-sample"
    monkeypatch.setattr(paths, "project_root", lambda: None)  # an installed package
    monkeypatch.delenv("PETSEG_CHECKPOINTS", raising=False)
    monkeypatch.delenv("PETSEG_OUTPUTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert default_sample_root() == tmp_path / "data" / "oxford-iiit-pet-sample"
    assert default_data_path() == tmp_path / "data" / "oxford-iiit-pet"
    assert default_checkpoint_dir() == tmp_path / "checkpoints"
    assert default_output_dir() == tmp_path / "outputs"


def test_the_notebooks_folders_can_be_moved(tmp_path, monkeypatch):
    monkeypatch.setenv("PETSEG_CHECKPOINTS", str(tmp_path / "weights"))
    monkeypatch.setenv("PETSEG_OUTPUTS", str(tmp_path / "figures"))
    assert default_checkpoint_dir() == tmp_path / "weights"
    assert default_output_dir() == tmp_path / "figures"


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "new" / "history.json"
    with written_atomically(target) as partial:
        partial.write_text("old")
    assert target.read_text() == "old"
    with pytest.raises(OSError), written_atomically(target) as partial:
        partial.write_text("half of the ne")
        raise OSError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["history.json"]


def test_history_is_replaced_whole(tmp_path, monkeypatch):
    class Config:
        output_dir, run_name, loss = str(tmp_path), "run", "bce"

    history = {"train_loss": [0.5], "valid_loss": [0.4], "train_dice": [0.6],
               "valid_dice": [0.7]}
    write_history(history, Config)
    save_training_curves(history, Config)
    monkeypatch.setattr(json, "dumps", lambda *a, **k: 1 / 0)  # the new history fails
    with pytest.raises(ZeroDivisionError):
        write_history({**history, "valid_dice": [0.9]}, Config)
    assert json.loads((tmp_path / "run_history.json").read_text()) == history
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_history.json", "run_metrics.png"]


def test_a_checkpoint_that_fails_to_save_keeps_the_previous_one(tmp_path, monkeypatch):
    path = save_checkpoint({"epoch": 1}, tmp_path / "run_best.pth")

    def disk_full(payload, file):
        Path(file).write_bytes(b"the first bytes")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run_best.pth"]
