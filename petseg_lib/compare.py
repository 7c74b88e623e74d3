"""The experiment of the design report: UNet and ResNet34-UNet, each with and without augmentation.

Trains (or reuses the checkpoints of) every configuration with one shared setting, scores each
on the test split and writes under `outputs/comparison/`: a Markdown table of Dice and IoU
that states its protocol, a bar chart, and the training curves side by side.

    python -m petseg_lib.compare --quick        # minutes on a laptop CPU
    python -m petseg_lib.compare --epochs 20    # the report's setting (hours without a GPU)
    python -m petseg_lib.compare --recipe laptop --seeds 3   # real photos on a laptop CPU

Beyond the report: `--models` adds the torchvision baselines and the report's future directions
(SegFormer-B0, DeepLabv3+, LR-ASPP ShuffleNetV2), `--loss` other losses, `--lr_schedule` and
`--augment_level` another schedule or augmentation for every run, and `--seeds N` trains every
configuration N times and reports mean ± standard deviation, because a difference smaller than
the spread between seeds is no difference at all.

    python -m petseg_lib.compare --quick --seeds 2 --models unet lraspp_mobilenet_v3 \
        --loss bce dice
    python -m petseg_lib.compare --quick --models segformer_b0 deeplabv3plus_resnet34 \
        --loss bce_iou --lr_schedule step --augment_level mixup

`--aux_task none species breed` trains every configuration without and with a class head
learning the pet's species or breed beside the mask (multi-task, multitask.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch.utils.data import DataLoader

from .cli import positive, run_cli, writable_folder
from .data.augment import AUGMENT_LEVELS
from .data.masks import check_boundary_policy
from .data.oxford_pet import collate, find_dataset, load_dataset, original_size_dataset
from .data.pet_labels import AUX_TASKS
from .evaluation.evaluate import (
    describe_protocol,
    describe_protocols,
    evaluate,
    scores_at_original_size,
)
from .evaluation.figures import markdown_grid, plot_curves, plot_scores
from .inference import load_model
from .models import MODELS, imagenet_weights_problem, pretrained_kwargs
from .options import (
    add_data_path,
    add_epochs,
    add_image_size,
    add_quick,
    add_run_folders,
    add_scoring,
    add_seeds,
    add_test_limit,
    add_time_budget,
    add_tta,
    time_budget_value,
)
from .paths import written_atomically
from .speed import amp_helps, fast_layout, keep_freed_memory, keep_memory_helps, pick_device
from .train import train
from .training.checkpoint import (
    RESUME_MUST_MATCH,
    CheckpointError,
    epochs_match,
    model_from_checkpoint,
    read_checkpoint,
    same_folder,
    saved_setting,
)
from .training.config import (
    AUX_WEIGHT,
    LR_SCHEDULES,
    RECIPE_SECONDS,
    RECIPES,
    TrainConfig,
    augment_level,
    augment_suffix,
    aux_suffix,
    quick_config,
    recipe_config,
)
from .training.losses import LOSSES

CONFIGURATIONS = (("unet", False), ("resnet34_unet", False), ("unet", True),
                  ("resnet34_unet", True))
LABELS = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet",
          "lraspp_mobilenet_v3": "LR-ASPP MobileNetV3", "deeplabv3_resnet50": "DeepLabV3-ResNet50",
          "segformer_b0": "SegFormer-B0", "deeplabv3plus_resnet34": "DeepLabv3+ ResNet34",
          "lraspp_shufflenet_v2": "LR-ASPP ShuffleNetV2"}
LOSS_LABELS = {"bce": "", "dice": " + Dice loss", "bce_dice": " + BCE+Dice loss",
               "focal": " + Focal loss", "iou": " + IoU loss", "bce_iou": " + BCE+IoU loss"}


def label(model: str, augment: bool, loss: str | None = None, pretrained: bool = False,
          aux_task: str | None = None) -> str:
    """A readable name of a configuration, e.g. 'UNet + augmentation'; None: the settings' loss."""
    return (LABELS[model] + (" (ImageNet encoder)" if pretrained else "")
            + (" + augmentation" if augment else "") + LOSS_LABELS.get(loss, "")
            + (f" + {aux_task} head" if aux_task else ""))


def run_name(model: str, augment: bool, loss: str | None = None, seed: int = 0,
             quick: bool = False, augment_level: str = "report", recipe: str | None = None,
             pretrained: bool = False, aux_task: str | None = None) -> str:
    """A configuration's file name stem, e.g. 'unet_aug', 'unet_dice_s1_quick'."""
    return (model + ("_imagenet" if pretrained else "") + augment_suffix(augment, augment_level)
            + (f"_{loss}" if loss else "") + aux_suffix(aux_task)
            + (f"_s{seed}" if seed else "") + ("_quick" if quick else "")
            + (f"_{recipe}" if recipe else ""))


