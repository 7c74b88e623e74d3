"""The resized-image cache: decode each JPEG once, then read small arrays in later epochs.

`SimpleOxfordPetDataset(..., cache=True)` (training turns it on with CUDA, and on a CPU for
images up to 128 px: speed.cache_helps) keeps images and trimaps at the training size as
uint8 .npy files in the user's cache folder (paths.default_cache_dir: PETSEG_CACHE, else
~/.cache/petseg), never in the dataset's folder, so a read-only dataset shared by a class is
cached too:

    <cache folder>/<image_size>-v<CACHE_VERSION>/<mode>-<key>-{images,trimaps,filled}.npy

The key hashes the dataset's path and the names, sizes and modification times of its image
and trimap files, so a changed dataset gets a new cache. The cache is filled lazily: a sample
is decoded the first time it is read, written into the memory-mapped files, and marked in
`filled`; later reads copy the small arrays. A run that sees 4,000 samples therefore decodes
at most 4,000 JPEGs, however large the dataset. Delete the folder at any time to free space.

Two runs (or DataLoader workers) filling the same cache at once write the same bytes, and a
sample is marked filled only after its pixels are written, so a reader never sees half a
sample. Augmented samples do not come from the cache: their random crops are cut from the
photo, where the small cached copy would lose detail (crops are zoomed in).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..paths import default_cache_dir, written_atomically

# Bump when what the cache stores changes: older caches are then ignored.
CACHE_VERSION = 4  # 3: in the user's cache folder, filled as read; 4: trimaps by pixel centres


def files_fingerprint(paths: list[Path], root: Path | None = None) -> str:
    """A short hash of ROOT's path and the files' names, sizes and modification times."""
    digest = hashlib.sha1(f"{Path(root).resolve()}\n".encode() if root else b"")
    for path in paths:
        info = path.stat()
        digest.update(f"{path.name} {info.st_size} {info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def can_write(folder: Path) -> bool:
    """True when FOLDER (or, while it does not exist, its nearest parent) may be written.

    Marked read-only counts as read-only even for root, who could write it anyway.
    """
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)


class ResizedCache:
    """Resized images (N, 3, S, S) and trimaps (N, 1, S, S) as uint8, filled on first read.

    DECODE(i) -> (image, trimap or None) gives what index i holds; `filled` (N,) marks the
    indices already written.
    """

    def __init__(self, folder: Path, stem: str, count: int, image_size: int, has_masks: bool,
                 decode: Callable):
        self.folder, self.count, self.decode = folder, count, decode
        self.shapes = {"images": (count, 3, image_size, image_size)}
        if has_masks:
            self.shapes["trimaps"] = (count, 1, image_size, image_size)
        self.shapes["filled"] = (count,)
        self.paths = {part: folder / f"{stem}-{part}.npy" for part in self.shapes}
        self.arrays = None  # opened on first read, once per process

    def is_valid(self) -> bool:
        """True when every file exists and holds an array of the expected shape."""
        try:
            return all(np.load(self.paths[part], mmap_mode="r").shape == shape
                       for part, shape in self.shapes.items())
        except (OSError, ValueError):
            return False

    def create(self) -> None:
        """Write empty files (nothing filled), each under a temporary name, then renamed.

        `filled` comes last: a cache whose files are all there has its flags to go with them.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        for part, shape in self.shapes.items():
            handle, name = tempfile.mkstemp(dir=self.folder, prefix=f".{part}-", suffix=".tmp")
            os.close(handle)
            try:
                array = np.lib.format.open_memmap(name, "w+", dtype=np.uint8, shape=shape)
                array.flush()  # zeros: the file system stores them sparsely
                del array
                os.chmod(name, 0o644)  # mkstemp makes files only we can read
                os.replace(name, self.paths[part])
            finally:
                Path(name).unlink(missing_ok=True)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The resized image and trimap (or None) of INDEX, decoded and stored on first read."""
        if self.arrays is None:
            self.arrays = {part: np.load(path, mmap_mode="r+") for part, path in self.paths.items()}
        images, trimaps = self.arrays["images"], self.arrays.get("trimaps")
        if not self.arrays["filled"][index]:
            image, trimap = self.decode(index)
            images[index] = image
            if trimaps is not None:
                trimaps[index] = trimap
            self.arrays["filled"][index] = 1  # only after the pixels: never half a sample
        trimap = None if trimaps is None else np.array(trimaps[index])  # (1, S, S) copy
        return np.array(images[index]), trimap

    def __getstate__(self) -> dict:
        # DataLoader workers reopen the files rather than receive copies of the arrays.
        return {**self.__dict__, "arrays": None}


def open_cache(root: Path, mode: str, files: list[Path], count: int, image_size: int,
               has_masks: bool, decode: Callable) -> ResizedCache | None:
    """The cache of FILES at IMAGE_SIZE, created empty when missing or stale.

    None (with a warning) when the cache folder cannot be written: the dataset then decodes
    JPEGs every epoch.
    """
    folder = default_cache_dir() / f"{image_size}-v{CACHE_VERSION}"
    cache = ResizedCache(folder, f"{mode}-{files_fingerprint(files, root)}", count, image_size,
                         has_masks, decode)
    if cache.is_valid() and os.access(cache.paths["filled"], os.W_OK):
        return cache
    try:
        if not can_write(folder):
            raise PermissionError("the folder is read-only")
        cache.create()
    except OSError as err:
        warnings.warn(f"Could not write the resized-image cache in {folder} ({err}); the "
                      "JPEGs are decoded every epoch. Set PETSEG_CACHE to a writable folder.",
                      stacklevel=4)
        return None
    return cache


# ------------------------------------------------------------- checks of image/trimap pairs

def file_stamp(*paths: Path | None) -> str:
    """Sizes and modification times of PATHS ('' for a missing file or None)."""
    stamps = []
    for path in paths:
        try:
            info = path.stat() if path is not None else None
        except OSError:
            info = None
        stamps.append("" if info is None else f"{info.st_size}:{info.st_mtime_ns}")
    return "|".join(stamps)


def checked_pairs(root: Path, pairs: dict[str, tuple[Path, Path | None]],
                  check: Callable) -> dict[str, str | None]:
    """CHECK(image, trimap) of every pair of names, each checked again only when it changed.

    Checking decodes every file, which takes seconds on the full dataset; the answers are kept
    in the user's cache folder with each pair's sizes and modification times, so the next run
    on an unchanged dataset only reads those. Without a writable cache folder every pair is
    checked each time.
    """
    memo_path = default_cache_dir() / "checks-v1" / f"{files_fingerprint([], root)}.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    memo = memo if isinstance(memo, dict) else {}
    stamps = {name: file_stamp(*files) for name, files in pairs.items()}
    answers = {name: memo[name][1] for name in pairs
               if isinstance(memo.get(name), list) and len(memo[name]) == 2
               and memo[name][0] == stamps[name]}
    todo = [name for name in pairs if name not in answers]
    with ThreadPoolExecutor() as pool:  # Pillow decodes without holding the GIL
        answers.update(zip(todo, pool.map(lambda n: check(*pairs[n]), todo), strict=True))
    if todo:
        memo.update({name: [stamps[name], answers[name]] for name in todo})
        try:
            with written_atomically(memo_path) as partial:
                partial.write_text(json.dumps(memo))
        except OSError:
            pass  # a read-only cache folder: the pairs are checked again next time
    return answers
