"""What a training run is asked to do: `TrainConfig`, and the course's quick and full settings.

The defaults of `TrainConfig` are the design report's (UNet, 256 px, batch 8, Adam 1e-4,
20 epochs). `quick_config` shrinks a run to about a minute on a laptop CPU (what the
notebooks train when PETSEG_QUICK=1: course.py), and `recipe_config` gives the laptop recipe.
`parse_args` turns the command line of `python -m petseg_lib.train` into a TrainConfig.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from dataclasses import dataclass, field

from ..data.augment import AUGMENT_LEVELS
from ..data.pet_labels import AUX_TASKS, check_aux_task
from ..models import MODELS, one_image_batch_problem, pretrained_kwargs, settings_problem
from ..models.classes import CLASS_COUNTS
from ..options import (
    MAX_IMAGE_SIZE,
    add_amp,
    add_data_path,
    add_device,
    add_quick,
    add_time_budget,
    time_budget_value,
)
from .losses import LOSSES
from .multitask import AUX_MODELS, AUX_WEIGHT

LOG_KINDS = ("none", "csv", "tensorboard")  # TrainConfig.log: outputs/logs (logs.py)
LR_SCHEDULES = ("constant", "cosine", "one_cycle", "step")  # training/schedules.py
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a file-name part: no folders, no '..'


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the design report's."""

    data_path: str | None = None  # None: data/oxford-iiit-pet, else the offline sample
    model: str = "unet"  # a key of models.MODELS: "unet", "resnet34_unet", ...
    augment: bool = False
    augment_level: str = "report"  # "report"; "strong": + rotation, Cutout, CutMix; "mixup"
    keep_originals: bool = True  # with augment: the report's doubling; False: all augmented
    epochs: int = 20
    batch_size: int = 8  # per process under torchrun: a step sees batch_size x processes
    learning_rate: float = 1e-4
    weight_decay: float = 0.0  # decoupled (AdamW-style) weight decay; 0 in the report
    image_size: int = 256
    seed: int = 0
    num_workers: int | None = None  # DataLoader processes; None: 4 with CUDA, 0 on a CPU
    device: str = "auto"  # "auto": cuda, then mps, then cpu
    run_name: str | None = None  # None: "<model>" or "<model>_aug"
    checkpoint_dir: str = "checkpoints"
    output_dir: str = "outputs"
    limit: int | None = None  # use only this many training images (quick runs)
    epoch_samples: int | None = None  # draw this many training samples per epoch; None: all
    valid_limit: int | None = None  # validate on this many images spread over the split
    time_budget: float | None = None  # seconds: train only the epochs that fit (time_budget.py)
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"base_channels": 32}
    resume: bool = False  # continue from <run_name>_last.pth when it exists
    progress: bool = True  # tqdm progress bars
    lr_schedule: str = "constant"  # "constant" (the report), "cosine", "one_cycle" or "step"
    loss: str | None = None  # None: "bce" (the report), or "ce" with 3 classes (losses.py)
    classes: int = 1  # 1: pet against background (the report); 3: + the boundary (classes.py)
    log: str | None = None  # None or "none", "csv" or "tensorboard": outputs/logs (logs.py)
    aux_task: str | None = None  # None; "species" or "breed": + a class head (multitask.py)
    aux_weight: float = AUX_WEIGHT  # with aux_task: loss = segmentation + aux_weight x CE
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
        if self.classes not in CLASS_COUNTS:
            raise ValueError(f"classes must be 1 (pet against background) or 3 (pet, "
                             f"background, boundary), not {self.classes!r}")
        if self.loss is None:
            self.loss = "ce" if self.classes == 3 else "bce"
        if (self.loss == "ce") != (self.classes == 3):
            raise ValueError(f"classes={self.classes} cannot train with loss {self.loss!r}: "
                             "'ce' (cross-entropy) trains the three classes, the others one")
        if self.classes == 3 and self.augment and self.augment_level == "mixup":
            raise ValueError("Mixup blends two masks into a soft one, which has no class per "
                             "pixel: classes=3 trains with the report or strong augmentations")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.augment_level not in AUGMENT_LEVELS:
            raise ValueError(f"augment_level must be one of {', '.join(AUGMENT_LEVELS)}, not "
                             f"{self.augment_level!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not "
                             f"{self.lr_schedule!r}")
        if problem := settings_problem(self.model, model_settings(self)):
            raise ValueError(problem)
        if self.batch_size == 1 and (problem := one_image_batch_problem(self.model,
                                                                         self.image_size)):
            raise ValueError(f"batch_size 1 cannot train {self.model} ({problem}): "
                             "use a batch_size of 2 or more")
        check_aux_task(self.aux_task)
        if self.aux_task is not None and self.model not in AUX_MODELS:
            raise ValueError(f"aux_task needs a model with a class head ({', '.join(AUX_MODELS)})"
                             f", not {self.model}")
        if not (isinstance(self.aux_weight, int | float) and 0 <= self.aux_weight <= 100):
            raise ValueError(f"aux_weight must be a number from 0 to 100, not "
                             f"{self.aux_weight!r}")
        if self.run_name is None:  # e.g. "unet", "unet_aug", "unet_aug_strong", "unet_species"
            self.run_name = (self.model + augment_suffix(self.augment, self.augment_level)
                             + aux_suffix(self.aux_task))
        if not (isinstance(self.run_name, str) and RUN_NAME.fullmatch(self.run_name)):
            raise ValueError("run_name names the run's files, so it must be letters, digits, "
                             f"'-', '_' and '.', starting with a letter or digit, not "
                             f"{self.run_name!r}")


