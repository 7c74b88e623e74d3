"""The Oxford-IIIT Pet dataset: splits, reading files, and the datasets a model trains on.

On disk (the official layout, also used by the offline sample dataset):

    ROOT/images/NAME.jpg
    ROOT/annotations/trimaps/NAME.png     1 = pet, 2 = background, 3 = boundary
    ROOT/annotations/trainval.txt         "NAME CLASS-ID SPECIES BREED-ID" per line
    ROOT/annotations/test.txt

Splits: `test` is test.txt. `train` and `valid` both come from trainval.txt: every 10th
name (positions 9, 19, 29, ... counting from 0) goes to `valid`, the rest to `train`.
The file is sorted by breed, so `valid` gets every breed in proportion. A name listed twice
counts once, and a trainval name also in test.txt stays in `test` only; one warning per file
lists the names left out.

`OxfordPetDataset` gives original-size images and trimaps; `SimpleOxfordPetDataset` gives
square, resized float samples ready for a model, doubled with augmented copies when asked;
`load_dataset` builds the latter. Downloading is in download.py, augmentation in augment.py,
the resized-image cache in cache.py. `load_dataset` and `find_dataset` also accept your own
folder of images/ and masks/ (mask_folder.py); user_files.py reads images and split files
for both, and `original_size_dataset` gives either kind's split at its images' own sizes.
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .augment import augmentations, cut_mix, model_sample, to_tv_tensors
from .cache import ResizedCache, checked_pairs, open_cache
from .cli import run_cli, writable_folder
from .download import download, is_downloaded, missing_message, network_available
from .mask_folder import MaskFolderDataset, MaskFolderOriginals, is_mask_folder, unique_names
from .masks import BACKGROUND, BOUNDARY, PET, invalid_trimap_values, trimap_to_mask
from .paths import default_data_path
from .sample import ensure_sample_dataset
from .user_files import UNREADABLE, load_rgb, read_text_any, to_rgb

MODES = ("train", "valid", "test")
VALID_EVERY = 10  # every 10th trainval name is a validation image


def find_dataset(data_path: str | Path | None = None, download_if_missing: bool = False) -> Path:
    """Pick the data: DATA_PATH, else PETSEG_DATA, the real dataset, a download, or the sample."""
    if data_path is None and os.environ.get("PETSEG_DATA"):
        data_path = os.environ["PETSEG_DATA"]
    if data_path is not None:
        if not (is_downloaded(data_path) or is_mask_folder(data_path)):
            raise FileNotFoundError(missing_message(Path(data_path)) + " Or give your own "
                                    "folder of images/ and masks/ (see mask_folder.py).")
        return Path(data_path)
    real = default_data_path()
    if is_downloaded(real):
        print(f"Using the Oxford-IIIT Pet dataset in {real}")
        return real
    if download_if_missing and network_available():
        return download(real)
    sample = ensure_sample_dataset()
    print(f"NOTE: the Oxford-IIIT Pet dataset is not in {real}; using the offline sample "
          f"dataset of toy pets in {sample}. Run `python -m petseg_lib.oxford_pet --download` "
          "to fetch the real one (about 800 MB).")
    return sample


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def read_split_file(path: str | Path) -> list[str]:
    """Image names in a split file, skipping blank and '#' comment lines."""
    names = []
    for line in read_text_any(path).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split()[0])
    return names


def split_names(root: str | Path, mode: str) -> list[str]:
    """The image names of MODE ('train', 'valid' or 'test') in ROOT."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    ann = Path(root) / "annotations"
    test_file, trainval_file = ann / "test.txt", ann / "trainval.txt"
    test_names = read_split_file(test_file)
    if mode == "test":
        return unique_names(test_names, test_file, {})
    in_test = dict.fromkeys(test_names, test_file.name)  # a test image never trains
    names = unique_names(read_split_file(trainval_file), trainval_file, in_test)
    is_valid = [i % VALID_EVERY == VALID_EVERY - 1 for i in range(len(names))]
    return [n for n, v in zip(names, is_valid, strict=True) if v == (mode == "valid")]


