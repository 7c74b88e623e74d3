"""Your own labelled folder: train on any photos that come with a black-and-one-colour mask.

On disk:

    ROOT/images/NAME.jpg     also .jpeg .png .webp .bmp .tif .tiff
    ROOT/masks/NAME.png      also .gif .bmp .tif .tiff; black = background, one other value = pet
    ROOT/train.txt           optional split files: one NAME per line, '#' starts a comment line
    ROOT/valid.txt
    ROOT/test.txt

An image and its mask are a pair when their file names without the extension (the stem) are
the same, capitals included: images/cat1.jpg goes with masks/cat1.png.

Masks may come in any two-valued encoding: 0/1, 0/255, 0/k, a two-colour palette, black and
one colour in RGB(A), a 1-bit image. Black (zero in every channel) and fully transparent pixels
are background; the one other value is pet. A mask with more values (an Oxford trimap 1/2/3, a
soft or anti-aliased edge), an unreadable file or a mask whose size differs from its image is
skipped; one warning per split lists every skipped name and why.

Images are turned upright as their EXIF orientation tag says, as `photos.read_photo` does
when the model is used; masks are read as stored, so draw each mask on the upright view.

Splits: when split files exist, they decide (a missing one means an empty split). A name
listed twice counts once, and a name in two split files stays only in the first of test.txt,
valid.txt, train.txt, so no test image ever trains; one warning per file lists what it lost.
Otherwise each name's SHA-1 digest, read as a fraction in [0, 1), puts it in train below 0.8,
in valid below 0.9, else in test: about 80/10/10, the same on every computer, and adding
files never moves a name already there. One exception keeps training possible: in a folder of
3 or more pairs, an empty split borrows the pair nearest its band from a split that has two or
more (that pair goes back once the split gets a pair of its own). Splits depend on file names
only.

`MaskFolderDataset` is this format of resized.py, which resizes, augments and doubles the
samples as for the Oxford-IIIT Pet; they have a trimap of PET and BACKGROUND only.
`load_dataset` and `find_dataset` (formats.py, also importable from oxford_pet) pick this
dataset for such a folder:

    from petseg_lib.data.formats import load_dataset
    train_set = load_dataset("my_pets", "train", image_size=256, augment=True)

or, from the command line: `python -m petseg_lib.train --data_path my_pets`.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from .masks import BACKGROUND, PET
from .resized import ResizedDataset
from .user_files import UNREADABLE, load_rgb, read_text_any, unique_names, upright_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MASK_SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".tiff")
BANDS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}  # of the SHA-1 fraction
SHOWN_VALUES = 6  # the report names at most this many values of a mask that is not two-valued
KEEPS_FIRST = ("test", "valid", "train")  # a name in two split files stays in the first of these


class NotTwoValuedError(ValueError):
    """A mask file with more than black and one other value."""


def is_mask_folder(root: str | Path) -> bool:
    """True when ROOT has the images/ and masks/ folders of your own labelled folder."""
    return (Path(root) / "images").is_dir() and (Path(root) / "masks").is_dir()


def read_mask(path: str | Path) -> np.ndarray:
    """The pet pixels of a two-valued mask file, (H, W) bool; NotTwoValuedError otherwise."""
    with Image.open(path) as im:
        if im.mode == "1":
            im = im.convert("L")  # 1-bit: 0 and 255
        elif im.mode == "P" or (len(im.getbands()) > 1 and im.mode not in ("RGB", "RGBA")):
            im = im.convert("RGBA")  # palette, grey + alpha, CMYK: colours and transparency
        pixels = np.asarray(im)
    pixels = pixels.reshape(*pixels.shape[:2], -1)  # (H, W, C) with C = 1, 3 or 4
    colour = pixels[..., :3]  # for RGBA: leave the alpha channel out
    background = (colour == 0).all(axis=-1)
    if pixels.shape[-1] == 4:
        background |= pixels[..., 3] == 0  # fully transparent
    pet = pixels[~background]  # (K, C): must all be the same value
    if len(pet) and (pet != pet[0]).any():
        raise NotTwoValuedError(value_listing(pixels))
    return ~background


def value_listing(pixels: np.ndarray) -> str:
    """The distinct values of PIXELS (H, W, C) as text, at most SHOWN_VALUES of them."""
    values = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).tolist()
    shown = ", ".join(str(v[0]) if len(v) == 1 else str(tuple(v)) for v in values[:SHOWN_VALUES])
    return shown + (f", ... ({len(values)} in all)" if len(values) > SHOWN_VALUES else "")


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------

def name_fraction(name: str) -> float:
    """NAME's SHA-1 digest read as a fraction in [0, 1): the same on every computer."""
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).digest()  # any file name
    return int.from_bytes(digest[:8], "big") / 2**64