def model_settings(config: TrainConfig) -> dict:
    """What build_model gets: CONFIG's model_kwargs, and three outputs for three classes."""
    return {**config.model_kwargs, **({"out_channels": 3} if config.classes == 3 else {})}


def aux_suffix(aux_task: str | None) -> str:
    """What a run's default name says about its class head: '', '_species' or '_breed'."""
    return "" if aux_task is None else f"_{aux_task}"


def augment_suffix(augment: bool, level: str = "report") -> str:
    """What a run's default name says about its augmentation: '', '_aug', '_aug_strong', ..."""
    return ("_aug" if augment else "") + (f"_{level}" if augment and level != "report" else "")


# QUICK mode: narrow models, each at the smallest image size where it learns the pets'
# shapes within seconds on 2 CPU cores (test Dice in the README). ResNet34's stem divides an
# image by 4 before its first block, which leaves too little of a 64 px pet: the
# ResNet34-UNet trains at 128 px. The time of a quick run does not grow with the dataset:
# each epoch is QUICK_EPOCH_SAMPLES samples drawn from the whole training split (the 180
# toy pets, the 340 real ones beside the project, or the full dataset's 3,312), and
# validation uses QUICK_VALID_IMAGES images spread over its split. BCE + soft Dice and weight
# decay gave 0.02 to 0.03 more test Dice than BCE alone on the real photos beside the course;
# the ResNet34-UNet's rate was chosen by validation Dice among 5e-4, 1e-3, 2e-3 and 3e-3
# (benchmarks/README.md).
QUICK_MODELS = {  # model: (base_channels, image_size, learning rate, epochs, with augmentation)
    "unet": (8, 64, 3e-3, 28, 32),
    "resnet34_unet": (16, 128, 1e-3, 20, 22),
}
# Settings of single configurations, (settings, model, augment), that differ from the rest,
# each chosen by validation Dice on the real photos beside the course (benchmarks/README.md):
# - weight decay 0.5 instead of 0.05 for the quick UNet without augmentation, which otherwise
#   learns its training photos by heart (last-epoch validation Dice +0.013 ± 0.003 over five
#   folds of the real trainval photos, every fold), and for the laptop recipe's UNet with
#   augmentation (+0.005 in three seeds and two more folds, one of them level); the other
#   configurations were level or lower with it;
# - 60 epochs instead of 48 for the laptop recipe's UNet with augmentation, whose changed
#   copies keep it learning: last-epoch validation Dice +0.004 ± 0.003 over three seeds and two
#   more folds (three of five higher), a quarter more training time;
# - the one-cycle schedule (a warm-up) instead of cosine for the quick ResNet34-UNet without
#   augmentation: last-epoch validation Dice +0.011 ± 0.004 over five folds (four higher),
#   best +0.013 ± 0.003 (all five).
CONFIGURATION_SETTINGS = {
    ("quick", "unet", False): dict(weight_decay=0.5),
    ("quick", "resnet34_unet", False): dict(lr_schedule="one_cycle"),
    ("laptop", "unet", True): dict(weight_decay=0.5, epochs=60),
}
QUICK_BASELINES = (64, 8, 12)  # image_size, epochs, epochs with augmentation: baselines.py
QUICK_EPOCH_SAMPLES = 256  # training samples per quick epoch, whatever the dataset's size
QUICK_VALID_IMAGES = 64  # validation images of a quick run (fewer when the split is smaller)


