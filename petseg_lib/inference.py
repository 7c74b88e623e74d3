"""Inference: load a saved checkpoint, then segment a dataset split or your own photos.

    python -m petseg_lib.inference --model checkpoints/unet_best.pth            # the test split
    python -m petseg_lib.inference --model checkpoints/unet_best.pth --images my_photos/
    python -m petseg_lib.inference --onnx unet.onnx --images my_photos/    # no model code

On a split, every line and figure that shows a score names its protocol: the split, how the
trimap's boundary band counts (--boundary pet|background|ignore), and the resolution
(the training size, or --at_original_size). On photos, each one gets NAME_mask.png and
NAME_overlay.png at its own size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch.utils.data import DataLoader

from .cli import UserError, positive, run_cli, writable_folder
from .data.batch import collate
from .data.oxford_pet import find_dataset, load_dataset, original_size_dataset
from .data.user_files import shown
from .evaluation.evaluate import batch_target, describe_protocol, evaluate_at_original_size
from .evaluation.figures import visualize_comparison
from .evaluation.metrics import SegmentationMeter
from .evaluation.predict import model_device, predict_logits, to_float_images
from .evaluation.threshold import DEFAULT_THRESHOLD, binarize
from .options import (
    add_amp,
    add_data_path,
    add_device,
    add_image_size,
    add_model,
    add_scoring,
    add_threshold,
    add_tta,
)
from .speed import (
    amp_helps,
    describe_precision,
    fast_layout,
    keep_freed_memory,
    keep_memory_helps,
    pick_device,
)
from .training.checkpoint import describe_training_data, model_from_checkpoint, read_checkpoint
from .use.onnx_segmenter import OnnxSegmenter
from .use.photos import segment_files


def load_model(checkpoint_path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the model recorded in a checkpoint, load its weights, set eval mode."""
    state = read_checkpoint(checkpoint_path)  # onto the CPU, whatever device it came from
    model = model_from_checkpoint(state, checkpoint_path)
    model.image_size = state["image_size"]  # the size it was trained at
    model.trained_on = describe_training_data(state)  # one line, shown beside its masks
    return model.to(device).eval()


class OnnxModel(nn.Module):
    """An exported .onnx file behind a model's interface: onnxruntime computes the logits.

    No model class of the course is needed to run it (export.py writes such files).
    """

    def __init__(self, path: str | Path):
        super().__init__()
        self.segmenter = OnnxSegmenter(path)
        self.image_size = self.segmenter.image_size  # the size it was trained at
        self.trained_on = "an exported model: the .onnx file does not record its training data"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.segmenter.logits(images.detach().cpu().numpy()))


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor,
            threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor:
    """Binary masks (N, 1, H, W) float in {0, 1}: sigmoid of the logits > THRESHOLD."""
    model.eval()
    device = model_device(model)
    logits = predict_logits(model, to_float_images(images).to(device))  # (N, 1, H, W)
    return binarize(logits, threshold).float()


def run_inference(model: nn.Module, loader: DataLoader, output_dir: str | Path,
                  n_figures: int = 8, threshold: float = DEFAULT_THRESHOLD, boundary: str = "pet",
                  tta: bool = False, amp: bool = False) -> dict | None:
    """Predict every batch, save comparison PNGs of the first N_FIGURES; return the scores."""
    output_dir = Path(output_dir)
    device = model_device(model)
    meter = SegmentationMeter(threshold)
    drawn = 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            images = to_float_images(batch["image"]).to(device)  # (N, 3, H, W)
            logits = predict_logits(model, images, tta, amp).cpu()  # (N, 1, H, W)
            if batch["mask"] is not None:
                meter.update(logits, *batch_target(batch, boundary, "cpu"), names=batch["name"])
            preds = binarize(logits, threshold)
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