def make_config(model: str, augment: bool, quick: bool = False, loss: str | None = None,
                seed: int = 0, recipe: str | None = None, pretrained: bool = False,
                aux_task: str | None = None, **shared) -> TrainConfig:
    """The configuration of one run: the report's settings, QUICK ones or a RECIPE's.

    LOSS None keeps the settings' own loss; SHARED settings apply to every run. PRETRAINED
    starts the encoder from ImageNet weights, at the model's own width. AUX_TASK adds a class
    head learning the species or breed (multitask.py).
    """
    level = shared.get("augment_level", augment_level(recipe))
    settings = dict(model=model, augment=augment, seed=seed, aux_task=aux_task,
                    run_name=run_name(model, augment, loss, seed, quick, level, recipe,
                                      pretrained, aux_task), **shared)
    settings.update({"loss": loss} if loss else {})
    settings.update({"model_kwargs": pretrained_kwargs(model)} if pretrained else {})
    if recipe:
        return recipe_config(recipe, **settings)
    return quick_config(**settings) if quick else TrainConfig(**settings)


def test_scores(checkpoint: Path, data_path: Path, device: str | torch.device,
                limit: int | None = None, batch_size: int = 8, boundary: str = "pet",
                original_size: bool = False, tta: bool = False) -> dict:
    """Dice and IoU on the test split under BOUNDARY, and with the boundary ignored.

    Images are resized to the size the checkpoint was trained at; with ORIGINAL_SIZE the
    predictions are scored back at each image's own size.
    """
    device = torch.device(device)  # "cpu" or a torch.device
    model = load_model(checkpoint, device)
    image_size, amp = model.image_size, amp_helps(device)
    model = fast_layout(model, device)
    test_set = load_dataset(data_path, "test", image_size, limit=limit)
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, collate_fn=collate)
    with keep_freed_memory(keep_memory_helps(device)):
        if original_size:
            originals = original_size_dataset(test_set, limit)  # each photo decoded once:
            scores = scores_at_original_size(model, originals, image_size, (boundary, "ignore"),
                                             tta=tta, amp=amp)
            main, without = scores[boundary], scores["ignore"]
        else:
            main = evaluate(model, loader, device, boundary=boundary, tta=tta, amp=amp)
            without = evaluate(model, loader, device, boundary="ignore", tta=tta, amp=amp)
    protocol = describe_protocol("test", boundary, image_size, original_size, tta)
    return {"image_size": image_size, "protocol": protocol,
            **{k: v for k, v in main.items() if k != "loss"},
            **{f"{k}_no_boundary": v for k, v in without.items() if k != "loss"}}


def reusable(best: Path, history_file: Path, config: TrainConfig) -> bool:
    """True when a run's checkpoint and history exist, still load, and were made as CONFIG says."""
    if not (best.exists() and history_file.exists()):
        return False
    try:
        state = read_checkpoint(best)
        model_from_checkpoint(state, best)
    except CheckpointError as err:  # e.g. saved by an older version of a model
        print(f"{best.name} cannot be reused, so it is trained again: {err}")
        return False
    saved = state.get("config", {})
    changed = [f"{k}={saved.get(k)!r} (now {getattr(config, k)!r})"
               for k in RESUME_MUST_MATCH if saved_setting(saved, k) != getattr(config, k)]
    if not epochs_match(saved, config):
        changed.append(f"epochs={saved.get('epochs')!r} (now {config.epochs!r})")
    if not same_folder(saved.get("data_path"), config.data_path):  # never another dataset's
        changed.append(f"data_path={saved.get('data_path')!r} (now {config.data_path!r})")
    if changed:
        print(f"{config.run_name}: retrained, its checkpoint was made with {', '.join(changed)}")
        return False
    return True


