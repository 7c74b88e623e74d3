"""Your own labelled folder: mask encodings, pairing, skipped files, splits, samples, training."""

import hashlib
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from torch.nn.functional import max_pool2d

from petseg_lib.data import oxford_pet
from petseg_lib.data.mask_folder import (
    BANDS,
    MaskFolderDataset,
    band_split,
    hash_split,
    is_mask_folder,
    name_fraction,
    read_mask,
)
from petseg_lib.data.masks import BACKGROUND, PET
from petseg_lib.data.user_files import load_rgb
from petseg_lib.train import train
from petseg_lib.training.config import TrainConfig
from petseg_lib.use.photos import read_photo

from .conftest import write_dataset
from .test_photos import png_header

SIZE = (48, 40)  # width, height of every test image


def ellipse(size=SIZE, shift=0) -> np.ndarray:
    """An (H, W) bool pet: an ellipse a little off centre."""
    w, h = size
    y, x = np.mgrid[:h, :w]
    return ((x - w * 0.45 - shift) / (w * 0.3)) ** 2 + ((y - h * 0.55) / (h * 0.3)) ** 2 < 1


def palette_mask(pet: np.ndarray, pet_index: int) -> Image.Image:
    """A two-colour palette mask: black background, green pet, the pet at index PET_INDEX."""
    im = Image.fromarray(np.where(pet, pet_index, 1 - pet_index).astype(np.uint8), mode="P")
    colours = [(0, 160, 0), (0, 0, 0)] if pet_index == 0 else [(0, 0, 0), (0, 160, 0)]
    im.putpalette([c for colour in colours for c in colour])
    return im


ENCODINGS = {  # name: (how to draw a mask from a bool pet, file ending)
    "zero_one": (lambda pet: Image.fromarray(pet.astype(np.uint8)), ".png"),
    "zero_255": (lambda pet: Image.fromarray(pet.astype(np.uint8) * 255), ".bmp"),
    "zero_seven": (lambda pet: Image.fromarray(pet.astype(np.uint8) * 7), ".tif"),
    "palette": (lambda pet: palette_mask(pet, pet_index=1), ".gif"),
    "palette_pet_first": (lambda pet: palette_mask(pet, pet_index=0), ".png"),
    "rgb_red": (lambda pet: Image.fromarray(np.stack([pet * 255, pet * 0, pet * 0], -1)
                                            .astype(np.uint8)), ".png"),
    "rgba_transparent": (lambda pet: Image.fromarray((pet[..., None] * [255, 0, 0, 255])
                                                     .astype(np.uint8)), ".png"),
    "one_bit": (lambda pet: Image.fromarray(pet), ".png"),
}