def quick_epochs() -> list[int]:
    """The epochs QUICK mode trains the course's two models for, without and with augmentation."""
    return [n for *_, plain, augmented in QUICK_MODELS.values() for n in (plain, augmented)]


def quick_config(**overrides) -> TrainConfig:
    """A configuration small enough to train on a laptop CPU in seconds (QUICK mode)."""
    model, augment = overrides.get("model", "unet"), overrides.get("augment", False)
    suffix = (augment_suffix(augment, overrides.get("augment_level", "report"))
              + aux_suffix(overrides.get("aux_task")) + "_quick")
    binary = overrides.get("classes", 1) == 1  # three classes: cross-entropy (loss None)
    settings = dict(batch_size=16, learning_rate=3e-3, lr_schedule="cosine",
                    loss="bce_dice" if binary else None,
                    weight_decay=0.05, run_name=model + suffix,
                    epoch_samples=QUICK_EPOCH_SAMPLES, valid_limit=QUICK_VALID_IMAGES)
    if model in QUICK_MODELS:
        width, image_size, rate, epochs, epochs_augmented = QUICK_MODELS[model]
        settings.update(model_kwargs={"base_channels": width}, learning_rate=rate)
    else:
        image_size, epochs, epochs_augmented = QUICK_BASELINES
    settings.update(image_size=image_size, epochs=epochs_augmented if augment else epochs)
    settings.update(CONFIGURATION_SETTINGS.get(("quick", model, augment), {}))
    settings.update(overrides)
    return TrainConfig(**settings)


# RECIPES: settings for real photos on a laptop CPU (python -m petseg_lib.train --recipe
# laptop), chosen by validation Dice on the real photos beside the project
# (benchmarks/README.md) and sized to train within 10 minutes on 2 CPU cores (those of
# 2026-12-05). A slower CPU trains fewer epochs: the recipe's time budget (RECIPE_SECONDS,
# time_budget.py) sets them to what fits in the 10 minutes. Like quick mode, an epoch is
# a fixed number of samples, so the time does not grow with the dataset.
# With --augment every sample is augmented with the report's set: it reached a higher
# validation Dice than the "strong" set (0.8395 against 0.8313, one seed each). The UNet's
# rate: 1.5e-3 and 1e-3 both beat 3e-3 on validation (two seeds each); the ResNet34-UNet's
# validation Dice was the same at 1e-3 as at 3e-3.
RECIPE_SECONDS = 600  # the laptop recipe's time budget: 10 minutes of training
RECIPES = {
    "laptop": {
        "unet": dict(model_kwargs={"base_channels": 16}, image_size=128, epochs=48,
                     learning_rate=1.5e-3),
        "resnet34_unet": dict(model_kwargs={"base_channels": 16}, image_size=128, epochs=90,
                              learning_rate=3e-3),
        "all": dict(batch_size=16, lr_schedule="cosine", epoch_samples=640,
                    augment_level="report", keep_originals=False, weight_decay=0.05,
                    loss="bce_dice", time_budget=RECIPE_SECONDS),
    },
}


def augment_level(recipe: str | None = None) -> str:
    """The augmentation level RECIPE trains with (a key of RECIPES), or the report's (None)."""
    return RECIPES[recipe]["all"]["augment_level"] if recipe else "report"


