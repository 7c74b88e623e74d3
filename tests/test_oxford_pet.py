"""The data pipeline: splits, trimap rule, augmentation alignment, bad files, download."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn.functional import max_pool2d
from torch.utils.data import DataLoader

from petseg_lib.data import formats, oxford_pet
from petseg_lib.data.masks import BOUNDARY, PET, trimap_to_mask
from petseg_lib.data.oxford_pet import (
    OxfordPetDataset,
    SimpleOxfordPetDataset,
    collate,
    load_dataset,
    split_names,
    trimap_statistics,
)

from .conftest import write_dataset, write_pair


def test_splits_are_disjoint_deterministic_and_skip_comments(tiny_root):
    train, valid, test = (split_names(tiny_root, m) for m in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (27, 3, 6)
    assert valid == ["Cat_9", "Cat_19", "Cat_29"]  # every 10th name
    assert not set(train) & set(valid) and not (set(train) | set(valid)) & set(test)
    assert all(not n.startswith("#") for n in train + valid + test)
    assert split_names(tiny_root, "train") == train
    with pytest.raises(ValueError, match="mode"):
        split_names(tiny_root, "training")


def test_a_name_counts_once_and_a_test_name_never_trains(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=20, n_test=2)
    ann = root / "annotations"
    names = [f"Cat_{i}" for i in range(20)]
    listed = names[:9] + ["Cat_3"] + names[9:] + ["Cat_0"]  # Cat_3 and Cat_0 twice
    (ann / "trainval.txt").write_text("".join(f"{n} 1 1 1\n" for n in listed))
    (ann / "test.txt").write_text("dog_0 2 2 1\nCat_0 1 1 1\ndog_0 2 2 1\n")
    with pytest.warns(UserWarning) as caught:
        found = {mode: split_names(root, mode) for mode in ("train", "valid", "test")}
    assert found["test"] == ["dog_0", "Cat_0"]
    assert found["valid"] == ["Cat_10"]  # positions counted after the repeats are dropped
    assert found["train"] == [n for n in names[1:] if n != "Cat_10"]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2  # trainval.txt once, though train and valid both read it
    assert messages[0] == (
        f"Skipped 3 of 22 names listed in {ann / 'trainval.txt'}:\n"
        "  Cat_0: also in test.txt, which keeps it\n"
        "  Cat_3: listed 2 times; the first counts")
    assert messages[1].startswith(f"Skipped 1 of 3 names listed in {ann / 'test.txt'}:")
    assert "dog_0: listed 2 times" in messages[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same files again: nothing new to say
        assert split_names(root, "train") == found["train"]
    (ann / "test.txt").write_text("dog_0 2 2 1\ndog_1 2 2 1\ndog_1 2 2 1\n")  # edited
    with pytest.warns(UserWarning, match="dog_1: listed 2 times") as caught:
        split_names(root, "test")
    assert len(caught) == 1


def test_items_have_the_documented_types(tiny_root):
    sample = OxfordPetDataset(tiny_root, "train")[0]
    assert sample["image"].shape == (40, 48, 3) and sample["image"].dtype == np.uint8
    assert sample["mask"].shape == (40, 48) and sample["mask"].dtype == np.float32
    assert sample["trimap"].dtype == np.uint8 and set(np.unique(sample["trimap"])) == {1, 2, 3}
    np.testing.assert_array_equal(sample["mask"], trimap_to_mask(sample["trimap"]))


def test_real_mini_dataset_loads(mini_root):
    sizes = {m: len(OxfordPetDataset(mini_root, m)) for m in ("train", "valid", "test")}
    assert sizes == {"train": 17, "valid": 1, "test": 8}
    ds = OxfordPetDataset(mini_root, "test")
    for i in range(len(ds)):
        s = ds[i]
        h, w = s["image"].shape[:2]
        with Image.open(mini_root / "images" / f"{s['name']}.jpg") as im:
            assert im.size == (w, h)
        assert s["trimap"].shape == (h, w)
        assert set(np.unique(s["trimap"])) <= {1, 2, 3}
        assert 0.05 < s["mask"].mean() < 0.95
    resized = load_dataset(mini_root, "train", image_size=64)[0]
    assert resized["image"].shape == (3, 64, 64) and resized["mask"].shape == (1, 64, 64)


def test_simple_dataset_resizes_and_doubles_with_augmentation(tiny_root):
    plain = SimpleOxfordPetDataset(tiny_root, "train", image_size=32)
    aug = SimpleOxfordPetDataset(tiny_root, "train", image_size=32, augment=True)
    assert len(aug) == 2 * len(plain)
    s = plain[3]
    assert s["image"].shape == (3, 32, 32) and s["image"].dtype == torch.float32
    assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
    assert s["mask"].shape == (1, 32, 32) and set(s["mask"].unique().tolist()) <= {0.0, 1.0}
    # Even indices are the original samples, odd ones augmented versions of the same image.
    torch.testing.assert_close(aug[6]["image"], s["image"])
    assert aug[7]["name"] == s["name"]
    # Validation is never augmented or doubled.
    assert len(SimpleOxfordPetDataset(tiny_root, "valid", 32, augment=True)) == 3


def _painted_dataset(root: Path, n=4) -> Path:
    """Images whose pet area is painted white on black, so alignment can be checked."""
    write_dataset(root, n_trainval=n, n_test=1)
    for name in split_names(root, "train"):
        tm = np.array(Image.open(root / "annotations" / "trimaps" / f"{name}.png"))
        tm[tm == 3] = 1  # make the mask sharp: pet or background only
        Image.fromarray(tm).save(root / "annotations" / "trimaps" / f"{name}.png")
        picture = np.where((tm == 1)[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
        Image.fromarray(picture).save(root / "images" / f"{name}.png")
        (root / "images" / f"{name}.png").rename(root / "images" / f"{name}.jpg")  # PNG as .jpg
    return root


def test_augmentation_keeps_image_and_mask_aligned_and_binary(tmp_path):
    ds = SimpleOxfordPetDataset(_painted_dataset(tmp_path / "p"), "train", 64, augment=True)
    torch.manual_seed(0)
    for trial in range(12):
        s = ds[2 * (trial % 3) + 1]
        assert set(s["mask"].unique().tolist()) <= {0.0, 1.0}
        painted = s["image"].mean(0) > 0.3  # white pet, even after brightness x0.7 or greyscale
        mask = s["mask"]
        # Interpolation blurs the image edge by a pixel or two; everywhere else they must agree.
        near_edge = (max_pool2d(mask, 5, 1, 2) != -max_pool2d(-mask, 5, 1, 2))[0]
        disagree = painted != mask[0].bool()
        assert not disagree[~near_edge].any(), "image and mask are misaligned"
        assert mask.mean() > 0.05 and (1 - mask).mean() > 0.05


def test_augmentation_changes_the_image(tiny_root):
    ds = SimpleOxfordPetDataset(tiny_root, "train", 32, augment=True)
    torch.manual_seed(1)
    assert not torch.equal(ds[1]["image"], ds[0]["image"])


def test_odd_images_are_converted_to_rgb(tmp_path):
    root = write_dataset(tmp_path / "odd", n_trainval=4, n_test=1)
    names = split_names(root, "train")
    grey = Image.fromarray(np.full((40, 48), 128, np.uint8))
    rgba = Image.new("RGBA", (48, 40), (255, 0, 0, 128))
    cmyk = Image.new("CMYK", (48, 40), (0, 255, 255, 0))
    gif = Image.new("P", (48, 40), 3)
    for name, (im, fmt) in zip(names, [(grey, "JPEG"), (rgba, "PNG"), (cmyk, "JPEG"),
                                       (gif, "GIF")], strict=True):
        im.save(root / "images" / f"{name}.jpg", format=fmt)
    ds = OxfordPetDataset(root, "train")
    assert len(ds) == 4
    for i in range(4):
        image = ds[i]["image"]
        assert image.shape == (40, 48, 3) and image.dtype == np.uint8


def test_16_bit_trimaps_give_uint8_trimaps_that_collate(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=6, n_test=1)
    names = split_names(root, "train")
    path = root / "annotations" / "trimaps" / f"{names[0]}.png"
    trimap = np.array(Image.open(path))
    Image.fromarray(trimap.astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    sample = OxfordPetDataset(root, "train")[0]
    assert sample["trimap"].dtype == np.uint8
    np.testing.assert_array_equal(sample["trimap"], trimap)
    batch = collate([SimpleOxfordPetDataset(root, "train", 16)[i] for i in range(2)])
    assert batch["trimap"].dtype == torch.uint8 and batch["trimap"].shape == (2, 1, 16, 16)


def test_oxford_images_keep_their_stored_orientation(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=4, n_test=1)
    name = split_names(root, "train")[0]
    stored = Image.open(root / "images" / f"{name}.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # the trimap fits the stored pixels, so the tag is not applied
    stored.save(root / "images" / f"{name}.jpg", exif=exif, quality=95)
    sample = OxfordPetDataset(root, "train")[0]
    assert sample["image"].shape[:2] == sample["trimap"].shape == (40, 48)


def test_bad_files_are_skipped_with_one_warning_listing_them(tmp_path):
    root = write_dataset(tmp_path / "bad", n_trainval=8, n_test=1)
    names = split_names(root, "train")
    (root / "images" / f"{names[0]}.jpg").write_bytes(b"not an image at all")
    jpeg = (root / "images" / f"{names[1]}.jpg").read_bytes()
    (root / "images" / f"{names[1]}.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # truncated
    (root / "annotations" / "trimaps" / f"{names[2]}.png").unlink()
    write_pair(root, names[3], size=(30, 30))  # image and trimap 30x30 ...
    Image.fromarray(np.full((10, 10), 2, np.uint8)).save(
        root / "annotations" / "trimaps" / f"{names[3]}.png")  # ... but now trimap 10x10
    (root / "images" / f"{names[4]}.jpg").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = OxfordPetDataset(root, "train")
    assert len(caught) == 1
    message = str(caught[0].message)
    for name in names[:5]:
        assert name in message
    assert "trimap missing" in message and "10x10" in message
    assert ds.names == names[5:]
    with pytest.warns(UserWarning, match="Skipped 5 of 8"):
        resized = load_dataset(root, "train", 16)
    for sample in DataLoader(resized, batch_size=2, collate_fn=collate):
        assert sample["image"].shape[1:] == (3, 16, 16)


def test_missing_data_path_gives_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(tmp_path / "nowhere", "train")
    assert "--download" in str(err.value) and "petseg_lib.data --sample" in str(err.value)


def test_test_split_without_trimaps_has_no_masks(tmp_path):
    root = write_dataset(tmp_path / "nogt", n_trainval=4, n_test=5, test_trimaps=False)
    ds = load_dataset(root, "test", image_size=24)
    assert len(ds) == 5 and ds[0]["mask"] is None and ds[0]["image"].shape == (3, 24, 24)
    batch = next(iter(DataLoader(ds, batch_size=3, collate_fn=collate)))
    assert batch["mask"] is None and batch["trimap"] is None
    assert batch["image"].shape == (3, 3, 24, 24) and len(batch["name"]) == 3


@pytest.mark.parametrize("limit", [2, 5, 7])
def test_limit_picks_evenly_spread_names(tiny_root, limit):
    all_names = split_names(tiny_root, "train")
    picks = [all_names.index(name) for name in OxfordPetDataset(tiny_root, "train", limit).names]
    assert len(picks) == limit and picks[0] == 0 and picks[-1] == len(all_names) - 1
    gaps = np.diff(picks)
    assert gaps.min() >= 1 and gaps.max() - gaps.min() <= 1, picks


def test_find_dataset_falls_back_to_the_sample(monkeypatch, tmp_path, sample_root):
    monkeypatch.delenv("PETSEG_DATA", raising=False)
    monkeypatch.setattr(formats, "default_data_path", lambda: tmp_path / "absent")
    monkeypatch.setattr(formats, "ensure_sample_dataset", lambda: sample_root)
    assert oxford_pet.find_dataset() == sample_root
    monkeypatch.setenv("PETSEG_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError):
        oxford_pet.find_dataset()


def test_an_explicit_data_path_beats_petseg_data(monkeypatch, tmp_path):
    chosen = write_dataset(tmp_path / "chosen", n_trainval=4, n_test=1)
    monkeypatch.setenv("PETSEG_DATA", str(write_dataset(tmp_path / "env", 4, 1)))
    assert oxford_pet.find_dataset(chosen) == chosen
    assert oxford_pet.find_dataset(str(chosen)) == chosen
    assert oxford_pet.find_dataset() == tmp_path / "env"  # PETSEG_DATA replaces the default


# --- download against a local HTTP server -------------------------------------------------


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


def test_trimaps_with_other_values_are_skipped_and_named(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=12, n_test=2)
    names = OxfordPetDataset(root, "train").names
    binary = np.array(Image.open(root / "annotations" / "trimaps" / f"{names[0]}.png"))
    Image.fromarray(np.where(binary == 2, 0, 255).astype(np.uint8)).save(
        root / "annotations" / "trimaps" / f"{names[0]}.png")  # a 0/255 mask, not a trimap
    with pytest.warns(UserWarning, match=r"values \[0, 255\]") as caught:
        dataset = OxfordPetDataset(root, "train")
    assert names[0] not in dataset.names and len(caught) == 1
    assert "0, 255" in dataset.skipped[names[0]]


def test_a_trimap_resaved_in_colour_is_read_when_its_channels_agree(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=12, n_test=2)
    names = OxfordPetDataset(root, "train").names
    trimaps = root / "annotations" / "trimaps"
    before = {n: SimpleOxfordPetDataset(root, "train", 32)[i] for i, n in enumerate(names[:2])}
    grey = np.array(Image.open(trimaps / f"{names[0]}.png"))
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(trimaps / f"{names[0]}.png")  # RGB
    rgba = np.stack([grey] * 3 + [np.full_like(grey, 255)], axis=-1)
    Image.fromarray(rgba).save(trimaps / f"{names[1]}.png")  # RGBA, opaque
    odd = np.stack([grey, grey, np.where(grey == 1, 2, grey)], axis=-1).astype(np.uint8)
    Image.fromarray(odd).save(trimaps / f"{names[2]}.png")  # channels that disagree
    with pytest.warns(UserWarning, match="channels that differ") as caught:
        after = SimpleOxfordPetDataset(root, "train", 32)
    assert len(caught) == 1 and names[2] in after.skipped and names[2] not in after.names
    for name, sample in before.items():  # the coloured copies give the very same samples
        again = after[after.names.index(name)]
        assert torch.equal(again["mask"], sample["mask"])
        assert torch.equal(again["trimap"], sample["trimap"])
    with pytest.warns(UserWarning, match="channels that differ"):
        original = OxfordPetDataset(root, "train")[0]  # names[0], the RGB copy
    assert original["trimap"].shape == grey.shape and original["trimap"].dtype == np.uint8


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-8", "latin-1"])
def test_split_files_in_any_encoding_and_names_that_leave_the_folder(tmp_path, encoding):
    root = write_dataset(tmp_path / "pets", n_trainval=12, n_test=3)
    test_file = root / "annotations" / "test.txt"
    lines = test_file.read_text().splitlines()
    expected = [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]
    text = "# Größe, taille\n" + "\n".join(lines) + "\n../../etc/passwd 1 1 1\n"
    test_file.write_bytes(text.encode(encoding))
    with pytest.warns(UserWarning, match="not a plain file name"):
        dataset = OxfordPetDataset(root, "test")
    assert dataset.names == expected


def test_a_split_with_no_usable_image_is_an_error(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=12, n_test=2)
    for image in (root / "images").glob("dog_*.jpg"):
        image.write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="'test' split .* no usable"):
        OxfordPetDataset(root, "test")
