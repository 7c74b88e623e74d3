"""The resized-image cache: decode every JPEG once, then read small arrays in later epochs.

`SimpleOxfordPetDataset(..., cache=True)` (training turns it on with CUDA, and on a CPU for
images up to 128 px: speed.cache_helps) stores images and trimaps at the training size as
uint8 .npy files in

    ROOT/cache/<image_size>-v<CACHE_VERSION>/<mode>-<fingerprint>-{images,trimaps}.npy

The fingerprint hashes the names, sizes and modification times of the image and trimap
files, so a changed dataset gets a new cache. Later epochs read the files memory-mapped
instead of decoding JPEGs. Delete ROOT/cache/ at any time to free the disk space.

Augmented samples do not come from the cache: their random crops are cut from the full-size
JPEG, where the small cached copy would lose detail (crops are zoomed in).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

# Bump when what the cache stores changes: older caches are then ignored.
CACHE_VERSION = 2  # 2: no `sizes` file (only cropping from the cache used it)


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
    """Resized images and trimaps of a list of names, in .npy files.

    images (N, 3, S, S) uint8 and, when there are masks, trimaps (N, 1, S, S) uint8; read
    back memory-mapped.
    """

    def __init__(self, folder: Path, stem: str, count: int, image_size: int, has_masks: bool):
        self.folder, self.count = folder, count
        self.shapes = {"images": (count, 3, image_size, image_size)}
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

    def build(self, decode: Callable, desc: str = "caching") -> None:
        """Fill the files with DECODE(i) -> (image, trimap or None) for every index.

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
                arrays[part] = np.lib.format.open_memmap(name, "w+", dtype=np.uint8, shape=shape)
            # disable=None: a progress bar in a terminal only, not in logs or notebooks
            for i in tqdm(range(self.count), desc=desc, leave=False, disable=None):
                image, trimap = decode(i)
                arrays["images"][i] = image
                if trimap is not None:
                    arrays["trimaps"][i] = trimap
            for array in arrays.values():
                array.flush()
            arrays.clear()
            for part in ("trimaps", "images"):  # images last: is_valid checks both
                if part in temporary:
                    os.chmod(temporary[part], 0o644)  # mkstemp makes files only we can read
                    os.replace(temporary.pop(part), self.paths[part])
        finally:
            for path in temporary.values():
                path.unlink(missing_ok=True)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The resized image and resized trimap (or None) of INDEX."""
        if self.arrays is None:
            self.arrays = {part: np.load(path, mmap_mode="r") for part, path in self.paths.items()}
        trimaps = self.arrays.get("trimaps")
        trimap = None if trimaps is None else np.array(trimaps[index])  # (1, S, S) copy
        return np.array(self.arrays["images"][index]), trimap

    def __getstate__(self) -> dict:
        # DataLoader workers reopen the files rather than receive copies of the arrays.
        return {**self.__dict__, "arrays": None}


def open_cache(root: Path, mode: str, files: list[Path], count: int, image_size: int,
               has_masks: bool, decode: Callable) -> ResizedCache | None:
    """The valid cache of FILES at IMAGE_SIZE, built with DECODE when missing or stale.

    None (with a warning) when ROOT cannot be written: the dataset then decodes JPEGs.
    """
    folder = root / "cache" / f"{image_size}-v{CACHE_VERSION}"
    cache = ResizedCache(folder, f"{mode}-{files_fingerprint(files)}", count, image_size,
                         has_masks)
    if cache.is_valid():
        return cache
    if not can_write(root) or (folder.exists() and not can_write(folder)):
        warnings.warn(f"{root} is read-only: no resized-image cache, the JPEGs are "
                      "decoded every epoch.", stacklevel=4)
        return None
    try:
        cache.build(decode, desc=f"caching {mode} at {image_size}px")
    except OSError as err:
        warnings.warn(f"Could not write the resized-image cache in {folder} ({err}); "
                      "the JPEGs are decoded every epoch.", stacklevel=4)
        return None
    return cache
