"""The data path on real photos (568 Oxford-IIIT Pet pairs beside the project; skipped without)."""

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from petseg_lib.data.oxford_pet import OxfordPetDataset, SimpleOxfordPetDataset
from petseg_lib.data.user_files import load_rgb


def test_every_real_pair_loads_in_its_official_split(real_root):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one pair may be skipped
        sizes = {mode: len(OxfordPetDataset(real_root, mode))
                 for mode in ("train", "valid", "test")}
    assert sizes == {"train": 340, "valid": 37, "test": 191}


@pytest.mark.parametrize("size", [64, 128])
def test_small_decoding_matches_the_full_photo_resized(real_root, size):
    ds = SimpleOxfordPetDataset(real_root, "valid", size)
    resize = v2.Resize((size, size), antialias=True)
    for index in range(0, len(ds), 6):
        name = ds.names[index]
        full = torch.from_numpy(np.array(load_rgb(real_root / "images" / f"{name}.jpg",
                                                  upright=False))).permute(2, 0, 1)
        expected = resize(full).float() / 255
        sample = ds[index]
        assert (sample["image"] - expected).abs().mean() < 0.02, name
        with Image.open(real_root / "annotations" / "trimaps" / f"{name}.png") as tm:
            trimap = torch.from_numpy(np.asarray(tm).copy())[None]
        mask = v2.functional.resize(trimap, [size, size],
                                    interpolation=v2.InterpolationMode.NEAREST_EXACT)
        agree = (sample["mask"].bool() == ((mask == 1) | (mask == 3))).float().mean()
        assert agree > 0.97, name


def test_augmented_crops_of_real_photos_keep_masks_binary_and_square(real_root):
    ds = SimpleOxfordPetDataset(real_root, "train", 96, augment=True, augment_level="strong")
    torch.manual_seed(0)
    for index in range(1, 60, 6):  # odd: augmented
        sample = ds[index]
        assert sample["image"].shape == (3, 96, 96) and sample["mask"].shape == (1, 96, 96)
        assert set(sample["mask"].unique().tolist()) <= {0.0, 1.0}


def test_the_read_only_real_set_is_cached_outside_it(real_root, private_cache):
    cached = SimpleOxfordPetDataset(real_root, "valid", 64, cache=True)
    plain = SimpleOxfordPetDataset(real_root, "valid", 64)
    assert cached.cache is not None and cached.cache.folder.is_relative_to(private_cache)
    for index in (0, 5, len(plain) - 1):
        assert torch.equal(cached[index]["image"], plain[index]["image"])
        assert torch.equal(cached[index]["mask"], plain[index]["mask"])
