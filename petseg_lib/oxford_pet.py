"""The Oxford-IIIT Pet dataset: download, read, turn trimaps into binary masks, augment.

On disk (the official layout, also used by the offline sample dataset):

    ROOT/images/NAME.jpg
    ROOT/annotations/trimaps/NAME.png     1 = pet, 2 = background, 3 = boundary
    ROOT/annotations/trainval.txt         "NAME CLASS-ID SPECIES BREED-ID" per line
    ROOT/annotations/test.txt

Splits: `test` is test.txt. `train` and `valid` both come from trainval.txt: every 10th
name (positions 9, 19, 29, ... counting from 0) goes to `valid`, the rest to `train`.
The file is sorted by breed, so `valid` gets every breed in proportion.

Resized-image cache (`SimpleOxfordPetDataset(..., cache=True)`; training turns it on with
CUDA): the first use decodes every JPEG once and stores images and trimaps at the training
size as uint8 .npy files in

    ROOT/cache/<image_size>-v<CACHE_VERSION>/<mode>-<fingerprint>-{images,trimaps,sizes}.npy

The fingerprint hashes the names, sizes and modification times of the image and trimap
files, so a changed dataset gets a new cache. Later epochs read the files memory-mapped
instead of decoding JPEGs. Delete ROOT/cache/ at any time to free the disk space.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate
from torchvision import tv_tensors
from torchvision.datasets.utils import check_integrity, download_url
from torchvision.transforms import v2
from tqdm.auto import tqdm

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

# Bump when what the resized-image cache stores changes: older caches are then ignored.
CACHE_VERSION = 1


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
        images = [self._image_path(name) for name in names]
        trimaps = [self._trimap_path(name) if self.has_masks else None for name in names]
        with ThreadPoolExecutor() as pool:  # Pillow decodes without holding the GIL
            problems = pool.map(_check_pair, images, trimaps)
        skipped = {name: problem for name, problem in zip(names, problems, strict=True)
                   if problem}
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


# ---------------------------------------------------------------------------
# Resized-image cache
# ---------------------------------------------------------------------------

def files_fingerprint(paths: list[Path]) -> str:
    """A short hash of the files' names, sizes and modification times, in order."""
    digest = hashlib.sha1()
    for path in paths:
        info = path.stat()
        digest.update(f"{path.name} {info.st_size} {info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def can_write(folder: Path) -> bool:
    """True when FOLDER may be written: allowed, and not marked read-only (even for root)."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)


class ResizedCache:
    """Resized images, trimaps and original sizes of a list of names, in .npy files.

    images (N, 3, S, S) uint8, trimaps (N, 1, S, S) uint8 when there are masks, and the
    original (h, w) of each image in sizes (N, 2) int32; read back memory-mapped.
    """

    def __init__(self, folder: Path, stem: str, count: int, image_size: int, has_masks: bool):
        self.folder, self.count = folder, count
        self.shapes = {"images": (count, 3, image_size, image_size), "sizes": (count, 2)}
        if has_masks:
            self.shapes["trimaps"] = (count, 1, image_size, image_size)
        self.paths = {part: folder / f"{stem}-{part}.npy" for part in self.shapes}
        self.arrays = None  # opened on first read, once per process

    def is_valid(self) -> bool:
        """True when every file exists and holds an array of the expected shape."""
        try:
            return all(np.load(self.paths[part], mmap_mode="r").shape == shape
                       for part, shape in self.shapes.items())
        except (OSError, ValueError):
            return False

    def build(self, decode, desc: str = "caching") -> None:
        """Fill the files with DECODE(i) -> (image, trimap or None, (h, w)) for every index.

        Each file is written under a temporary name, then renamed: another process sees the
        old file or the finished one, never half of one, even when both build at once.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary, arrays = {}, {}
        try:
            for part, shape in self.shapes.items():
                handle, name = tempfile.mkstemp(dir=self.folder, prefix=f".{part}-",
                                                suffix=".tmp")
                os.close(handle)
                temporary[part] = Path(name)
                dtype = np.int32 if part == "sizes" else np.uint8
                arrays[part] = np.lib.format.open_memmap(name, "w+", dtype=dtype, shape=shape)
            for i in tqdm(range(self.count), desc=desc, leave=False):
                image, trimap, size = decode(i)
                arrays["images"][i] = image
                arrays["sizes"][i] = size
                if trimap is not None:
                    arrays["trimaps"][i] = trimap
            for array in arrays.values():
                array.flush()
            arrays.clear()
            for part in ("sizes", "trimaps", "images"):  # images last: is_valid checks all
                if part in temporary:
                    os.chmod(temporary[part], 0o644)  # mkstemp makes files only we can read
                    os.replace(temporary.pop(part), self.paths[part])
        finally:
            for path in temporary.values():
                path.unlink(missing_ok=True)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
        """The resized image, resized trimap (or None) and original (h, w) of INDEX."""
        if self.arrays is None:
            self.arrays = {part: np.load(path, mmap_mode="r") for part, path in self.paths.items()}
        trimaps = self.arrays.get("trimaps")
        trimap = None if trimaps is None else np.array(trimaps[index])  # (1, S, S) copy
        h, w = self.arrays["sizes"][index]
        return np.array(self.arrays["images"][index]), trimap, (int(h), int(w))

    def __getstate__(self) -> dict:
        # DataLoader workers reopen the files rather than receive copies of the arrays.
        return {**self.__dict__, "arrays": None}


class SimpleOxfordPetDataset(OxfordPetDataset):
    """Square, resized, float samples ready for a model; doubled with augmentation when asked.

    cache=True reads images and trimaps from the resized-image cache (see the module doc),
    building it on first use. Plain samples are then bit for bit the ones decoded from JPEG.
    Augmented samples are augmented after reading: the crop box is drawn in the original
    image's pixels, as without the cache, and cut from the cached image, so the geometry is
    the same and only the resampling differs (the crop is upsampled from the training size).
    When ROOT cannot be written, the dataset warns and decodes JPEGs as without the cache.
    """

    def __init__(self, root: str | Path, mode: str = "train", image_size: int = 256,
                 augment: bool = False, limit: int | None = None, cache: bool = False):
        super().__init__(root, mode, limit)
        self.image_size = image_size
        self.augment = augment and mode == "train"
        self.resize = v2.Resize((image_size, image_size), antialias=True)
        self.augmentations = augmentations(image_size)
        self.cache = self._open_cache() if cache else None

    def _open_cache(self) -> ResizedCache | None:
        """The valid cache of these names and this size, built when missing or stale."""
        files = [self._image_path(n) for n in self.names]
        if self.has_masks:
            files += [self._trimap_path(n) for n in self.names]
        folder = self.root / "cache" / f"{self.image_size}-v{CACHE_VERSION}"
        stem = f"{self.mode}-{files_fingerprint(files)}"
        cache = ResizedCache(folder, stem, len(self.names), self.image_size, self.has_masks)
        if cache.is_valid():
            return cache
        if not can_write(self.root) or (folder.exists() and not can_write(folder)):
            warnings.warn(f"{self.root} is read-only: no resized-image cache, the JPEGs are "
                          "decoded every epoch.", stacklevel=3)
            return None
        try:
            cache.build(self._decode_resized, desc=f"caching {self.mode} at {self.image_size}px")
        except OSError as err:
            warnings.warn(f"Could not write the resized-image cache in {folder} ({err}); "
                          "the JPEGs are decoded every epoch.", stacklevel=3)
            return None
        return cache

    def _decode(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask | None, str]:
        """Image (3, H, W) and trimap (1, H, W) of name INDEX at their original size."""
        sample = OxfordPetDataset.__getitem__(self, index)
        return (*to_tv_tensors(sample), sample["name"])

    def _decode_resized(self, index: int) -> tuple[np.ndarray, np.ndarray | None, tuple]:
        """What the cache stores for name INDEX: resized image, resized trimap, (h, w)."""
        image, trimap, _ = self._decode(index)
        size = tuple(image.shape[-2:])
        if trimap is None:
            return self.resize(image).numpy(), None, size
        image, trimap = self.resize(image, trimap)
        return image.numpy(), trimap.numpy(), size

    def _augment_cached(self, image, trimap, size: tuple[int, int]) -> tuple:
        """The training augmentations on a cached image, the crop drawn in original pixels."""
        crop, *others = self.augmentations.transforms  # RandomResizedCrop comes first
        h, w = size
        box = crop.make_params([torch.empty(1, 1, 1).expand(1, h, w)])  # a box in (h, w)
        sy, sx = self.image_size / h, self.image_size / w
        top, left = round(box["top"] * sy), round(box["left"] * sx)
        height = max(1, round(box["height"] * sy))
        width = max(1, round(box["width"] * sx))
        out = [self.image_size, self.image_size]
        image = v2.functional.resized_crop(image, top, left, height, width, out, antialias=True)
        trimap = v2.functional.resized_crop(trimap, top, left, height, width, out)  # nearest
        return v2.Compose(others)(image, trimap)

    def __len__(self) -> int:
        # With augmentation each image appears twice: even index original, odd index augmented.
        return 2 * len(self.names) if self.augment else len(self.names)

    def __getitem__(self, index: int) -> dict:
        augmented = self.augment and index % 2 == 1
        index = index // 2 if self.augment else index
        if self.cache is not None:
            image, trimap, size = self.cache.read(index)
            image, name = tv_tensors.Image(torch.from_numpy(image)), self.names[index]
            if trimap is not None:
                trimap = tv_tensors.Mask(torch.from_numpy(trimap))
                if augmented:
                    image, trimap = self._augment_cached(image, trimap, size)
        else:
            image, trimap, name = self._decode(index)
            if trimap is None:
                image = self.resize(image)
            else:
                transform = self.augmentations if augmented else self.resize
                image, trimap = transform(image, trimap)
        return model_sample(image, trimap, name)


def to_tv_tensors(sample: dict) -> tuple[tv_tensors.Image, tv_tensors.Mask | None]:
    """An OxfordPetDataset sample's image (3, H, W) and trimap (1, H, W) as tv_tensors.

    The trimap travels with the image as a Mask, so transforms give both the same geometry
    and nearest-neighbour resizing keeps its values in {1, 2, 3}.
    """
    image = tv_tensors.Image(torch.from_numpy(sample["image"]).permute(2, 0, 1))
    if sample["trimap"] is None:
        return image, None
    return image, tv_tensors.Mask(torch.from_numpy(sample["trimap"])[None])


def model_sample(image: tv_tensors.Image, trimap: tv_tensors.Mask | None, name: str) -> dict:
    """The dict a model is fed: float image in [0, 1], binary mask and trimap (or None)."""
    image = v2.functional.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor)
    if trimap is None:
        return {"image": image, "mask": None, "trimap": None, "name": name}
    return {
        "image": image,  # (3, S, S) float32 in [0, 1]
        "mask": (trimap != BACKGROUND).float().as_subclass(torch.Tensor),  # (1, S, S)
        "trimap": trimap.as_subclass(torch.Tensor),  # (1, S, S) uint8
        "name": name,
    }


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch; a key whose values are None stays None."""
    batch = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = None if any(v is None for v in values) else default_collate(values)
    return batch


def load_dataset(data_path: str | Path, mode: str, image_size: int = 256,
                 augment: bool = False, limit: int | None = None,
                 cache: bool = False) -> SimpleOxfordPetDataset:
    """The dataset of MODE, resized to IMAGE_SIZE, augmented (train only) when asked."""
    return SimpleOxfordPetDataset(data_path, mode, image_size=image_size, augment=augment,
                                  limit=limit, cache=cache)


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