def recipe_config(recipe: str, **overrides) -> TrainConfig:
    """The settings of RECIPE (a key of RECIPES) for the model asked, then OVERRIDES."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, not {recipe!r}")
    model = overrides.get("model", "unet")
    if model not in RECIPES[recipe]:
        models = ", ".join(m for m in RECIPES[recipe] if m != "all")
        raise ValueError(f"the {recipe} recipe is for {models}, not {model!r}")
    augment = overrides.get("augment", False)
    suffix = (augment_suffix(augment, overrides.get("augment_level", augment_level(recipe)))
              + aux_suffix(overrides.get("aux_task")))
    settings = dict(RECIPES[recipe]["all"], **RECIPES[recipe][model],
                    run_name=f"{model}{suffix}_{recipe}")
    settings.update(CONFIGURATION_SETTINGS.get((recipe, model, augment), {}))
    if overrides.get("classes", 1) != 1:
        settings["loss"] = None  # three classes: cross-entropy
    settings.update(overrides)
    return TrainConfig(**settings)


def quick_mode() -> bool:
    """True when PETSEG_QUICK=1: notebooks and tests then use small, fast settings."""
    return os.environ.get("PETSEG_QUICK", "0") == "1"


def check_settings(config: TrainConfig) -> None:
    """A ValueError naming the first impossible setting (e.g. epochs=0, image_size=16)."""
    for name, minimum in (("epochs", 1), ("batch_size", 1), ("image_size", 32),
                          ("num_workers", 0), ("limit", 1), ("epoch_samples", 1),
                          ("valid_limit", 1)):
        value = getattr(config, name)
        if value is not None and not (isinstance(value, int) and value >= minimum):
            raise ValueError(f"{name} must be a whole number of at least {minimum}, "
                             f"not {value!r}")
    if isinstance(config.image_size, int) and config.image_size > MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be at most {MAX_IMAGE_SIZE}, not {config.image_size}")
    if config.time_budget is not None and not (isinstance(config.time_budget, int | float)
                                               and 0 < config.time_budget < math.inf):
        raise ValueError(f"time_budget must be a number of seconds above 0, or None for no "
                         f"budget, not {config.time_budget!r}")
    if not (isinstance(config.learning_rate, int | float) and 0 < config.learning_rate < 10):
        raise ValueError(f"learning_rate must be a number between 0 and 10, not "
                         f"{config.learning_rate!r}")
    if not (isinstance(config.weight_decay, int | float) and 0 <= config.weight_decay < 1):
        raise ValueError(f"weight_decay must be a number from 0 up to 1, not "
                         f"{config.weight_decay!r}")


# ----------------------------------------------------------------------- the command line

def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The command line of `python -m petseg_lib.train`, as a TrainConfig."""
    return parse_command(argv)[0]


