"""Where things live: the course repository, its data folders, checkpoints and outputs.

Notebooks run from notebooks/, command lines from anywhere: every default path is built
from the repository root when the package runs from a checkout, else from the current folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def project_root() -> Path | None:
    """The course repository when this package runs from a checkout, else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() else None


def base_dir() -> Path:
    """The repository root, or the current folder outside a checkout."""
    return project_root() or Path.cwd()


def default_data_path() -> Path:
    """Where the real dataset lives: data/oxford-iiit-pet."""
    return base_dir() / "data" / "oxford-iiit-pet"


def default_sample_root() -> Path:
    """Where the offline sample dataset goes: data/oxford-iiit-pet-sample."""
    return base_dir() / "data" / "oxford-iiit-pet-sample"


def default_checkpoint_dir() -> Path:
    """Where the notebooks keep trained weights: PETSEG_CHECKPOINTS, else checkpoints/."""
    return Path(os.environ.get("PETSEG_CHECKPOINTS") or base_dir() / "checkpoints")


def default_output_dir() -> Path:
    """Where the notebooks write figures and histories: PETSEG_OUTPUTS, else outputs/."""
    return Path(os.environ.get("PETSEG_OUTPUTS") or base_dir() / "outputs")


def default_cache_dir() -> Path:
    """The user's cache folder for resized images: PETSEG_CACHE, else ~/.cache/petseg."""
    if os.environ.get("PETSEG_CACHE"):
        return Path(os.environ["PETSEG_CACHE"])
    home_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(home_cache) / "petseg"


@contextmanager
def written_atomically(path: str | Path) -> Iterator[Path]:
    """A hidden file beside PATH to write to; it becomes PATH only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.replace(partial, path)  # readers see the old file or the new one, never half of one
    finally:
        partial.unlink(missing_ok=True)  # a full disk or Ctrl-C leaves no half-written file
