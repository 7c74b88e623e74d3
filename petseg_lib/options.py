"""The command-line options that several commands share, each declared once with its check.

`inference`, `app`, `export`, `compare`, `pseudo_labels`, `demo` and `train` add them with
`add_model(parser)`, `add_threshold(parser)`, `add_seeds(parser)`... so a flag has the same
name, meaning, help, default and range in every command. A value out of range is refused as
the parser reads it, by a UserError: one line and exit status 2 under cli.run_cli, like every
other mistake of the user.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .data.masks import BOUNDARY_POLICIES
from .errors import UserError
from .evaluation.threshold import DEFAULT_THRESHOLD, MAX_THRESHOLD, MIN_THRESHOLD

MIN_IMAGE_SIZE = 32  # the models halve the size five times
MAX_IMAGE_SIZE = 4096  # a larger side needs more memory per image than a GPU has


class Checked(argparse.Action):
    """Store an option's value once CHECK(flag, value) has returned it (or raised a UserError)."""

    def __init__(self, option_strings: list[str], dest: str,
                 check: Callable[[str, object], object], **kwargs) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.check = check

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, self.check(option_string, values))


def threshold_value(flag: str, value: float) -> float:
    """VALUE when it is a threshold the sliders offer, MIN_THRESHOLD to MAX_THRESHOLD."""
    if not MIN_THRESHOLD <= value <= MAX_THRESHOLD:  # `not <=` also refuses NaN
        raise UserError(f"{flag} must be between {MIN_THRESHOLD} and {MAX_THRESHOLD}, "
                        f"not {value}")
    return value


def image_size_value(flag: str, value: int) -> int:
    """VALUE when a model can run at it: MIN_IMAGE_SIZE to MAX_IMAGE_SIZE pixels a side."""
    if value < MIN_IMAGE_SIZE:
        raise UserError(f"{flag} must be at least {MIN_IMAGE_SIZE}, not {value}")
    if value > MAX_IMAGE_SIZE:
        raise UserError(f"{flag} must be at most {MAX_IMAGE_SIZE}, not {value}")
    return value


def add_model(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--model CHECKPOINT: the trained model to use."""
    parser.add_argument("--model", required=required, default=None,
                        help="checkpoint, e.g. checkpoints/unet_best.pth")


def add_device(parser: argparse.ArgumentParser) -> None:
    """--device: where the model runs (checked by speed.pick_device)."""
    parser.add_argument("--device", default="auto",
                        help="auto: cuda, mps, then cpu; or cpu, cuda, cuda:N, mps")


def add_image_size(parser: argparse.ArgumentParser, default: str) -> None:
    """--image_size: the side of the square the model sees; DEFAULT says what None means."""
    parser.add_argument("--image_size", type=int, default=None, action=Checked,
                        check=image_size_value,
                        help=f"side of the square images the model sees, {MIN_IMAGE_SIZE} to "
                             f"{MAX_IMAGE_SIZE}; by default {default}")


def add_threshold(parser: argparse.ArgumentParser) -> None:
    """--threshold: the probability above which a pixel is pet."""
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, action=Checked,
                        check=threshold_value,
                        help=f"probability above which a pixel is pet, {MIN_THRESHOLD} to "
                             f"{MAX_THRESHOLD}")


def add_tta(parser: argparse.ArgumentParser) -> None:
    """--tta: mirror test-time augmentation."""
    parser.add_argument("--tta", action="store_true",
                        help="average the logits of each image and its mirror")


def add_amp(parser: argparse.ArgumentParser) -> None:
    """--amp / --no-amp: reduced precision; None lets speed.amp_helps decide."""
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="reduced precision; default: with CUDA, and on a CPU with native "
                             "bfloat16")


def add_time_budget(parser: argparse.ArgumentParser, recipe_seconds: float,
                    default=None) -> None:
    """--time_budget SECONDS: train only the epochs that fit (training/time_budget.py); 0: all."""
    parser.add_argument("--time_budget", type=float, default=default,
                        help="seconds of training per run: it times its epochs and trains only "
                             "those that fit, its schedule ending with them (default: the "
                             f"settings' own: {recipe_seconds:g} with --recipe laptop, else "
                             "none; 0: every epoch)")


def time_budget_value(seconds: float | None) -> float | None:
    """The TrainConfig.time_budget of --time_budget SECONDS: 0 means no budget (None)."""
    return None if seconds == 0 else seconds


def add_data_path(parser: argparse.ArgumentParser) -> None:
    """--data_path: the dataset folder (oxford_pet.find_dataset)."""
    parser.add_argument("--data_path", default=None,
                        help="dataset folder; by default data/oxford-iiit-pet when present, "
                             "else the offline sample dataset")


def add_scoring(parser: argparse.ArgumentParser) -> None:
    """--boundary and --at_original_size: how a split's predictions are scored."""
    parser.add_argument("--boundary", choices=sorted(BOUNDARY_POLICIES), default="pet",
                        help="how the trimap's boundary band is scored")
    parser.add_argument("--at_original_size", action="store_true",
                        help="score each prediction resized back to its image's original size")


def add_quick(parser: argparse.ArgumentParser) -> None:
    """--quick: the quick settings (training.config.quick_config) for what is not given."""
    parser.add_argument("--quick", action="store_true",
                        help="CPU-sized runs of a minute or less: narrow models at 64 px (128 "
                             "for resnet34_unet), a fixed number of samples per epoch, for "
                             "whatever is not given explicitly")


def add_epochs(parser: argparse.ArgumentParser, default: int | None = None) -> None:
    """--epochs: how many epochs each run trains (None: the settings' own)."""
    parser.add_argument("--epochs", type=int, default=default,
                        help="epochs per run" + ("" if default is not None else
                                                 "; by default the report's 20, or the quick "
                                                 "settings'"))


def add_seeds(parser: argparse.ArgumentParser) -> None:
    """--seeds N: train each configuration N times (seeds 0 to N-1)."""
    parser.add_argument("--seeds", type=int, default=1,
                        help="train each configuration this many times, with seeds 0 to N-1: "
                             "mean ± std")


def add_test_limit(parser: argparse.ArgumentParser) -> None:
    """--test_limit: score on this many test images, spread over the split."""
    parser.add_argument("--test_limit", type=int, default=None,
                        help="test images scored (spread over the split); default: all")


def add_run_folders(parser: argparse.ArgumentParser, output_dir: str) -> None:
    """--checkpoint_dir and --output_dir: where a command's runs and results go."""
    parser.add_argument("--checkpoint_dir", default="checkpoints",
                        help="where each run's checkpoints go (and are reused from)")
    parser.add_argument("--output_dir", default=output_dir,
                        help="where the tables and figures go")
