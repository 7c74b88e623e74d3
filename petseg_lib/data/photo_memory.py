"""Photos kept in memory once decoded, so an augmented sample does not decode its JPEG again.

An augmented sample is cut from the photo as read (resized.py), not from the small cached
copy, so every epoch would decode each photo once more: on the real photos beside the course
about 4 ms of the 6 ms an augmented sample takes. `PhotoMemory` keeps the arrays a dataset's
`read` returned, by name, until they fill MEMORY_BYTES; later photos are decoded every time,
as without it. It hands out copies, so whatever a transform does to its input cannot change
what the next epoch reads: a run's samples are bit for bit the same with it as without it.

Each process keeps its own memory (DataLoader workers too), and it is gone with the dataset.
"""

from __future__ import annotations

import numpy as np

MEMORY_BYTES = 256 * 2**20  # per dataset and process: the 340 real training photos take 65 MB


def copies(arrays: tuple[np.ndarray | None, ...]) -> tuple[np.ndarray | None, ...]:
    """A copy of each array of ARRAYS (None stays None)."""
    return tuple(None if array is None else array.copy() for array in arrays)


class PhotoMemory:
    """Decoded photos by name, kept until they fill MAX_BYTES; `get` returns copies."""

    def __init__(self, max_bytes: int = MEMORY_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.photos: dict[str, tuple[np.ndarray | None, ...]] = {}

    def get(self, name: str) -> tuple[np.ndarray | None, ...] | None:
        """Copies of NAME's kept arrays, or None when it is not kept."""
        arrays = self.photos.get(name)
        return None if arrays is None else copies(arrays)

    def add(self, name: str, arrays: tuple[np.ndarray | None, ...]) -> None:
        """Keep copies of NAME's ARRAYS if they fit in what is left of MAX_BYTES."""
        size = sum(array.nbytes for array in arrays if array is not None)
        if name not in self.photos and self.bytes + size <= self.max_bytes:
            self.photos[name] = copies(arrays)
            self.bytes += size