def _check_pair(image_path: Path, trimap_path: Path | None) -> str | None:
    """Why this image/trimap pair cannot be used, or None when it can."""
    if not image_path.is_file():
        return "image missing"
    try:
        with Image.open(image_path) as im:
            size = im.size
            im.draft("RGB", (64, 64))  # decode JPEGs at a small scale: fast, still reads all data
            im.load()
    except UNREADABLE as err:
        return f"image cannot be decoded ({err})"
    if trimap_path is None:
        return None
    if not trimap_path.is_file():
        return "trimap missing"
    try:
        with Image.open(trimap_path) as tm:
            trimap_size, trimap = tm.size, np.asarray(tm)
    except UNREADABLE as err:
        return f"trimap cannot be read ({err})"
    if trimap_size != size:
        return f"trimap is {trimap_size[0]}x{trimap_size[1]}, image is {size[0]}x{size[1]}"
    if trimap.ndim != 2:
        return f"trimap has {trimap.shape[-1]} channels, not one"
    bad = invalid_trimap_values(trimap)
    if bad:
        return f"trimap has values {bad[:6]} besides 1 (pet), 2 (background), 3 (boundary)"
    return None


class OxfordPetDataset(Dataset):
    """Images, trimaps and binary masks of one split, at their original size."""

    def __init__(self, root: str | Path, mode: str = "train", limit: int | None = None):
        self.root = Path(root)
        self.mode = mode
        if not is_downloaded(self.root):
            raise FileNotFoundError(missing_message(self.root))
        self.images_dir = self.root / "images"
        self.trimaps_dir = self.root / "annotations" / "trimaps"
        names = split_names(self.root, mode)
        if limit is not None and limit < len(names):
            picks = np.linspace(0, len(names) - 1, limit).round().astype(int)
            names = [names[i] for i in picks]
        # A test split may come without ground truth: then masks are None.
        self.has_masks = mode != "test" or any(self._trimap_path(n).is_file() for n in names)
        self.names, self.skipped = self._usable(names)
        if not self.names:
            raise ValueError(f"The '{mode}' split of {self.root} has no usable images "
                             f"({len(names)} listed, {len(self.skipped)} skipped).")

    def _image_path(self, name: str) -> Path:
        return self.images_dir / f"{name}.jpg"

    def _trimap_path(self, name: str) -> Path:
        return self.trimaps_dir / f"{name}.png"

    def _usable(self, names: list[str]) -> tuple[list[str], dict[str, str]]:
        """Keep the names whose files are usable; warn once about all the others."""
        # A name such as '../x' in a split file would read outside ROOT: never opened.
        plain = [n for n in names if n == Path(n).name and not n.startswith(".") and "\\" not in n]
        pairs = {name: (self._image_path(name),
                        self._trimap_path(name) if self.has_masks else None) for name in plain}
        problems = checked_pairs(self.root, pairs, _check_pair)  # remembered between runs
        problems = {name: problems.get(name, "not a plain file name") for name in names}
        skipped = {name: problem for name, problem in problems.items() if problem}
        if skipped:
            listing = "\n".join(f"  {name}: {why}" for name, why in skipped.items())
            warnings.warn(f"Skipped {len(skipped)} of {len(names)} images of the "
                          f"'{self.mode}' split in {self.root}:\n{listing}", stacklevel=3)
        return [n for n in names if n not in skipped], skipped

    @staticmethod
    def _preprocess_mask(trimap: np.ndarray) -> np.ndarray:
        """The design report's name for the trimap -> binary mask rule."""
        return trimap_to_mask(trimap)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        name = self.names[index]
        # As stored, not turned by an EXIF tag: the trimaps match the stored pixels' size.
        image = np.array(load_rgb(self._image_path(name), upright=False))  # (H, W, 3) uint8
        sample = {"image": image, "mask": None, "trimap": None, "name": name}
        if self.has_masks:
            with Image.open(self._trimap_path(name)) as tm:  # 8 or 16 bits, checked as 1/2/3
                trimap = np.asarray(tm).astype(np.uint8)  # (H, W) uint8
            sample["trimap"] = trimap
            sample["mask"] = self._preprocess_mask(trimap)  # (H, W) float32 in {0, 1}
        return sample