def band_split(name: str) -> str:
    """The split whose band of BANDS holds NAME's fraction."""
    fraction = name_fraction(name)
    return next(mode for mode, (_, high) in BANDS.items() if fraction < high)


def hash_split(names: list[str]) -> dict[str, str]:
    """The split of each name by its band; with 3 or more names, no split is left empty."""
    split = {name: band_split(name) for name in names}
    for mode, band in BANDS.items():
        sizes = Counter(split.values())
        donors = [name for name in sorted(names) if sizes[split[name]] >= 2]
        if sizes[mode] == 0 and donors:  # borrow the donor nearest this split's band
            split[min(donors, key=partial(band_distance, band=band))] = mode
    return split


def band_distance(name: str, band: tuple[float, float]) -> float:
    """How far NAME's fraction lies outside BAND (0 inside it)."""
    low, high = band
    return max(low - name_fraction(name), name_fraction(name) - high, 0.0)


def read_names(path: Path) -> list[str]:
    """The names listed in a split file: one a line, whole lines, '#' comment lines skipped."""
    lines = (line.strip() for line in read_text_any(path).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


# ---------------------------------------------------------------------------
# Reading and checking the files
# ---------------------------------------------------------------------------

def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """The files of FOLDER ending in one of SUFFIXES (any case), by stem; hidden files left out."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            found.setdefault(path.stem, []).append(path)
    return found


def pair_problem(image_path: Path, mask_path: Path) -> tuple[str, str] | None:
    """Why this pair cannot be used, as (kind, detail), or None when it can."""
    for path in (image_path, mask_path):
        if path.stat().st_size == 0:
            return "unreadable", f"{path.parent.name}/{path.name} is empty"
    try:
        with Image.open(image_path) as im:
            width, height = upright_size(im)  # the mask is drawn on the upright view
            im.draft("RGB", (64, 64))  # decode JPEGs at a small scale: fast, still reads all data
            im.load()
    except UNREADABLE as err:
        return "unreadable", f"images/{image_path.name}: {err}"
    try:
        pet = read_mask(mask_path)
    except NotTwoValuedError as err:
        return "not two-valued", f"values {err}"
    except UNREADABLE as err:
        return "unreadable", f"masks/{mask_path.name}: {err}"
    if pet.shape != (height, width):
        return "size mismatch", (f"mask {pet.shape[1]}x{pet.shape[0]}, "
                                 f"image {width}x{height}")
    return None


class MaskFolderDataset(ResizedDataset):
    """Square, resized samples of one split of your own folder; doubled with augmentation.

    `names` are the usable names of the split (LIMIT of them, evenly spread, when given),
    `skipped` maps each unusable one to the reason; `images` and `masks` map a name to its files.
    Resizing, augmentation and `originals()` are resized.py's; this format has no cache, so
    CACHE is ignored, and no CutMix at the "strong" level.
    """

    strong_cut_mix = False

    def __init__(self, root: str | Path, mode: str = "train", image_size: int = 256,
                 augment: bool = False, limit: int | None = None, augment_level: str = "report",
                 keep_originals: bool = True, cache: bool = False):
        if mode not in BANDS:
            raise ValueError(f"mode must be one of {tuple(BANDS)}, not {mode!r}")
        self.root = Path(root)
        if not is_mask_folder(self.root):
            raise FileNotFoundError(f"No images/ and masks/ folders in '{self.root}'.")
        self.mode = mode
        self.has_masks = True
        self.images = files_by_stem(self.root / "images", IMAGE_SUFFIXES)
        self.masks = files_by_stem(self.root / "masks", MASK_SUFFIXES)
        names = self._split_names()
        self.names, self.skipped = self._usable(names)
        if not self.names:
            raise ValueError(f"The '{mode}' split of {self.root} is empty: "
                             f"{self._empty_reason(names)}.")
        if limit is not None and limit < len(self.names):
            picks = np.linspace(0, len(self.names) - 1, limit).round().astype(int)
            self.names = [self.names[i] for i in picks]
        super().__init__(image_size, augment, cache, augment_level, keep_originals)

    @classmethod
    def detect(cls, root: str | Path) -> bool:
        """True when ROOT has the images/ and masks/ folders of your own labelled folder."""
        return is_mask_folder(root)

    def image_path(self, name: str) -> Path:
        """The file of NAME's photo in images/ (whatever its suffix)."""
        return self.images[name][0]

    def _split_file(self, mode: str) -> Path:
        return self.root / f"{mode}.txt"

    def _split_names(self) -> list[str]:
        """The names of this split: from its split file, else by hash (see the module text)."""
        if any(self._split_file(mode).is_file() for mode in BANDS):
            taken: dict[str, str] = {}  # name -> the split file that keeps it
            for mode in KEEPS_FIRST:
                path = self._split_file(mode)
                names = read_names(path) if path.is_file() else []
                if mode == self.mode:
                    return unique_names(names, path, taken)
                taken.update({name: path.name for name in names if name not in taken})
        pairs = [name for name in self.images if name in self.masks]
        split = hash_split(pairs)
        orphans = set(self.images) ^ set(self.masks)  # reported in the split of their band
        split.update({name: band_split(name) for name in orphans})
        return sorted(name for name, mode in split.items() if mode == self.mode)

    def _problem(self, name: str) -> tuple[str, str] | None:
        """Why NAME cannot be used before its files are opened, or None."""
        images, masks = self.images.get(name, []), self.masks.get(name, [])
        if not images and not masks:
            return "not found", f"listed in {self.mode}.txt"
        if not masks:
            return "image without mask", ""
        if not images:
            return "mask without image", ""
        if len(images) > 1 or len(masks) > 1:
            return "several files", ", ".join(f"{p.parent.name}/{p.name}" for p in images + masks)
        return None

    def _usable(self, names: list[str]) -> tuple[list[str], dict[str, str]]:
        """Keep the names whose files are usable; warn once about all the others."""
        problems = {name: self._problem(name) for name in names}
        paired = [name for name, problem in problems.items() if problem is None]
        with ThreadPoolExecutor() as pool:  # Pillow decodes without holding the GIL
            checked = pool.map(pair_problem, [self.images[n][0] for n in paired],
                               [self.masks[n][0] for n in paired])
        problems.update(zip(paired, checked, strict=True))
        problems = {name: problem for name, problem in problems.items() if problem}
        if problems:
            warnings.warn(self._report(problems, len(names)), stacklevel=3)
        skipped = {name: f"{kind} ({detail})" if detail else kind
                   for name, (kind, detail) in problems.items()}
        return [n for n in names if n not in skipped], skipped

    def _report(self, problems: dict[str, tuple[str, str]], total: int) -> str:
        """One message listing the skipped names, grouped by what is wrong with them."""
        lines = [f"Skipped {len(problems)} of {total} names of the '{self.mode}' split "
                 f"in {self.root}:"]
        for kind in dict.fromkeys(kind for kind, _ in problems.values()):
            entries = [f"{name} ({detail})" if detail else name
                       for name, (k, detail) in problems.items() if k == kind]
            lines.append(f"  {kind}: {'; '.join(entries)}")
        return "\n".join(lines)

    def _empty_reason(self, names: list[str]) -> str:
        """Why this split has no usable pair, in a few words."""
        path = self._split_file(self.mode)
        if any(self._split_file(mode).is_file() for mode in BANDS):
            if not path.is_file():
                return f"{path.name} is missing, and the split files beside it decide the splits"
            if not read_names(path):
                return f"{path.name} lists no names"
            if not names:
                return f"every name in {path.name} is kept by another split file (see the warning)"
            return f"none of the {len(names)} names in {path.name} is usable (see the warning)"
        pairs = sum(name in self.masks for name in self.images)
        if pairs < len(BANDS):
            return (f"the folder has {pairs} image/mask pairs; train, valid and test need one "
                    f"each (at least {len(BANDS)})")
        return f"none of its {len(names)} names is usable (see the warning)"

    def original(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """NAME's image (H, W, 3) uint8, upright, and its trimap (H, W) of PET and BACKGROUND."""
        pet = read_mask(self.masks[name][0])  # (H, W) bool
        image = np.array(load_rgb(self.images[name][0]))
        return image, np.where(pet, PET, BACKGROUND).astype(np.uint8)  # no boundary band
