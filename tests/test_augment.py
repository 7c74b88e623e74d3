"""Augmentation: each step alone, the training pipeline, and augment_sample against the dataset."""

import numpy as np
import torch

from petseg_lib.augment import augment_sample, augmentation_steps, augmentations
from petseg_lib.masks import BACKGROUND, BOUNDARY, PET
from petseg_lib.oxford_pet import OxfordPetDataset, SimpleOxfordPetDataset


def test_augment_sample_without_transform_matches_the_dataset(tiny_root):
    raw = OxfordPetDataset(tiny_root, "train")
    resized = SimpleOxfordPetDataset(tiny_root, "train", image_size=32)
    for i in (0, 3):
        ours, theirs = augment_sample(raw[i], None, 32), resized[i]
        assert ours["name"] == theirs["name"]
        for key in ("image", "mask", "trimap"):
            assert torch.equal(ours[key], theirs[key]), key


def test_augment_sample_with_the_training_pipeline_matches_odd_indices(tiny_root):
    raw = OxfordPetDataset(tiny_root, "train")
    doubled = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True)
    torch.manual_seed(3)
    ours = augment_sample(raw[2], augmentations(32), 32)
    torch.manual_seed(3)
    theirs = doubled[5]  # index 2k + 1 = the augmented copy of image k = 2
    assert ours["name"] == theirs["name"]
    for key in ("image", "mask", "trimap"):
        assert torch.equal(ours[key], theirs[key]), key


def test_augmentation_steps_act_on_image_and_mask_together():
    torch.manual_seed(0)
    steps = augmentation_steps(32)
    assert list(steps) == ["crop and zoom", "horizontal flip", "greyscale", "brightness"]
    sample = square_sample()
    plain = augment_sample(sample, None, 32)
    flipped = augment_sample(sample, steps["horizontal flip"], 32)
    for key in ("image", "mask"):
        assert torch.equal(flipped[key], plain[key].flip(-1)), key
    grey = augment_sample(sample, steps["greyscale"], 32)["image"]
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])
    assert not torch.allclose(plain["image"][0], plain["image"][1])
    brighter = augment_sample(sample, steps["brightness"], 32)
    assert not torch.equal(brighter["image"], plain["image"])
    assert torch.equal(brighter["mask"], plain["mask"])  # colour steps leave the mask alone
    for seed in range(5):
        torch.manual_seed(seed)
        for name, step in steps.items():
            out = augment_sample(sample, step, 32)
            assert out["image"].shape == (3, 32, 32), name
            assert set(out["trimap"].unique().tolist()) <= {PET, BACKGROUND, BOUNDARY}, name
            assert set(out["mask"].unique().tolist()) <= {0.0, 1.0}, name
            # Aligned: the mask covers the bright pixels (edges may differ by interpolation).
            bright = (out["image"].mean(0, keepdim=True) > 0.45).float()
            assert (bright != out["mask"]).float().mean() < 0.05, name


def square_sample() -> dict:
    """A 32x32 raw sample: an off-centre pet drawn bright on a dark background."""
    rng = np.random.default_rng(0)
    trimap = np.full((32, 32), BACKGROUND, np.uint8)
    trimap[6:20, 2:14] = BOUNDARY
    trimap[8:18, 4:12] = PET
    image = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)  # dark noise
    bright = rng.integers(190, 256, (32, 32, 3), dtype=np.uint8)
    image[trimap != BACKGROUND] = bright[trimap != BACKGROUND]
    return {"image": image, "trimap": trimap, "mask": None, "name": "square"}
