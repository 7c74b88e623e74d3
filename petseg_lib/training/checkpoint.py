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
import reprlib
from pathlib import Path

import torch
from torch import nn

from ..data.sample import read_marker
from ..errors import CheckpointError
from ..models import MODELS, build_model
from ..options import MAX_IMAGE_SIZE
from ..paths import default_sample_root, written_atomically
from .multitask import AUX_WEIGHT

FORMAT = "petseg-checkpoint"


def save_checkpoint(payload: dict, path: str | Path) -> Path:
    """Write PAYLOAD with torch.save atomically: a temporary file, then a rename."""
    with written_atomically(path) as partial:
        torch.save(payload, partial)
    return Path(path)


def run_paths(config) -> tuple[Path, Path]:
    """Where a run's best and last checkpoints go."""
    folder = Path(config.checkpoint_dir)
    return folder / f"{config.run_name}_best.pth", folder / f"{config.run_name}_last.pth"


def keep_earlier_run(best_path: Path) -> None:
    """Rename an earlier run's best checkpoint to <run>_best.previous.pth before a fresh run."""
    if best_path.exists():
        previous = best_path.with_name(best_path.stem + ".previous.pth")
        os.replace(best_path, previous)
        print(f"{best_path.name} from an earlier run is kept as {previous.name} (--resume "
              "continues a run instead; --run_name gives a new run its own files).")


def checkpoint_payload(model: nn.Module, config, epoch: int, metrics: dict,
                       data: dict | None = None) -> dict:
    """Everything needed to rebuild and use MODEL; DATA is `training_data`'s record.

    A MultiTask (multitask.py) saves its segmenter as the model, and its head as "aux_head".
    """
    segmenter = getattr(model, "segmenter", model)
    payload = {
        "format": FORMAT,
        "model_name": config.model,
        "model_kwargs": dict(segmenter.config),
        "state_dict": segmenter.state_dict(),
        "image_size": config.image_size,
        "epoch": epoch,
        "metrics": metrics,
        "config": dataclasses.asdict(config),
    }
    if data is not None:
        payload["training_data"] = data
    if segmenter is not model:
        payload["aux_head"] = model.head.state_dict()
    return payload


def training_data(folder: str | Path, photos: int) -> dict:
    """What a run trained on: the dataset FOLDER, its number of training PHOTOS, toy or real."""
    return {"folder": str(folder), "photos": int(photos),
            "toy_sample": read_marker(folder) is not None}


def describe_training_data(state: dict) -> str:
    """One line on the data a checkpoint's STATE (from read_checkpoint) was trained on."""
    data = state.get("training_data")
    if not isinstance(data, dict):  # saved before checkpoints recorded it: guess from config
        folder = (state.get("config") or {}).get("data_path")
        if folder is None:
            return "trained on data it does not record (the dataset found when it was trained)"
        toy = read_marker(folder) is not None or Path(folder).name == default_sample_root().name
        data = {"folder": str(folder), "photos": None, "toy_sample": toy}
    count = f"{data['photos']} " if isinstance(data.get("photos"), int) else ""
    if data.get("toy_sample"):
        return (f"trained on the offline toy sample ({count}drawn pets): expect poor masks "
                "on real photos")
    return f"trained on {count}real photos from {Path(str(data.get('folder'))).name}"


def read_checkpoint(path: str | Path) -> dict:
    """The dict saved by training, with one clear error when the file cannot be used.

    Tensors are read onto the CPU whatever device they were saved from; a caller moves the
    model where it runs (a CUDA checkpoint loads on a machine without CUDA).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at '{path}'. Train a model first, e.g. "
                              "`python -m petseg_lib.train --quick`, or check the path.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        code = re.search(r"GLOBAL ([\w.]+)", str(err))  # what the file wanted to run or build
        if code is None:
            raise CheckpointError(f"'{path}' is not a petseg checkpoint (damaged, or not a "
                                  "PyTorch file).") from err
        raise CheckpointError(f"'{path}' was refused: loading it would run pickled Python code "
                              f"({code.group(1)}), which a petseg checkpoint never needs; "
                              "nothing in it ran.") from err
    except Exception as err:  # a garbage or truncated file can fail anywhere in the unpickler
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"'{path}' is not a petseg checkpoint (it could not be read "
                              f"by torch.load: {first_line}).") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' is not a petseg checkpoint (no 'format': "
                              f"'{FORMAT}' entry); it was not written by petseg_lib.train.")
    problem = checkpoint_problem(state)
    if problem is not None:
        raise CheckpointError(f"'{path}' cannot be used: {problem}.")
    return state


def checkpoint_problem(state: dict) -> str | None:
    """What is wrong with the model entries of a checkpoint's STATE, or None."""
    kwargs, size = state.get("model_kwargs"), state.get("image_size")
    if state.get("model_name") not in MODELS:
        return f"it names an unknown model {reprlib.repr(state.get('model_name'))}"
    if not (isinstance(kwargs, dict) and all(isinstance(key, str) for key in kwargs)):
        return f"model_kwargs is missing or not a dict of settings ({reprlib.repr(kwargs)})"
    downloads = sorted(key for key in kwargs if key.startswith("pretrained") and kwargs[key])
    if downloads:  # the saved weights are the model; loading one never downloads anything
        return f"its model settings ask for downloaded weights ({', '.join(downloads)})"
    if not (type(size) is int and 32 <= size <= MAX_IMAGE_SIZE):
        return (f"image_size is {reprlib.repr(size)}, not a whole number from 32 to "
                f"{MAX_IMAGE_SIZE}")
    return None