def run_comparison(quick: bool = False, retrain: bool = False,
                   report_dir: str | Path = "outputs/comparison", test_limit: int | None = None,
                   boundary: str = "pet", original_size: bool = False, tta: bool = False,
                   models: tuple[str, ...] = ("unet", "resnet34_unet"),
                   losses: tuple[str | None, ...] = (None,), seeds: int = 1,
                   augments: tuple[bool, ...] = (False, True), pretrained: bool = False,
                   aux_tasks: tuple[str | None, ...] = (None,), **shared) -> list[dict]:
    """Train or reuse every configuration and score it; returns one row per configuration.

    A configuration is a model, with or without augmentation (AUGMENTS), and a loss; each is trained
    SEEDS times (seeds 0, 1, ...) and its row holds the mean and standard deviation of the
    scores. SHARED settings (e.g. data_path, epochs, image_size) apply to every TrainConfig;
    a saved run is reused only when it was trained with the same settings. Runs print one
    line each, without progress bars, unless SHARED says progress=True. PRETRAINED adds the
    ResNet34-UNet with an ImageNet encoder and augmentation, when its weights can be had.
    AUX_TASKS: each configuration without a class head (None) and with one per task.
    """
    check_boundary_policy(boundary)
    shared = {"progress": False, **shared}  # bars for many runs flood a notebook's output
    rows = []
    for loss in losses:
        for augment in augments:
            for model, aux_task in ((m, a) for m in models for a in aux_tasks):
                runs = [score_run(make_config(model, augment, quick, loss, seed,
                                              aux_task=aux_task, **shared),
                                  retrain, test_limit, boundary, original_size, tta)
                        for seed in range(seeds)]
                rows.append(summarise(runs, label(model, augment, loss, aux_task=aux_task)))
    if pretrained and (problem := imagenet_weights_problem()):
        print(f"{problem[0].upper()}{problem[1:]}: the ResNet34-UNet with an ImageNet "
              "encoder is left out.")
    elif pretrained:
        for loss in losses:
            runs = [score_run(make_config("resnet34_unet", True, quick, loss, seed,
                                          pretrained=True, **shared),
                              retrain, test_limit, boundary, original_size, tta)
                    for seed in range(seeds)]
            rows.append(summarise(runs, label("resnet34_unet", True, loss, pretrained=True)))
    write_report(rows, report_dir)
    return rows


def score_run(config: TrainConfig, retrain: bool, test_limit: int | None, boundary: str,
              original_size: bool, tta: bool) -> dict:
    """Train CONFIG (or reuse its checkpoint) and score it on the test split."""
    best = Path(config.checkpoint_dir) / f"{config.run_name}_best.pth"
    history_file = Path(config.output_dir) / f"{config.run_name}_history.json"
    seconds = None  # training time; None for a reused run
    if retrain or not reusable(best, history_file, config):
        started = time.perf_counter()
        train(config)
        status, seconds = "trained", time.perf_counter() - started
    else:
        print(f"{config.run_name}: reused {best} (same settings)")
        status = "reused"
    scores = test_scores(best, find_dataset(config.data_path), pick_device(config.device),
                         test_limit, config.batch_size, boundary, original_size, tta)
    return {"run_name": config.run_name, "status": status, "train_seconds": seconds,
            "weight_decay": config.weight_decay, "lr_schedule": config.lr_schedule,
            "history": json.loads(history_file.read_text()), **scores}


SCORES = ("dice", "dice_pooled", "iou", "iou_pooled", "dice_no_boundary")


def summarise(runs: list[dict], name: str) -> dict:
    """One row from a configuration's runs: each score's mean, and its spread as `<key>_std`."""
    row = {**runs[0], "label": name, "runs": runs, "seeds": len(runs)}
    seconds = [run["train_seconds"] for run in runs]
    row["train_seconds"] = None if None in seconds else sum(seconds)  # all seeds together
    for key in SCORES:
        values = np.array([run[key] for run in runs])
        row[key], row[f"{key}_std"] = float(values.mean()), float(values.std(ddof=1)) \
            if len(values) > 1 else 0.0
    return row


def markdown_table(rows: list[dict]) -> str:
    """The test scores of each configuration as a Markdown table, under its protocol."""
    header = ["configuration", "Dice", "Dice (pooled)", "IoU", "IoU (pooled)",
              "Dice, boundary ignored", "trained", "training"]
    keys = SCORES
    protocol = describe_protocols([r["protocol"] for r in rows])
    seeds = max(r.get("seeds", 1) for r in rows)
    spread = f" Mean ± standard deviation over {seeds} seeds." if seeds > 1 else ""
    note = (f"Protocol: {protocol}. Dice and IoU: mean over images, or pooled "
            f"over all pixels of the split.{spread} Training: seconds of training on this "
            "machine (— where a saved run was reused).\n\n")
    return note + markdown_grid(header, [[r["label"], *(cell(r, k) for k in keys),
                                          trained(r), training_time(r)] for r in rows])


def cell(row: dict, key: str) -> str:
    """A score for the table: '0.8123', or '0.8123 ± 0.0100' over several seeds."""
    spread = row.get(f"{key}_std", 0.0) if row.get("seeds", 1) > 1 else None
    return f"{row[key]:.4f}" + ("" if spread is None else f" ± {spread:.4f}")