def parse_command(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """The command line of `python -m petseg_lib.train`: a TrainConfig, and whether --find_lr.

    Only the options given are passed on, so an explicit value always wins, also one equal
    to the report's default under --quick (e.g. `--quick --epochs 20` trains 20 epochs).
    """
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m petseg_lib.train", description="Train a "
                                     "UNet or ResNet34-UNet on the Oxford-IIIT Pet dataset.")

    def option(name: str, text: str, show_default: bool = True, **kwargs) -> None:
        default = getattr(defaults, name, None) if show_default else None
        shown = f" (default: {default})" if default is not None else ""
        parser.add_argument(f"--{name}", default=argparse.SUPPRESS, help=text + shown, **kwargs)

    add_data_path(parser)  # options.py: shared with inference, app and compare
    option("model", "architecture", choices=sorted(MODELS))
    option("augment_level", "with --augment: report (the report's set), strong (+ rotation, "
           "Cutout, CutMix) or mixup (the report's set + Mixup: two images and their masks "
           "blended)", choices=AUGMENT_LEVELS)
    parser.add_argument("--pretrained", action="store_true", help="start the encoder from "
                        "ImageNet weights (resnet34_unet and the baselines; downloaded once into "
                        "the torch hub cache; the model's own width)")
    option("augment", "double the training set with augmented copies (crop-and-zoom, flip, "
           "greyscale, brightness)", action="store_true")
    for name, text in (("epochs", "passes over the training set"),
                       ("batch_size", "images per Adam step"),
                       ("image_size", "images are resized to this square size"),
                       ("seed", "random seed (same seed on CPU: same history)"),
                       ("num_workers", "DataLoader worker processes (default: 4 with CUDA, "
                        "else 0)"),
                       ("limit", "use only this many training images"),
                       ("epoch_samples", "training samples drawn at random per epoch (default: "
                        "the whole training set; --quick: a fixed number)"),
                       ("valid_limit", "validate on this many images spread over the split"),
                       ("base_channels", "model width: channels of the first layer, doubled "
                        "at each level (64 in the report and in ResNet34; 8 to 32 on a CPU)")):
        option(name, text, type=int)
    option("learning_rate", "Adam learning rate", type=float)
    add_time_budget(parser, RECIPE_SECONDS, default=argparse.SUPPRESS)
    option("weight_decay", "decoupled weight decay of Adam (AdamW)", type=float)
    option("keep_originals", "with --augment: keep each image's plain copy beside its "
           "augmented one (the report's doubling, the default); --no-keep_originals augments "
           "every sample", show_default=False, action=argparse.BooleanOptionalAction)
    option("loss", "bce as in the report; dice, bce_dice, focal, iou or bce_iou",
           choices=sorted(LOSSES))
    option("classes", "1: pet against background, as in the report; 3: pet, background and "
           "boundary, with softmax and cross-entropy", type=int, choices=CLASS_COUNTS)
    option("aux_task", "also learn each photo's species (cat or dog) or breed (37) with a "
           "class head on the encoder's deepest features (multi-task; unet, resnet34_unet, "
           "segformer_b0; the Oxford layout's annotations/list.txt)", choices=sorted(AUX_TASKS))
    option("aux_weight", "with --aux_task: the weight of the class head's cross-entropy in the "
           "loss", type=float)
    option("lr_schedule", "constant as in the report; cosine annealing to 0; one_cycle: a "
           "warm-up over the first 30 %% of the epochs, then cosine; or step: the rate times "
           "0.1 for the last third of the epochs", choices=LR_SCHEDULES)
    add_device(parser)
    add_amp(parser)
    option("run_name", "names the run's files: letters, digits, - _ . (default: <model> or "
           "<model>_aug)", show_default=False)
    option("checkpoint_dir", "where <run_name>_best.pth and _last.pth go")
    option("output_dir", "where the metrics plot and history go")
    option("log", "also log each epoch to outputs/logs: a CSV file or TensorBoard",
           choices=LOG_KINDS)
    option("resume", "continue from <run_name>_last.pth", action="store_true")
    for name, text in (("cache", "resized-image cache in the data folder; default: with "
                                 "CUDA, and up to 128 px"),
                       ("channels_last", "NHWC memory layout; default: where it is faster"),
                       ("compile", "torch.compile the model"), ("sync_bn", "SyncBatchNorm (DDP)"),
                       ("keep_memory", "glibc keeps freed memory for the next batch; "
                                       "default: on a CPU"),
                       ("pin_memory", "page-locked batches for faster GPU copies; default: "
                                      "with CUDA"),
                       ("persistent_workers", "keep DataLoader workers between epochs; "
                                              "default: when there are workers"),
                       ("cudnn_benchmark", "cuDNN tries and keeps the fastest kernels; "
                                           "default: with CUDA")):
        option(name, text, action=argparse.BooleanOptionalAction)
    option("progress", "progress bars; default: in a terminal, else one line per epoch",
           show_default=False, action=argparse.BooleanOptionalAction)
    add_quick(parser)
    parser.add_argument("--recipe", choices=sorted(RECIPES), help="settings for real photos on "
                        "a laptop CPU (at most 10 minutes on 2 cores), for whatever is not "
                        "given explicitly")
    parser.add_argument("--find_lr", action="store_true", help="instead of training: the "
                        "learning-rate range test (a short run with a growing rate; prints a "
                        "suggested --learning_rate and saves the loss-against-rate figure)")
    given = vars(parser.parse_args(argv))
    find_lr = given.pop("find_lr")
    given.setdefault("progress", sys.stderr.isatty())  # one line per epoch in a log file
    if "time_budget" in given:
        given["time_budget"] = time_budget_value(given["time_budget"])
    if "base_channels" in given:
        given["model_kwargs"] = {"base_channels": given.pop("base_channels")}
    if given.pop("pretrained"):
        given["model_kwargs"] = {**given.get("model_kwargs", {}),
                                 **pretrained_kwargs(given.get("model", "unet"))}
    quick, recipe = given.pop("quick"), given.pop("recipe")
    if quick and recipe:
        raise ValueError("--quick and --recipe each choose the settings: give one of them")
    if recipe:
        return recipe_config(recipe, **given), find_lr
    if not quick:
        return TrainConfig(**given), find_lr
    given.setdefault("run_name", None)  # checkpoints/<model>_best.pth, as without --quick
    return quick_config(**given), find_lr