def model_from_checkpoint(state: dict, path: str | Path) -> nn.Module:
    """The model a checkpoint's STATE (from read_checkpoint) records, with its weights loaded.

    The model is first built on the "meta" device, which gives the shapes and takes no memory,
    so settings that do not fit the saved weights are refused before anything is allocated: a
    damaged or crafted file cannot make a model of a trillion parameters.
    """
    name, kwargs = state["model_name"], state["model_kwargs"]
    try:
        with torch.device("meta"):
            outline = build_model(name, **kwargs)
    except Exception as err:  # an unknown, wrong-typed or impossible setting
        raise CheckpointError(f"'{path}' records model settings that cannot build a "
                              f"{name} {reprlib.repr(kwargs)} ({err}).") from err
    misfit = weights_misfit(outline, state.get("state_dict"))
    if misfit:
        raise misfit_error(path, state, misfit)
    return load_weights(build_model(name, **kwargs), state, path)


def weights_misfit(model: nn.Module, weights) -> str:
    """How WEIGHTS differ from MODEL's state dict (missing or extra keys, a shape), or ''."""
    if not isinstance(weights, dict):
        return f"its state_dict is {reprlib.repr(weights)}, not a dict of tensors"
    expected = model.state_dict()
    parts = []
    for what, keys in (("missing", [k for k in expected if k not in weights]),
                       ("unexpected", [k for k in weights if k not in expected])):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} {what} key{'s' * (len(keys) > 1)}: "
                         f"{', '.join(map(str, keys[:3]))}{more}")
    if parts:
        return "; ".join(parts)
    for key, tensor in expected.items():
        theirs = weights[key]
        if not isinstance(theirs, torch.Tensor):
            return f"{key} is {reprlib.repr(theirs)}, not a tensor"
        if theirs.shape != tensor.shape:
            return (f"{key} has shape {tuple(theirs.shape)} in the file, "
                    f"{tuple(tensor.shape)} in the model")
    return ""


def misfit_error(path: str | Path, state: dict, detail: str) -> CheckpointError:
    """One error for weights that do not fit the model the checkpoint names."""
    return CheckpointError(f"The weights in '{path}' do not fit the model "
                           f"{state.get('model_name')} {state.get('model_kwargs')} "
                           f"({detail}). Was it saved by another version of petseg_lib "
                           "or with other settings? Then train it again.")


