"""Training: the loop of the design report, written out step by step.

Each epoch: forward -> BCEWithLogitsLoss -> backward -> Adam step over the shuffled training
set, then `evaluate` on the validation set. The best model by validation Dice is saved to
`checkpoints/<run_name>_best.pth`; `<run_name>_last.pth` also keeps the optimizer so a run
can be resumed. At the end the curves go to `outputs/<run_name>_metrics.png`.

    python -m petseg_lib.train --model unet --epochs 20 --batch_size 8 --learning_rate 1e-4

Speed-ups are TrainConfig fields, each switchable (measurements in benchmarks/README.md):
channels_last on CPU and CUDA; on a CPU, freed memory kept for the next batch
(`keep_freed_memory`); on CUDA mixed precision, pinned memory, cudnn.benchmark and the
resized-image cache; torch.compile only when asked (`compile=True`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import functools
import json
import math
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .evaluate import dice_score, evaluate, to_float_images
from .models import MODELS, build_model
from .oxford_pet import collate, find_dataset, load_dataset
from .sample import project_root
from .utils import plot_training_metrics

HISTORY_KEYS = ("train_loss", "valid_loss", "train_dice", "valid_dice")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, from glibc's malloc.h
_open_keepers = 0  # keep_freed_memory blocks open now (they may be nested)


@dataclass
class TrainConfig:
    """Everything a training run needs; the defaults are the design report's."""

    data_path: str | None = None  # None: data/oxford-iiit-pet, else the offline sample
    model: str = "unet"  # "unet" or "resnet34_unet"
    augment: bool = False
    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 1e-4
    image_size: int = 256
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # "auto": cuda, then mps, then cpu
    run_name: str | None = None  # None: "<model>" or "<model>_aug"
    checkpoint_dir: str = "checkpoints"
    output_dir: str = "outputs"
    limit: int | None = None  # use only this many training images (quick runs)
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"base_channels": 32}
    resume: bool = False  # continue from <run_name>_last.pth when it exists
    progress: bool = True  # tqdm progress bars
    lr_schedule: str = "constant"  # "constant" (the report) or "cosine": anneal to 0 by the end
    # Speed-ups, each switchable; None picks what helps on the device (see `speedups`).
    cache: bool | None = None  # resized-image cache in the data folder; None: on with CUDA
    channels_last: bool | None = None  # NHWC memory layout; None: on with CUDA and CPU
    amp: bool | None = None  # mixed precision (float16 + GradScaler on CUDA); None: on with CUDA
    pin_memory: bool | None = None  # page-locked batches, faster copies; None: on with CUDA
    persistent_workers: bool | None = None  # None: keep workers alive when num_workers > 0
    cudnn_benchmark: bool | None = None  # cuDNN tries and keeps the fastest kernels; None: CUDA
    compile: bool = False  # torch.compile the model: a slow first batch, then maybe faster
    keep_memory: bool | None = None  # glibc keeps freed memory for the next batch; None: CPU

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, not {self.model!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', not "
                             f"{self.lr_schedule!r}")
        if self.run_name is None:
            self.run_name = self.model + ("_aug" if self.augment else "")


def quick_config(**overrides) -> TrainConfig:
    """A configuration small enough to train on a laptop CPU in about a minute."""
    model, augment = overrides.get("model", "unet"), overrides.get("augment", False)
    settings = dict(image_size=64, epochs=4, limit=64, batch_size=8, learning_rate=3e-3,
                    lr_schedule="cosine", run_name=model + ("_aug" if augment else "") + "_quick")
    if model == "unet":
        settings["model_kwargs"] = {"base_channels": 16}
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
    base = project_root() or Path.cwd()
    settings = dict(checkpoint_dir=str(base / "checkpoints"), output_dir=str(base / "outputs"))
    settings.update(overrides)
    make = quick_config if quick_mode() else TrainConfig
    return make(model=model, augment=augment, **settings)


def pick_device(name: str = "auto") -> torch.device:
    """The requested device, or the best available one for "auto"."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def channels_last_helps(device: torch.device, image_size: int) -> bool:
    """NHWC convolutions are faster on CUDA, and on a CPU from about 128 px (slower below)."""
    return device.type == "cuda" or (device.type == "cpu" and image_size >= 128)


def keep_memory_helps(device: torch.device) -> bool:
    """Only on a CPU do a step's big tensors come from malloc (see keep_freed_memory)."""
    return device.type == "cpu"


