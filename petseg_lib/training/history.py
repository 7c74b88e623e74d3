"""A run's history: the four numbers the report records per epoch, kept, printed and saved.

    {"train_loss": [...], "valid_loss": [...], "train_dice": [...], "valid_dice": [...]}

A multi-task run (multitask.py) also records its class head's accuracy: "train_accuracy"
and "valid_accuracy".

`train()` and notebook 05's step-by-step epochs both use `record_epoch`, so the history
looks the same whichever way a model was trained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..paths import written_atomically

HISTORY_KEYS = ("train_loss", "valid_loss", "train_dice", "valid_dice")
ACCURACY_KEYS = ("train_accuracy", "valid_accuracy")  # a multi-task run's class head


def curve_keys(history: dict) -> tuple[str, ...]:
    """The curves HISTORY holds: the four of every run, then a class head's accuracy."""
    return HISTORY_KEYS + tuple(key for key in ACCURACY_KEYS if key in history)


def new_history() -> dict[str, list[float]]:
    """An empty history: one list per curve."""
    return {key: [] for key in HISTORY_KEYS}


def record_epoch(history: dict, train_loss: float, train_dice: float, valid: dict,
                 train_accuracy: float | None = None) -> dict:
    """Append one epoch's four numbers to HISTORY (lists keyed by HISTORY_KEYS).

    With TRAIN_ACCURACY (a multi-task run), also it and VALID's "accuracy".
    """
    numbers = (train_loss, valid["loss"], train_dice, valid["dice"])
    for key, value in zip(HISTORY_KEYS, numbers, strict=True):
        history.setdefault(key, []).append(value)
    if train_accuracy is not None:
        for key, value in zip(ACCURACY_KEYS, (train_accuracy, valid["accuracy"]), strict=True):
            history.setdefault(key, []).append(value)
    return history


def write_history(history: dict, config) -> Path:
    """Write the history as JSON into the output folder: OUTPUT_DIR/RUN_NAME_history.json."""
    path = Path(config.output_dir) / f"{config.run_name}_history.json"
    with written_atomically(path) as partial:
        partial.write_text(json.dumps(history, indent=2))
    return path


def print_epoch(epoch: int, history: dict) -> None:
    """One line per epoch: the quiet alternative to progress bars in logs and CI."""
    print(f"epoch {epoch + 1}: train loss {history['train_loss'][-1]:.4f}, "
          f"Dice {history['train_dice'][-1]:.4f} | valid loss {history['valid_loss'][-1]:.4f}, "
          f"Dice {history['valid_dice'][-1]:.4f}" + accuracy_text(history), flush=True)


def accuracy_text(history: dict) -> str:
    """' | class accuracy train 0.8125, valid 0.7500' for a multi-task run, else ''."""
    if "train_accuracy" not in history:
        return ""
    return (f" | class accuracy train {history['train_accuracy'][-1]:.4f}, "
            f"valid {history['valid_accuracy'][-1]:.4f}")


def diverged_epoch(history: dict) -> int | None:
    """The first epoch (from 1) whose validation loss is NaN or infinite, or None.

    (A training loss that stops being a number stops training at once: train_one_epoch.)
    """
    return next((epoch for epoch, loss in enumerate(history["valid_loss"], start=1)
                 if not math.isfinite(loss)), None)
