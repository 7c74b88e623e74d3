"""The dataset seam: one resized dataset (resized.py) for every format of the registry (formats.py).

Each format's samples are checked against the recipe the module texts give, replayed here from
the format's own reading: plain samples resized, augmented ones the augmentations of the same
pair with the same random numbers, CutMix with a training image drawn at random.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from petseg_lib.data import formats
from petseg_lib.data.augment import (
    SquareResize,
    augmentations,
    cut_mix,
    model_sample,
    to_tv_tensors,
)
from petseg_lib.data.formats import (
    DATASET_FORMATS,
    dataset_format,
    find_dataset,
    load_dataset,
    original_size_dataset,
)
from petseg_lib.data.mask_folder import MaskFolderDataset
from petseg_lib.data.masks import BACKGROUND, PET
from petseg_lib.data.oxford_pet import OxfordPetDataset, SimpleOxfordPetDataset
from petseg_lib.data.resized import OriginalSizes, ResizedDataset

from .conftest import write_dataset
from .test_mask_folder import write_folder

SIZE = 32


class LabelFolder(ResizedDataset):
    """A toy third format: ROOT/pictures/NAME.png, ROOT/labels/NAME.png (1 = pet, 0 = not).

    Every fourth name (sorted) is validation, the rest training; there is no test split.
    """

    def __init__(self, root, mode="train", image_size=256, augment=False, limit=None,
                 cache=False, augment_level="report", keep_originals=True):
        self.root, self.mode, self.has_masks = Path(root), mode, True
        names = sorted(p.stem for p in (self.root / "pictures").glob("*.png"))
        self.names = [n for i, n in enumerate(names) if (i % 4 == 3) == (mode == "valid")]
        self.names = self.names[:limit]
        super().__init__(image_size, augment, cache, augment_level, keep_originals)

    @classmethod
    def detect(cls, root) -> bool:
        return (Path(root) / "pictures").is_dir() and (Path(root) / "labels").is_dir()

    def original(self, name):
        image = np.array(Image.open(self.root / "pictures" / f"{name}.png").convert("RGB"))
        label = np.asarray(Image.open(self.root / "labels" / f"{name}.png"))
        return image, np.where(label == 1, PET, BACKGROUND).astype(np.uint8)

    def cache_files(self):
        return [self.root / sub / f"{n}.png" for sub in ("pictures", "labels") for n in self.names]


def write_label_folder(root: Path, n: int = 8) -> Path:
    """N pictures of (40 + i) x 30 pixels, each with a rectangle labelled pet."""
    rng = np.random.default_rng(0)
    for sub in ("pictures", "labels"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        picture = rng.integers(0, 256, (30, 40 + i, 3), dtype=np.uint8)
        label = np.zeros((30, 40 + i), np.uint8)
        label[5:25, 10:30] = 1
        Image.fromarray(picture).save(root / "pictures" / f"shot{i}.png")
        Image.fromarray(label).save(root / "labels" / f"shot{i}.png")
    return root


@pytest.fixture
def label_format(monkeypatch):
    monkeypatch.setitem(DATASET_FORMATS, "label_folder", LabelFolder)


def make_root(kind: str, tmp_path: Path) -> Path:
    if kind == "oxford":
        return write_dataset(tmp_path / "pets", n_trainval=16, n_test=3)
    if kind == "mask_folder":
        return write_folder(tmp_path / "own", [f"pet_{i}" for i in range(12)])
    return write_label_folder(tmp_path / "labels")


def recipe(ds: ResizedDataset, index: int) -> dict:
    """Sample INDEX of DS as the module texts describe it, from DS's own reading."""
    augmented = ds.augment and (index % 2 == 1 or not ds.keep_originals)
    name = ds.names[index // 2 if ds.augment else index]
    image, trimap = to_tv_tensors(dict(zip(("image", "trimap"), ds.read(name), strict=True)))
    resize = SquareResize(ds.image_size)
    if augmented:
        image, trimap = augmentations(ds.image_size, ds.augment_level)(image, trimap)
    else:
        image, trimap = resize(image, trimap)
    if augmented and ds.augment_level == "strong" and ds.strong_cut_mix:
        other = ds.names[int(torch.randint(len(ds.names), (1,)))]
        other = to_tv_tensors(dict(zip(("image", "trimap"), ds.read(other), strict=True)))
        image, trimap = cut_mix(image, trimap, *resize(*other))
    return model_sample(image, trimap, name)


def same(a: dict, b: dict) -> bool:
    return a["name"] == b["name"] and all(torch.equal(a[k], b[k]) for k in ("image", "trimap"))


@pytest.mark.parametrize("kind", ["oxford", "mask_folder", "label_folder"])
@pytest.mark.parametrize("augment,keep,level,cache", [
    (False, True, "report", False), (False, True, "report", True),
    (True, True, "report", False), (True, False, "report", True),
    (True, True, "strong", False), (True, True, "strong", True)])
def test_every_format_resizes_doubles_and_augments_by_the_one_recipe(
        tmp_path, private_cache, label_format, kind, augment, keep, level, cache):
    ds = load_dataset(make_root(kind, tmp_path), "train", SIZE, augment, cache=cache,
                      augment_level=level, keep_originals=keep)
    assert type(ds) is DATASET_FORMATS[kind]
    assert len(ds) == (2 if augment else 1) * len(ds.names)
    for index in range(len(ds)):
        torch.manual_seed(index)
        sample = ds[index]
        torch.manual_seed(index)
        assert same(sample, recipe(ds, index)), (kind, index)
        assert sample["image"].shape == (3, SIZE, SIZE) and sample["trimap"].dtype == torch.uint8
    if augment and keep:  # index 2i is image i as it is, on every format
        plain = load_dataset(ds.root, "train", SIZE)
        assert all(same(ds[2 * i], plain[i]) for i in range(len(plain)))


@pytest.mark.parametrize("kind", ["oxford", "label_folder"])
def test_a_format_that_names_its_files_gets_the_cache_bit_for_bit(
        tmp_path, private_cache, label_format, kind):
    root = make_root(kind, tmp_path)
    cached = load_dataset(root, "valid", SIZE, cache=True)
    decoded = load_dataset(root, "valid", SIZE)
    assert cached.cache is not None and decoded.cache is None
    assert all(same(cached[i], decoded[i]) for i in range(len(decoded)))
    assert cached.cache.read(0)[0].shape == (3, SIZE, SIZE)


def test_a_mask_folder_has_no_cache_and_no_cut_mix(tmp_path, private_cache):
    ds = load_dataset(make_root("mask_folder", tmp_path), "train", SIZE, augment=True,
                      cache=True, augment_level="strong")
    assert isinstance(ds, MaskFolderDataset) and ds.cache is None and not ds.strong_cut_mix
    assert not private_cache.exists() or not list(private_cache.rglob("*.npy"))


def test_a_third_format_is_one_class_and_one_registry_line(tmp_path, label_format, monkeypatch):
    root = write_label_folder(tmp_path / "labels", n=8)
    assert dataset_format(root) == "label_folder"
    assert find_dataset(root) == root
    monkeypatch.delitem(DATASET_FORMATS, "label_folder")
    assert dataset_format(root) is None
    with pytest.raises(FileNotFoundError, match="images/ and masks/"):
        find_dataset(root)


def test_original_size_datasets_of_every_format(tmp_path, label_format):
    pets = load_dataset(make_root("oxford", tmp_path), "test", SIZE)
    originals = original_size_dataset(pets, 2)
    assert type(originals) is OxfordPetDataset and len(originals) == 2
    for kind in ("mask_folder", "label_folder"):
        ds = load_dataset(make_root(kind, tmp_path), "valid", SIZE)
        originals = original_size_dataset(ds)
        assert isinstance(originals, OriginalSizes) and originals.names == ds.names
        for index, name in enumerate(ds.names):
            image, trimap = ds.original(name)
            sample = originals[index]
            assert sample["name"] == name and np.array_equal(sample["image"], image)
            assert np.array_equal(sample["trimap"], trimap)
            assert np.array_equal(sample["mask"], (trimap == PET).astype(np.float32))


def test_the_oxford_format_decodes_small_and_its_originals_are_full_size(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=4, n_test=1)
    photo = np.random.default_rng(0).integers(0, 256, (400, 480, 3), dtype=np.uint8)
    Image.fromarray(photo).save(root / "images" / "Cat_0.jpg")
    Image.fromarray(np.full((400, 480), 2, np.uint8)).save(
        root / "annotations" / "trimaps" / "Cat_0.png")
    ds = SimpleOxfordPetDataset(root, "train", image_size=48)
    image, trimap = ds.read("Cat_0")
    assert image.shape == (100, 120, 3) and trimap.shape == (100, 120)  # 1/4: still >= 96
    assert ds.original("Cat_0")[0].shape == (400, 480, 3)
    assert SimpleOxfordPetDataset.detect(root) and not MaskFolderDataset.detect(root)


def test_the_report_names_stay_importable_from_oxford_pet():
    from petseg_lib.data import oxford_pet

    for name in ("load_dataset", "find_dataset", "original_size_dataset"):
        assert getattr(oxford_pet, name) is getattr(formats, name)
    from petseg_lib.data.oxford_pet import collate, load_dataset  # noqa: F401
    with pytest.raises(AttributeError):
        oxford_pet.no_such_name  # noqa: B018


def test_data_modules_import_nothing_above_the_data_floor():
    data = ["oxford_pet", "mask_folder", "resized", "cache", "augment", "masks", "user_files",
            "download", "batch"]
    shared = ["petseg_lib", "petseg_lib.data", "petseg_lib.errors", "petseg_lib.paths",
              "petseg_lib.threads"]
    code = (f"import sys\nfor m in {data}: __import__('petseg_lib.data.' + m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('petseg_lib') and not "
            f"m.startswith('petseg_lib.data.') and m not in {shared}))\n"
            "print('petseg_lib.data.formats' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["[]", "False"]  # formats is read only when asked


@pytest.mark.parametrize("kind", ["oxford", "mask_folder"])
def test_every_format_says_where_each_photo_is(tmp_path, private_cache, kind):
    ds = load_dataset(make_root(kind, tmp_path), "train", SIZE)
    for name in ds.names:
        path = ds.image_path(name)
        assert path.is_file() and path.stem == name
        with Image.open(path) as photo:
            assert np.array_equal(np.asarray(photo.convert("RGB")), ds.read(name)[0])
