"""Time to accuracy: test Dice against seconds of training, for the laptop recipe on real photos.

Each configuration (model x precision) trains the laptop recipe (config.RECIPES) with
augmentation; after every epoch the latest weights are scored on the test split (per image,
boundary counted as pet, at the training size). The clock counts training only: the scoring
time is taken out. The table gives, per run, the seconds until the test Dice first reached
each goal (0.80, 0.85) and the last epoch's score; the figure draws the curves.

    python benchmarks/time_to_accuracy.py --data_path ../shared/data/oxford-iiit-pet-real
    python benchmarks/time_to_accuracy.py --smoke      # tiny runs on the sample: seconds

bfloat16 runs only where the device computes it natively (speed.amp_helps); elsewhere its
rows say so. Scores on the 568 real pairs beside the project are scores on that set.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from petseg_lib.compare import test_scores  # noqa: E402
from petseg_lib.data.oxford_pet import find_dataset  # noqa: E402
from petseg_lib.evaluation.figures import save_figure  # noqa: E402
from petseg_lib.speed import amp_helps, pick_device  # noqa: E402
from petseg_lib.train import train  # noqa: E402
from petseg_lib.training.config import recipe_config  # noqa: E402

GOALS = (0.80, 0.85)  # test Dice the table times
SMOKE = dict(image_size=32, epochs=2, limit=8, epoch_samples=8, batch_size=4,
             model_kwargs={"base_channels": 8})


class BudgetSpent(Exception):
    """Raised after the epoch that used up a run's seconds of training."""


def curve(model: str, amp: bool, data_path: Path, folder: Path, smoke: bool,
          budget: float | None = None, progress_file: Path | None = None) -> list[tuple]:
    """(training seconds, test Dice) after every epoch of one run, until BUDGET seconds."""
    config = recipe_config("laptop", model=model, augment=True, amp=amp, progress=False,
                           time_budget=None,  # every epoch: BUDGET stops the curve
                           data_path=str(data_path), checkpoint_dir=str(folder),
                           output_dir=str(folder), run_name=f"{model}_{'bf16' if amp else 'fp32'}",
                           **(SMOKE if smoke else {}))
    points, started, scoring = [], time.perf_counter(), 0.0
    last = folder / f"{config.run_name}_last.pth"

    def score(epoch: int, history: dict) -> None:
        nonlocal scoring
        scored_at = time.perf_counter()
        dice = test_scores(last, data_path, pick_device(config.device))["dice"]
        points.append((scored_at - started - scoring, dice))
        scoring += time.perf_counter() - scored_at
        if progress_file is not None:  # each point as it comes: a stopped run keeps its curve
            with progress_file.open("a") as out:
                out.write(f"{config.run_name} {epoch + 1} {points[-1][0]:.1f} {dice:.4f}\n")
        if budget is not None and points[-1][0] >= budget:
            raise BudgetSpent

    try:
        train(config, on_epoch_end=score)
    except BudgetSpent:
        pass
    return points


def time_to(points: list[tuple], goal: float) -> str:
    """Seconds until the curve first reached GOAL, or '—' when it never did."""
    return next((f"{s:.0f} s" for s, dice in points if dice >= goal), "—")


def main(argv: list[str] | None = None) -> list[str]:
    """Train every model in each precision, print the table, save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", default=None, help="default: the dataset in use")
    parser.add_argument("--models", nargs="+", default=["unet", "resnet34_unet"])
    parser.add_argument("--output", default="outputs/time_to_accuracy.png")
    parser.add_argument("--smoke", action="store_true", help="tiny runs on the sample")
    parser.add_argument("--budget_s", type=float, default=600.0,
                        help="stop a run after the epoch that passes this many seconds of "
                        "training (600: the laptop recipe's ten minutes); 0: the whole recipe")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"],
                        choices=["float32", "bfloat16"])
    parser.add_argument("--progress_file", default=None,
                        help="append 'run epoch seconds dice' per epoch to this file")
    args = parser.parse_args(argv)
    data_path = find_dataset(None if args.smoke else args.data_path)
    bf16 = amp_helps(pick_device("auto"))
    lines = [f"laptop recipe with augmentation on {data_path}; test Dice per image, boundary "
             "as pet, at the training size; seconds of training only"
             + (f", each run stopped after {args.budget_s:.0f} s" if args.budget_s else ""),
             "| model | precision | " + " | ".join(f"to {g:.2f}" for g in GOALS)
             + " | last test Dice | training |", "|---|---|" + "---|" * (len(GOALS) + 2)]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            for name, amp in (("float32", False), ("bfloat16", True)):
                if name not in args.precisions:
                    continue
                if amp and not bf16:
                    lines.append(f"| {model} | {name} | not native on this device |"
                                 + " |" * (len(GOALS) + 1))
                    continue
                points = curve(model, amp, data_path, Path(folder), args.smoke,
                               args.budget_s or None,
                               Path(args.progress_file) if args.progress_file else None)
                seconds, dice = zip(*points, strict=True)
                ax.plot(seconds, dice, marker="o", markersize=3, label=f"{model}, {name}")
                lines.append(f"| {model} | {name} | "
                             + " | ".join(time_to(points, g) for g in GOALS)
                             + f" | {dice[-1]:.4f} | {seconds[-1]:.0f} s |")
    for goal in GOALS:
        ax.axhline(goal, color="grey", linestyle=":", linewidth=1)
    ax.set(title="Time to accuracy: the laptop recipe on real photos",
           xlabel="seconds of training", ylabel="test Dice (per image)")
    ax.legend()
    save_figure(fig, args.output)
    plt.close(fig)
    print("\n".join(lines))
    print(f"figure: {args.output}")
    return lines


if __name__ == "__main__":
    main()
