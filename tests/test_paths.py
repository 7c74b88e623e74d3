"""Where things live: the repository root, or the current folder outside a checkout."""

from pathlib import Path

from petseg_lib import paths
from petseg_lib.paths import (
    default_checkpoint_dir,
    default_data_path,
    default_sample_root,
    project_root,
)


def test_default_root(tmp_path, monkeypatch):
    checkout = Path(__file__).resolve().parents[1]
    assert project_root() == checkout
    assert default_sample_root() == checkout / "data" / "oxford-iiit-pet-sample"
    monkeypatch.setattr(paths, "project_root", lambda: None)  # an installed package
    monkeypatch.chdir(tmp_path)
    assert default_sample_root() == tmp_path / "data" / "oxford-iiit-pet-sample"
    assert default_data_path() == tmp_path / "data" / "oxford-iiit-pet"
    assert default_checkpoint_dir() == tmp_path / "checkpoints"
