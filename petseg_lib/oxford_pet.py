"""The Oxford-IIIT Pet dataset: download, read, turn trimaps into binary masks, augment.

On disk (the official layout, also used by the offline sample dataset):

    ROOT/images/NAME.jpg
    ROOT/annotations/trimaps/NAME.png     1 = pet, 2 = background, 3 = boundary
    ROOT/annotations/trainval.txt         "NAME CLASS-ID SPECIES BREED-ID" per line
    ROOT/annotations/test.txt

Splits: `test` is test.txt. `train` and `valid` both come from trainval.txt: every 10th
name (positions 9, 19, 29, ... counting from 0) goes to `valid`, the rest to `train`.
The file is sorted by breed, so `valid` gets every breed in proportion.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate
from torchvision import tv_tensors
from torchvision.datasets.utils import check_integrity, download_url
from torchvision.transforms import v2

from .sample import ensure_sample_dataset, project_root

# The two official archives and their published MD5 sums.
RESOURCES = (
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
     "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    ("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
     "95a8c909bbe2e81eed6a22bccdf3f68f"),
)
MODES = ("train", "valid", "test")
VALID_EVERY = 10  # every 10th trainval name is a validation image

# Trimap values.
PET, BACKGROUND, BOUNDARY = 1, 2, 3


# ---------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------

def is_downloaded(root: str | Path) -> bool:
    """True when ROOT holds the extracted images, trimaps and split files."""
    root = Path(root)
    ann = root / "annotations"
    return ((root / "images").is_dir() and (ann / "trimaps").is_dir()
            and (ann / "trainval.txt").is_file() and (ann / "test.txt").is_file())


def download(root: str | Path = "data/oxford-iiit-pet", resources=RESOURCES) -> Path:
    """Download, verify (MD5) and extract the Oxford-IIIT Pet archives into ROOT."""
    root = Path(root)
    if is_downloaded(root):
        print(f"Oxford-IIIT Pet is already in {root}: nothing to download.")
        return root
    archive_dir = root / "archives"
    for url, md5 in resources:
        archive = _fetch_verified(url, md5, archive_dir)
        _extract_into(archive, root)
    if not is_downloaded(root):
        raise RuntimeError(f"The archives were extracted into {root}, but images/ or "
                           "annotations/ (trimaps, trainval.txt, test.txt) are missing.")
    return root


def _fetch_verified(url: str, md5: str, archive_dir: Path, tries: int = 2) -> Path:
    """Return the path of a downloaded archive whose MD5 matches, downloading when needed."""
    name = url.rsplit("/", 1)[-1]
    archive = archive_dir / name
    if check_integrity(archive, md5):
        return archive
    archive_dir.mkdir(parents=True, exist_ok=True)
    part = archive_dir / (name + ".part")
    for attempt in range(1, tries + 1):
        part.unlink(missing_ok=True)
        try:
            # Downloads into NAME.part with a progress bar; raises when the MD5 differs.
            download_url(url, str(archive_dir), filename=part.name, md5=md5)
        except RuntimeError:
            print(f"{name}: checksum mismatch (truncated or corrupted download), "
                  f"attempt {attempt} of {tries}.")
            continue
        except (urllib.error.URLError, OSError) as err:
            part.unlink(missing_ok=True)
            raise ConnectionError(f"Could not download {url}: {err}") from err
        os.replace(part, archive)  # only a verified archive gets its final name
        return archive
    part.unlink(missing_ok=True)
    raise RuntimeError(f"{name}: the MD5 sum is still wrong after {tries} downloads "
                       f"(expected {md5}). Check the network and try again.")


def _extract_into(archive: Path, root: Path) -> None:
    """Extract ARCHIVE next to ROOT, then move its top-level folders into ROOT."""
    tmp = root / f".extracting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        for entry in tmp.iterdir():
            target = root / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)  # a folder appears in ROOT only once it is complete
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def network_available(url: str = RESOURCES[1][0], timeout: float = 3.0) -> bool:
    """True when the dataset's server answers within TIMEOUT seconds."""
    try:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def default_data_path() -> Path:
    """Where the real dataset lives: data/oxford-iiit-pet in the course repository."""
    base = project_root() or Path.cwd()
    return base / "data" / "oxford-iiit-pet"


