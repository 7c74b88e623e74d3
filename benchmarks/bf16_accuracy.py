"""Does bfloat16 cost accuracy? The same training in float32 and in bfloat16, several seeds.

Trains the demo's recipe (petseg_lib.demo.DEMO: UNet base 8, 64 px, augmentation, cosine) on
the offline sample dataset once per seed in each precision and prints the best validation
Dice of every run, each precision's mean, and the difference of the means.

    python benchmarks/bf16_accuracy.py              # 3 seeds of each: about 8 minutes on 2 cores
    python benchmarks/bf16_accuracy.py --smoke      # 1 seed, 1 epoch: checks that it still runs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from petseg_lib.data.sample import ensure_sample_dataset
from petseg_lib.demo import DEMO
from petseg_lib.train import train
from petseg_lib.training.config import TrainConfig

RECIPE = {**DEMO, "progress": False}


def best_dice(amp: bool, seed: int, epochs: int, limit: int | None, folder: str) -> float:
    """The best validation Dice of one run of the recipe."""
    config = TrainConfig(**{**RECIPE, "amp": amp, "seed": seed, "epochs": epochs,
                            "limit": limit, "data_path": str(ensure_sample_dataset()),
                            "checkpoint_dir": folder, "output_dir": folder,
                            "run_name": f"{'bf16' if amp else 'fp32'}_{seed}"})
    return max(train(config)["valid_dice"])


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    """Run every seed in both precisions, interleaved; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=DEMO["epochs"])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    seeds, epochs, limit = (1, 1, 8) if args.smoke else (args.seeds, args.epochs, None)
    scores = {"float32": [], "bfloat16": []}
    seconds = {"float32": 0.0, "bfloat16": 0.0}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(seeds):
            for name, amp in (("float32", False), ("bfloat16", True)):
                started = time.perf_counter()
                scores[name].append(best_dice(amp, seed, epochs, limit, folder))
                seconds[name] += time.perf_counter() - started
    for name, values in scores.items():
        runs = ", ".join(f"{v:.4f}" for v in values)
        print(f"{name:>9}: best valid Dice per seed {runs}; mean {statistics.mean(values):.4f}"
              f"; {seconds[name]:.0f} s")
    gap = statistics.mean(scores["bfloat16"]) - statistics.mean(scores["float32"])
    speedup = seconds["float32"] / seconds["bfloat16"]
    print(f"bfloat16 - float32, mean best valid Dice: {gap:+.4f} "
          f"({seeds} seeds, {epochs} epochs, speed-up {speedup:.2f} x)")
    return scores


if __name__ == "__main__":
    main()
