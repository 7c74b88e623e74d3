"""The design report's training, timed: each model with augmentation, 20 epochs, 256 px, batch 8.

Trains every model of --models with `petseg_lib.train.train` at the report's settings (the
TrainConfig defaults: Adam 1e-4, BCE, constant rate) with augmentation, on the offline sample
dataset unless --data says otherwise, with the speed-ups the device gets by default. Prints,
per model: seconds per epoch (the first, which includes warming up, and the median of the
others), training images per second of epoch time (validation and checkpoints included),
the best validation Dice and the test Dice of the best checkpoint (per image, boundary as
pet), and the total time.

    python benchmarks/report_training.py                  # both models: an hour or more on a CPU
    python benchmarks/report_training.py --num_workers 8  # more JPEG decoders (CUDA default 4)
    python benchmarks/report_training.py --smoke          # 1 epoch at 32 px: checks that it runs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from petseg_lib.data.oxford_pet import collate, find_dataset, load_dataset
from petseg_lib.evaluation.evaluate import evaluate
from petseg_lib.inference import load_model
from petseg_lib.models import MODELS
from petseg_lib.speed import data_workers, describe_precision, pick_device, speedups
from petseg_lib.train import train
from petseg_lib.training.config import TrainConfig


def device_name(device: torch.device) -> str:
    """The GPU's name, or the device type."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def timed_run(config: TrainConfig) -> dict:
    """Train CONFIG, noting when each epoch ends; returns the history and the epoch times."""
    ends = []
    started = time.perf_counter()
    history = train(config, on_epoch_end=lambda epoch, history: ends.append(time.perf_counter()))
    seconds = [end - begin for begin, end in zip([started, *ends], ends, strict=False)]
    return {"history": history, "epoch_seconds": seconds, "total": ends[-1] - started}


def score_on_test_split(config: TrainConfig, data: Path, device: torch.device, amp: bool) -> float:
    """Test Dice (per image, boundary as pet) of the run's best checkpoint."""
    model = load_model(Path(config.checkpoint_dir) / f"{config.run_name}_best.pth", device)
    test_set = load_dataset(data, "test", config.image_size, limit=config.limit)
    loader = DataLoader(test_set, batch_size=config.batch_size, collate_fn=collate)
    return evaluate(model, loader, device, amp=amp)["dice"]


def result_line(name: str, run: dict, train_images: int, dice: float) -> str:
    """One row of the table."""
    first, rest = run["epoch_seconds"][0], run["epoch_seconds"][1:] or run["epoch_seconds"]
    typical = statistics.median(rest)
    return (f"{name:<16} {first:>9.1f} {typical:>9.2f} {train_images / typical:>11.1f} "
            f"{max(run['history']['valid_dice']):>10.4f} {dice:>9.4f} {run['total']:>8.0f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The script's options; --smoke shrinks the run to seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet", "resnet34_unet"],
                        choices=sorted(MODELS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--num_workers", type=int, default=None,
                        help="DataLoader workers (default: 4 with CUDA, else 0)")
    parser.add_argument("--data", default=None, help="dataset folder (default: the sample)")
    parser.add_argument("--no_augment", action="store_true", help="train without augmentation")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--smoke", action="store_true",
                        help="1 epoch at 32 px on 8 images, narrow models")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[str]:
    """Train and time every model; print and return the table's lines."""
    args = parse_args(argv)
    data = find_dataset(args.data)
    smoke = dict(epochs=1, image_size=32, limit=8, model_kwargs={"base_channels": 8}) \
        if args.smoke else {}
    device = pick_device("auto")
    lines = []
    with tempfile.TemporaryDirectory(prefix="petseg-report-") as folder:
        for name in args.models:
            config = TrainConfig(**{"model": name, "augment": not args.no_augment,
                                    "epochs": args.epochs, "num_workers": args.num_workers,
                                    "compile": args.compile, "data_path": str(data),
                                    "checkpoint_dir": folder, "output_dir": folder,
                                    "progress": False, **smoke})
            amp = speedups(config, device)["amp"]
            if not lines:
                lines = [f"{device_name(device)}, torch {torch.__version__}; "
                          f"{describe_precision(device, amp)}",
                          f"{config.epochs} epochs, {config.image_size} px, batch "
                          f"{config.batch_size}, Adam {config.learning_rate:g}, augmentation: "
                          f"{'yes' if config.augment else 'no'}, "
                          f"{data_workers(config.num_workers, device)} workers, data: {data}", "",
                          f"{'model':<16} {'epoch 1 s':>9} {'epoch s':>9} {'train img/s':>11} "
                          f"{'best valid':>10} {'test Dice':>9} {'total s':>8}"]
                print("\n".join(lines), flush=True)
            run = timed_run(config)
            train_images = len(load_dataset(data, "train", config.image_size, config.augment,
                                            config.limit))
            dice = score_on_test_split(config, data, device, amp)
            lines.append(result_line(name, run, train_images, dice))
            print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
