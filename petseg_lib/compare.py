"""The experiment of the design report: UNet and ResNet34-UNet, each with and without augmentation.

Trains (or reuses the checkpoints of) the four configurations with one shared setting, scores
each on the test split and writes under `outputs/comparison/`: a Markdown table of Dice and
IoU, a bar chart, and the four training curves side by side.

    python -m petseg_lib.compare --quick        # minutes on a laptop CPU
    python -m petseg_lib.compare --epochs 20    # the report's setting (hours without a GPU)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib.pyplot as plt
from torch.utils.data import DataLoader

from .checkpoint import RESUME_MUST_MATCH, CheckpointError, load_weights, read_checkpoint
from .cli import run_cli, writable_folder
from .config import TrainConfig, quick_config
from .evaluate import describe_protocol, evaluate, evaluate_at_original_size
from .inference import load_model
from .masks import BOUNDARY_POLICIES, check_boundary_policy
from .models import build_model
from .oxford_pet import OxfordPetDataset, collate, find_dataset, load_dataset
from .speed import amp_helps, fast_layout, keep_freed_memory, keep_memory_helps, pick_device
from .train import train
from .utils import markdown_grid, plot_curves, plot_scores

CONFIGURATIONS = (("unet", False), ("resnet34_unet", False), ("unet", True),
                  ("resnet34_unet", True))
LABELS = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}


def label(model: str, augment: bool) -> str:
    """A readable name of a configuration, e.g. 'UNet + augmentation'."""
    return LABELS[model] + (" + augmentation" if augment else "")


def make_config(model: str, augment: bool, quick: bool = False, **shared) -> TrainConfig:
    """The configuration of one of the four runs; SHARED settings apply to all of them."""
    if quick:
        return quick_config(model=model, augment=augment, **shared)
    return TrainConfig(model=model, augment=augment, **shared)


def test_scores(checkpoint: Path, data_path: Path, device, limit: int | None = None,
                batch_size: int = 8, boundary: str = "pet", original_size: bool = False,
                tta: bool = False) -> dict:
    """Dice and IoU on the test split under BOUNDARY, and with the boundary ignored.

    Images are resized to the size the checkpoint was trained at; with ORIGINAL_SIZE the
    predictions are scored back at each image's own size.
    """
    model = load_model(checkpoint, device)
    image_size, amp = model.image_size, amp_helps(device)
    model = fast_layout(model, device, image_size)
    test_set = load_dataset(data_path, "test", image_size, limit=limit)
    loader = DataLoader(test_set, batch_size=batch_size, shuffle=False, collate_fn=collate)
    with keep_freed_memory(keep_memory_helps(device)):
        if original_size:
            originals = OxfordPetDataset(data_path, "test", limit=limit)
            main = evaluate_at_original_size(model, originals, image_size, boundary=boundary,
                                             tta=tta, amp=amp)
            without = evaluate_at_original_size(model, originals, image_size, boundary="ignore",
                                                tta=tta, amp=amp)
        else:
            main = evaluate(model, loader, device, boundary=boundary, tta=tta, amp=amp)
            without = evaluate(model, loader, device, boundary="ignore", tta=tta, amp=amp)
    protocol = describe_protocol("test", boundary, image_size, original_size, tta)
    return {"image_size": image_size, "protocol": protocol,
            **{k: v for k, v in main.items() if k != "loss"},
            **{f"{k}_no_boundary": v for k, v in without.items() if k != "loss"}}


SETTINGS_TO_MATCH = (*RESUME_MUST_MATCH, "epochs")


def reusable(best: Path, history_file: Path, config: TrainConfig) -> bool:
    """True when a run's checkpoint and history exist, still load, and were made as CONFIG says."""
    if not (best.exists() and history_file.exists()):
        return False
    try:
        state = read_checkpoint(best)
        load_weights(build_model(state["model_name"], **state["model_kwargs"]), state, best)
    except CheckpointError as err:  # e.g. saved by an older version of a model
        print(f"{best.name} cannot be reused, so it is trained again: {err}")
        return False
    saved = state.get("config", {})
    changed = [f"{k}={saved.get(k)!r} (now {getattr(config, k)!r})"
               for k in SETTINGS_TO_MATCH if saved.get(k) != getattr(config, k)]
    if changed:
        print(f"{config.run_name}: retrained, its checkpoint was made with {', '.join(changed)}")
        return False
    return True


