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

`OxfordPetDataset` gives original-size images and trimaps; `SimpleOxfordPetDataset` is the
Oxford format of resized.py: square, resized float samples ready for a model, doubled with
augmented copies when asked, read from JPEGs decoded at a small scale. Downloading is in
download.py (its command line in data.py), augmentation in augment.py, the resized-image cache
in cache.py. `load_dataset`, `find_dataset` and `original_size_dataset` pick among every
dataset format (formats.py: also your own folder of images/ and masks/, mask_folder.py) and
stay importable from here, as does `collate` (batch.py).
"""

from __future__ import annotations

import warnings
from importlib import import_module
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .batch import collate  # noqa: F401  (the batch room; kept importable from here)
from .cache import checked_pairs
from .download import is_downloaded, missing_message
from .masks import BACKGROUND, BOUNDARY, PET, invalid_trimap_values, trimap_to_mask
from .pet_labels import labels_of
from .resized import ResizedDataset, original_sample
from .user_files import UNREADABLE, load_rgb, read_text_any, to_rgb, unique_names

MODES = ("train", "valid", "test")
VALID_EVERY = 10  # every 10th trainval name is a validation image
IN_FORMATS = ("load_dataset", "find_dataset", "original_size_dataset")  # formats.py's, kept here


def __getattr__(name: str) -> object:
    """The names of IN_FORMATS, importable from here as the design report has them.

    formats.py imports this module (the Oxford format), so they are looked up on first use.
    """
    if name in IN_FORMATS:
        return getattr(import_module(".formats", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def one_channel(trimap: np.ndarray) -> np.ndarray | None:
    """TRIMAP as (H, W): as it is, or the first channel of a grey trimap re-saved in colour.

    An image editor may store the values 1, 2, 3 in all three channels; that file says the same
    thing. None when the colour channels differ: then the file is not a trimap.
    """
    if trimap.ndim == 2:
        return trimap
    colours = trimap[..., :3]  # an alpha channel says nothing about the classes
    return trimap[..., 0] if (colours == colours[..., :1]).all() else None


def read_trimap(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The trimap at PATH as (H, W) uint8, shrunk to SIZE (width, height) when given.

    8 or 16 bits, or grey saved in colour; nearest neighbours keep its values, which the
    dataset checked when it was loaded.
    """
    with Image.open(path) as tm:
        resized = tm if size is None else tm.resize(size, Image.Resampling.NEAREST)
        trimap = one_channel(np.asarray(resized))
    if trimap is None:
        raise ValueError(f"{path.name}: the trimap's colour channels differ")
    return trimap.astype(np.uint8)


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
    channels, trimap = trimap.shape[-1], one_channel(trimap)
    if trimap is None:
        return f"trimap has {channels} channels that differ, not one value per pixel"
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

    def original(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """NAME's image (H, W, 3) uint8 and trimap (H, W) uint8 (None without masks)."""
        # As stored, not turned by an EXIF tag: the trimaps match the stored pixels' size.
        image = np.array(load_rgb(self._image_path(name), upright=False))
        if not self.has_masks:
            return image, None
        return image, read_trimap(self._trimap_path(name))  # checked as 1/2/3 on loading

    def __getitem__(self, index: int) -> dict:
        return original_sample(self, self.names[index])  # mask: _preprocess_mask's rule


class SimpleOxfordPetDataset(ResizedDataset, OxfordPetDataset):
    """Square, resized, float samples ready for a model; doubled with augmentation when asked.

    The Oxford format of resized.py, which owns resizing, augmentation (augment_level picks
    the set: augment.AUGMENT_LEVELS), the cache and `originals()`. cache=True reads plain
    samples from the resized-image cache (cache.py), filled as they are first read: bit for
    bit the ones decoded from JPEG.
    """

    def __init__(self, root: str | Path, mode: str = "train", image_size: int = 256,
                 augment: bool = False, limit: int | None = None, cache: bool = False,
                 augment_level: str = "report", keep_originals: bool = True):
        OxfordPetDataset.__init__(self, root, mode, limit)
        ResizedDataset.__init__(self, image_size, augment, cache, augment_level, keep_originals)

    @classmethod
    def detect(cls, root: str | Path) -> bool:
        """True when ROOT holds the official layout (download.is_downloaded)."""
        return is_downloaded(root)

    def cache_files(self) -> list[Path]:
        """The images, and the trimaps when the split has them: the cache's key."""
        files = [self._image_path(n) for n in self.names]
        if self.has_masks:
            files += [self._trimap_path(n) for n in self.names]
        return files

    def originals(self, limit: int | None = None) -> OxfordPetDataset:
        """This split at the images' own size: LIMIT names of it, evenly spread."""
        return OxfordPetDataset(self.root, self.mode, limit=limit)

    def read_labels(self, task: str) -> dict[str, int]:
        """Each name's species or breed (TASK), from annotations/list.txt (pet_labels.py)."""
        return labels_of(self.names, self.root, task)

    def image_path(self, name: str) -> Path:
        """The file of NAME's photo: images/NAME.jpg."""
        return self._image_path(name)

    def read(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """NAME's image (h, w, 3) and trimap (h, w) uint8 (or None), at least twice the size.

        A JPEG is decoded straight at 1/2, 1/4 or 1/8 of its size when that still leaves
        twice the training size (`draft`): two to three times faster for small images, and
        crops zoomed in by up to 1.4 still find the pixels they need. The trimap is shrunk to
        the decoded image's size (nearest neighbour), so both keep the same geometry.
        """
        with Image.open(self._image_path(name)) as im:
            im.draft("RGB", (2 * self.image_size, 2 * self.image_size))
            image = np.array(to_rgb(im))  # (h, w, 3) uint8, h <= H
        if not self.has_masks:
            return image, None
        return image, read_trimap(self._trimap_path(name), image.shape[1::-1])  # (h, w) uint8


def trimap_statistics(dataset: OxfordPetDataset) -> dict[str, np.ndarray]:
    """Width, height and pet/background/boundary/foreground fractions of each trimap of DATASET."""
    rows = []
    for name in dataset.names:
        trimap = read_trimap(dataset._trimap_path(name))  # (H, W) values in {1, 2, 3}
        height, width = trimap.shape
        rows.append((width, height, (trimap == PET).mean(), (trimap == BACKGROUND).mean(),
                     (trimap == BOUNDARY).mean()))
    columns = np.array(rows, dtype=np.float64).reshape(-1, 5)
    stats = dict(zip(("width", "height", "pet", "background", "boundary"), columns.T,
                     strict=True))
    stats["foreground"] = stats["pet"] + stats["boundary"]  # the training mask's share
    return stats