class SimpleOxfordPetDataset(OxfordPetDataset):
    """Square, resized, float samples ready for a model; doubled with augmentation when asked.

    cache=True reads plain samples from the resized-image cache (cache.py), building it on
    first use: bit for bit the ones decoded from JPEG. Augmented samples are always cut from
    the full-size JPEG, so their crops keep every detail. When ROOT cannot be written, the
    dataset warns and decodes JPEGs as without the cache.

    augment_level picks the augmentations (augment.AUGMENT_LEVELS); at "strong", augmented
    samples also get CutMix with another training image drawn with torch's global random
    numbers, which the DataLoader seeds, so a run stays reproducible.
    """

    def __init__(self, root: str | Path, mode: str = "train", image_size: int = 256,
                 augment: bool = False, limit: int | None = None, cache: bool = False,
                 augment_level: str = "report", keep_originals: bool = True):
        super().__init__(root, mode, limit)
        self.image_size = image_size
        self.augment = augment and mode == "train"
        self.keep_originals = keep_originals  # False: the even indices are augmented too
        self.augment_level = augment_level
        self.resize = v2.Resize((image_size, image_size), antialias=True)
        self.augmentations = augmentations(image_size, augment_level)
        self.cache = self._open_cache() if cache else None

    def _open_cache(self) -> ResizedCache | None:
        """The valid cache of these names and this size, built when missing or stale."""
        files = [self._image_path(n) for n in self.names]
        if self.has_masks:
            files += [self._trimap_path(n) for n in self.names]
        return open_cache(self.root, self.mode, files, len(self.names), self.image_size,
                          self.has_masks, self._decode_resized)

    def _decode(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask | None, str]:
        """Image (3, H, W) and trimap (1, H, W) of name INDEX, at least twice the model's size.

        A JPEG is decoded straight at 1/2, 1/4 or 1/8 of its size when that still leaves
        twice the training size (`draft`): two to three times faster for small images, and
        crops zoomed in by up to 1.4 still find the pixels they need. The trimap is shrunk to
        the decoded image's size (nearest neighbour), so both keep the same geometry.
        """
        name = self.names[index]
        with Image.open(self._image_path(name)) as im:
            im.draft("RGB", (2 * self.image_size, 2 * self.image_size))
            image = np.array(to_rgb(im))  # (h, w, 3) uint8, h <= H
        trimap = None
        if self.has_masks:
            with Image.open(self._trimap_path(name)) as tm:  # 8 or 16 bits, checked as 1/2/3
                trimap = tm.resize(image.shape[1::-1], Image.Resampling.NEAREST)
                trimap = np.asarray(trimap).astype(np.uint8)  # (h, w) uint8
        return (*to_tv_tensors({"image": image, "trimap": trimap}), name)

    def _decode_resized(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """What the cache stores for name INDEX: the resized image and trimap (or None)."""
        image, trimap, _ = self._decode(index)
        if trimap is None:
            return self.resize(image).numpy(), None
        image, trimap = self.resize(image, trimap)
        return image.numpy(), trimap.numpy()

    def _cached(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask | None]:
        """Resized image and trimap (or None) of name INDEX from the cache."""
        image, trimap = self.cache.read(index)
        trimap = None if trimap is None else tv_tensors.Mask(torch.from_numpy(trimap))
        return tv_tensors.Image(torch.from_numpy(image)), trimap

    def _random_resized(self) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        """A training image drawn at random (now and then this one), resized as plain ones are."""
        index = int(torch.randint(len(self.names), (1,)))
        if self.cache is not None:
            return self._cached(index)
        image, trimap, _ = self._decode(index)
        return self.resize(image, trimap)

    def __len__(self) -> int:
        # With augmentation each image appears twice: even index original, odd index augmented.
        return 2 * len(self.names) if self.augment else len(self.names)

    def __getitem__(self, index: int) -> dict:
        augmented = self.augment and (index % 2 == 1 or not self.keep_originals)
        index = index // 2 if self.augment else index
        if self.cache is not None and not augmented:  # the resized JPEG's very pixels
            image, trimap = self._cached(index)
            name = self.names[index]
        else:  # augmentations crop from the full-size image, so they decode the JPEG
            image, trimap, name = self._decode(index)
            if trimap is None:
                image = self.resize(image)
            else:
                transform = self.augmentations if augmented else self.resize
                image, trimap = transform(image, trimap)
        if augmented and self.augment_level == "strong":  # after the cache: both paths alike
            image, trimap = cut_mix(image, trimap, *self._random_resized())
        return model_sample(image, trimap, name)


from .batch import collate  # noqa: F401  (the batch room; kept importable from here)


def load_dataset(data_path: str | Path, mode: str, image_size: int = 256,
                 augment: bool = False, limit: int | None = None, cache: bool = False,
                 augment_level: str = "report",
                 keep_originals: bool = True) -> SimpleOxfordPetDataset | MaskFolderDataset:
    """The dataset of MODE, resized to IMAGE_SIZE, augmented (train only) at AUGMENT_LEVEL."""
    if is_mask_folder(data_path):  # your own images/ and masks/; it has no cache: ignored
        return MaskFolderDataset(data_path, mode, image_size, augment, limit, augment_level,
                                 keep_originals)
    return SimpleOxfordPetDataset(data_path, mode, image_size=image_size, augment=augment,
                                  limit=limit, cache=cache, augment_level=augment_level,
                                  keep_originals=keep_originals)


def original_size_dataset(dataset: Dataset, limit: int | None = None) -> Dataset:
    """The split of DATASET (from load_dataset) at each image's original size."""
    if isinstance(dataset, MaskFolderDataset):  # your own images/ and masks/
        return MaskFolderOriginals(dataset)
    return OxfordPetDataset(dataset.root, dataset.mode, limit=limit)


def main(argv: list[str] | None = None) -> None:
    """Command line: download the dataset, or print its split sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(default_data_path()),
                        help="dataset folder (default: %(default)s)")
    parser.add_argument("--download", action="store_true",
                        help="download and extract the official archives (about 800 MB)")
    args = parser.parse_args(argv)
    if args.download:
        download(writable_folder(args.root))  # a file, or a folder without write access: one line
    for mode in MODES:
        print(f"{mode:>5}: {len(OxfordPetDataset(args.root, mode))} images")


def trimap_statistics(dataset: OxfordPetDataset) -> dict[str, np.ndarray]:
    """Width, height and pet/background/boundary/foreground fractions of each trimap of DATASET."""
    rows = []
    for name in dataset.names:
        with Image.open(dataset.trimaps_dir / f"{name}.png") as im:
            trimap = np.asarray(im)  # (H, W) values in {1, 2, 3}
        height, width = trimap.shape
        rows.append((width, height, (trimap == PET).mean(), (trimap == BACKGROUND).mean(),
                     (trimap == BOUNDARY).mean()))
    columns = np.array(rows, dtype=np.float64).reshape(-1, 5)
    stats = dict(zip(("width", "height", "pet", "background", "boundary"), columns.T,
                     strict=True))
    stats["foreground"] = stats["pet"] + stats["boundary"]  # the training mask's share
    return stats



if __name__ == "__main__":
    run_cli(main)