def fast_layout(model: nn.Module, device: torch.device, image_size: int) -> nn.Module:
    """MODEL in channels_last when that is faster on DEVICE for IMAGE_SIZE inputs."""
    if channels_last_helps(device, image_size):
        return model.to(memory_format=torch.channels_last)
    return model


def speedups(config: TrainConfig, device: torch.device) -> dict[str, bool]:
    """CONFIG's speed-up switches, each None replaced by the default for DEVICE."""
    cuda = device.type == "cuda"
    defaults = {
        "cache": cuda,  # on a CPU the model, not JPEG decoding, is the bottleneck
        "channels_last": channels_last_helps(device, config.image_size),
        "amp": cuda,
        "pin_memory": cuda,
        "persistent_workers": config.num_workers > 0,
        "cudnn_benchmark": cuda,
        "keep_memory": keep_memory_helps(device),
    }
    return {name: default if getattr(config, name) is None else bool(getattr(config, name))
            for name, default in defaults.items()}


@functools.cache  # platform.libc_ver reads the Python executable: once is enough
def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (Linux), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)  # the process's own symbols: malloc, mallopt, malloc_trim


@contextlib.contextmanager
def keep_freed_memory(enabled: bool = True):
    """While inside, glibc keeps freed memory for reuse; on exit it goes back to the system.

    glibc hands every block above 32 MB back to the system when it is freed, so each training
    step at 256 px page-faults and zero-fills its activations again: about a fifth of a step
    on a CPU. Inside this block such blocks stay in the heap for the next step, at the price of
    some more memory (benchmarks/README.md). Elsewhere than glibc it does nothing. Yields
    whether it is active.
    """
    global _open_keepers
    libc = glibc() if enabled else None
    if libc is None:
        yield False
        return
    if _open_keepers == 0:
        libc.mallopt(M_MMAP_MAX, 0)  # big blocks come from the heap, not from fresh mappings
        libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # and freed memory is not trimmed away
    _open_keepers += 1
    try:
        yield True
    finally:
        _open_keepers -= 1
        if _open_keepers == 0:  # the outermost block restores glibc's defaults
            libc.mallopt(M_MMAP_MAX, 65536)
            libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)
            libc.malloc_trim(0)  # return what training kept


def save_checkpoint(payload: dict, path: str | Path) -> Path:
    """Write PAYLOAD with torch.save atomically: a temporary file, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    finally:
        tmp.unlink(missing_ok=True)
    return path


def make_loaders(config: TrainConfig, data_path: Path) -> tuple[DataLoader, DataLoader]:
    """Shuffled training loader and ordered validation loader."""
    fast = speedups(config, pick_device(config.device))
    train_set = load_dataset(data_path, "train", config.image_size, config.augment, config.limit,
                             cache=fast["cache"])
    valid_limit = None if config.limit is None else max(config.limit // 4, 1)
    valid_set = load_dataset(data_path, "valid", config.image_size, limit=valid_limit,
                             cache=fast["cache"])
    generator = torch.Generator().manual_seed(config.seed)  # the shuffling order
    common = dict(batch_size=config.batch_size, num_workers=config.num_workers,
                  collate_fn=collate, pin_memory=fast["pin_memory"],
                  persistent_workers=fast["persistent_workers"] and config.num_workers > 0)
    train_loader = DataLoader(train_set, shuffle=True, generator=generator, **common)
    valid_loader = DataLoader(valid_set, shuffle=False, **common)
    return train_loader, valid_loader


def train_one_epoch(model: nn.Module, loader: DataLoader, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, device: torch.device,
                    epoch: int = 0, progress: bool = True, amp: bool = False,
                    scaler: torch.amp.GradScaler | None = None,
                    channels_last: bool = False) -> tuple[float, float]:
    """One pass over LOADER; returns the mean loss and mean Dice of the training batches.

    amp runs the forward pass in float16 on CUDA (bfloat16 elsewhere); SCALER, when given,
    scales the loss so that small float16 gradients do not round to zero.
    """
    device = torch.device(device)
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    model.train()
    total_loss = total_dice = seen = 0.0
    batches = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)
    for batch_index, batch in enumerate(batches):
        images = to_float_images(batch["image"]).to(device, non_blocking=True)  # (N, 3, H, W)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        masks = batch["mask"].to(device, non_blocking=True)  # (N, 1, H, W)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            logits = model(images).float()  # (N, 1, H, W)
            loss = criterion(logits, masks)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"The loss became {loss.item()} at epoch {epoch + 1}, "
                                     f"batch {batch_index + 1}: training stopped. Try a smaller "
                                     "learning rate; the best checkpoint is left as it was.")
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # skips the step when a gradient is inf or NaN
            scaler.update()
        n = images.shape[0]
        total_loss += loss.item() * n
        total_dice += dice_score(logits.detach(), masks).item() * n
        seen += n
        batches.set_postfix(loss=f"{loss.item():.4f}")
    return total_loss / seen, total_dice / seen


def checkpoint_payload(model: nn.Module, config: TrainConfig, epoch: int, metrics: dict) -> dict:
    """Everything needed to rebuild and use MODEL without the training code's arguments."""
    return {
        "format": "petseg-checkpoint",
        "model_name": config.model,
        "model_kwargs": dict(model.config),
        "state_dict": model.state_dict(),
        "image_size": config.image_size,
        "epoch": epoch,
        "metrics": metrics,
        "config": dataclasses.asdict(config),
    }


