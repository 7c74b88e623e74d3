"""Checkpoints: what a trained model is saved as, written safely and read without trust.

A checkpoint is a dict of tensors and plain Python values (numbers, strings, lists, dicts),
so `torch.load(weights_only=True)` reads it: a file that would need pickled code to load is
refused, and nothing in it runs. Files are written under a temporary name and renamed, so a
reader sees the old file or the new one, never half of one.

    <run>_best.pth   the model with the best validation Dice: enough to rebuild and use it
    <run>_last.pth   the same after the latest epoch, plus the optimizer, schedule, history
                     and random states: enough to resume training exactly
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from .models import MODELS

FORMAT = "petseg-checkpoint"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: missing, not a checkpoint, or not fitting."""


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


def run_paths(config) -> tuple[Path, Path]:
    """Where a run's best and last checkpoints go."""
    folder = Path(config.checkpoint_dir)
    return folder / f"{config.run_name}_best.pth", folder / f"{config.run_name}_last.pth"


def checkpoint_payload(model: nn.Module, config, epoch: int, metrics: dict) -> dict:
    """Everything needed to rebuild and use MODEL without the training code's arguments."""
    return {
        "format": FORMAT,
        "model_name": config.model,
        "model_kwargs": dict(model.config),
        "state_dict": model.state_dict(),
        "image_size": config.image_size,
        "epoch": epoch,
        "metrics": metrics,
        "config": dataclasses.asdict(config),
    }


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """The dict saved by training, with one clear error when the file cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at '{path}'. Train a model first, e.g. "
                              "`python -m petseg_lib.train --quick`, or check the path.")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        code = re.search(r"GLOBAL ([\w.]+)", str(err))  # what the file wanted to run or build
        if code is None:
            raise CheckpointError(f"'{path}' is not a petseg checkpoint (damaged, or not a "
                                  "PyTorch file).") from err
        raise CheckpointError(f"'{path}' was refused: loading it would run pickled Python code "
                              f"({code.group(1)}), which a petseg checkpoint never needs; "
                              "nothing in it ran.") from err
    except Exception as err:  # a garbage or truncated file can fail anywhere in the unpickler
        raise CheckpointError(f"'{path}' is not a petseg checkpoint (it could not be read "
                              f"by torch.load: {str(err).splitlines()[0]}).") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a petseg checkpoint (no 'format': "
                              f"'{FORMAT}' entry); it was not written by petseg_lib.train.")
    if state.get("model_name") not in MODELS:
        raise CheckpointError(f"'{path}' names an unknown model {state.get('model_name')!r}.")
    return state


def load_weights(model: nn.Module, state: dict, path: str | Path) -> nn.Module:
    """Load a checkpoint's weights into MODEL, or raise one CheckpointError naming the misfit."""
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        # torch lists every mismatch after a header line; the first one names the problem.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [repr(err)]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(f"The weights in '{path}' do not fit the model "
                              f"{state.get('model_name')} {state.get('model_kwargs')} "
                              f"({detail}). Was it saved by another version of petseg_lib "
                              "or with other settings? Then train it again.") from err
    return model


# Settings that must be the same to resume a run; `epochs` may grow with a constant rate.
RESUME_MUST_MATCH = ("model", "model_kwargs", "image_size", "batch_size", "learning_rate",
                     "lr_schedule", "loss", "augment", "augment_level", "limit", "seed")
RESUME_KEYS = ("optimizer", "scheduler", "scaler", "history", "best_dice", "rng", "loader_rng",
               "epoch")


def training_state(model: nn.Module, config, epoch: int, metrics: dict, optimizer, scheduler,
                   scaler, history: dict, best_dice: float, generator: torch.Generator) -> dict:
    """A `_last.pth` payload: the model plus all that is needed to resume training exactly."""
    state = checkpoint_payload(model, config, epoch, metrics)
    state.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                 scaler=scaler.state_dict(), history=history, best_dice=best_dice,
                 rng=torch.get_rng_state(), loader_rng=generator.get_state())
    return state


def resume_problem(saved: dict, config) -> str | None:
    """Why a run saved with SAVED settings cannot go on under CONFIG, or None when it can."""
    for name in RESUME_MUST_MATCH:
        if saved.get(name) != getattr(config, name):
            return (f"it was trained with {name}={saved.get(name)!r}, not "
                    f"{getattr(config, name)!r}")
    if config.lr_schedule == "cosine" and saved.get("epochs") != config.epochs:
        return (f"its cosine schedule ends at epoch {saved.get('epochs')}, not "
                f"{config.epochs}")
    return None


def restore_training(path: Path, config, device: torch.device, model: nn.Module, optimizer,
                     scheduler, scaler, generator: torch.Generator) -> tuple[dict, float, int]:
    """Load a `_last.pth` into the training objects; returns history, best Dice, epoch."""
    state = read_checkpoint(path, device)
    missing = [key for key in RESUME_KEYS if key not in state]
    problem = (f"it lacks {', '.join(missing)} (saved by an older petseg_lib?)" if missing
               else resume_problem(state.get("config", {}), config))
    if problem is not None:
        raise CheckpointError(f"Cannot resume from {path}: {problem}. Resume with the same "
                              "settings, or start a new run (another --run_name, or delete "
                              "the file).")
    try:
        load_weights(model, state, path)
    except CheckpointError as err:
        raise CheckpointError(f"Cannot resume from {path}: {err}") from err
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"]:  # empty when the run had no gradient scaler
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"].cpu())  # random states are CPU tensors, whatever DEVICE
    generator.set_state(state["loader_rng"].cpu())
    print(f"Resuming {config.run_name} after epoch {state['epoch']}.")
    return state["history"], state["best_dice"], state["epoch"]