def find_dataset(data_path: str | Path | None = None, download_if_missing: bool = False) -> Path:
    """Pick the data: PETSEG_DATA, DATA_PATH, the real dataset, a download, or the sample."""
    if os.environ.get("PETSEG_DATA"):
        data_path = os.environ["PETSEG_DATA"]
    if data_path is not None:
        if not is_downloaded(data_path):
            raise FileNotFoundError(_missing_message(Path(data_path)))
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


def _missing_message(path: Path) -> str:
    return (f"No Oxford-IIIT Pet dataset at '{path}' (expected images/ and annotations/ with "
            f"trimaps/, trainval.txt and test.txt). Download it with "
            f"`python -m petseg_lib.oxford_pet --download --root {path}`, or use the offline "
            f"sample dataset: `python -m petseg_lib.sample`.")


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def read_split_file(path: str | Path) -> list[str]:
    """Image names in a split file, skipping blank and '#' comment lines."""
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.split()[0])
    return names


def split_names(root: str | Path, mode: str) -> list[str]:
    """The image names of MODE ('train', 'valid' or 'test') in ROOT."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    ann = Path(root) / "annotations"
    if mode == "test":
        return read_split_file(ann / "test.txt")
    names = read_split_file(ann / "trainval.txt")
    is_valid = [i % VALID_EVERY == VALID_EVERY - 1 for i in range(len(names))]
    return [n for n, v in zip(names, is_valid, strict=True) if v == (mode == "valid")]


def load_rgb(path: str | Path) -> Image.Image:
    """Open any image (grey, RGBA, CMYK, palette, PNG or GIF named .jpg) as RGB."""
    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            background = Image.new("RGBA", im.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, im).convert("RGB")
        return im.convert("RGB")


def trimap_to_mask(trimap: np.ndarray) -> np.ndarray:
    """Binary mask from a trimap: pet (1) and boundary (3) are foreground, background (2) is not."""
    return (trimap != BACKGROUND).astype(np.float32)


def _check_pair(image_path: Path, trimap_path: Path | None) -> str | None:
    """Why this image/trimap pair cannot be used, or None when it can."""
    if not image_path.is_file():
        return "image missing"
    try:
        with Image.open(image_path) as im:
            size = im.size
            im.draft("RGB", (64, 64))  # decode JPEGs at a small scale: fast, still reads all data
            im.load()
    except (OSError, SyntaxError, ValueError) as err:
        return f"image cannot be decoded ({err})"
    if trimap_path is None:
        return None
    if not trimap_path.is_file():
        return "trimap missing"
    try:
        with Image.open(trimap_path) as tm:
            trimap_size = tm.size
    except (OSError, SyntaxError, ValueError) as err:
        return f"trimap cannot be read ({err})"
    if trimap_size != size:
        return f"trimap is {trimap_size[0]}x{trimap_size[1]}, image is {size[0]}x{size[1]}"
    return None


class OxfordPetDataset(Dataset):
    """Images, trimaps and binary masks of one split, at their original size."""

    def __init__(self, root: str | Path, mode: str = "train", limit: int | None = None):
        self.root = Path(root)
        self.mode = mode
        if not is_downloaded(self.root):
            raise FileNotFoundError(_missing_message(self.root))
        self.images_dir = self.root / "images"
        self.trimaps_dir = self.root / "annotations" / "trimaps"
        names = split_names(self.root, mode)
        if limit is not None and limit < len(names):
            picks = np.linspace(0, len(names) - 1, limit).round().astype(int)
            names = [names[i] for i in picks]
        # A test split may come without ground truth: then masks are None.
        self.has_masks = mode != "test" or any(self._trimap_path(n).is_file() for n in names)
        self.names, self.skipped = self._usable(names)

    def _image_path(self, name: str) -> Path:
        return self.images_dir / f"{name}.jpg"

    def _trimap_path(self, name: str) -> Path:
        return self.trimaps_dir / f"{name}.png"

    def _usable(self, names: list[str]) -> tuple[list[str], dict[str, str]]:
        """Keep the names whose files are usable; warn once about all the others."""
        skipped = {}
        for name in names:
            trimap = self._trimap_path(name) if self.has_masks else None
            problem = _check_pair(self._image_path(name), trimap)
            if problem:
                skipped[name] = problem
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
        image = np.array(load_rgb(self._image_path(name)))  # (H, W, 3) uint8
        sample = {"image": image, "mask": None, "trimap": None, "name": name}
        if self.has_masks:
            trimap = np.array(Image.open(self._trimap_path(name)))  # (H, W) uint8
            sample["trimap"] = trimap
            sample["mask"] = self._preprocess_mask(trimap)  # (H, W) float32 in {0, 1}
        return sample


def augmentations(image_size: int) -> v2.Compose:
    """The training augmentations, applied jointly to an Image and its Mask."""
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(0.5, 1.0), antialias=True),  # crop and zoom
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomGrayscale(p=0.2),
        v2.ColorJitter(brightness=0.3),  # multiplies brightness by a factor in [0.7, 1.3]
    ])


class SimpleOxfordPetDataset(OxfordPetDataset):
    """Square, resized, float samples ready for a model; doubled with augmentation when asked."""

    def __init__(self, root: str | Path, mode: str = "train", image_size: int = 256,
                 augment: bool = False, limit: int | None = None):
        super().__init__(root, mode, limit)
        self.image_size = image_size
        self.augment = augment and mode == "train"
        self.resize = v2.Resize((image_size, image_size), antialias=True)
        self.augmentations = augmentations(image_size)

    def __len__(self) -> int:
        # With augmentation each image appears twice: even index original, odd index augmented.
        return 2 * len(self.names) if self.augment else len(self.names)

    def __getitem__(self, index: int) -> dict:
        augmented = self.augment and index % 2 == 1
        sample = super().__getitem__(index // 2 if self.augment else index)
        image = tv_tensors.Image(torch.from_numpy(sample["image"]).permute(2, 0, 1))  # (3, H, W)
        if sample["trimap"] is None:
            return {"image": _to_float(self.resize(image)), "mask": None, "trimap": None,
                    "name": sample["name"]}
        # The trimap travels with the image as a Mask, so both get the same geometry
        # and nearest-neighbour resizing keeps its values in {1, 2, 3}.
        trimap = tv_tensors.Mask(torch.from_numpy(sample["trimap"])[None])  # (1, H, W)
        transform = self.augmentations if augmented else self.resize
        image, trimap = transform(image, trimap)
        return {
            "image": _to_float(image),  # (3, S, S) float32 in [0, 1]
            "mask": (trimap != BACKGROUND).float().as_subclass(torch.Tensor),  # (1, S, S)
            "trimap": trimap.as_subclass(torch.Tensor),  # (1, S, S) uint8
            "name": sample["name"],
        }


def _to_float(image: tv_tensors.Image) -> torch.Tensor:
    """uint8 image -> plain float32 tensor in [0, 1]."""
    return v2.functional.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor)


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch; a key whose values are None stays None."""
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = None if any(v is None for v in values) else default_collate(values)
    return batch


def load_dataset(data_path: str | Path, mode: str, image_size: int = 256,
                 augment: bool = False, limit: int | None = None) -> SimpleOxfordPetDataset:
    """The dataset of MODE, resized to IMAGE_SIZE, augmented (train only) when asked."""
    return SimpleOxfordPetDataset(data_path, mode, image_size=image_size, augment=augment,
                                  limit=limit)


def main(argv: list[str] | None = None) -> None:
    """Command line: download the dataset, or print its split sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(default_data_path()),
                        help="dataset folder (default: %(default)s)")
    parser.add_argument("--download", action="store_true",
                        help="download and extract the official archives (about 800 MB)")
    args = parser.parse_args(argv)
    if args.download:
        download(args.root)
    for mode in MODES:
        print(f"{mode:>5}: {len(OxfordPetDataset(args.root, mode))} images")


if __name__ == "__main__":
    main()
