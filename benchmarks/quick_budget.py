"""Does a quick run take as long on a dataset ten times larger? Timed here, in one process.

Builds a copy of a dataset with every pair linked TIMES times under new names (same split
files, so ten times as many training, validation and test images), then times quick-mode
training of one configuration on the original and on the copy, alternately, each with a
fresh resized-image cache (the first run on a dataset) and again with the cache it filled.

    python benchmarks/quick_budget.py --data_path ../shared/data/oxford-iiit-pet-real

Prints the seconds of each run (whole `train()` call: reading the split, checking the files,
training, validating) and the ratio larger / original; benchmarks/README.md records a run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from petseg_lib.data.oxford_pet import read_split_file  # noqa: E402
from petseg_lib.train import train  # noqa: E402
from petseg_lib.training.config import quick_config  # noqa: E402


def linked_copy(source: Path, target: Path, times: int) -> Path:
    """TARGET: every pair of SOURCE linked TIMES times under new names, split files to match."""
    for folder in ("images", "annotations/trimaps"):
        (target / folder).mkdir(parents=True, exist_ok=True)
    for split in ("trainval", "test"):
        lines = []
        for copy in range(times):
            for name in read_split_file(source / "annotations" / f"{split}.txt"):
                new = f"{name}_{copy}"
                os.symlink(source / "images" / f"{name}.jpg", target / "images" / f"{new}.jpg")
                os.symlink(source / "annotations" / "trimaps" / f"{name}.png",
                           target / "annotations" / "trimaps" / f"{new}.png")
                lines.append(f"{new} 1 1 1")
        (target / "annotations" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return target


def timed_run(data_path: Path, model: str, augment: bool, work: Path, tag: str) -> float:
    """Seconds of one quick training run on DATA_PATH."""
    config = quick_config(model=model, augment=augment, data_path=str(data_path),
                          checkpoint_dir=str(work / "checkpoints"),
                          output_dir=str(work / "outputs"), run_name=f"budget_{tag}",
                          progress=False)
    started = time.perf_counter()
    train(config)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--model", default="unet")
    parser.add_argument("--augment", action="store_true")
    args = parser.parse_args(argv)
    source = Path(args.data_path).resolve()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        larger = linked_copy(source, work / "larger", args.times)
        seconds = {}
        for cache in ("cold", "warm"):
            if cache == "cold":
                os.environ["PETSEG_CACHE"] = str(work / "cache")  # empty: the first run
            for name, root in (("original", source), ("larger", larger)):
                seconds[name, cache] = timed_run(root, args.model, args.augment, work,
                                                 f"{name}_{cache}")
        print(f"\nquick {args.model}{' + augmentation' if args.augment else ''}: "
              f"{source.name} and a copy with every pair {args.times} times")
        for cache in ("cold", "warm"):
            a, b = seconds["original", cache], seconds["larger", cache]
            print(f"  {cache} cache: {a:.1f} s original, {b:.1f} s larger: ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
