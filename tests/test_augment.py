"""Augmentation: each step alone, the training pipeline, and augment_sample against the dataset.

Also the "strong" level: rotation, Cutout (ImageCutout) and CutMix (cut_mix); and the "mixup"
level: Mixup (mix_up) with soft masks.
"""

import warnings
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from petseg_lib.data import resized
from petseg_lib.data.augment import (
    AUGMENT_LEVELS,
    CropAndZoom,
    ImageCutout,
    SquareResize,
    augment_sample,
    augmentation_steps,
    augmentations,
    cut_mix,
    mix_up,
)
from petseg_lib.data.mask_folder import MaskFolderDataset
from petseg_lib.data.masks import BACKGROUND, BOUNDARY, PET
from petseg_lib.data.oxford_pet import OxfordPetDataset, SimpleOxfordPetDataset, load_dataset
from petseg_lib.training.config import TrainConfig


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


@pytest.mark.parametrize("height, width", [(300, 400), (400, 300), (120, 120)])
def test_crop_and_zoom_keeps_the_photos_proportions(height, width):
    """Regions of 50-100 % of the photo, shaped like it: test photos are squeezed the same way."""
    torch.manual_seed(0)
    crop = CropAndZoom(32)
    image = tv_tensors.Image(torch.zeros(3, height, width, dtype=torch.uint8))
    regions = [crop.make_params([image]) for _ in range(400)]
    aspect = width / height
    shapes = torch.tensor([[r["width"] / r["height"], r["width"] * r["height"] / (width * height)]
                           for r in regions])
    for r in regions:  # inside the photo
        assert 0 <= r["top"] <= height - r["height"] and 0 <= r["left"] <= width - r["width"]
    assert shapes[:, 0].min() >= aspect * 3 / 4 - 0.02
    assert shapes[:, 0].max() <= aspect * 4 / 3 + 0.02
    assert shapes[:, 0].median() == pytest.approx(aspect, rel=0.1)  # about the photo's own
    assert shapes[:, 1].min() >= 0.49 and shapes[:, 1].max() <= 1.0
    assert shapes[:, 1].max() > 0.95 and shapes[:, 1].min() < 0.55  # the whole range is used
    out = crop(image, tv_tensors.Mask(torch.ones(1, height, width, dtype=torch.uint8)))
    assert out[0].shape == (3, 32, 32) and out[1].shape == (1, 32, 32)


@pytest.mark.parametrize("size", [16, 24, 40, 100])
def test_resizing_keeps_the_trimap_on_its_photo(size):
    """The mask lands where the photo's bright pet lands, at every scale, flipped or not."""
    height, width = 75, 93  # scale factors that are not whole numbers
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    pet = ((x - 30) / 22.0) ** 2 + ((y - 40) / 25.0) ** 2 < 1  # an ellipse off centre
    image = tv_tensors.Image((pet * 255).to(torch.uint8).expand(3, -1, -1).clone())
    trimap = tv_tensors.Mask(torch.where(pet, PET, BACKGROUND).to(torch.uint8)[None])
    for flip in (False, True):
        step = v2.Compose([v2.RandomHorizontalFlip(p=1.0)] * flip + [SquareResize(size)])
        small_image, small_trimap = step(image, trimap)
        mask = (small_trimap[0] != BACKGROUND).float()
        ideal = (small_image[0].float() / 255 > 0.5).float()  # the photo's own pet, resized
        dice = 2 * (mask * ideal).sum() / (mask.sum() + ideal.sum())
        assert dice > 0.985, (size, flip, float(dice))
        assert set(small_trimap.unique().tolist()) <= {PET, BACKGROUND}


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


# ---------------------------------------------------------------------------
# The "strong" level
# ---------------------------------------------------------------------------