def run_comparison(quick: bool = False, retrain: bool = False,
                   report_dir: str | Path = "outputs/comparison", test_limit: int | None = None,
                   boundary: str = "pet", original_size: bool = False, tta: bool = False,
                   **shared) -> list[dict]:
    """Train or reuse the four configurations and score them; returns one row per run.

    SHARED settings (e.g. data_path, epochs, image_size) apply to all four TrainConfigs; a
    saved run is reused only when it was trained with the same settings.
    """
    check_boundary_policy(boundary)
    rows = []
    for model, augment in CONFIGURATIONS:
        config = make_config(model, augment, quick, **shared)
        best = Path(config.checkpoint_dir) / f"{config.run_name}_best.pth"
        history_file = Path(config.output_dir) / f"{config.run_name}_history.json"
        if retrain or not reusable(best, history_file, config):
            train(config)
            status = "trained"
        else:
            print(f"{config.run_name}: reused {best} (same settings)")
            status = "reused"
        data_path = find_dataset(config.data_path)
        scores = test_scores(best, data_path, pick_device(config.device), test_limit,
                             config.batch_size, boundary, original_size, tta)
        rows.append({"run_name": config.run_name, "label": label(model, augment),
                     "status": status, "history": json.loads(history_file.read_text()),
                     **scores})
    write_report(rows, report_dir)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The test scores of each configuration as a Markdown table, under its protocol."""
    header = ["configuration", "Dice", "Dice (pooled)", "IoU", "IoU (pooled)",
              "Dice, boundary ignored"]
    keys = ("dice", "dice_pooled", "iou", "iou_pooled", "dice_no_boundary")
    protocols = sorted({r["protocol"] for r in rows})
    note = (f"Protocol: {'; '.join(protocols)}. Dice and IoU: mean over images, or pooled "
            "over all pixels of the split.\n\n")
    return note + markdown_grid(header, [[r["label"], *(f"{r[k]:.4f}" for k in keys)]
                                         for r in rows])


def write_report(rows: list[dict], output_dir: str | Path) -> Path:
    """Write the table, the bar chart and the curves into OUTPUT_DIR."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.md").write_text(markdown_table(rows))
    plt.close(plot_scores(rows, output_dir / "test_scores.png"))
    plt.close(plot_curves(rows, output_dir / "validation_curves.png"))
    print(markdown_table(rows))
    print(f"Table and figures in {output_dir}/")
    return output_dir


def main(argv: list[str] | None = None) -> list[dict]:
    """Entry point of `python -m petseg_lib.compare`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small CPU-sized runs")
    parser.add_argument("--retrain", action="store_true", help="train even when a checkpoint "
                        "of the configuration exists")
    parser.add_argument("--data_path", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--image_size", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="training images per run")
    parser.add_argument("--test_limit", type=int, default=None, help="test images scored")
    parser.add_argument("--checkpoint_dir", default="checkpoints")
    parser.add_argument("--output_dir", default="outputs/comparison",
                        help="where the table and charts go")
    parser.add_argument("--boundary", choices=sorted(BOUNDARY_POLICIES), default="pet",
                        help="how the trimap's boundary band is scored")
    parser.add_argument("--at_original_size", action="store_true",
                        help="score predictions resized back to each image's original size")
    parser.add_argument("--tta", action="store_true",
                        help="average the logits of each test image and its mirror")
    args = vars(parser.parse_args(argv))
    shared = {k: args[k] for k in ("data_path", "epochs", "image_size", "limit")
              if args[k] is not None}
    writable_folder(args["output_dir"])
    writable_folder(args["checkpoint_dir"])
    return run_comparison(args["quick"], args["retrain"], args["output_dir"],
                          args["test_limit"], args["boundary"], args["at_original_size"],
                          args["tta"], checkpoint_dir=args["checkpoint_dir"], **shared)


if __name__ == "__main__":
    run_cli(main)