def train(config: TrainConfig, on_epoch_end=None) -> dict:
    """Train one model as CONFIG says; returns the history of the four curves per epoch."""
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    fast = speedups(config, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = fast["cudnn_benchmark"]
    data_path = find_dataset(config.data_path)
    train_loader, valid_loader = make_loaders(config, data_path)
    model = build_model(config.model, **config.model_kwargs).to(device)
    if fast["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    # The compiled model shares its weights with `model`, which is saved and evaluated.
    step_model = torch.compile(model) if config.compile else model
    use_scaler = fast["amp"] and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = None
    if config.lr_schedule == "cosine":  # the learning rate follows half a cosine down to 0
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    criterion = nn.BCEWithLogitsLoss()
    checkpoints, outputs = Path(config.checkpoint_dir), Path(config.output_dir)
    best_path = checkpoints / f"{config.run_name}_best.pth"
    last_path = checkpoints / f"{config.run_name}_last.pth"

    history = {key: [] for key in HISTORY_KEYS}
    best_dice, start_epoch = -1.0, 0
    if config.resume and last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=False)
        try:
            model.load_state_dict(state["state_dict"])
        except RuntimeError as err:
            raise RuntimeError(f"Cannot resume from {last_path}: its weights do not fit "
                               f"{config.model} {config.model_kwargs} (saved with other "
                               "settings or by another version of petseg_lib). Delete it, or "
                               "train without resume.") from err
        optimizer.load_state_dict(state["optimizer"])
        history, best_dice, start_epoch = state["history"], state["best_dice"], state["epoch"]
        torch.set_rng_state(state["rng"])
        train_loader.generator.set_state(state["loader_rng"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        print(f"Resuming {config.run_name} after epoch {start_epoch}.")

    print(f"Training {config.run_name} on {device} with {len(train_loader.dataset)} training "
          f"and {len(valid_loader.dataset)} validation samples from {data_path}.")
    epochs = tqdm(range(start_epoch, config.epochs), desc=config.run_name,
                  disable=not config.progress)
    with keep_freed_memory(fast["keep_memory"]):
        for epoch in epochs:
            train_loss, train_dice = train_one_epoch(
                step_model, train_loader, criterion, optimizer, device, epoch, config.progress,
                amp=fast["amp"], scaler=scaler, channels_last=fast["channels_last"])
            if scheduler is not None:
                scheduler.step()
            valid = evaluate(model, valid_loader, device, criterion)
            for key, value in zip(HISTORY_KEYS, (train_loss, valid["loss"], train_dice,
                                                 valid["dice"]), strict=True):
                history[key].append(value)
            epochs.set_postfix(valid_dice=f"{valid['dice']:.4f}")

            if valid["dice"] > best_dice:
                best_dice = valid["dice"]
                save_checkpoint(checkpoint_payload(model, config, epoch + 1, valid), best_path)
            last = checkpoint_payload(model, config, epoch + 1, valid)
            last.update(optimizer=optimizer.state_dict(), history=history, best_dice=best_dice,
                        rng=torch.get_rng_state(), loader_rng=train_loader.generator.get_state())
            if scaler is not None:
                last["scaler"] = scaler.state_dict()
            if scheduler is not None:
                last["scheduler"] = scheduler.state_dict()
            save_checkpoint(last, last_path)
            if on_epoch_end is not None:
                on_epoch_end(epoch, history)

    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / f"{config.run_name}_history.json").write_text(json.dumps(history, indent=2))
    fig = plot_training_metrics(history, outputs / f"{config.run_name}_metrics.png",
                                title=f"{config.run_name}: training curves")
    plt.close(fig)
    print(f"Best validation Dice {best_dice:.4f}; weights in {best_path}")
    return history


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The command line of `python -m petseg_lib.train`, as a TrainConfig."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="python -m petseg_lib.train",
        description="Train a UNet or ResNet34-UNet on the Oxford-IIIT Pet dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data_path", default=None,
                        help="dataset folder; by default data/oxford-iiit-pet when present, "
                             "else the offline sample dataset")
    parser.add_argument("--model", choices=sorted(MODELS), default=defaults.model,
                        help="architecture")
    parser.add_argument("--augment", action="store_true", help="double the training set "
                        "with augmented copies (crop-and-zoom, flip, greyscale, brightness)")
    for name, text in (("epochs", "passes over the training set"),
                       ("batch_size", "images per Adam step"),
                       ("image_size", "images are resized to this square size"),
                       ("seed", "random seed (same seed on CPU: same history)"),
                       ("num_workers", "DataLoader worker processes")):
        parser.add_argument(f"--{name}", type=int, default=getattr(defaults, name), help=text)
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate,
                        help="Adam learning rate")
    parser.add_argument("--lr_schedule", choices=("constant", "cosine"),
                        default=defaults.lr_schedule,
                        help="constant as in the report, or cosine annealing to 0")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only this many training images")
    parser.add_argument("--base_channels", type=int, default=None,
                        help="UNet width (64 in the report; 32 or 16 for CPU experiments)")
    parser.add_argument("--device", default=defaults.device, help="auto: cuda, mps, then cpu")
    parser.add_argument("--run_name", default=None, help="default: <model> or <model>_aug")
    parser.add_argument("--checkpoint_dir", default=defaults.checkpoint_dir,
                        help="where <run_name>_best.pth and _last.pth go")
    parser.add_argument("--output_dir", default=defaults.output_dir,
                        help="where the metrics plot and history go")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <run_name>_last.pth")
    for name, text in (("cache", "resized-image cache in the data folder; None: on with CUDA"),
                       ("channels_last", "NHWC memory layout; None: on with CUDA and CPU"),
                       ("amp", "mixed precision; None: on with CUDA"),
                       ("compile", "torch.compile the model"),
                       ("keep_memory", "glibc keeps freed memory for the next batch; "
                                       "None: on with a CPU")):
        parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction,
                            default=getattr(defaults, name), help=text)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars; default: on in a terminal, else one line per epoch")
    parser.add_argument("--quick", action="store_true",
                        help="a CPU smoke run: 64 px, 64 images, 4 epochs, unless set explicitly")
    args = vars(parser.parse_args(argv))
    if args["progress"] is None:  # bars in a terminal, one line per epoch in a log file
        args["progress"] = sys.stderr.isatty()
    quick = args.pop("quick")
    base_channels = args.pop("base_channels")
    if base_channels is not None:
        args["model_kwargs"] = {"base_channels": base_channels}
    if not quick:
        return TrainConfig(**args)
    explicit = {k: v for k, v in args.items()
                if k in ("data_path", "model", "augment", "run_name", "checkpoint_dir",
                         "output_dir", "resume", "device", "seed", "num_workers", "model_kwargs",
                         "lr_schedule")
                or v != getattr(defaults, k)}
    return quick_config(**explicit)


def print_epoch(epoch: int, history: dict) -> None:
    """One line per epoch: the quiet alternative to progress bars in logs and CI."""
    print(f"epoch {epoch + 1}: train loss {history['train_loss'][-1]:.4f}, "
          f"Dice {history['train_dice'][-1]:.4f} | valid loss {history['valid_loss'][-1]:.4f}, "
          f"Dice {history['valid_dice'][-1]:.4f}", flush=True)


def main(argv: list[str] | None = None) -> dict:
    """Entry point of `python -m petseg_lib.train`."""
    config = parse_args(argv)
    history = train(config, on_epoch_end=None if config.progress else print_epoch)
    if not history["valid_dice"] or not math.isfinite(history["valid_dice"][-1]):
        raise SystemExit("training produced no validation score")
    return history


if __name__ == "__main__":
    main()
