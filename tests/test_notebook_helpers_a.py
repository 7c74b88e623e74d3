"""Helpers of notebooks 01-03: trimap statistics, single augmentations, figures, layer shapes."""

import numpy as np
import pytest
import torch
from PIL import Image

from petseg_lib.models import UNet, layer_shapes
from petseg_lib.oxford_pet import (
    BACKGROUND,
    BOUNDARY,
    PET,
    OxfordPetDataset,
    SimpleOxfordPetDataset,
    augmentations,
)
from petseg_lib.utils import (
    augment_sample,
    augmentation_steps,
    show_augmentations,
    show_images,
    show_trimap,
    trimap_statistics,
)


def test_trimap_statistics_count_each_class(tiny_root):
    dataset = OxfordPetDataset(tiny_root, "train")
    stats = trimap_statistics(dataset)
    assert len(stats["width"]) == len(dataset)
    for i, name in enumerate(dataset.names):
        trimap = np.array(Image.open(dataset.trimaps_dir / f"{name}.png"))
        assert (stats["height"][i], stats["width"][i]) == trimap.shape
        assert stats["pet"][i] == pytest.approx((trimap == PET).mean())
        assert stats["boundary"][i] == pytest.approx((trimap == BOUNDARY).mean())
        assert stats["foreground"][i] == pytest.approx(dataset[i]["mask"].mean())
    total = stats["pet"] + stats["background"] + stats["boundary"]
    np.testing.assert_allclose(total, 1.0)


def test_show_trimap_names_the_three_classes():
    trimap = np.full((20, 30), BACKGROUND, np.uint8)
    trimap[4:16, 6:24] = BOUNDARY
    trimap[6:14, 8:22] = PET
    fig = show_trimap(np.zeros((20, 30, 3), np.uint8), trimap, title="t")
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert {"1 pet", "2 background", "3 boundary"} <= set(labels)
    # The last panel shows the boundary as grey (0.5), the pet white, the background black.
    ignored = fig.axes[3].images[0].get_array()
    assert set(np.unique(ignored)) == {0.0, 0.5, 1.0}
    assert ignored[10, 15] == 1.0 and ignored[0, 0] == 0.0 and ignored[4, 6] == 0.5


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


def test_show_augmentations_has_one_labelled_row_per_name(tiny_root):
    raw = OxfordPetDataset(tiny_root, "train")
    rows = {"original": [augment_sample(raw[i], None, 32) for i in range(3)],
            "flip": [augment_sample(raw[i], augmentation_steps(32)["horizontal flip"], 32)
                     for i in range(2)]}
    fig = show_augmentations(rows, title="grid")
    assert len(fig.axes) == 6
    assert fig.axes[0].get_ylabel() == "original" and fig.axes[3].get_ylabel() == "flip"
    assert fig.axes[1].get_title() == raw.names[1]
    assert not fig.axes[5].axison  # the missing third flip panel stays empty
    assert fig.axes[0].images[0].get_array().shape == (32, 32, 3)


def test_show_images_draws_maps_and_pictures():
    fig = show_images({"map": torch.rand(1, 1, 8, 6), "rgb": torch.rand(3, 8, 6)},
                      colorbar=True, title="row", vmin=0, vmax=1)
    pictures = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in pictures] == ["map", "rgb"]
    assert pictures[0].images[0].get_array().shape == (8, 6)
    assert pictures[1].images[0].get_array().shape == (8, 6, 3)
    assert len(fig.axes) == 3  # two panels and one colorbar


def test_layer_shapes_follow_the_unet_stages():
    torch.manual_seed(0)
    model = UNet(base_channels=8)
    x = torch.rand(1, 3, 64, 48)
    names = ["inc", "down1", "down4", "up1", "up4", "outc"]
    before = model.inc.double_conv[1].running_mean.clone()
    shapes = layer_shapes(model, x, names)
    assert [name for name, _ in shapes] == names
    assert dict(shapes) == {"inc": (1, 8, 64, 48), "down1": (1, 16, 32, 24),
                            "down4": (1, 128, 4, 3), "up1": (1, 64, 8, 6),
                            "up4": (1, 8, 64, 48), "outc": (1, 1, 64, 48)}
    assert model.training  # the mode is restored ...
    assert torch.equal(model.inc.double_conv[1].running_mean, before)  # ... stats untouched
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed
    with pytest.raises(ValueError, match="nope"):
        layer_shapes(model, x, ["inc", "nope"])