def test_levels_are_named_and_the_report_level_is_the_default():
    assert AUGMENT_LEVELS == ("report", "strong", "mixup")
    report = [type(t) for t in augmentations(32, "report").transforms]
    assert report == [type(t) for t in augmentations(32).transforms]
    assert report == [CropAndZoom, v2.RandomHorizontalFlip, v2.RandomGrayscale,
                      v2.ColorJitter]
    strong = [type(t) for t in augmentations(32, "strong").transforms]
    assert strong == report + [v2.RandomRotation, ImageCutout]
    assert [type(t) for t in augmentations(32, "mixup").transforms] == report  # + Mixup
    for make in (lambda: augmentations(32, "extreme"),
                 lambda: TrainConfig(augment_level="extreme")):
        with pytest.raises(ValueError, match="report, strong"):
            make()
    assert TrainConfig(augment_level="strong").augment_level == "strong"


def test_the_report_level_gives_the_same_samples_as_before(tiny_root):
    plain = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True)
    report = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True,
                                    augment_level="report")
    for index in (1, 2, 7):
        torch.manual_seed(index)
        ours = report[index]
        torch.manual_seed(index)
        theirs = plain[index]
        for key in ("image", "mask", "trimap"):
            assert torch.equal(ours[key], theirs[key]), key


def test_rotation_turns_image_and_trimap_together_and_brings_in_background():
    rotate = augmentations(32, "strong").transforms[4]
    rotate.degrees = [15.0, 15.0]  # in training: a random angle in [-15, 15]
    out = augment_sample(square_sample(), rotate, 32)
    bright = out["image"].mean(0, keepdim=True) > 0.45
    assert torch.equal(bright.float(), out["mask"])  # nearest neighbours in both: exact
    everywhere_pet = {"image": np.full((32, 32, 3), 255, np.uint8), "name": "pet",
                      "trimap": np.full((32, 32), PET, np.uint8)}
    corners = augment_sample(everywhere_pet, rotate, 32)
    assert corners["trimap"][0, 0, 0] == BACKGROUND  # 2, never 0, which is no trimap value
    assert corners["image"][:, 0, 0].eq(0).all()
    assert set(corners["trimap"].unique().tolist()) == {PET, BACKGROUND}


def test_strong_augmentation_keeps_the_pet_under_its_mask():
    sample, strong = square_sample(), augmentations(32, "strong")
    for seed in range(20):
        torch.manual_seed(seed)
        out = augment_sample(sample, strong, 32)
        assert set(out["trimap"].unique().tolist()) <= {PET, BACKGROUND, BOUNDARY}
        mask = out["mask"][None]  # (1, 1, S, S)
        edge = (F.max_pool2d(mask, 3, 1, 1) != -F.max_pool2d(-mask, 3, 1, 1))[0]
        bright = (out["image"].mean(0, keepdim=True) > 0.45) & ~edge  # away from the outline
        assert (bright & (out["mask"] > 0)).sum() > 0.9 * bright.sum(), seed


def test_cutout_blackens_a_patch_of_the_image_and_leaves_the_trimap_alone():
    image = tv_tensors.Image(torch.full((3, 32, 32), 200, dtype=torch.uint8))
    trimap = tv_tensors.Mask(torch.from_numpy(square_sample()["trimap"])[None])
    cutout = augmentations(32, "strong").transforms[5]
    cutout.p = 1.0  # in training: p = 0.5
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plain RandomErasing warns about Masks
        erased, kept = cutout(image, trimap)
    assert torch.equal(kept, trimap) and isinstance(kept, tv_tensors.Mask)
    black = erased.eq(0).all(0)
    assert 0.02 * 32 * 32 * 0.9 <= black.sum() <= 0.15 * 32 * 32 * 1.1
    assert erased[:, ~black].eq(200).all()


