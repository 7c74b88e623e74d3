"""The resized-image cache: bit-identical samples, augmented ones from the JPEG, safe builds."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from petseg_lib.data import oxford_pet
from petseg_lib.data.cache import CACHE_VERSION
from petseg_lib.data.oxford_pet import SimpleOxfordPetDataset, collate, split_names

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
    for i in range(3):
        assert same_sample(cached[2 * i], expected[i])  # decoded once, kept in the cache
    monkeypatch.setattr(oxford_pet, "to_rgb", None)  # a read that decodes a JPEG would fail
    for i in range(3):
        assert same_sample(cached[2 * i], expected[i])
    with pytest.raises(TypeError):  # augmented samples decode a photo not yet read
        cached[7]


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
    first[0]
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
    # A truncated cache file is noticed and made again.
    path = second.cache.paths["images"]
    path.write_bytes(path.read_bytes()[:1000])
    third = SimpleOxfordPetDataset(pets, "train", image_size=32, cache=True)
    assert third.cache.is_valid() and same_sample(third[3], fresh[3])


def test_the_cache_is_filled_as_samples_are_first_read(pets, monkeypatch):
    ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    filled = ds.cache.paths["filled"]
    assert not np.load(filled).any()  # nothing decoded when the dataset is made
    calls = []
    decode = SimpleOxfordPetDataset._decode_resized
    monkeypatch.setattr(SimpleOxfordPetDataset, "_decode_resized",
                        lambda self, i: calls.append(i) or decode(self, i))
    ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    first, again = ds[2], ds[2]
    assert calls == [2] and same_sample(first, again)
    assert np.flatnonzero(np.load(filled)).tolist() == [2]
    # Another dataset (another run) reads what the first one stored, without decoding.
    other = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    assert same_sample(other[2], first) and calls == [2]


def test_two_readers_at_once_store_the_same_samples(pets):
    barrier = threading.Barrier(2)
    datasets, errors = [], []
    decode = SimpleOxfordPetDataset._decode_resized

    def slow_decode(self, index):
        if index == 0:
            barrier.wait(timeout=30)  # both are writing sample 0 at the same time
        return decode(self, index)

    def read_all():
        try:
            ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
            [ds[i] for i in range(len(ds))]
            datasets.append(ds)
        except Exception as err:  # reported below
            errors.append(err)

    SimpleOxfordPetDataset._decode_resized = slow_decode
    try:
        threads = [threading.Thread(target=read_all) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        SimpleOxfordPetDataset._decode_resized = decode
    assert not errors and len(datasets) == 2
    fresh = SimpleOxfordPetDataset(pets, "valid", 32)
    again = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    assert np.load(again.cache.paths["filled"]).all()
    for ds in (*datasets, again):
        assert all(same_sample(ds[i], fresh[i]) for i in range(len(fresh)))
    folder = datasets[0].cache.folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in datasets[0].cache.paths.values())  # no temporary files left


def test_a_cache_that_cannot_be_made_leaves_nothing_behind(pets, monkeypatch, private_cache):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "open_memmap", broken)
    with pytest.warns(UserWarning, match="disk full"):
        ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    assert ds.cache is None and ds[0]["image"].shape == (3, 32, 32)
    assert not list(private_cache.rglob("*.npy")) and not list(private_cache.rglob("*.tmp"))


def test_a_read_only_dataset_is_cached_in_the_user_cache(tmp_path, private_cache):
    root = write_dataset(tmp_path / "ro", n_trainval=6, n_test=2)
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        ds = SimpleOxfordPetDataset(root, "train", 32, augment=True, cache=True)
        assert ds.cache is not None and ds.cache.folder.is_relative_to(private_cache)
        assert same_sample(ds[0], SimpleOxfordPetDataset(root, "train", 32)[0])
        assert not (root / "cache").exists()
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_a_read_only_cache_folder_means_no_cache(pets, private_cache):
    private_cache.mkdir()
    private_cache.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="PETSEG_CACHE"):
            ds = SimpleOxfordPetDataset(pets, "train", 32, cache=True)
        assert ds.cache is None
        assert same_sample(ds[0], SimpleOxfordPetDataset(pets, "train", 32)[0])
    finally:
        private_cache.chmod(0o755)


def test_the_same_names_in_two_folders_get_two_caches(tmp_path):
    a = write_dataset(tmp_path / "a", n_trainval=6, n_test=2)
    b = write_dataset(tmp_path / "b", n_trainval=6, n_test=2)
    first = SimpleOxfordPetDataset(a, "train", 32, cache=True)
    second = SimpleOxfordPetDataset(b, "train", 32, cache=True)
    assert first.cache.paths["images"] != second.cache.paths["images"]


def test_cached_dataset_in_dataloader_workers(pets):
    ds = SimpleOxfordPetDataset(pets, "valid", 32, cache=True)
    in_process = list(DataLoader(ds, batch_size=2, collate_fn=collate))
    in_workers = list(DataLoader(ds, batch_size=2, collate_fn=collate, num_workers=2))
    for a, b in zip(in_process, in_workers, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert ds.cache.__getstate__()["arrays"] is None  # workers open the files themselves
    assert np.load(ds.cache.paths["filled"]).all()  # what the workers stored is kept


def test_cache_is_keyed_by_size_and_names(pets):
    a = SimpleOxfordPetDataset(pets, "train", 32, cache=True)
    b = SimpleOxfordPetDataset(pets, "train", 48, cache=True)
    c = SimpleOxfordPetDataset(pets, "train", 32, limit=5, cache=True)
    version = f"v{CACHE_VERSION}"
    assert a.cache.folder.name == f"32-{version}" and b.cache.folder.name == f"48-{version}"
    assert a.cache.paths["images"] != c.cache.paths["images"]
    assert np.load(c.cache.paths["images"]).shape == (5, 3, 32, 32)
    assert np.load(c.cache.paths["filled"]).shape == (5,)
    assert np.load(a.cache.paths["images"]).shape == (len(split_names(pets, "train")), 3, 32, 32)


def test_pair_checks_are_remembered_until_a_file_changes(tiny_root, private_cache, monkeypatch):
    checked = []
    check = oxford_pet._check_pair
    monkeypatch.setattr(oxford_pet, "_check_pair",
                        lambda image, trimap: checked.append(image.stem) or check(image, trimap))
    first = oxford_pet.OxfordPetDataset(tiny_root, "train")
    assert len(checked) == len(first.names)
    checked.clear()
    oxford_pet.OxfordPetDataset(tiny_root, "train")
    assert checked == []  # nothing changed: nothing decoded again
    # A trimap damaged since: only its pair is checked again, and it is left out.
    (tiny_root / "annotations" / "trimaps" / f"{first.names[3]}.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="trimap cannot be read"):
        again = oxford_pet.OxfordPetDataset(tiny_root, "train")
    assert checked == [first.names[3]] and first.names[3] not in again.names
    # A damaged memo is ignored: every pair is checked again.
    for memo in private_cache.rglob("*.json"):
        memo.write_text("{not json")
    checked.clear()
    with pytest.warns(UserWarning, match="trimap cannot be read"):
        oxford_pet.OxfordPetDataset(tiny_root, "train")
    assert len(checked) == len(first.names)
