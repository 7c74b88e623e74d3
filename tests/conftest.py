"""Shared fixtures: tiny datasets written on the fly, the sample dataset, the real mini set."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")

MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oxford-iiit-pet-mini"


def write_pair(root: Path, name: str, size=(48, 40), trimap=True, seed=0) -> None:
    """Write one RGB JPEG and (optionally) its trimap: a pet rectangle inside a boundary band."""
    rng = np.random.default_rng(seed)
    w, h = size
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    tm = np.full((h, w), 2, np.uint8)
    tm[h // 4 - 1:3 * h // 4 + 1, w // 4 - 1:3 * w // 4 + 1] = 3
    tm[h // 4:3 * h // 4, w // 4:3 * w // 4] = 1
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "images" / f"{name}.jpg")
    if trimap:
        Image.fromarray(tm).save(root / "annotations" / "trimaps" / f"{name}.png")


def write_dataset(root: Path, n_trainval=30, n_test=6, test_trimaps=True, header=True) -> Path:
    """A tiny dataset in the official layout with N_TRAINVAL + N_TEST images."""
    trainval = [f"Cat_{i}" for i in range(n_trainval)]
    test = [f"dog_{i}" for i in range(n_test)]
    for i, name in enumerate(trainval):
        write_pair(root, name, seed=i)
    for i, name in enumerate(test):
        write_pair(root, name, trimap=test_trimaps, seed=100 + i)
    ann = root / "annotations"
    comment = "#Image CLASS-ID SPECIES BREED ID\n# a comment line\n\n" if header else ""
    (ann / "trainval.txt").write_text(comment + "".join(f"{n} 1 1 1\n" for n in trainval))
    (ann / "test.txt").write_text(comment + "".join(f"{n} 2 2 1\n" for n in test))
    return root


@pytest.fixture
def tiny_root(tmp_path) -> Path:
    return write_dataset(tmp_path / "pets")


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    """A small sample dataset generated once per test session."""
    from petseg_lib.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "pets", n_trainval=40,
                               n_test=10, seed=0)


@pytest.fixture
def mini_root() -> Path:
    """The 26 real Oxford-IIIT Pet pairs shipped beside the project, when present."""
    if not (MINI / "annotations" / "trainval.txt").is_file():
        pytest.skip("../shared/data/oxford-iiit-pet-mini is not present")
    return MINI


@pytest.fixture(autouse=True)
def close_figures():
    """Close every matplotlib figure a test opened."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
