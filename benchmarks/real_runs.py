"""Many training runs on real photos, side by side: the measurements behind the README's results.

Each run is a TrainConfig (quick settings, the laptop recipe or the report's settings, with
overrides), trained on a dataset and scored on its test split: test Dice per image and pooled
(boundary counted as pet, at the training size), the best validation Dice and the training
seconds. Runs go to a pool of JOBS processes, THREADS PyTorch threads each, and every result is
appended to OUT/results.jsonl as soon as it exists (an interrupted sweep keeps what it had).

    python benchmarks/real_runs.py --plan quick --data_path ../shared/data/oxford-iiit-pet-real
    python benchmarks/real_runs.py --plan laptop --seeds 0 1 2 --jobs 8 --threads 2

`--plan` picks a list of runs from PLANS; `--only NAME ...` keeps some of them. The table at the
end gives each run's mean ± std over the seeds (and folds) it was trained with.

The real set's validation split is 37 photos: their mean Dice has a standard error of about
0.02, so it cannot choose between settings closer than that. `--folds K`
trains each run K times, on K splits of the same trainval photos (`fold_dataset`), each
validating on a different tenth of them: the mean validation Dice over the folds rests on K
times as many photos (185 with 5 folds), and none of them is a test photo. Each row also
records the last epoch's validation Dice, which, unlike the best, is not a maximum over noisy
epochs.

    python benchmarks/real_runs.py --plan weight_decay --only unet unet_wd0.5 --folds 5 \
        --versus unet --data_path ...

`--versus NAME` adds each run's difference from NAME, paired by seed and fold (mean ± standard
error over the pairs), and says in how many pairs it was higher: the figure to choose by.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGURATIONS = (("unet", False), ("resnet34_unet", False), ("unet", True),
                  ("resnet34_unet", True))

# A plan: name -> (base settings, overrides). "quick" is config.quick_config, "laptop" is
# config.recipe_config("laptop"), "report" is TrainConfig's defaults (the design report's).
PLANS = {
    "quick": {f"{m}{'_aug' if a else ''}": ("quick", dict(model=m, augment=a))
              for m, a in CONFIGURATIONS},
    "laptop": {f"{m}{'_aug' if a else ''}": ("laptop", dict(model=m, augment=a))
               for m, a in CONFIGURATIONS},
    "report": {f"{m}{'_aug' if a else ''}": ("report", dict(model=m, augment=a))
               for m, a in CONFIGURATIONS},
}
# What was tried before choosing the quick settings and the laptop recipe (benchmarks/README.md).
PLANS["quick_sweep"] = {
    **{f"{n}_bce_dice": (b, dict(o, loss="bce_dice")) for n, (b, o) in PLANS["quick"].items()},
    **{f"{n}_lr5e-3": (b, dict(o, learning_rate=5e-3)) for n, (b, o) in PLANS["quick"].items()},
    "unet_aug_all": ("quick", dict(model="unet", augment=True, keep_originals=False)),
    "resnet34_unet_aug_all": ("quick", dict(model="resnet34_unet", augment=True,
                                            keep_originals=False)),
    "unet_w12": ("quick", dict(model="unet", model_kwargs={"base_channels": 12})),
    "unet_aug_w12": ("quick", dict(model="unet", augment=True, model_kwargs={"base_channels": 12})),
}
# Second quick sweep: more, smaller steps for the same samples, and the rate of each model.
PLANS["quick_sweep2"] = {
    **{f"{n}_b8": (b, dict(o, batch_size=8)) for n, (b, o) in PLANS["quick"].items()},
    "unet_lr5e-3": ("quick", dict(model="unet", learning_rate=5e-3)),
    "resnet34_unet_lr1e-3": ("quick", dict(model="resnet34_unet", learning_rate=1e-3)),
}
# Third quick sweep: a warm-up before the cosine (one-cycle) for every configuration.
PLANS["quick_sweep3"] = {f"{n}_one_cycle": (b, dict(o, lr_schedule="one_cycle"))
                         for n, (b, o) in PLANS["quick"].items()}
# Multi-task (issue 26): the quick UNet alone, and with a class head learning the species or
# the breed beside the mask (multitask.py; the loss adds aux_weight x cross-entropy).
PLANS["aux"] = {"unet": ("quick", dict(model="unet")),
                "unet_species": ("quick", dict(model="unet", aux_task="species")),
                "unet_breed": ("quick", dict(model="unet", aux_task="breed"))}
NAIVE = dict(augment_level="report", keep_originals=True, weight_decay=0.0, loss="bce")
PLANS["laptop_sweep"] = {
    "unet_aug_naive": ("laptop", dict(model="unet", augment=True, **NAIVE)),
    "unet_aug_report_level": ("laptop", dict(model="unet", augment=True, augment_level="report")),
    "unet_aug_originals": ("laptop", dict(model="unet", augment=True, keep_originals=True)),
    "unet_aug_bce": ("laptop", dict(model="unet", augment=True, loss="bce")),
    "unet_aug_no_wd": ("laptop", dict(model="unet", augment=True, weight_decay=0.0)),
    "unet_aug_w24": ("laptop", dict(model="unet", augment=True, epochs=27,
                                    model_kwargs={"base_channels": 24})),
    "unet_aug_160px": ("laptop", dict(model="unet", augment=True, epochs=35, image_size=160)),
    "unet_naive": ("laptop", dict(model="unet", **NAIVE)),
    "resnet34_unet_aug_w32": ("laptop", dict(model="resnet34_unet", augment=True, epochs=40,
                                             model_kwargs={"base_channels": 32})),
    # The ResNet34-UNet's epoch costs a third of the UNet's at 128 px (time_to_accuracy.py):
    # its ten minutes buy 192 px.
    "resnet34_unet_aug_192px": ("laptop", dict(model="resnet34_unet", augment=True, epochs=45,
                                               image_size=192)),
}
# The report's future directions (issue 26 of the tracker; README "Beyond the report"): the
# quick settings of each new model, and the quick UNet with each new loss, augmentation and
# schedule, beside the quick UNet itself.
PLANS["beyond"] = {
    "unet": ("quick", dict(model="unet")),
    **{m: ("quick", dict(model=m))
       for m in ("segformer_b0", "deeplabv3plus_resnet34", "lraspp_shufflenet_v2")},
    "unet_iou": ("quick", dict(model="unet", loss="iou")),
    "unet_bce_iou": ("quick", dict(model="unet", loss="bce_iou")),
    "unet_aug": ("quick", dict(model="unet", augment=True)),
    "unet_aug_mixup": ("quick", dict(model="unet", augment=True, augment_level="mixup")),
    "unet_step": ("quick", dict(model="unet", lr_schedule="step")),
}
# The soft IoU loss raised the quick UNet's validation Dice beyond the spread of its seeds in
# the plan above: the same change for the four quick configurations.
# Quick mode trains the new models at the baselines' 8 epochs; at the UNet's 28 epochs (the
# same samples seen) the comparison is between architectures, not budgets.
PLANS["beyond_28"] = {f"{m}_28": ("quick", dict(model=m, epochs=28))
                      for m in ("segformer_b0", "lraspp_shufflenet_v2")}
PLANS["quick_iou"] = {f"{n}_iou": (b, dict(o, loss="iou")) for n, (b, o) in PLANS["quick"].items()}
# Weight decay 0.05 (every configuration's before this test) against 0.5, judged by validation
# Dice over folds (--folds 5 --versus NAME): the 37 validation photos of one split could not
# tell them apart. config.CONFIGURATION_SETTINGS holds what was chosen.
COMPARED = {**PLANS["quick"], **{f"laptop_{n}": PLANS["laptop"][n] for n in ("unet", "unet_aug")}}
PLANS["weight_decay"] = {
    **{n: (b, dict(o, weight_decay=0.05)) for n, (b, o) in COMPARED.items()},
    **{f"{n}_wd0.5": (b, dict(o, weight_decay=0.5)) for n, (b, o) in COMPARED.items()},
}
# The quick ResNet34-UNet without augmentation, the configuration furthest from 0.80: stronger
# weight decay, and a higher rate with it.
PLANS["resnet_quick"] = {
    "resnet34_unet_wd0.9": ("quick", dict(model="resnet34_unet", weight_decay=0.9)),
    "resnet34_unet_lr2e-3_wd0.5": ("quick", dict(model="resnet34_unet", weight_decay=0.5,
                                                  learning_rate=2e-3)),
    # Narrower and longer, in about the same time: width 12 costs 0.56 of width 16's FLOPs.
    "resnet34_unet_w12_e32": ("quick", dict(model="resnet34_unet", epochs=32,
                                            model_kwargs={"base_channels": 12})),
    "resnet34_unet_w8_e40": ("quick", dict(model="resnet34_unet", epochs=40,
                                           model_kwargs={"base_channels": 8})),
}

# The quick ResNet34-UNets with each residual block started as its shortcut
# (zero_init_residual, as torchvision's resnet34 offers it), with dropout on the deepest
# features, and at smaller sizes; then the laptop UNet + augmentation trained longer.
ZERO_INIT = {"base_channels": 16, "zero_init_residual": True}
PLANS["zero_init"] = {
    "resnet34_unet": PLANS["quick"]["resnet34_unet"],
    "resnet34_unet_aug": PLANS["quick"]["resnet34_unet_aug"],
    "resnet34_unet_zi": ("quick", dict(model="resnet34_unet", model_kwargs=ZERO_INIT)),
    "resnet34_unet_aug_zi": ("quick", dict(model="resnet34_unet", augment=True,
                                           model_kwargs=ZERO_INIT)),
}
PLANS["dropout"] = {
    "resnet34_unet": PLANS["quick"]["resnet34_unet"],
    **{f"resnet34_unet_drop{p}": ("quick", dict(model="resnet34_unet", model_kwargs={
        "base_channels": 16, "dropout": p})) for p in (0.2, 0.5)},
}
# At 96 or 112 px layer4 sees 3 x 3 or 4 x 4 cells.
PLANS["resnet_size"] = {f"{name}_{size}px": (base, dict(settings, image_size=size))
                        for name, (base, settings) in PLANS["quick"].items()
                        if name.startswith("resnet") for size in (96, 112)}
# The quick ResNet34-UNet at 160 px for about the same time, and with fewer epochs (the
# stochastic-depth rows of benchmarks/README.md ran on a copy of the model that is not kept).
PLANS["resnet_more"] = {
    "resnet34_unet": PLANS["quick"]["resnet34_unet"],
    "resnet34_unet_160px_e13": ("quick", dict(model="resnet34_unet", image_size=160, epochs=13)),
    "resnet34_unet_e14": ("quick", dict(model="resnet34_unet", epochs=14)),
}
# The one-cycle schedule (a warm-up, then down) for the quick ResNet34-UNets, at their rate of
# 1e-3 (the quick_sweep3 rows ran at 3e-3, before the mask and decoder fixes).
PLANS["resnet_cycle"] = {
    "resnet34_unet": PLANS["quick"]["resnet34_unet"],
    "resnet34_unet_one_cycle": ("quick", dict(model="resnet34_unet", lr_schedule="one_cycle")),
    "resnet34_unet_aug": PLANS["quick"]["resnet34_unet_aug"],
    "resnet34_unet_aug_one_cycle": ("quick", dict(model="resnet34_unet", augment=True,
                                                  lr_schedule="one_cycle")),
}
PLANS["laptop_epochs"] = {"unet_aug_e60": ("laptop", dict(model="unet", augment=True, epochs=60))}


def fold_dataset(data_path: Path, fold: int, folds: int, out: Path) -> Path:
    """DATA_PATH seen through fold FOLD of FOLDS: the same files, another validation tenth.

    The course validates on every 10th name of trainval.txt (oxford_pet.split_names). Fold F
    writes trainval.txt rotated by F x 10 / FOLDS names, so that another 10th of the names
    lands on the validation positions; images, trimaps and the other annotation files are
    links to DATA_PATH's. Fold 0 is the course's own split.
    """
    from petseg_lib.data.oxford_pet import VALID_EVERY
    from petseg_lib.data.user_files import read_text_any

    if not 1 <= folds <= VALID_EVERY or not 0 <= fold < folds:
        raise ValueError(f"folds must be 1 to {VALID_EVERY}, and fold below it: not {fold} "
                         f"of {folds}")
    root = out / "folds" / f"fold{fold}of{folds}"
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for entry in [data_path / "images", *(data_path / "annotations").iterdir()]:
        link = root / entry.relative_to(data_path)
        if entry.name != "trainval.txt" and not link.is_symlink():
            link.symlink_to(entry.resolve())
    lines = [line for line in read_text_any(data_path / "annotations" / "trainval.txt")
             .splitlines() if line.strip() and not line.lstrip().startswith("#")]
    shift = fold * VALID_EVERY // folds  # the names' own lines: species and breed columns too
    (root / "annotations" / "trainval.txt").write_text("\n".join(lines[shift:] + lines[:shift])
                                                       + "\n")
    return root


def make_config(base: str, overrides: dict, seed: int, data_path: str, out: Path, name: str):
    """The TrainConfig of one run, its files under OUT.

    The laptop recipe's time budget is off: runs that share the cores would be cut to fewer
    epochs than the recipe trains on a free machine (an override may set one).
    """
    from petseg_lib.training.config import TrainConfig, quick_config, recipe_config

    settings = dict({"time_budget": None}, **overrides, seed=seed, data_path=data_path,
                    progress=False, run_name=f"{name}_s{seed}",
                    checkpoint_dir=str(out / "checkpoints"), output_dir=str(out / "outputs"))
    if base == "quick":
        return quick_config(**settings)
    if base == "report":
        return TrainConfig(**settings)
    return recipe_config(base, **settings)


def one_run(job: tuple) -> dict:
    """Train and score one run (in a pool process); returns its row."""
    name, base, overrides, seed, fold, data_path, out, threads = job
    import torch

    torch.set_num_threads(threads)
    from petseg_lib.compare import test_scores
    from petseg_lib.speed import pick_device
    from petseg_lib.train import train

    config = make_config(base, overrides, seed, data_path, out, name + fold_suffix(fold))
    started = time.perf_counter()
    history = train(config)
    seconds = time.perf_counter() - started
    best = Path(config.checkpoint_dir) / f"{config.run_name}_best.pth"
    scores = test_scores(best, Path(data_path), pick_device(config.device))
    return {"name": name, "base": base, "seed": seed, "fold": fold, "overrides": overrides,
            "train_seconds": round(seconds, 1), "epochs": config.epochs,
            "image_size": config.image_size, "best_valid_dice": max(history["valid_dice"]),
            "last_valid_dice": history["valid_dice"][-1],
            "test_dice": scores["dice"], "test_dice_pooled": scores["dice_pooled"],
            "protocol": scores["protocol"], "device": str(pick_device(config.device))}


def fold_suffix(fold: str | None) -> str:
    """What a run's files say about its fold: '' for the course's own split."""
    return "" if fold is None else f"_{fold}"


def summary(rows: list[dict]) -> str:
    """Mean ± std (over seeds and folds) of each run name, as a Markdown table."""
    import numpy as np

    lines = ["| run | runs | best valid Dice | last valid Dice | test Dice | test Dice pooled "
             "| training s |", "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["name"] for r in rows):
        group = [r for r in rows if r["name"] == name]

        def spread(key: str, group=group) -> str:
            values = np.array([r[key] for r in group], dtype=float)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            return f"{values.mean():.4f} ± {std:.4f}" if len(values) > 1 else f"{values[0]:.4f}"

        seconds = np.mean([r["train_seconds"] for r in group])
        lines.append(f"| {name} | {len(group)} | {spread('best_valid_dice')} | "
                     f"{spread('last_valid_dice')} | {spread('test_dice')} | "
                     f"{spread('test_dice_pooled')} | {seconds:.0f} |")
    return "\n".join(lines)


def paired(rows: list[dict], versus: str) -> str:
    """Each run's difference from run VERSUS, paired by seed and fold, as a Markdown table."""
    import numpy as np

    lines = [f"| run - {versus} | pairs | last valid Dice | best valid Dice | test Dice |",
             "|---|---|---|---|---|"]
    base = {(r["seed"], r["fold"]): r for r in rows if r["name"] == versus}
    for name in dict.fromkeys(r["name"] for r in rows if r["name"] != versus):
        pairs = [(r, base[r["seed"], r["fold"]]) for r in rows
                 if r["name"] == name and (r["seed"], r["fold"]) in base]
        if not pairs:
            continue
        cells = []
        for key in ("last_valid_dice", "best_valid_dice", "test_dice"):
            diff = np.array([r[key] - b[key] for r, b in pairs])
            error = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            cells.append(f"{diff.mean():+.4f} ± {error:.4f} ({(diff > 0).sum()} higher)")
        lines.append(f"| {name} | {len(pairs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=sorted(PLANS), required=True)
    parser.add_argument("--only", nargs="+", help="run names of the plan to keep")
    parser.add_argument("--data_path", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="PyTorch threads per run")
    parser.add_argument("--folds", type=int, default=None,
                        help="train each run on this many splits of trainval (fold_dataset)")
    parser.add_argument("--fold", type=int, nargs="+", help="only these folds of --folds")
    parser.add_argument("--versus", help="a run name: each run's paired difference from it")
    parser.add_argument("--out", default="outputs/real_runs")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help="extra settings for every run, e.g. epochs=3 device='\"cpu\"'")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    plan = {n: s for n, s in PLANS[args.plan].items() if not args.only or n in args.only}
    data_path = Path(args.data_path).resolve()
    folds = {None: data_path} if args.folds is None else {
        f"fold{k}of{args.folds}": fold_dataset(data_path, k, args.folds, out)
        for k in (args.fold or range(args.folds))}
    jobs = [(name, base, {**overrides, **extra}, seed, fold, str(root), out, args.threads)
            for seed in args.seeds for fold, root in folds.items()
            for name, (base, overrides) in plan.items()]
    rows = []
    context = multiprocessing.get_context("spawn")  # CUDA and threads: fresh processes
    pool = context.Pool(args.jobs, maxtasksperchild=1) if args.jobs > 1 else None
    results = pool.imap_unordered(one_run, jobs) if pool else map(one_run, jobs)
    with open(out / "results.jsonl", "a") as log:
        for row in results:
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(f"{row['name']} seed {row['seed']}{fold_suffix(row['fold'])}: test Dice "
                  f"{row['test_dice']:.4f} (valid {row['best_valid_dice']:.4f}, last "
                  f"{row['last_valid_dice']:.4f}) in {row['train_seconds']:.0f} s",
                  flush=True)
    if pool:
        pool.close()
    rows.sort(key=lambda r: (list(plan).index(r["name"]), r["seed"], r["fold"] or ""))
    print(summary(rows))
    if args.versus:
        print(paired(rows, args.versus))


if __name__ == "__main__":
    main()
