"""Resized datasets: any format's image/trimap pairs as square samples a model is fed.

As torchvision separates what a dataset reads from the transforms handed to it, a dataset
format (oxford_pet.py, mask_folder.py; formats.py lists them) only lists its split's names and
reads one pair; `ResizedDataset` does the rest, the same way for every format:

- resizing to IMAGE_SIZE x IMAGE_SIZE (the trimap with nearest neighbours, so it keeps its
  values) and the samples of augment.model_sample: `{"image": (3,S,S) float, "mask": (1,S,S),
  "trimap": (1,S,S) uint8, "name": str}`;
- augmentation of the training split: with augment=True each image appears twice, index 2i as
  it is and 2i+1 augmented (augment.py); keep_originals=False augments every index. At the
  "strong" level augmented samples also get CutMix with another training image drawn with
  torch's global random numbers, which the DataLoader seeds, so a run stays reproducible
  (unless the format sets `strong_cut_mix = False`); at the "mixup" level they get Mixup
  with such an image instead, and soft masks;
- the resized-image cache (cache.py), for a format that names the files it depends on: plain
  samples come from it, bit for bit the ones decoded; augmented samples are always cut from the
  photo, so their zoomed-in crops keep every detail. When the cache folder cannot be written,
  the dataset warns and decodes as without it. Photos that are decoded again each epoch
  (augmented, or without the cache) are kept in memory after the first time, up to a bound
  (photo_memory.py);
- `originals()`: the same split at each image's own size (`original_size_dataset`);
- labels, when asked (`use_labels`, for multi-task runs): each sample then also has "label",
  its class of the task (pet_labels.py), read by name, so augmented copies keep it.

A format subclass sets `root`, `mode`, `names` (the usable names of the split) and `has_masks`,
then calls `ResizedDataset.__init__`. It gives `original(name)`: the image (H, W, 3) uint8 and
trimap (H, W) uint8 (or None) at their own size, and `detect(root)`: whether ROOT is in its
layout. It may give `read_labels(task)`, each name's class of a task (pet_labels.py),
`read(name)`, a faster read at no less than twice the training size, and
`cache_files()`, the files the cache depends on (None: no cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ..threads import limit_threads
from .augment import SquareResize, augmentations, cut_mix, mix_up, model_sample, to_tv_tensors
from .cache import ResizedCache, open_cache
from .masks import trimap_to_mask
from .photo_memory import MEMORY_BYTES, PhotoMemory


def original_sample(dataset: Dataset, name: str) -> dict:
    """NAME's sample at its own size: image (H, W, 3) uint8, mask and trimap (H, W) or None."""
    image, trimap = dataset.original(name)
    mask = None if trimap is None else trimap_to_mask(trimap)  # (H, W) float32 in {0, 1}
    return {"image": image, "mask": mask, "trimap": trimap, "name": name}


class OriginalSizes(Dataset):
    """The samples of DATASET's names at their own size, shaped like OxfordPetDataset's."""

    def __init__(self, dataset: ResizedDataset):
        self.dataset = dataset
        self.names = dataset.names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        return original_sample(self.dataset, self.names[index])


class ResizedDataset(Dataset):
    """Square, resized, float samples of one split; doubled with augmented copies when asked."""

    root: Path
    mode: str
    names: list[str]
    has_masks: bool
    strong_cut_mix = True  # at the "strong" level, augmented samples also get CutMix
    labels: dict[str, int] | None = None  # name -> class of an aux task (use_labels)

    def __init__(self, image_size: int = 256, augment: bool = False, cache: bool = False,
                 augment_level: str = "report", keep_originals: bool = True):
        self.image_size = image_size
        self.augment = augment and self.mode == "train"
        self.keep_originals = keep_originals  # False: the even indices are augmented too
        self.augment_level = augment_level
        self.resize = SquareResize(image_size)
        self.augmentations = augmentations(image_size, augment_level)
        self.cache = self._open_cache() if cache else None
        # Photos decoded more than once a run (augmented, or no cache) stay in memory.
        self.memory = PhotoMemory(MEMORY_BYTES if self.augment or self.cache is None else 0)

    @classmethod
    def detect(cls, root: str | Path) -> bool:
        """True when ROOT holds a dataset in this format's layout."""
        raise NotImplementedError(f"{cls.__name__} does not say how to recognise its folders")

    def read(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """NAME's image (h, w, 3) uint8 and trimap (h, w) uint8 (or None), for resizing."""
        return self.original(name)

    def read_labels(self, task: str) -> dict[str, int]:
        """Each name's class of TASK (pet_labels.AUX_TASKS); a format without labels refuses."""
        raise ValueError(f"--aux_task {task} needs species and breed labels (annotations/"
                         f"list.txt of the Oxford-IIIT Pet layout); {self.root} is read as "
                         f"{type(self).__name__}, which has none")

    def use_labels(self, task: str) -> ResizedDataset:
        """Give every sample a "label": its class of TASK (pet_labels.py); returns the dataset."""
        self.labels = self.read_labels(task)
        return self

    def image_path(self, name: str) -> Path:
        """The file of NAME's photo."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its photos are")

    def cache_files(self) -> list[Path] | None:
        """The files the resized-image cache depends on; None: this format has no cache."""
        return None

    def originals(self, limit: int | None = None) -> Dataset:
        """This split at each image's own size (LIMIT: for formats that list the split again)."""
        return OriginalSizes(self)

    def _open_cache(self) -> ResizedCache | None:
        """The valid cache of these names and this size, built when missing or stale."""
        files = self.cache_files()
        if files is None:
            return None
        return open_cache(self.root, self.mode, files, len(self.names), self.image_size,
                          self.has_masks, self._decode_resized)

    def _decode(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask | None, str]:
        """Image (3, h, w) and trimap (1, h, w) (or None) of name INDEX as read, and the name."""
        name = self.names[index]
        image, trimap = self._read_kept(name)
        return (*to_tv_tensors({"image": image, "trimap": trimap}), name)

    def _read_kept(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """NAME's image and trimap as `read` gives them, from memory after the first time."""
        if (arrays := self.memory.get(name)) is None:
            arrays = self.read(name)
            self.memory.add(name, arrays)
        return arrays

    def _decode_resized(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """What the cache stores for name INDEX: the resized image and trimap (or None)."""
        with limit_threads(1):  # per-sample work: one thread (threads.py)
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
        with limit_threads(1):  # per-sample work: one thread (threads.py)
            sample = self._sample(index)
        if self.labels is not None:  # a multi-task run: the species or breed too
            sample["label"] = self.labels[sample["name"]]
        return sample

    def _sample(self, index: int) -> dict:
        """Sample INDEX: resized, augmented when its index says so, CutMix or Mixup by level."""
        augmented = self.augment and (index % 2 == 1 or not self.keep_originals)
        index = index // 2 if self.augment else index
        if self.cache is not None and not augmented:  # the resized photo's very pixels
            image, trimap = self._cached(index)
        else:  # augmentations crop from the image as read, so they decode the photo
            image, trimap, _ = self._decode(index)
            if trimap is None:
                image = self.resize(image)
            else:
                transform = self.augmentations if augmented else self.resize
                image, trimap = transform(image, trimap)
        if augmented and self.augment_level == "strong" and self.strong_cut_mix:  # after the cache
            image, trimap = cut_mix(image, trimap, *self._random_resized())
        sample = model_sample(image, trimap, self.names[index])
        if augmented and self.augment_level == "mixup" and trimap is not None:
            sample = mix_up(sample, model_sample(*self._random_resized(), ""))
        return sample
