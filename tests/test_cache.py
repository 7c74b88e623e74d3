"""The resized-image cache: bit-identical samples, augmented ones from the JPEG, safe builds."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from petseg_lib import oxford_pet
from petseg_lib.cache import CACHE_VERSION
from petseg_lib.oxford_pet import SimpleOxfordPetDataset, collate, split_names

from .conftest import write_dataset


def same_sample(a: dict, b: dict) -> bool:
    """True when two samples are equal bit for bit (None stays None)."""
    for key in ("image", "mask", "trimap"):
        if (a[key] is None) != (b[key] is None):
            return False
        if a[key] is not None and not (a[key].dtype == b[key].dtype
                                       and torch.equal(a[key], b[key])):
            return False
    return a["name"] == b["name"]


def test_cached_plain_samples_equal_decoded_ones_bit_for_bit(pets, monkeypatch):
    for mode in ("train", "valid", "test"):
        cached = SimpleOxfordPetDataset(pets, mode, image_size=48, cache=True)
        decoded = SimpleOxfordPetDataset(pets, mode, image_size=48)
        assert cached.cache is not None and len(cached) == len(decoded)
        for i in range(len(decoded)):
            assert same_sample(cached[i], decoded[i]), (mode, i)
    # The training split augmented: the even, plain, indices come from the cache alone.
    cached = SimpleOxfordPetDataset(pets, "train", image_size=48, augment=True, cache=True)
    decoded = SimpleOxfordPetDataset(pets, "train", image_size=48)
    expected = [decoded[i] for i in range(3)]
    monkeypatch.setattr(oxford_pet, "load_rgb", None)  # a read that decodes a JPEG would fail
    for i in range(3):
        assert same_sample(cached[2 * i], expected[i])
    with pytest.raises(TypeError):  # augmented samples decode the full-size JPEG
        cached[1]


def test_augmented_samples_are_the_same_with_and_without_the_cache(pets):
    cached = SimpleOxfordPetDataset(pets, "train", image_size=64, augment=True, cache=True)
    decoded = SimpleOxfordPetDataset(pets, "train", image_size=64, augment=True)
    assert cached.cache is not None
    for i in range(1, 30, 2):
        torch.manual_seed(i)
        a = cached[i]
        torch.manual_seed(i)
        b = decoded[i]
        assert same_sample(a, b), i  # crops cut from the full-size image either way


def test_a_stale_or_damaged_cache_is_rebuilt(pets):
    first = SimpleOxfordPetDataset(pets, "train", image_size=32, cache=True)
    old_stem = first.cache.paths["images"].name
    name = first.names[0]
    # Replace the first image by a plain red picture: the fingerprint changes.
    with Image.open(pets / "images" / f"{name}.jpg") as im:
        size = im.size
    Image.new("RGB", size, (255, 0, 0)).save(pets / "images" / f"{name}.jpg")
    second = SimpleOxfordPetDataset(pets, "train", image_size=32, cache=True)
    assert second.cache.paths["images"].name != old_stem
    fresh = SimpleOxfordPetDataset(pets, "train", image_size=32)
    assert same_sample(second[0], fresh[0])
    assert second[0]["image"][0].mean() > 0.95 and second[0]["image"][1:].mean() < 0.05
    # A truncated cache file is noticed and written again.
    path = second.cache.paths["images"]
    path.write_bytes(path.read_bytes()[:1000])
    third = SimpleOxfordPetDataset(pets, "train", image_size=32, cache=True)
    assert third.cache.is_valid() and same_sample(third[3], fresh[3])


def test_two_builders_at_once_leave_one_complete_cache(pets):
    barrier = threading.Barrier(2)
    datasets, errors = [], []
    decode = SimpleOxfordPetDataset._decode_resized

    def slow_decode(self, index):
        if index == 0:
            barrier.wait(timeout=30)  # both builders are writing at the same time
        return decode(self, index)

    def build():
        try:
            datasets.append(SimpleOxfordPetDataset(pets, "valid", 32, cache=True))
        except Exception as err:  # reported below
            errors.append(err)

    SimpleOxfordPetDataset._decode_resized = slow_decode
    try:
        threads = [threading.Thread(target=build) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        SimpleOxfordPetDataset._decode_resized = decode
    assert not errors and len(datasets) == 2
    fresh = SimpleOxfordPetDataset(pets, "valid", 32)
    for ds in datasets:
        assert all(same_sample(ds[i], fresh[i]) for i in range(len(fresh)))
    folder = datasets[0].cache.folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in datasets[0].cache.paths.values())  # no temporary files left


def test_a_failed_build_leaves_nothing_behind(pets, monkeypatch):
    def broken(self, index):
        raise OSError("disk full")

    monkeypatch.setattr(SimpleOxfordPetDataset, "_decode_resized", broken)
    with pytest.warns(UserWarning, match="disk full"):
        ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    assert ds.cache is None and ds[0]["image"].shape == (3, 32, 32)
    assert not [p for p in (pets / "cache").rglob("*") if p.is_file()]


def test_a_read_only_dataset_works_without_a_cache(tmp_path):
    root = write_dataset(tmp_path / "ro", n_trainval=6, n_test=2)
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="read-only"):
            ds = SimpleOxfordPetDataset(root, "train", 32, augment=True, cache=True)
        assert ds.cache is None and not (root / "cache").exists()
        assert same_sample(ds[0], SimpleOxfordPetDataset(root, "train", 32)[0])
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_cached_dataset_in_dataloader_workers(pets):
    ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    in_process = list(DataLoader(ds, batch_size=2, collate_fn=collate))
    in_workers = list(DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=2))
    for a, b in zip(in_process, in_workers, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert ds.cache.__getstate__()["arrays"] is None  # workers open the files themselves


def test_cache_is_keyed_by_size_and_names(pets):
    a = SimpleOxfordPetDataset(pets, "train", 32, cache=True)
    b = SimpleOxfordPetDataset(pets, "train", 48, cache=True)
    c = SimpleOxfordPetDataset(pets, "train", 32, limit=5, cache=True)
    version = f"v{CACHE_VERSION}"
    assert a.cache.folder.name == f"32-{version}" and b.cache.folder.name == f"48-{version}"
    assert a.cache.paths["images"] != c.cache.paths["images"]
    assert np.load(c.cache.paths["images"]).shape == (5, 3, 32, 32)
    assert np.load(a.cache.paths["images"]).shape == (len(split_names(pets, "train")), 3, 32, 32)
