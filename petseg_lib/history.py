"""A run's history: the four numbers the report records per epoch, kept, printed and saved.

    {"train_loss": [...], "valid_loss": [...], "train_dice": [...], "valid_dice": [...]}

`train()` and notebook 05's step-by-step epochs both use `record_epoch`, so the history
looks the same whichever way a model was trained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt

from .paths import written_atomically
from .utils import plot_training_metrics

HISTORY_KEYS = ("train_loss", "valid_loss", "train_dice", "valid_dice")
LOSS_NAMES = {"bce": "BCE", "dice": "Soft Dice", "bce_dice": "BCE + Dice", "focal": "Focal"}


def new_history() -> dict[str, list[float]]:
    """An empty history: one list per curve."""
    return {key: [] for key in HISTORY_KEYS}


def record_epoch(history: dict, train_loss: float, train_dice: float, valid: dict) -> dict:
    """Append one epoch's four numbers to HISTORY (lists keyed by HISTORY_KEYS)."""
    numbers = (train_loss, valid["loss"], train_dice, valid["dice"])
    for key, value in zip(HISTORY_KEYS, numbers, strict=True):
        history.setdefault(key, []).append(value)
    return history


def save_history(history: dict, config) -> None:
    """Write the history as JSON and its curves as a PNG into the output folder."""
    outputs = Path(config.output_dir)
    with written_atomically(outputs / f"{config.run_name}_history.json") as partial:
        partial.write_text(json.dumps(history, indent=2))
    fig = plot_training_metrics(history, outputs / f"{config.run_name}_metrics.png",
                                title=f"{config.run_name}: training curves",
                                loss_name=LOSS_NAMES.get(config.loss, config.loss))
    plt.close(fig)


def print_epoch(epoch: int, history: dict) -> None:
    """One line per epoch: the quiet alternative to progress bars in logs and CI."""
    print(f"epoch {epoch + 1}: train loss {history['train_loss'][-1]:.4f}, "
          f"Dice {history['train_dice'][-1]:.4f} | valid loss {history['valid_loss'][-1]:.4f}, "
          f"Dice {history['valid_dice'][-1]:.4f}", flush=True)


def diverged_epoch(history: dict) -> int | None:
    """The first epoch (from 1) whose validation loss is NaN or infinite, or None.

    (A training loss that stops being a number stops training at once: train_one_epoch.)
    """
    return next((epoch for epoch, loss in enumerate(history["valid_loss"], start=1)
                 if not math.isfinite(loss)), None)
