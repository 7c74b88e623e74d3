"""Experiment logs on your own disk: a run's numbers per epoch as a CSV file or a TensorBoard log.

No account and no network: everything goes to files in the logs folder (outputs/logs).

    python -m petseg_lib.train --quick --log csv          # outputs/logs/<run_name>_history.csv
    python -m petseg_lib.train --quick --log tensorboard  # outputs/logs/<run_name>/
    tensorboard --logdir outputs/logs                     # then open http://localhost:6006

The CSV file has one row per epoch (the four curves of history.py, a multi-task run's class
accuracy, and the learning rate) and opens in any spreadsheet. TensorBoard draws the same curves
while the run trains and shows, each epoch, a few validation images: the input, the ground truth
and the prediction. TensorBoard is an optional extra: `pip install -e ".[logs]"`.

`train()` always calls `open_run_log`; when no log is asked for it gets a `RunLog`, which
writes nothing, so the loop needs no `if`.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import torch
from torch import nn
from torchvision.utils import make_grid

from ..data.oxford_pet import collate
from ..errors import UserError
from ..evaluation.figures import overlay_mask
from ..evaluation.predict import binarize, to_float_images
from .config import LOG_KINDS
from .history import HISTORY_KEYS, curve_keys

CSV_HEADER = ("epoch", *HISTORY_KEYS, "learning_rate")  # a multi-task run adds its accuracy
SCALAR_TAGS = {"train_loss": "loss/train", "valid_loss": "loss/valid",
               "train_dice": "dice/train", "valid_dice": "dice/valid",
               "train_accuracy": "accuracy/train", "valid_accuracy": "accuracy/valid"}
GRID_IMAGES = 4  # validation images shown per epoch in TensorBoard


class RunLog:
    """A log that writes nothing: what train() gets without a log, and the base of the others."""

    def epoch(self, epoch: int, history: dict, learning_rate: float,
              model: nn.Module | None = None, batch: dict | None = None) -> None:
        """Record epoch EPOCH (counted from 1): the last value of each curve in HISTORY."""

    def close(self) -> None:
        """Finish writing the log."""

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class CsvLog(RunLog):
    """One row per epoch in FOLDER/<run_name>_history.csv, on disk as soon as the epoch ends."""

    def __init__(self, folder: str | Path, run_name: str):
        self.path = Path(folder) / f"{run_name}_history.csv"
        self.file = None  # opened at the first epoch, when we know whether the run resumes

    def epoch(self, epoch: int, history: dict, learning_rate: float,
              model: nn.Module | None = None, batch: dict | None = None) -> None:
        """Write one row: the epoch, the last value of each curve, the learning rate."""
        if self.file is None:
            self.file = self._open(epoch, csv_header(history))
        values = [history[key][-1] for key in curve_keys(history)]
        csv.writer(self.file).writerow([epoch, *values, learning_rate])
        self.file.flush()  # a run stopped mid-way keeps the rows of its finished epochs

    def close(self) -> None:
        """Close the file."""
        if self.file is not None:
            self.file.close()

    def _open(self, epoch: int, header: tuple[str, ...]):
        """The file, ready for EPOCH's row, keeping the rows of the epochs before it."""
        rows = read_rows(self.path, header)
        kept = [row for row in rows if row and row[0].isdigit() and int(row[0]) < epoch]
        if rows and kept == rows:  # a resumed run: its earlier rows stay, the new ones follow
            return self.path.open("a", newline="")
        # A new run (or one resumed from an earlier epoch): later rows are from another run.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("w", newline="")
        csv.writer(file).writerows([header, *kept])
        return file


def csv_header(history: dict) -> tuple[str, ...]:
    """The CSV log's columns for a run with HISTORY: CSV_HEADER, + accuracy for multi-task."""
    return ("epoch", *curve_keys(history), "learning_rate")


def read_rows(path: Path, header: tuple[str, ...] = CSV_HEADER) -> list[list[str]]:
    """The rows under HEADER in the CSV log at PATH; none if it is missing or not ours."""
    if not path.exists():
        return []
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    if rows and rows[0] != list(header):
        warnings.warn(f"{path} has another header than {','.join(header)}: it is replaced",
                      stacklevel=2)
        return []
    return rows[1:]


class TensorBoardLog(RunLog):
    """Curves and prediction grids in FOLDER/<run_name>/, for `tensorboard --logdir FOLDER`."""

    def __init__(self, folder: str | Path, run_name: str):
        # TensorBoard is an optional extra, so the course runs without it: it is imported
        # here, only when a TensorBoard log is asked for.
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            message = 'TensorBoard logs need tensorboard: pip install -e ".[logs]"'
            raise UserError(message) from None  # a UserError: one line on the command line
        self.writer = SummaryWriter(log_dir=str(Path(folder) / run_name))

    def epoch(self, epoch: int, history: dict, learning_rate: float,
              model: nn.Module | None = None, batch: dict | None = None) -> None:
        """Add the curves and the rate at step EPOCH; given MODEL and BATCH, a prediction grid."""
        for key in curve_keys(history):
            self.writer.add_scalar(SCALAR_TAGS[key], history[key][-1], epoch)
        self.writer.add_scalar("learning_rate", learning_rate, epoch)
        if model is not None and batch is not None:
            self.writer.add_image("valid/predictions", prediction_grid(model, batch), epoch)
        self.writer.flush()  # TensorBoard shows the epoch now, not when the run ends

    def close(self) -> None:
        """Write what is left and close the event file."""
        self.writer.close()


def prediction_grid(model: nn.Module, batch: dict, count: int = GRID_IMAGES) -> torch.Tensor:
    """A (3, H', W') grid, one column per image: input, ground truth, prediction (pet black)."""
    images = to_float_images(batch["image"][:count]).clamp(0, 1)  # (n, 3, H, W)
    was_training = model.training
    device = next(model.parameters()).device
    with torch.no_grad():
        predicted = binarize(model.eval()(images.to(device))).cpu()  # (n, 1, H, W) bool
    model.train(was_training)  # back to the mode the training loop left it in
    rows = [images, masked(images, batch["mask"][:count]), masked(images, predicted)]
    return make_grid(torch.cat(rows), nrow=len(images), pad_value=1.0)


def first_samples(dataset, count: int = GRID_IMAGES) -> dict:
    """The first COUNT samples of DATASET as one batch, read without drawing random numbers."""
    # Not next(iter(loader)): a new DataLoader iterator draws a seed from torch's random state,
    # and training would then shuffle differently from a run without a log.
    return collate([dataset[index] for index in range(min(count, len(dataset)))])


def masked(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """IMAGES (n, 3, H, W) with each mask's area filled black, as in the course's figures."""
    pairs = zip(images, masks, strict=True)
    pictures = [torch.from_numpy(overlay_mask(image, mask)) for image, mask in pairs]
    return torch.stack(pictures).permute(0, 3, 1, 2)  # (n, H, W, 3) -> (n, 3, H, W)


def open_run_log(kind: str | None, folder: str | Path, run_name: str) -> RunLog:
    """The log KIND names: None or "none" (writes nothing), "csv" or "tensorboard"."""
    if kind is None or kind == "none":
        return RunLog()
    if kind == "csv":
        return CsvLog(folder, run_name)
    if kind == "tensorboard":
        return TensorBoardLog(folder, run_name)
    raise ValueError(f"log must be one of {', '.join(LOG_KINDS)}, not {kind!r}")
