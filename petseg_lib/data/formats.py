"""Dataset formats: the layouts a dataset folder may have, and picking the one a folder is in.

`DATASET_FORMATS` names each format's dataset class (a resized.ResizedDataset), as
models.MODELS names each model; each class's `detect(root)` says whether a folder is in its
layout. The first format that recognises a folder reads it; a folder that none recognises is
read as DEFAULT_FORMAT, whose error says what is missing. A new format is one new module with
its ResizedDataset subclass, and one line here.

`load_dataset` builds a split at the training size, `original_size_dataset` the same split at
each image's own size, and `find_dataset` picks the folder: yours, the real Oxford-IIIT Pet
dataset, a download, or the offline sample dataset. oxford_pet.py keeps all three importable,
as the design report has them.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from ..paths import default_data_path
from .download import download, is_downloaded, missing_message, network_available
from .mask_folder import MaskFolderDataset
from .oxford_pet import SimpleOxfordPetDataset
from .resized import ResizedDataset
from .sample import ensure_sample_dataset

DATASET_FORMATS: dict[str, type[ResizedDataset]] = {
    "mask_folder": MaskFolderDataset,  # first: a folder of your own images/ and masks/
    "oxford": SimpleOxfordPetDataset,
}
DEFAULT_FORMAT = "oxford"


def dataset_format(data_path: str | Path) -> str | None:
    """The name of the first format of DATASET_FORMATS that recognises DATA_PATH, or None."""
    return next((name for name, cls in DATASET_FORMATS.items() if cls.detect(data_path)), None)


def load_dataset(data_path: str | Path, mode: str, image_size: int = 256,
                 augment: bool = False, limit: int | None = None, cache: bool = False,
                 augment_level: str = "report", keep_originals: bool = True) -> ResizedDataset:
    """The dataset of MODE, resized to IMAGE_SIZE, augmented (train only) at AUGMENT_LEVEL."""
    dataset_class = DATASET_FORMATS[dataset_format(data_path) or DEFAULT_FORMAT]
    return dataset_class(data_path, mode, image_size=image_size, augment=augment, limit=limit,
                         cache=cache, augment_level=augment_level, keep_originals=keep_originals)


def original_size_dataset(dataset: ResizedDataset, limit: int | None = None) -> Dataset:
    """The split of DATASET (from load_dataset) at each image's original size."""
    return dataset.originals(limit)


def find_dataset(data_path: str | Path | None = None, download_if_missing: bool = False) -> Path:
    """Pick the data: DATA_PATH, else PETSEG_DATA, the real dataset, a download, or the sample."""
    if data_path is None and os.environ.get("PETSEG_DATA"):
        data_path = os.environ["PETSEG_DATA"]
    if data_path is not None:
        if dataset_format(data_path) is None:
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
          f"dataset of toy pets in {sample}. Run `python -m petseg_lib.data --download` "
          "to fetch the real one (about 800 MB).")
    return sample
