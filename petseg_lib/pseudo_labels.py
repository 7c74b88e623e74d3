"""Pseudo-labels: can photos nobody labelled help a model trained on a few labelled ones?

The idea (self-training): train a model on the labelled share of the training photos; let it
label the others; keep only the pixels it is sure of (pet where its probability is at least
HIGH, background where it is at most LOW), leave the pixels in between out of the loss, and
train again on the labelled and the pseudo-labelled photos together. The experiment compares,
on the test split, the model of the labelled share alone, the model trained again with
pseudo-labels, and a model trained with every label:

    python -m petseg_lib.pseudo_labels --quick                     # minutes on a laptop CPU
    python -m petseg_lib.pseudo_labels --quick --seeds 3 --fractions 0.1 0.25 \\
        --data_path ../shared/data/oxford-iiit-pet-real

For each fraction and seed:
1. the labelled share is a seeded draw of the training split (`labelled_indices`): the same
   seed gives the same photos, and a smaller fraction's photos are part of a larger one's.
   Only their masks are read; the other photos' images are read without their labels;
2. the first model, trained on the labelled share, predicts the other photos once, at the
   training size; `pseudo_label` keeps the sure pixels, and the predictions stay in memory
   (uint8 images and boolean maps: a few MB at 64 px);
3. a second model is trained from scratch, with the same settings, seed and budget (quick
   mode: the same samples per epoch), on both sets; each batch carries an "ignore" map, and the
   loss leaves those pixels out (masked_loss.py). From scratch, not fine-tuned: a fine-tuned
   first model already agrees with its own sure pixels, so they would teach it little and
   it would keep its mistakes; a fresh model learns them as it learns the real labels, and
   the comparison with the first model differs only in the photos it learns from.

Every model is kept by its validation Dice (the validation split's labels, as in every run
of the course) and scored on the test split: Dice per image, boundary as pet, at the
training size. The table (mean ± standard deviation over the seeds) and the figure (test Dice
against the fraction of labels) go to outputs/pseudo_labels/.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from .cli import positive, run_cli, writable_folder
from .data.augment import to_tv_tensors
from .data.batch import collate
from .data.formats import find_dataset, load_dataset
from .data.resized import ResizedDataset
from .data.user_files import load_rgb
from .errors import UserError
from .evaluation.evaluate import describe_protocol, evaluate
from .evaluation.figures import markdown_grid, save_figure
from .evaluation.predict import model_device, predict_logits, to_float_images
from .inference import load_model
from .models import MODELS
from .options import (
    add_data_path,
    add_epochs,
    add_image_size,
    add_quick,
    add_run_folders,
    add_seeds,
    add_test_limit,
)
from .paths import written_atomically
from .speed import pick_device, speedups
from .train import train
from .training.config import TrainConfig, quick_config

DEFAULT_LOW, DEFAULT_HIGH = 0.1, 0.9  # sure background at most, sure pet at least


# ----------------------------------------------------------------------------- the idea

def pseudo_label(probabilities: torch.Tensor, low: float = DEFAULT_LOW,
                 high: float = DEFAULT_HIGH) -> tuple[torch.Tensor, torch.Tensor]:
    """The float mask (pet where p >= HIGH) and the ignore map (LOW < p < HIGH) of PROBABILITIES."""
    check_thresholds(low, high)
    pet, background = probabilities >= high, probabilities <= low
    return pet.float(), ~(pet | background)


def labelled_indices(count: int, fraction: float, seed: int) -> list[int]:
    """The indices (sorted) of the labelled share FRACTION of COUNT photos, drawn with SEED.

    One seeded shuffle, of which a fraction takes the first round(FRACTION * COUNT), at least
    one: the same seed always gives the same photos, and 10 % of them are part of 25 %.
    """
    check_fraction(fraction)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[:max(1, round(fraction * count))])


class LabelledPhotos(Dataset):
    """The samples of DATASET at INDICES (their masks only are read), with a nothing-ignored map.

    Each sample is {"image", "mask", "ignore", "name"}: the keys of the pseudo-labelled
    photos, so that both can share a batch.
    """

    def __init__(self, dataset: ResizedDataset, indices: list[int]):
        self.dataset, self.indices = dataset, list(indices)
        self.names = [dataset.names[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[self.indices[index]]
        mask = sample["mask"]  # (1, S, S) float
        return {"image": sample["image"], "mask": mask,
                "ignore": torch.zeros_like(mask, dtype=torch.bool), "name": sample["name"]}


@dataclass
class PseudoLabelledPhotos(Dataset):
    """Photos (N, 3, S, S) uint8 and a model's pseudo-labels: mask and ignore map (N, 1, S, S)."""

    images: torch.Tensor
    masks: torch.Tensor  # bool: sure pet
    ignore: torch.Tensor  # bool: unsure, left out of the loss
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        return {"image": to_float_images(self.images[index]), "mask": self.masks[index].float(),
                "ignore": self.ignore[index], "name": self.names[index]}

    def kept(self) -> float:
        """The share of pixels sure enough to train on."""
        return 1.0 - self.ignore.float().mean().item() if len(self) else 0.0