def trained(row: dict) -> str:
    """How a row's model was trained: '24 epochs at 64 px, cosine, weight decay 0.05'."""
    epochs = len(row["history"]["train_loss"]) if "history" in row else "?"
    schedule = f", {row['lr_schedule']}" if "lr_schedule" in row else ""
    decay = f", weight decay {row['weight_decay']:g}" if "weight_decay" in row else ""
    return (f"{epochs} epoch{'' if epochs == 1 else 's'} at {row.get('image_size', '?')} px"
            f"{schedule}{decay}")


def training_time(row: dict) -> str:
    """'12 s' when the row's runs were trained just now, '—' when a saved run was reused."""
    seconds = row.get("train_seconds")
    return "—" if seconds is None else f"{seconds:.0f} s"


def write_report(rows: list[dict], output_dir: str | Path) -> Path:
    """Write the table, the bar chart and the curves into OUTPUT_DIR."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with written_atomically(output_dir / "results.md") as partial:
        partial.write_text(markdown_table(rows))
    plt.close(plot_scores(rows, output_dir / "test_scores.png"))
    plt.close(plot_curves(rows, output_dir / "validation_curves.png"))
    print(f"Table and figures in {output_dir}/")
    return output_dir


def main(argv: list[str] | None = None) -> list[dict]:
    """Entry point of `python -m petseg_lib.compare`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_quick(parser)
    parser.add_argument("--retrain", action="store_true", help="train even when a checkpoint "
                        "of the configuration exists")
    add_data_path(parser)
    add_epochs(parser)
    add_image_size(parser, default="the report's 256, or the quick settings'")
    parser.add_argument("--limit", type=int, default=None, help="training images per run")
    add_test_limit(parser)
    add_run_folders(parser, "outputs/comparison")
    add_scoring(parser)
    add_tta(parser)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS),
                        default=["unet", "resnet34_unet"], help="architectures to compare")
    parser.add_argument("--loss", nargs="+", choices=sorted(LOSSES), default=[None],
                        help="losses to compare (default: the settings' own: bce, as in the "
                        "report, or bce_dice with --quick and --recipe)")
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="train every configuration with a recipe's settings (config.py)")
    add_seeds(parser)
    add_time_budget(parser, RECIPE_SECONDS)
    parser.add_argument("--lr_schedule", choices=LR_SCHEDULES, default=None,
                        help="the schedule of every run (default: the settings' own)")
    parser.add_argument("--augment_level", choices=AUGMENT_LEVELS, default=None,
                        help="the augmentation of the runs with augmentation (default: the "
                        "settings' own: the report's, or the recipe's)")
    parser.add_argument("--pretrained", action="store_true", help="also train the "
                        "ResNet34-UNet with augmentation and its encoder started from ImageNet "
                        "weights (downloaded once; left out, with one line, when offline)")
    parser.add_argument("--aux_task", nargs="+", choices=["none", *AUX_TASKS], default=["none"],
                        help="multi-task: train each configuration without a class head (none) "
                        "and/or with one learning the pet's species or breed")
    parser.add_argument("--aux_weight", type=float, default=None, help="with --aux_task: the "
                        f"class head's weight in the loss (default: {AUX_WEIGHT})")
    args = vars(parser.parse_args(argv))
    for name in ("seeds", "test_limit"):
        positive(f"--{name}", args[name])
    if args["quick"] and args["recipe"]:
        raise ValueError("--quick and --recipe each choose the settings: give one of them")
    shared = {k: args[k] for k in ("data_path", "epochs", "image_size", "limit", "lr_schedule",
                                   "augment_level", "aux_weight") if args[k] is not None}
    if args["time_budget"] is not None:
        shared["time_budget"] = time_budget_value(args["time_budget"])
    aux_tasks = tuple(None if t == "none" else t for t in dict.fromkeys(args["aux_task"]))
    writable_folder(args["output_dir"])
    writable_folder(args["checkpoint_dir"])
    rows = run_comparison(args["quick"], args["retrain"], args["output_dir"],
                          args["test_limit"], args["boundary"], args["at_original_size"],
                          args["tta"], tuple(dict.fromkeys(args["models"])),  # each once
                          tuple(dict.fromkeys(args["loss"])),
                          args["seeds"], pretrained=args["pretrained"], aux_tasks=aux_tasks,
                          checkpoint_dir=args["checkpoint_dir"],
                          recipe=args["recipe"], **shared)
    print(markdown_table(rows))  # notebooks display the table themselves
    return rows


if __name__ == "__main__":
    run_cli(main)