def cut_box(seed: int, p: float = 1.0, size: int = 32) -> torch.Tensor:
    """Where cut_mix pastes with this seed: (S, S) bool, from a zero pair and a ones pair."""
    zeros, ones = torch.zeros(3, size, size), torch.ones(3, size, size)
    generator = torch.Generator().manual_seed(seed)
    image, trimap = cut_mix(zeros, zeros[:1], ones, ones[:1], generator, p=p)
    assert torch.equal(image[0], image[2]) and torch.equal(image[0], trimap[0])  # same box
    return image[0].bool()


def test_cut_mix_pastes_one_rectangle_of_the_other_pair_into_image_and_trimap():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8))
    trimaps = torch.from_numpy(rng.integers(1, 4, (2, 1, 32, 32), dtype=np.uint8))
    for seed in range(30):
        box = cut_box(seed)
        rows, cols = box.any(1).nonzero(), box.any(0).nonzero()
        height, width = len(rows), len(cols)
        assert box.sum() == height * width  # a rectangle
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width
        assert 0.1 - 1 / 32 <= box.float().mean() <= 0.4 + 1 / 32  # up to whole pixels
        generator = torch.Generator().manual_seed(seed)
        image, trimap = cut_mix(images[0], trimaps[0], images[1], trimaps[1], generator, 1.0)
        for mixed, mine, other in ((image, images[0], images[1]),
                                   (trimap, trimaps[0], trimaps[1])):
            assert torch.equal(mixed[:, box], other[:, box])
            assert torch.equal(mixed[:, ~box], mine[:, ~box])
    assert not any(cut_box(seed, p=0.0).any() for seed in range(10))
    image, trimap = cut_mix(images[0], trimaps[0], images[1], trimaps[1], p=0.0)
    assert torch.equal(image, images[0]) and torch.equal(trimap, trimaps[0])
    assert sum(cut_box(seed, p=0.5).any().item() for seed in range(40)) in range(10, 31)


# ---------------------------------------------------------------------------
# The "mixup" level
# ---------------------------------------------------------------------------

def test_mix_up_blends_image_and_mask_with_one_weight_of_at_least_a_half():
    sample = {"image": torch.zeros(3, 8, 8), "mask": torch.zeros(1, 8, 8),
              "trimap": torch.full((1, 8, 8), BACKGROUND, dtype=torch.uint8), "name": "a"}
    other = {"image": torch.ones(3, 8, 8), "mask": torch.ones(1, 8, 8),
             "trimap": torch.full((1, 8, 8), PET, dtype=torch.uint8), "name": "b"}
    torch.manual_seed(0)
    shares = []
    for _ in range(200):
        mixed = mix_up(sample, other)
        share = mixed["image"][0, 0, 0].item()  # 1 - lam: how much of OTHER is in it
        assert torch.allclose(mixed["image"], torch.full((3, 8, 8), share))
        assert torch.allclose(mixed["mask"], torch.full((1, 8, 8), share))  # a soft target
        assert mixed["trimap"] is sample["trimap"] and mixed["name"] == "a"
        shares.append(share)
    assert 0 <= min(shares) and max(shares) <= 0.5  # the sample stays mostly itself
    # Beta(0.4, 0.4) is mostly near its ends: most blends take little of the other image.
    assert sum(share < 0.1 for share in shares) > sum(share > 0.4 for share in shares) > 0
    assert sample["image"].eq(0).all() and sample["mask"].eq(0).all()  # inputs unchanged


def test_mixup_dataset_gives_soft_masks_to_augmented_samples_only(tiny_root):
    mixup = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True,
                                   augment_level="mixup")
    first, again = augmented_samples(mixup), augmented_samples(mixup)
    soft = 0
    for ours, theirs in zip(first, again, strict=True):  # reproducible from the seed
        assert all(torch.equal(ours[k], theirs[k]) for k in ("image", "mask", "trimap"))
        values = ours["mask"].unique()
        # mask = lam * mask + (1 - lam) * other's, both 0/1: at most 0, 1 - lam, lam and 1
        assert len(values) <= 4 and values.min() >= 0 and values.max() <= 1
        soft += bool(((values > 0) & (values < 1)).any())
        assert 0 <= ours["image"].min() and ours["image"].max() <= 1
    assert soft >= 3
    plain = mixup[0]  # even indices stay the photo as it is, with its 0/1 mask
    assert torch.equal(plain["mask"], (plain["trimap"] != BACKGROUND).float())
    assert TrainConfig(augment=True, augment_level="mixup").run_name == "unet_aug_mixup"