def read_photos(dataset: ResizedDataset, indices: list[int]) -> torch.Tensor:
    """The images (N, 3, S, S) uint8 of DATASET's photos at INDICES, resized; no label is read.

    Decoded as stored (no EXIF turn), as the Oxford format reads them; the pseudo-label is
    predicted on these very pixels, so image and target agree either way.
    """
    photos = []
    for index in indices:
        image = np.array(load_rgb(dataset.image_path(dataset.names[index]), upright=False))
        photos.append(dataset.resize(to_tv_tensors({"image": image, "trimap": None})[0]))
    return torch.stack([p.as_subclass(torch.Tensor) for p in photos])


def predict_pseudo_labels(model: torch.nn.Module, images: torch.Tensor, names: list[str],
                          low: float, high: float, batch_size: int = 64) -> PseudoLabelledPhotos:
    """MODEL's pseudo-labels of IMAGES (N, 3, S, S) uint8, predicted once at their size."""
    device = model_device(model)
    masks, ignores = [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = to_float_images(images[start:start + batch_size]).to(device)
            mask, ignore = pseudo_label(torch.sigmoid(predict_logits(model, batch)).cpu(),
                                        low, high)
            masks.append(mask.bool())
            ignores.append(ignore)
    return PseudoLabelledPhotos(images, torch.cat(masks), torch.cat(ignores), names)


# -------------------------------------------------------------------- checks of the inputs

def check_fraction(fraction: float) -> float:
    """FRACTION itself when it is strictly between 0 and 1, else a UserError."""
    if not 0.0 < fraction < 1.0:  # `not <` also refuses NaN
        raise UserError(f"a fraction of labels must be strictly between 0 and 1, not {fraction}")
    return fraction


def check_thresholds(low: float, high: float) -> None:
    """A UserError unless 0 < LOW < HIGH < 1."""
    if not 0.0 < low < high < 1.0:
        raise UserError(f"the thresholds must satisfy 0 < low < high < 1, not low={low} "
                        f"and high={high}")


# ----------------------------------------------------------------------- the experiment

@dataclass
class Settings:
    """What every run of the experiment shares."""

    data_path: Path
    model: str = "unet"
    quick: bool = False
    low: float = DEFAULT_LOW
    high: float = DEFAULT_HIGH
    checkpoint_dir: str = "checkpoints"
    output_dir: str = "outputs/pseudo_labels"
    test_limit: int | None = None
    epochs: int | None = None
    image_size: int | None = None
    shared: dict = field(default_factory=dict)  # any other TrainConfig setting of every run

    def config(self, run_name: str, seed: int) -> TrainConfig:
        """The TrainConfig of one run: quick settings or the report's, and the options given."""
        given = {k: v for k, v in (("epochs", self.epochs), ("image_size", self.image_size))
                 if v is not None}
        settings = dict(model=self.model, seed=seed, run_name=run_name,
                        data_path=str(self.data_path), checkpoint_dir=self.checkpoint_dir,
                        output_dir=str(Path(self.output_dir) / "runs"), progress=False,
                        **given, **self.shared)
        return quick_config(**settings) if self.quick else TrainConfig(**settings)

    def run_name(self, what: str, seed: int) -> str:
        """A run's file name stem, e.g. 'unet_pseudo_10pc_labelled_s0_quick'."""
        return f"{self.model}_pseudo_{what}_s{seed}" + ("_quick" if self.quick else "")


def train_and_score(settings: Settings, run_name: str, seed: int,
                    train_set: Dataset | None = None) -> tuple[float, Path]:
    """Train one run (on TRAIN_SET, else the whole training split): test Dice and checkpoint."""
    config = settings.config(run_name, seed)
    train(config, train_set=train_set)
    best = Path(config.checkpoint_dir) / f"{run_name}_best.pth"
    return test_dice(best, settings), best


def test_dice(checkpoint: Path, settings: Settings) -> float:
    """Mean Dice per test image of CHECKPOINT, boundary as pet, at its training size."""
    device = pick_device("auto")
    model = load_model(checkpoint, device)
    test_set = load_dataset(settings.data_path, "test", model.image_size,
                            limit=settings.test_limit)
    loader = DataLoader(test_set, batch_size=16, collate_fn=collate)
    return evaluate(model, loader, device, boundary="pet")["dice"]


def run_fraction(settings: Settings, fraction: float, seed: int) -> dict:
    """One fraction and seed: the labelled share alone, then with pseudo-labels; test Dice."""
    config = settings.config("probe", seed)
    cache = speedups(config, pick_device(config.device))["cache"]
    photos = load_dataset(settings.data_path, "train", config.image_size, cache=cache)
    labelled = labelled_indices(len(photos.names), fraction, seed)
    rest = sorted(set(range(len(photos.names))) - set(labelled))
    if not rest:
        raise UserError(f"a fraction of {fraction} labels all {len(photos.names)} training "
                        "photos: none is left to pseudo-label")
    labelled_set = LabelledPhotos(photos, labelled)
    tag = f"{fraction * 100:g}pc"
    alone, first = train_and_score(settings, settings.run_name(f"{tag}_labelled", seed), seed,
                                   labelled_set)
    model = load_model(first, pick_device(config.device))
    pseudo = predict_pseudo_labels(model, read_photos(photos, rest),
                                   [photos.names[i] for i in rest], settings.low, settings.high)
    print(f"Pseudo-labels of {len(rest)} photos: {pseudo.kept():.1%} of their pixels kept "
          f"(probability <= {settings.low} or >= {settings.high}).")
    both = ConcatDataset([labelled_set, pseudo])
    with_pseudo, _ = train_and_score(settings, settings.run_name(f"{tag}_pseudo", seed), seed,
                                     both)
    return {"fraction": fraction, "seed": seed, "labelled": len(labelled),
            "pseudo_labelled": len(rest), "kept": pseudo.kept(), "labelled_only": alone,
            "with_pseudo": with_pseudo}


def run_experiment(settings: Settings, fractions: list[float], seeds: list[int],
                   every_label: list[float] | None = None) -> dict:
    """Every fraction and seed, and every label once per seed; writes the table and figure.

    EVERY_LABEL: the test Dice, seed by seed, of runs already trained on every label with
    these very settings (e.g. by compare.run_comparison, same test_limit), instead of
    training them again.
    """
    if every_label is not None and len(every_label) != len(seeds):
        raise ValueError(f"every_label holds {len(every_label)} scores for {len(seeds)} seeds")
    runs = [run_fraction(settings, fraction, seed) for fraction in fractions for seed in seeds]
    every = list(every_label) if every_label is not None else [
        train_and_score(settings, settings.run_name("all", seed), seed)[0] for seed in seeds]
    image_size = settings.config("probe", seeds[0]).image_size
    results = {"runs": runs, "every_label": every, "seeds": list(seeds),
               "fractions": list(fractions), "low": settings.low, "high": settings.high,
               "model": settings.model, "quick": settings.quick,
               "protocol": describe_protocol("test", "pet", image_size, False, False)}
    write_report(results, Path(settings.output_dir))
    return results


# -------------------------------------------------------------------- the table and figure

def mean_std(values: list[float]) -> tuple[float, float]:
    """The mean and the standard deviation (n - 1; 0 for one value) of VALUES."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def by_fraction(results: dict) -> list[dict]:
    """One row per fraction: the per-seed Dice of both runs, the gain, the pixels kept."""
    rows = []
    for fraction in results["fractions"]:
        runs = [r for r in results["runs"] if r["fraction"] == fraction]
        rows.append({"fraction": fraction, "labelled": runs[0]["labelled"],
                     "labelled_only": [r["labelled_only"] for r in runs],
                     "with_pseudo": [r["with_pseudo"] for r in runs],
                     "gain": [r["with_pseudo"] - r["labelled_only"] for r in runs],
                     "kept": [r["kept"] for r in runs]})
    return rows


def cell(values: list[float], signed: bool = False) -> str:
    """'0.8123 ± 0.0100': the mean ± std of VALUES; SIGNED: '+0.0123 ± 0.0100'."""
    mean, std = mean_std(values)
    return f"{mean:{'+' if signed else ''}.4f} ± {std:.4f}"


def markdown_table(results: dict) -> str:
    """The test Dice of each fraction, without and with pseudo-labels, and of every label."""
    seeds = len(results["seeds"])
    rows = [[f"{100 * r['fraction']:g} %", r["labelled"], cell(r["labelled_only"]),
             cell(r["with_pseudo"]), cell(r["gain"], signed=True),
             "{:.1f} ± {:.1f} %".format(*(100 * v for v in mean_std(r["kept"])))]
            for r in by_fraction(results)]
    rows.append(["100 % (every label)", "all", cell(results["every_label"]), "—", "—", "—"])
    note = (f"Test Dice (mean per image) of {results['model']}, mean ± standard deviation "
            f"over {seeds} seed{'s' if seeds > 1 else ''} ({', '.join(map(str, results['seeds']))}"
            f"; a seed draws the labelled photos and starts the weights). Protocol: "
            f"{results['protocol']}. Pseudo-labels: pet where the first model's probability "
            f">= {results['high']}, background where <= {results['low']}, the rest left out "
            "of the loss; the second model is trained from scratch with the same budget. "
            "Gain: with pseudo-labels less labelled only, seed by seed.\n\n")
    header = ["labels", "labelled photos", "labelled only", "with pseudo-labels", "gain",
              "pseudo-label pixels kept"]
    return note + markdown_grid(header, rows)


def plot_results(results: dict) -> plt.Figure:
    """Test Dice against the fraction of labels, with and without pseudo-labels."""
    rows = by_fraction(results)
    percent = [100 * r["fraction"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key, text, marker in (("labelled_only", "labelled photos only", "o"),
                              ("with_pseudo", "+ pseudo-labelled photos", "s")):
        means, stds = zip(*(mean_std(r[key]) for r in rows), strict=True)
        ax.errorbar(percent, means, yerr=stds, marker=marker, capsize=4, label=text)
    mean, std = mean_std(results["every_label"])
    ax.errorbar([100], [mean], yerr=[std], marker="*", markersize=11, capsize=4,
                color="black", linestyle="none", label="every label")
    ax.axhline(mean, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlabel("labelled training photos (% of the training split)")
    ax.set_ylabel("test Dice (mean per image)")
    seeds = len(results["seeds"])
    ax.set_title(f"Pseudo-labels: test Dice against the fraction of labels\n"
                 f"{results['model']}, error bars: std over {seeds} seed"
                 f"{'s' if seeds > 1 else ''}")
    ax.set_xticks([*percent, 100])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def write_report(results: dict, output_dir: Path) -> Path:
    """Write results.md, results.json and dice_by_fraction.png into OUTPUT_DIR, atomically."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with written_atomically(output_dir / "results.md") as partial:
        partial.write_text(markdown_table(results))
    with written_atomically(output_dir / "results.json") as partial:
        partial.write_text(json.dumps(results, indent=1))
    fig = plot_results(results)
    save_figure(fig, output_dir / "dice_by_fraction.png")
    plt.close(fig)
    print(f"Table and figure in {output_dir}/")
    return output_dir


# ----------------------------------------------------------------------- the command line

def main(argv: list[str] | None = None) -> dict:
    """Entry point of `python -m petseg_lib.pseudo_labels`."""
    parser = argparse.ArgumentParser(prog="python -m petseg_lib.pseudo_labels",
                                     description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_quick(parser)
    add_data_path(parser)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25],
                        help="the labelled shares of the training split, each in (0, 1)")
    add_seeds(parser)  # a seed draws the labelled photos and starts the weights
    parser.add_argument("--low", type=float, default=DEFAULT_LOW,
                        help="background where the first model's probability is at most this")
    parser.add_argument("--high", type=float, default=DEFAULT_HIGH,
                        help="pet where the first model's probability is at least this")
    parser.add_argument("--model", choices=sorted(MODELS), default="unet")
    add_epochs(parser)
    add_image_size(parser, default="the report's 256, or the quick settings'")
    add_test_limit(parser)
    add_run_folders(parser, "outputs/pseudo_labels")
    args = parser.parse_args(argv)
    for fraction in args.fractions:
        check_fraction(fraction)
    check_thresholds(args.low, args.high)
    positive("--seeds", args.seeds)
    positive("--test_limit", args.test_limit)
    positive("--epochs", args.epochs)
    settings = Settings(find_dataset(args.data_path), args.model, args.quick, args.low,
                        args.high, str(writable_folder(args.checkpoint_dir)),
                        str(writable_folder(args.output_dir)), args.test_limit, args.epochs,
                        args.image_size)
    results = run_experiment(settings, sorted(dict.fromkeys(args.fractions)),
                             list(range(args.seeds)))
    print(markdown_table(results))
    return results


if __name__ == "__main__":
    run_cli(main)