def load_weights(model: nn.Module, state: dict, path: str | Path) -> nn.Module:
    """Load a checkpoint's weights into MODEL, or raise one CheckpointError naming the misfit.

    A MultiTask (multitask.py) gets its segmenter's weights and its head's ("aux_head").
    """
    segmenter = getattr(model, "segmenter", model)
    try:
        segmenter.load_state_dict(state["state_dict"], strict=True)
        if segmenter is not model:
            model.head.load_state_dict(state["aux_head"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        # torch lists every mismatch after a header line; the first one names the problem.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [repr(err)]
        detail = weights_misfit(segmenter, state.get("state_dict")) or (
            lines[1] if len(lines) > 1 else lines[0])
        raise misfit_error(path, state, detail) from err
    check_finite(model, path)
    return model


def check_finite(model: nn.Module, path: str | Path) -> None:
    """A CheckpointError when a weight or buffer of MODEL, loaded from PATH, is NaN or infinite."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"The weights in '{path}' hold NaN or infinite values (first "
                                  f"in {name}); such a model predicts nothing. Was its training "
                                  "diverging? Train it again, e.g. with a lower learning rate.")


# Settings that must be the same to resume a run; `epochs` may grow with a constant rate.
RESUME_MUST_MATCH = ("model", "model_kwargs", "image_size", "batch_size", "learning_rate",
                     "lr_schedule", "loss", "augment", "augment_level", "limit", "seed",
                     "weight_decay", "keep_originals", "epoch_samples", "classes", "aux_task",
                     "aux_weight")
RESUME_KEYS = ("optimizer", "scheduler", "scaler", "history", "best_dice", "rng", "loader_rng",
               "epoch")


def training_state(model: nn.Module, config, epoch: int, metrics: dict, optimizer, scheduler,
                   scaler, history: dict, best_dice: float, generator: torch.Generator,
                   data: dict | None = None) -> dict:
    """A `_last.pth` payload: the model plus all that is needed to resume training exactly."""
    state = checkpoint_payload(model, config, epoch, metrics, data)
    state.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                 scaler=scaler.state_dict(), history=history, best_dice=best_dice,
                 rng=torch.get_rng_state(), loader_rng=generator.get_state())
    return state


# Settings added after checkpoints were first written, with the value every earlier run had.
ADDED_SETTINGS = {"classes": 1, "aux_task": None, "aux_weight": AUX_WEIGHT}


def saved_setting(saved: dict, name: str):
    """Setting NAME of a checkpoint's SAVED config, also from a run older than the setting."""
    return saved.get(name, ADDED_SETTINGS.get(name))


def resume_problem(saved: dict, config) -> str | None:
    """Why a run saved with SAVED settings cannot go on under CONFIG, or None when it can."""
    for name in RESUME_MUST_MATCH:
        if saved_setting(saved, name) != getattr(config, name):
            return (f"it was trained with {name}={saved.get(name)!r}, not "
                    f"{getattr(config, name)!r}")
    if config.lr_schedule != "constant" and not epochs_match(saved, config):
        return (f"its {config.lr_schedule} schedule ends at epoch {saved.get('epochs')}, not "
                f"{config.epochs}")
    if not same_folder(saved.get("data_path"), config.data_path):
        return f"it was trained on {saved.get('data_path')!r}, not {config.data_path!r}"
    return None


def epochs_match(saved: dict, config) -> bool:
    """True when a run saved with SAVED settings trains CONFIG's epochs, or fewer because
    its time budget, the same as CONFIG's, cut them (time_budget.py)."""
    return saved.get("epochs") == config.epochs or cut_by_budget(saved, config)


def cut_by_budget(saved: dict, config) -> bool:
    """True when CONFIG's time budget cut the epochs of the run saved with SAVED settings."""
    return (config.time_budget is not None and saved.get("time_budget") == config.time_budget
            and isinstance(saved.get("epochs"), int) and saved["epochs"] < config.epochs)


def same_folder(a: str | None, b: str | None) -> bool:
    """True when A and B name the same folder, or are both None (the default dataset)."""
    if a is None or b is None:
        return a is b
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def stale_run_problem(config) -> str | None:
    """Why CONFIG's saved `_last.pth` cannot be resumed, or None (also when there is none)."""
    last_path = run_paths(config)[1]
    if not last_path.exists():
        return None
    try:
        state = read_checkpoint(last_path)
    except CheckpointError as err:
        return str(err)
    return resume_problem(state.get("config", {}), config)


def restore_training(path: Path, config, model: nn.Module, optimizer, scheduler, scaler,
                     generator: torch.Generator) -> tuple[dict, float, int]:
    """Load a `_last.pth` into the training objects; returns history, best Dice, epoch.

    The file is read onto the CPU; the weights and the optimizer's state are copied to the
    device their model lives on.
    """
    state = read_checkpoint(path)
    saved = state.get("config", {})
    missing = [key for key in RESUME_KEYS if key not in state]
    problem = (f"it lacks {', '.join(missing)} (saved by an older petseg_lib?)" if missing
               else resume_problem(saved, config))
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
    if cut_by_budget(saved, config):
        config.epochs = saved["epochs"]  # as many as the time budget let it train
    torch.set_rng_state(state["rng"])  # random states are CPU tensors
    generator.set_state(state["loader_rng"])
    print(f"Resuming {config.run_name} after epoch {state['epoch']}.")
    return state["history"], state["best_dice"], state["epoch"]