def write_image(root: Path, name: str, pet: np.ndarray, suffix=".png") -> None:
    """A photo whose pet is red on a dark background, so alignment can be checked."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((*pet.shape, 3), np.uint8)
    pixels[..., 0] = np.where(pet, 255, 0)
    Image.fromarray(pixels).save(root / "images" / f"{name}{suffix}")


def write_mask(root: Path, name: str, mask: Image.Image, suffix=".png") -> None:
    (root / "masks").mkdir(parents=True, exist_ok=True)
    mask.save(root / "masks" / f"{name}{suffix}")


def write_folder(root: Path, names, encoding="zero_255", size=SIZE) -> Path:
    """A folder of pairs NAMES, each mask in ENCODING."""
    draw, suffix = ENCODINGS[encoding]
    for i, name in enumerate(names):
        pet = ellipse(size, shift=i % 5)
        write_image(root, name, pet)
        write_mask(root, name, draw(pet), suffix)
    return root


def splits(root: Path) -> dict[str, list[str]]:
    return {mode: MaskFolderDataset(root, mode, image_size=16).names for mode in BANDS}


def quietly(make, *args, **kwargs):
    """MAKE(*ARGS, **KWARGS) with its warnings caught; returns (result, warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = make(*args, **kwargs)
    return result, [str(w.message) for w in caught]


def test_every_encoding_decodes_to_the_same_mask(tmp_path):
    pet = ellipse()
    root = tmp_path / "own"
    for name, (draw, suffix) in ENCODINGS.items():
        write_image(root, name, pet, ".jpg")
        write_mask(root, name, draw(pet), suffix)
        np.testing.assert_array_equal(read_mask(root / "masks" / f"{name}{suffix}"), pet,
                                      err_msg=name)
    (root / "train.txt").write_text("\n".join(ENCODINGS))
    ds, caught = quietly(MaskFolderDataset, root, "train", image_size=32)
    assert caught == [] and ds.names == list(ENCODINGS) and ds.skipped == {}
    masks = [ds[i]["mask"] for i in range(len(ds))]
    for name, mask in zip(ds.names, masks, strict=True):
        torch.testing.assert_close(mask, masks[0], msg=name)
    assert 0.1 < masks[0].mean() < 0.5
    # An all-black mask is a photo without a pet, not a broken file.
    write_mask(root, "empty", Image.new("L", SIZE, 0))
    assert not read_mask(root / "masks" / "empty.png").any()


def test_pairs_by_stem_and_reports_orphans_of_both_sides_in_one_warning(tmp_path):
    pairs = [f"pet_{i}" for i in range(10)]
    lonely_image, lonely_mask = [n for n in (f"o{i}" for i in range(60))
                                 if band_split(n) == "train"][:2]  # reported with train
    root = write_folder(tmp_path / "own", pairs)
    write_image(root, lonely_image, ellipse(), ".jpg")
    write_mask(root, lonely_mask, Image.fromarray(ellipse().astype(np.uint8)))
    write_image(root, "Cat", ellipse(), ".JPG")  # stems match case-sensitively:
    write_mask(root, "cat", Image.fromarray(ellipse().astype(np.uint8)))  # no pair
    (root / "masks" / "notes.txt").write_text("not a mask")  # other files are left alone
    ds, caught = quietly(MaskFolderDataset, root, "train", image_size=16)
    assert len(caught) == 1
    lines = dict(line.strip().split(": ", 1) for line in caught[0].splitlines()[1:])
    assert lonely_image in lines["image without mask"].split("; ")
    assert lonely_mask in lines["mask without image"].split("; ")
    assert ds.skipped[lonely_image] == "image without mask"
    assert ds.skipped[lonely_mask] == "mask without image"
    assert set(ds.names) <= set(pairs) and len(ds.names) == len(ds) > 0
    reported = {mode: quietly(MaskFolderDataset, root, mode, 16)[0].skipped for mode in BANDS}
    assert sum("Cat" in skipped for skipped in reported.values()) == 1  # in one split only
    assert sum("cat" in skipped for skipped in reported.values()) == 1


def test_masks_that_are_not_two_valued_unreadable_or_misfit_are_skipped(tmp_path):
    names = [f"p{i}" for i in range(9)]
    root = write_folder(tmp_path / "own", names, encoding="zero_one")  # masks/NAME.png
    pet = ellipse()
    trimap = np.where(pet, 1, 2).astype(np.uint8)
    trimap[pet ^ ellipse(shift=2)] = 3  # an Oxford trimap: 1 pet, 2 background, 3 boundary
    write_mask(root, "p0", Image.fromarray(trimap))
    soft = Image.fromarray(pet.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(2))
    write_mask(root, "p1", soft)  # anti-aliased: many greys
    write_mask(root, "p2", Image.fromarray(ellipse((24, 20)).astype(np.uint8) * 255))
    (root / "masks" / "p3.png").write_bytes(b"")
    (root / "images" / "p4.png").write_bytes(b"not an image at all")
    write_mask(root, "p5", Image.fromarray(np.where(pet, 80, 160).astype(np.uint8)))  # no black
    write_image(root, "p6", pet, ".jpg")  # a second image of p6: which one is meant?
    (root / "train.txt").write_text("# my split\n\n" + "\n".join(names) + "\nforgotten\n")
    ds, caught = quietly(MaskFolderDataset, root, "train", image_size=16)
    assert len(caught) == 1 and "Skipped 8 of 10" in caught[0]
    assert ds.names == ["p7", "p8"]
    assert ds.skipped["p0"] == "not two-valued (values 1, 2, 3)"
    assert ds.skipped["p1"].startswith("not two-valued (values 0, ")
    assert ds.skipped["p1"].endswith(" in all))")
    assert ds.skipped["p2"] == "size mismatch (mask 24x20, image 48x40)"
    assert ds.skipped["p3"] == "unreadable (masks/p3.png is empty)"
    assert ds.skipped["p4"].startswith("unreadable (images/p4.png: ")
    assert ds.skipped["p5"] == "not two-valued (values 80, 160)"
    assert ds.skipped["p6"] == "several files (images/p6.jpg, images/p6.png, masks/p6.png)"
    assert ds.skipped["forgotten"] == "not found (listed in train.txt)"
    for line in ("not two-valued: p0 (values 1, 2, 3); p1", "size mismatch: p2",
                 "unreadable: p3", "not found: forgotten"):
        assert line in caught[0]


def test_hash_split_is_deterministic_stable_and_never_empty(tmp_path):
    names = [f"pet_{i:03d}" for i in range(30)]
    root = write_folder(tmp_path / "own", names, size=(12, 10))
    before = splits(root)
    assert before == splits(root)
    assert sorted(sum(before.values(), [])) == names  # disjoint and complete
    assert all(before.values()) and len(before["train"]) > len(before["valid"])
    assert before == {m: sorted(n for n in names if band_split(n) == m) for m in BANDS}
    write_folder(root, [f"new_{i}" for i in range(6)], size=(12, 10))
    after = splits(root)
    for mode in BANDS:  # every name keeps its split
        assert set(before[mode]) <= set(after[mode])
    # From 3 names on, every split gets at least one; the name nearest an empty band moves.
    for k in range(3, 9):
        for start in range(0, 40, 7):
            chosen = hash_split([f"x{start + i}" for i in range(k)])
            assert set(chosen.values()) == set(BANDS), chosen
    three = write_folder(tmp_path / "three", ["a", "b", "c"], size=(12, 10))
    assert sorted(len(names) for names in splits(three).values()) == [1, 1, 1]


def sha1_fraction(name: str) -> float:
    """NAME's whole SHA-1 digest over 2**160: the fraction in [0, 1) the module text defines."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest(), 16) / 2**160


def test_name_fraction_is_the_sha1_digest_read_as_a_fraction():
    for name in ("cat", "Dog_07", "pet 12", "Ünïcode"):
        assert name_fraction(name) == pytest.approx(sha1_fraction(name), rel=1e-12, abs=1e-15)


def test_an_empty_split_borrows_the_nearest_pair_of_a_split_with_two_or_more():
    names = sorted((f"n{i}" for i in range(100)), key=sha1_fraction)
    band = {mode: [n for n in names if low <= sha1_fraction(n) < high]
            for mode, (low, high) in BANDS.items()}
    low, mid, high = band["train"][-3:]  # valid borrows the nearest, test the next one
    assert hash_split([low, mid, high]) == {low: "train", high: "valid", mid: "test"}
    near, far = band["test"][-2:]  # train's one pair is nearer valid, but train keeps it
    assert BANDS["valid"][0] - sha1_fraction(high) < sha1_fraction(near) - BANDS["valid"][1]
    assert hash_split([high, near, far]) == {high: "train", near: "valid", far: "test"}
    own = [low, mid, high, band["valid"][0], band["test"][0]]  # the borrowed pairs go back
    assert hash_split(own) == dict.fromkeys([low, mid, high], "train") | {
        own[3]: "valid", own[4]: "test"}


def test_split_files_decide_when_present(tmp_path):
    names = [f"pet_{i}" for i in range(7)]
    root = write_folder(tmp_path / "own", names, size=(12, 10))
    (root / "train.txt").write_text("# chosen by hand\npet_3\npet_0\n\npet_5\npet_6\n")
    (root / "valid.txt").write_text("pet_1\npet_4\n")
    (root / "test.txt").write_text("pet_2\n")
    assert splits(root) == {"train": ["pet_3", "pet_0", "pet_5", "pet_6"],
                            "valid": ["pet_1", "pet_4"], "test": ["pet_2"]}


def test_a_name_counts_once_and_in_the_first_of_test_valid_train(tmp_path):
    root = write_folder(tmp_path / "own", [f"p{i}" for i in range(5)], size=(12, 10))
    (root / "test.txt").write_text("p0\np0\n")
    (root / "valid.txt").write_text("p1\np0\n")
    (root / "train.txt").write_text("p2\np1\np0\np3\np2\n")
    found = {mode: quietly(MaskFolderDataset, root, mode, 16) for mode in BANDS}
    assert {mode: ds.names for mode, (ds, _) in found.items()} == {
        "train": ["p2", "p3"], "valid": ["p1"], "test": ["p0"]}
    for mode, (_, caught) in found.items():
        assert len(caught) == 1 and f"{mode}.txt" in caught[0].splitlines()[0]
    assert "Skipped 1 of 2 names" in found["test"][1][0]
    assert "p0: listed 2 times; the first counts" in found["test"][1][0]
    assert "p0: also in test.txt, which keeps it" in found["valid"][1][0]
    train_warning = found["train"][1][0]
    assert "Skipped 3 of 5 names" in train_warning
    for line in ("p1: also in valid.txt", "p0: also in test.txt", "p2: listed 2 times"):
        assert line in train_warning
    (root / "train.txt").write_text("p0\np1\n")
    with pytest.warns(UserWarning, match="also in"), pytest.raises(
            ValueError, match=r"every name in train\.txt is kept by another split file"):
        MaskFolderDataset(root, "train")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_split_files_with_a_byte_order_mark_are_read_whole(tmp_path, encoding):
    root = write_folder(tmp_path / "own", ["a", "b", "c"], size=(12, 10))
    for mode, text in {"train": "a\r\nb\r\n", "valid": "c\n", "test": ""}.items():
        (root / f"{mode}.txt").write_bytes(text.encode(encoding))
    ds, caught = quietly(MaskFolderDataset, root, "train", image_size=16)
    assert ds.names == ["a", "b"] and caught == []


def test_16_bit_grey_images_are_scaled_as_photos_does(tmp_path):
    root = write_folder(tmp_path / "own", ["a", "b", "c"])
    gradient = np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)
    Image.fromarray(gradient).save(root / "images" / "a.png")
    training = np.asarray(load_rgb(root / "images" / "a.png"))
    np.testing.assert_array_equal(training, np.asarray(read_photo(root / "images" / "a.png")))
    assert (training == 255).mean() < 0.01 and training.max() == 255
    np.testing.assert_allclose(training[..., 0], gradient / 257, atol=0.51)


def write_turned(root: Path, name: str, pet: np.ndarray, mask_view: np.ndarray) -> None:
    """An upright PET image stored turned with EXIF orientation 6, as phones do; MASK_VIEW."""
    upright = np.zeros((*pet.shape, 3), np.uint8)
    upright[..., 0] = np.where(pet, 255, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: "turn 90 degrees clockwise to show"
    Image.fromarray(np.rot90(upright).copy()).save(root / "images" / f"{name}.jpg", exif=exif,
                                                   quality=95)
    write_mask(root, name, Image.fromarray(mask_view.astype(np.uint8) * 255))


def test_images_are_turned_upright_as_photos_does_and_masks_fit_the_upright_view(tmp_path):
    root = write_folder(tmp_path / "own", ["plain"])
    pet = ellipse()  # (40, 48): landscape when upright
    write_turned(root, "phone", pet, pet)  # mask drawn on the upright view
    write_turned(root, "stored_view", pet, np.rot90(pet))  # mask drawn on the stored pixels
    (root / "train.txt").write_text("plain\nphone\nstored_view\n")
    ds, caught = quietly(MaskFolderDataset, root, "train", image_size=SIZE[0])
    assert ds.names == ["plain", "phone"] and len(caught) == 1
    assert ds.skipped["stored_view"] == "size mismatch (mask 40x48, image 48x40)"
    image = root / "images" / "phone.jpg"
    np.testing.assert_array_equal(np.asarray(load_rgb(image)), np.asarray(read_photo(image)))
    sample = ds[1]
    red = sample["image"][0] > 0.5
    assert (red == sample["mask"][0].bool()).float().mean() > 0.97  # image and mask aligned


def test_a_decompression_bomb_is_skipped_with_the_warning(tmp_path):
    root = write_folder(tmp_path / "own", ["a", "bomb_image", "bomb_mask"])
    (root / "images" / "bomb_image.png").write_bytes(png_header(20000, 10000))
    (root / "masks" / "bomb_mask.bmp").write_bytes(png_header(20000, 10000))  # PNG named .bmp
    (root / "train.txt").write_text("a\nbomb_image\nbomb_mask\n")
    ds, caught = quietly(MaskFolderDataset, root, "train", image_size=16)
    assert ds.names == ["a"] and len(caught) == 1 and "unreadable: bomb_image" in caught[0]
    assert ds.skipped["bomb_image"].startswith("unreadable (images/bomb_image.png: Image size")
    assert ds.skipped["bomb_mask"].startswith("unreadable (masks/bomb_mask.bmp: Image size")


def test_an_empty_split_raises_one_line_saying_which_and_why(tmp_path):
    root = write_folder(tmp_path / "two", ["a", "b"], size=(12, 10))
    empty = [mode for mode in BANDS if mode not in hash_split(["a", "b"]).values()]
    with pytest.raises(ValueError) as err:
        MaskFolderDataset(root, empty[0])
    assert f"'{empty[0]}' split" in str(err.value) and "2 image/mask pairs" in str(err.value)
    assert "\n" not in str(err.value)
    (root / "train.txt").write_text("a\n")
    (root / "valid.txt").write_text("b\n")
    with pytest.raises(ValueError, match=r"'test' split .* test\.txt is missing") as err:
        MaskFolderDataset(root, "test")
    assert "\n" not in str(err.value)
    (root / "valid.txt").write_text("# nothing yet\n")
    with pytest.raises(ValueError, match=r"'valid' split .* valid\.txt lists no names"):
        MaskFolderDataset(root, "valid")
    (root / "masks" / "b.bmp").write_bytes(b"broken")
    (root / "valid.txt").write_text("b\n")
    with pytest.warns(UserWarning, match="unreadable"), pytest.raises(
            ValueError, match=r"'valid' split .*none of the 1 names in valid\.txt is usable"):
        MaskFolderDataset(root, "valid")
    with pytest.raises(ValueError, match="mode"):
        MaskFolderDataset(root, "training")


def test_samples_are_shaped_like_simple_oxford_pet_samples(tmp_path, tiny_root):
    root = write_folder(tmp_path / "own", [f"pet_{i}" for i in range(12)])
    ours = MaskFolderDataset(root, "train", image_size=32)[0]
    oxford = oxford_pet.SimpleOxfordPetDataset(tiny_root, "train", image_size=32)[0]
    assert ours.keys() == oxford.keys()
    for key in ("image", "mask", "trimap"):
        assert ours[key].shape == oxford[key].shape and ours[key].dtype == oxford[key].dtype
        assert type(ours[key]) is type(oxford[key]) is torch.Tensor
    assert 0.0 <= ours["image"].min() and ours["image"].max() <= 1.0
    assert set(ours["trimap"].unique().tolist()) == {PET, BACKGROUND}  # no boundary band
    torch.testing.assert_close(ours["mask"], (ours["trimap"] == PET).float())
    assert isinstance(ours["name"], str)
    batch = oxford_pet.collate([MaskFolderDataset(root, "train", 32)[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, 32, 32) and batch["mask"].shape == (3, 1, 32, 32)
    limited = MaskFolderDataset(root, "train", image_size=32, limit=2)
    assert len(limited) == 2


def test_augmentation_doubles_training_and_keeps_image_and_mask_aligned(tmp_path):
    root = write_folder(tmp_path / "own", [f"pet_{i}" for i in range(12)])
    plain = MaskFolderDataset(root, "train", image_size=32)
    doubled = MaskFolderDataset(root, "train", image_size=32, augment=True)
    assert len(doubled) == 2 * len(plain)
    torch.testing.assert_close(doubled[2]["image"], plain[1]["image"])
    assert doubled[3]["name"] == plain[1]["name"]
    assert len(MaskFolderDataset(root, "valid", 32, augment=True)) == len(
        MaskFolderDataset(root, "valid", 32))
    torch.manual_seed(0)
    for index in range(1, 2 * len(plain), 2):
        sample = doubled[index]
        mask = sample["mask"]
        red = sample["image"][0] > 0.1  # the red pet, also after greyscale and brightness x0.7
        near_edge = (max_pool2d(mask, 3, 1, 1) != -max_pool2d(-mask, 3, 1, 1))[0]
        assert not (red != mask[0].bool())[~near_edge].any(), "image and mask are misaligned"
        assert mask.sum() > 0


def test_load_dataset_and_find_dataset_accept_the_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PETSEG_DATA", raising=False)
    root = write_folder(tmp_path / "own", [f"pet_{i}" for i in range(10)])
    assert is_mask_folder(root) and not is_mask_folder(write_dataset(tmp_path / "oxford", 4, 1))
    ds = oxford_pet.load_dataset(root, "train", image_size=24, augment=True, cache=True)
    assert isinstance(ds, MaskFolderDataset) and ds.augment and ds.has_masks
    assert ds[1]["image"].shape == (3, 24, 24)
    assert oxford_pet.find_dataset(root) == root
    with pytest.raises(FileNotFoundError, match="images/ and masks/"):
        oxford_pet.find_dataset(tmp_path / "nowhere")
    monkeypatch.setenv("PETSEG_DATA", str(root))
    assert oxford_pet.find_dataset() == root
    other = write_folder(tmp_path / "other", ["a", "b", "c"])
    assert oxford_pet.find_dataset(other) == other  # an explicit path beats PETSEG_DATA


def test_a_tiny_training_run_on_the_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("PETSEG_DATA", raising=False)
    folder = write_folder(tmp_path / "own", [f"pet_{i:02d}" for i in range(20)])
    history = train(TrainConfig(
        data_path=str(folder), model="unet", model_kwargs={"base_channels": 4}, image_size=32,
        epochs=1, batch_size=4, progress=False, device="cpu",
        checkpoint_dir=str(tmp_path / "c"), output_dir=str(tmp_path / "o")))
    assert all(len(curve) == 1 and math.isfinite(curve[0]) for curve in history.values())
