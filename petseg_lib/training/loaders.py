"""Data loaders: the batches a training run learns from and is validated on.

The training loader shuffles with its own seeded generator, so the same seed gives the same
order; the validation loader keeps the dataset's order. Under torchrun each process gets its
own share of both (distributed.py).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ..data.oxford_pet import collate, load_dataset
from ..models import one_image_batch_problem
from ..speed import data_workers, pick_device, speedups
from . import distributed
from .config import TrainConfig


def make_loaders(config: TrainConfig, data_path: Path, fast: dict[str, bool] | None = None,
                 train_set: Dataset | None = None) -> tuple[DataLoader, DataLoader]:
    """Shuffled training loader (of TRAIN_SET, else the training split) and validation loader."""
    device = pick_device(config.device)
    fast = fast or speedups(config, device)
    workers = data_workers(config.num_workers, device)  # None: 4 with CUDA, else 0
    if train_set is None:
        train_set = load_dataset(data_path, "train", config.image_size, config.augment,
                                 config.limit, cache=fast["cache"],
                                 augment_level=config.augment_level,
                                 keep_originals=config.keep_originals)
    valid_limit = config.valid_limit
    if config.limit is not None:
        valid_limit = min(valid_limit or config.limit, max(config.limit // 4, 1))
    valid_set = load_dataset(data_path, "valid", config.image_size, limit=valid_limit,
                             cache=fast["cache"])
    if config.aux_task is not None:  # a multi-task run: samples also carry their class
        train_set, valid_set = (train_set.use_labels(config.aux_task),
                                valid_set.use_labels(config.aux_task))
    generator = torch.Generator().manual_seed(config.seed)  # the shuffling order
    common = dict(batch_size=config.batch_size, num_workers=workers,
                  collate_fn=collate, pin_memory=fast["pin_memory"],
                  persistent_workers=fast["persistent_workers"] and workers > 0)
    sampler = distributed.train_sampler(train_set, config.seed)  # None without torchrun
    if sampler is not None and config.epoch_samples is not None and distributed.is_main():
        print("Under torchrun every process reads its share of the whole training split each "
              f"epoch: epoch_samples={config.epoch_samples} is not used.")
    if sampler is None and (common["persistent_workers"] or config.epoch_samples):
        # A new loader iterator draws the workers' seed, then the shuffle, from GENERATOR; kept-
        # alive workers draw their seed once, so a resumed run would draw once more than the
        # run it continues. Here the shuffle gets a generator of its own (shuffle_generator).
        # With EPOCH_SAMPLES an epoch is that many samples of a fresh shuffle of the whole
        # split (more than the split: shuffles in a row), so its time does not grow with it.
        sampler = RandomSampler(train_set, num_samples=config.epoch_samples,
                                generator=torch.Generator().manual_seed(config.seed))
    # A last batch of a single image breaks BatchNorm wherever a map is 1 x 1 (DeepLabV3's
    # pooling branch): that image is left out of the epoch, a different one each epoch. A
    # training set of one image (e.g. --limit 1, to overfit it) is that image's batch.
    images = len(sampler if sampler is not None else train_set)
    problem = one_image_batch_problem(config.model, config.image_size)
    if images == 1 and problem:
        raise ValueError(f"One training image cannot train {config.model} ({problem}): "
                         "use at least 2 (--limit 2 or more)")
    lone = images > 1 and images % config.batch_size == 1
    train_loader = DataLoader(train_set, shuffle=sampler is None, sampler=sampler,
                              generator=generator, drop_last=lone, **common)
    valid_loader = DataLoader(valid_set, sampler=distributed.valid_sampler(valid_set), **common)
    return train_loader, valid_loader


def shuffle_generator(loader: DataLoader) -> torch.Generator:
    """The generator that draws LOADER's next shuffle: its state is saved for --resume."""
    return getattr(loader.sampler, "generator", None) or loader.generator
