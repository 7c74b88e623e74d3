"""Shared fixtures: tiny datasets written on the fly, the sample dataset, the real mini set."""

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from petseg_lib.training.config import TrainConfig

matplotlib.use("Agg")
# With pytest-xdist (make unit) every core runs its own test process: each gets its share of
# the cores, so that no process's PyTorch threads wait for a core another process holds.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // WORKERS))

MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oxford-iiit-pet-mini"
# 568 real pairs in the official layout and split, at their original resolution.
REAL = MINI.with_name("oxford-iiit-pet-real")


def end_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """Terminate PROCESS and wait for it; kill it if it has not ended within TIMEOUT seconds."""
    process.terminate()
    try:
        process.communicate(timeout=timeout)  # also drains its pipes, if it has any
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=timeout)


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
    from petseg_lib.data.sample import make_sample_dataset

    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "pets", n_trainval=40,
                               n_test=10, seed=0)


@pytest.fixture
def mini_root() -> Path:
    """The 26 real Oxford-IIIT Pet pairs shipped beside the project, when present."""
    if not (MINI / "annotations" / "trainval.txt").is_file():
        pytest.skip("../shared/data/oxford-iiit-pet-mini is not present")
    return MINI


@pytest.fixture
def real_root() -> Path:
    """The 568 real Oxford-IIIT Pet pairs beside the project, when present."""
    if not (REAL / "annotations" / "trainval.txt").is_file():
        pytest.skip("../shared/data/oxford-iiit-pet-real is not present")
    return REAL


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Each test gets its own resized-image cache folder (PETSEG_CACHE)."""
    folder = tmp_path / "petseg-cache"
    monkeypatch.setenv("PETSEG_CACHE", str(folder))
    return folder


@pytest.fixture(autouse=True)
def close_figures():
    """Close every matplotlib figure a test opened."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


class RedIsPet(nn.Module):
    """A stand-in model: a pixel is pet when its red channel is above 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] - 0.5) * 20  # (N, 1, H, W) logits


def shifted_samples(shifts: list[int], size: int = 16) -> list[dict]:
    """Samples whose mask is a square and whose red square is shifted by SHIFT pixels."""
    samples = []
    for shift in shifts:
        mask = torch.zeros(1, size, size)
        mask[0, 4:12, 4:12] = 1
        image = torch.zeros(3, size, size)
        image[0] = torch.roll(mask[0], shifts=shift, dims=1)
        samples.append({"image": image, "mask": mask, "trimap": None, "name": f"shift{shift}"})
    return samples


@pytest.fixture
def pets(tmp_path, sample_root) -> Path:
    """A private copy of the sample dataset (photo-sized JPEGs), free to cache and modify."""
    return Path(shutil.copytree(sample_root, tmp_path / "pets",
                                ignore=shutil.ignore_patterns("cache")))


def tiny_comparison(root, tmp_path, image_size: int = 32) -> dict:
    """run_comparison(quick=True) settings of seconds: 8 images once an epoch, not 256 draws."""
    return dict(data_path=str(root), image_size=image_size, epochs=1, limit=8, batch_size=4,
                epoch_samples=None, checkpoint_dir=str(tmp_path / "ckpt"),
                output_dir=str(tmp_path / "out"), progress=False)


def tiny_config(root, tmp_path, **overrides) -> TrainConfig:
    settings = dict(data_path=str(root), model="unet", model_kwargs={"base_channels": 4},
                    image_size=32, epochs=2, batch_size=4, limit=8, learning_rate=1e-3,
                    checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "out"),
                    progress=False)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """Point the torch hub cache at an empty directory and block every download."""

    def no_network(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    old_dir = torch.hub.get_dir()
    hub_dir = tmp_path / "hub"
    torch.hub.set_dir(str(hub_dir))
    yield hub_dir
    torch.hub.set_dir(old_dir)