def print_scores(scores: dict, protocol: str) -> None:
    """The four scores, under a line that names the protocol they were measured by."""
    print(f"Scores ({protocol}):")
    print(f"  Dice  per-image mean {scores['dice']:.4f}   pooled {scores['dice_pooled']:.4f}")
    print(f"  IoU   per-image mean {scores['iou']:.4f}   pooled {scores['iou_pooled']:.4f}")


def segment_split(model: nn.Module, args: argparse.Namespace, device: torch.device,
                  image_size: int) -> dict | None:
    """Predict, draw and score a split of a dataset as the command line asks."""
    data = find_dataset(args.data_path)
    dataset = load_dataset(data, args.mode, image_size, limit=args.limit)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=False, collate_fn=collate)
    originals = original_size_dataset(dataset, args.limit) if args.at_original_size else None
    model = fast_layout(model, device)  # training's speed-ups, where they help
    with keep_freed_memory(keep_memory_helps(device)):
        scores = run_inference(model, loader, args.output_dir, args.num_figures,
                               args.threshold, args.boundary, args.tta, args.amp)
        if scores is not None and originals is not None:
            scores = evaluate_at_original_size(model, originals, image_size, args.threshold,
                                               args.boundary, args.tta, args.amp)
    if scores is None:
        print(f"{len(dataset)} images have no ground truth: predictions only.")
    else:
        print_scores(scores, describe_protocol(args.mode, args.boundary, image_size,
                                               args.at_original_size, args.tta)
                     + f", threshold {args.threshold}, {len(dataset)} images")
    print(f"Comparison figures in {args.output_dir}/")
    return scores


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `python -m petseg_lib.inference`."""
    parser = argparse.ArgumentParser(
        prog="python -m petseg_lib.inference",
        description="Segment a dataset split, or your own photos, with a trained checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add_model(parser, required=False)
    add("--onnx", default=None, metavar="FILE",
        help="with --images: an exported .onnx model instead of a checkpoint")
    add("--images", nargs="+", default=None, metavar="PATH",
        help="photos or folders of photos to segment instead of a dataset split")
    add_data_path(parser)
    add("--mode", default="test", choices=("train", "valid", "test"),
        help="dataset split to score")
    add("--batch_size", type=int, default=8, help="images per forward pass")
    add_image_size(parser, default="the size the model was trained at")
    add_threshold(parser)
    add("--num_figures", type=int, default=8, help="save comparison PNGs for this many images")
    add("--limit", type=int, default=None, help="use only this many images")
    add_scoring(parser)
    add_tta(parser)
    add_amp(parser)
    add("--output_dir", default="outputs/inference", help="where figures and masks go")
    add_device(parser)
    args = parser.parse_args(argv)
    for name, minimum in (("batch_size", 1), ("num_figures", 0), ("limit", 1)):
        positive(f"--{name}", getattr(args, name), minimum)
    if (args.model is None) == (args.onnx is None):
        raise UserError("give a checkpoint (--model) or an exported model (--onnx), one of them")
    if args.onnx is not None and args.images is None:
        raise UserError("--onnx segments your photos: add --images PATH [PATH ...]")
    return args


def main(argv: list[str] | None = None) -> dict | list | None:
    """Entry point of `python -m petseg_lib.inference`."""
    args = parse_args(argv)
    device = pick_device(args.device)
    args.amp = amp_helps(device) if args.amp is None else args.amp
    print(describe_precision(device, args.amp))
    model = OnnxModel(args.onnx) if args.onnx else load_model(args.model, device)
    print(f"model {Path(args.onnx or args.model).name}: {model.trained_on}")
    image_size = args.image_size or model.image_size or 256
    writable_folder(args.output_dir)
    if args.images is None:
        return segment_split(model, args, device, image_size)
    results = segment_files(model, args.images, args.output_dir, args.threshold, image_size)
    for r in results:
        print(f"{shown(r['path'])}: {r['width']}x{r['height']}, pet "
              f"{100 * r['pet_share']:.1f} %, {r['ms']:.0f} ms -> {shown(r['mask_path'])}")
    return results


if __name__ == "__main__":
    run_cli(main)
