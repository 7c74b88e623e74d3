"""Inference: load a saved checkpoint, predict masks on the test split, score and draw them.

    python -m petseg_lib.inference --model checkpoints/unet_best.pth --output_dir outputs/inference
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoint import load_weights, read_checkpoint
from .evaluate import SegmentationMeter, binarize, to_float_images
from .masks import boundary_ignore
from .models import build_model
from .oxford_pet import collate, find_dataset, load_dataset
from .speed import fast_layout, keep_freed_memory, keep_memory_helps, pick_device
from .utils import visualize_comparison


def load_model(checkpoint_path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the model recorded in a checkpoint, load its weights, set eval mode."""
    state = read_checkpoint(checkpoint_path, device)
    model = load_weights(build_model(state["model_name"], **state["model_kwargs"]), state,
                         checkpoint_path)
    model.image_size = state.get("image_size")  # the size it was trained at
    return model.to(device).eval()


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Binary masks (N, 1, H, W) float in {0, 1}: sigmoid of the logits > THRESHOLD."""
    model.eval()
    device = next(model.parameters()).device
    logits = model(to_float_images(images).to(device))  # (N, 1, H, W)
    return binarize(logits, threshold).float()


def run_inference(model: nn.Module, loader: DataLoader, output_dir: str | Path,
                  n_figures: int = 8, threshold: float = 0.5,
                  ignore_boundary: bool = False) -> dict | None:
    """Predict every batch, save comparison PNGs of the first N_FIGURES; return the scores."""
    output_dir = Path(output_dir)
    device = next(model.parameters()).device
    meter = SegmentationMeter(threshold)
    drawn = 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            logits = model(to_float_images(batch["image"]).to(device))  # (N, 1, H, W)
            if batch["mask"] is not None:
                ignore = boundary_ignore(batch["trimap"]) if ignore_boundary else None
                meter.update(logits.cpu(), batch["mask"], ignore, names=batch["name"])
            preds = binarize(logits, threshold).cpu()
            for i in range(len(batch["name"])):
                if drawn >= n_figures:
                    break
                gt = None if batch["mask"] is None else batch["mask"][i]
                fig = visualize_comparison(batch["image"][i], gt, preds[i],
                                           save_path=output_dir / f"{batch['name'][i]}.png",
                                           title=batch["name"][i])
                plt.close(fig)
                drawn += 1
    return meter.compute() if meter.per_image_dice else None


def main(argv: list[str] | None = None) -> dict | None:
    """Entry point of `python -m petseg_lib.inference`."""
    parser = argparse.ArgumentParser(
        prog="python -m petseg_lib.inference",
        description="Predict pet masks on the test split with a trained checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint, e.g. checkpoints/unet_best.pth")
    parser.add_argument("--data_path", default=None,
                        help="dataset folder; by default data/oxford-iiit-pet when present, "
                             "else the offline sample dataset")
    parser.add_argument("--mode", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=None,
                        help="default: the size the model was trained at")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--num_figures", type=int, default=8,
                        help="save comparison PNGs for this many images")
    parser.add_argument("--limit", type=int, default=None, help="use only this many images")
    parser.add_argument("--ignore_boundary", action="store_true",
                        help="leave the trimap's boundary band out of the scores")
    parser.add_argument("--output_dir", default="outputs/inference")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    model = load_model(args.model, device)
    image_size = args.image_size or model.image_size or 256
    dataset = load_dataset(find_dataset(args.data_path), args.mode, image_size, limit=args.limit)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, collate_fn=collate)
    model = fast_layout(model, device, image_size)  # training's speed-ups, where they help
    with keep_freed_memory(keep_memory_helps(device)):
        scores = run_inference(model, loader, args.output_dir, args.num_figures,
                               args.threshold, args.ignore_boundary)
    if scores is None:
        print(f"{len(dataset)} images have no ground truth: predictions only.")
    else:
        print(f"{args.mode} split, {len(dataset)} images, threshold {args.threshold}:")
        print(f"  Dice  per-image mean {scores['dice']:.4f}   pooled {scores['dice_pooled']:.4f}")
        print(f"  IoU   per-image mean {scores['iou']:.4f}   pooled {scores['iou_pooled']:.4f}")
    print(f"Comparison figures in {args.output_dir}/")
    return scores


if __name__ == "__main__":
    main()
