"""What a training run is asked to do: `TrainConfig`, and the course's quick and full settings.

The defaults of `TrainConfig` are the design report's (UNet, 256 px, batch 8, Adam 1e-4,
20 epochs). `quick_config` shrinks a run to about a minute on a laptop CPU, and
`course_config` is what the notebooks use: quick settings when PETSEG_QUICK=1, the report's
otherwise, with checkpoints and outputs in the repository whichever folder a notebook runs from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .augment import AUGMENT_LEVELS
from .losses import LOSSES
from .models import MODELS
from .paths import default_checkpoint_dir, default_output_dir


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the design report's."""

    data_path: str | None = None  # None: data/oxford-iiit-pet, else the offline sample
    model: str = "unet"  # a key of models.MODELS: "unet", "resnet34_unet", ...
    augment: bool = False
    augment_level: str = "report"  # "report", or "strong": + rotation, Cutout, CutMix
    epochs: int = 20
    batch_size: int = 8  # per process under torchrun: a step sees batch_size x processes
    learning_rate: float = 1e-4
    image_size: int = 256
    seed: int = 0
    num_workers: int | None = None  # DataLoader processes; None: 4 with CUDA, 0 on a CPU
    device: str = "auto"  # "auto": cuda, then mps, then cpu
    run_name: str | None = None  # None: "<model>" or "<model>_aug"
    checkpoint_dir: str = "checkpoints"
    output_dir: str = "outputs"
    limit: int | None = None  # use only this many training images (quick runs)
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"base_channels": 32}
    resume: bool = False  # continue from <run_name>_last.pth when it exists
    progress: bool = True  # tqdm progress bars
    lr_schedule: str = "constant"  # "constant" (the report) or "cosine": anneal to 0 by the end
    loss: str = "bce"  # "bce" (the report), "dice", "bce_dice" or "focal" (losses.py)
    log: str | None = None  # None or "none", "csv" or "tensorboard": outputs/logs (logs.py)
    # Speed-ups, each switchable; None picks what helps on the device (speed.speedups).
    cache: bool | None = None  # resized-image cache in the data folder; None: CUDA, or <= 128 px
    channels_last: bool | None = None  # NHWC memory layout; None: on with CUDA and on a CPU
    amp: bool | None = None  # float16 + GradScaler on CUDA, bfloat16 on a CPU; None: where native
    pin_memory: bool | None = None  # page-locked batches, faster copies; None: on with CUDA
    persistent_workers: bool | None = None  # None: keep workers alive when num_workers > 0
    cudnn_benchmark: bool | None = None  # cuDNN tries and keeps the fastest kernels; None: CUDA
    compile: bool = False  # torch.compile the model: a slow first batch, then maybe faster
    sync_bn: bool = False  # torchrun: BatchNorm statistics over all processes (distributed.py)
    keep_memory: bool | None = None  # glibc keeps freed memory for the next batch; None: CPU

    def __post_init__(self):
        check_settings(self)
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, not {self.model!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.augment_level not in AUGMENT_LEVELS:
            raise ValueError(f"augment_level must be one of {', '.join(AUGMENT_LEVELS)}, not "
                             f"{self.augment_level!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not "
                             f"{self.lr_schedule!r}")
        if self.run_name is None:  # e.g. "unet", "unet_aug", "unet_aug_strong"
            self.run_name = self.model + augment_suffix(self.augment, self.augment_level)


def augment_suffix(augment: bool, level: str = "report") -> str:
    """What a run's default name says about its augmentation: '', '_aug' or '_aug_strong'."""
    return ("_aug" if augment else "") + ("_strong" if augment and level == "strong" else "")


# QUICK mode: every training image, narrow models, each at the smallest image size where it
# learns the pets' shapes within seconds on 2 CPU cores (test Dice in the README). ResNet34's
# stem divides an image by 4 before its first block, which leaves too little of a 64 px pet:
# the ResNet34-UNet trains at 128 px. Augmentation doubles an epoch, so it gets fewer epochs.
QUICK_MODELS = {  # model: (base_channels, image_size, epochs, epochs with augmentation)
    "unet": (8, 64, 28, 16),
    "resnet34_unet": (16, 128, 16, 12),
}
QUICK_BASELINES = (64, 8, 8)  # image_size, epochs, epochs with augmentation: baselines.py


def quick_config(**overrides) -> TrainConfig:
    """A configuration small enough to train on a laptop CPU in seconds (QUICK mode)."""
    model, augment = overrides.get("model", "unet"), overrides.get("augment", False)
    suffix = augment_suffix(augment, overrides.get("augment_level", "report")) + "_quick"
    settings = dict(batch_size=16, learning_rate=3e-3, lr_schedule="cosine",
                    run_name=model + suffix)
    if model in QUICK_MODELS:
        width, image_size, epochs, epochs_augmented = QUICK_MODELS[model]
        settings["model_kwargs"] = {"base_channels": width}
    else:
        image_size, epochs, epochs_augmented = QUICK_BASELINES
    settings.update(image_size=image_size, epochs=epochs_augmented if augment else epochs)
    settings.update(overrides)
    return TrainConfig(**settings)


def quick_mode() -> bool:
    """True when PETSEG_QUICK=1: notebooks and tests then use small, fast settings."""
    return os.environ.get("PETSEG_QUICK", "0") == "1"


def course_config(model: str = "unet", augment: bool = False, **overrides) -> TrainConfig:
    """The notebooks' configuration: the report's settings, or quick ones when PETSEG_QUICK=1.

    Checkpoints and outputs go to the repository's checkpoints/ and outputs/ folders,
    whichever folder the notebook runs from.
    """
    settings = dict(checkpoint_dir=str(default_checkpoint_dir()),
                    output_dir=str(default_output_dir()))
    settings.update(overrides)
    make = quick_config if quick_mode() else TrainConfig
    return make(model=model, augment=augment, **settings)


def check_settings(config: TrainConfig) -> None:
    """A ValueError naming the first impossible setting (e.g. epochs=0, image_size=16)."""
    for name, minimum in (("epochs", 1), ("batch_size", 1), ("image_size", 32),
                          ("num_workers", 0), ("limit", 1)):
        value = getattr(config, name)
        if value is not None and not (isinstance(value, int) and value >= minimum):
            raise ValueError(f"{name} must be a whole number of at least {minimum}, "
                             f"not {value!r}")
    if not (isinstance(config.learning_rate, int | float) and 0 < config.learning_rate < 10):
        raise ValueError(f"learning_rate must be a number between 0 and 10, not "
                         f"{config.learning_rate!r}")