def augmented_samples(dataset: SimpleOxfordPetDataset, seed: int = 7) -> list[dict]:
    """The first six augmented samples of DATASET after torch.manual_seed(SEED)."""
    torch.manual_seed(seed)
    return [dataset[i] for i in range(1, 12, 2)]


def test_strong_dataset_is_reproducible_and_valid_with_and_without_the_cache(tiny_root):
    for cache in (False, True):
        strong = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True,
                                        cache=cache, augment_level="strong")
        assert (strong.cache is not None) == cache
        first, again = augmented_samples(strong), augmented_samples(strong)
        for ours, theirs in zip(first, again, strict=True):
            for key in ("image", "mask", "trimap"):
                assert torch.equal(ours[key], theirs[key]), (cache, key)
        for sample in first:
            assert sample["image"].shape == (3, 32, 32) and sample["trimap"].shape == (1, 32, 32)
            assert set(sample["trimap"].unique().tolist()) <= {PET, BACKGROUND, BOUNDARY}
            assert torch.equal(sample["mask"], (sample["trimap"] != BACKGROUND).float())
        report = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True,
                                        cache=cache)
        assert not all(torch.equal(ours["image"], theirs["image"]) for ours, theirs
                       in zip(first, augmented_samples(report), strict=True))


def test_load_dataset_passes_the_level_to_both_kinds_of_dataset(tiny_root, tmp_path):
    pets = load_dataset(tiny_root, "train", 32, augment=True, augment_level="strong")
    assert isinstance(pets, SimpleOxfordPetDataset) and pets.augment_level == "strong"
    folder = tmp_path / "mine"
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True)
    for i in range(6):
        pet = square_sample()["trimap"] != BACKGROUND
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(folder / f"images/{i}.png")
        Image.fromarray(pet.astype(np.uint8) * 255).save(folder / f"masks/{i}.png")
    mine = load_dataset(folder, "train", 32, augment=True, augment_level="strong")
    assert isinstance(mine, MaskFolderDataset)
    assert isinstance(mine.augmentations.transforms[-1], ImageCutout)


def test_strong_dataset_cut_mixes_a_rectangle_of_another_training_image(tiny_root, monkeypatch):
    monkeypatch.setattr(resized, "cut_mix", partial(cut_mix, p=1.0))  # in training: 0.5
    raw = OxfordPetDataset(tiny_root, "train")
    for cache in (False, True):
        strong = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True,
                                        cache=cache, augment_level="strong")
        torch.manual_seed(0)
        mixed = strong[5]  # the augmented copy of image 2
        # Replay the same random numbers: image 2's strong augmentations, the other image's
        # index, then where cut_mix pastes (from a zero pair and a ones pair, as cut_box does).
        torch.manual_seed(0)
        mine = augment_sample(raw[2], augmentations(32, "strong"), 32)
        other = augment_sample(raw[int(torch.randint(len(raw), (1,)))], None, 32)
        assert other["name"] != mine["name"] == mixed["name"]
        ones = torch.ones(3, 32, 32)
        box = cut_mix(0 * ones, 0 * ones[:1], ones, ones[:1], p=1.0)[0][0].bool()
        assert 0 < box.sum() < box.numel()
        for key in ("image", "mask", "trimap"):
            assert torch.equal(mixed[key][:, box], other[key][:, box]), (cache, key)
            assert torch.equal(mixed[key][:, ~box], mine[key][:, ~box]), (cache, key)
        assert not torch.equal(mine["image"][:, box], other["image"][:, box])
