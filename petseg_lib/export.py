"""Export a trained checkpoint to ONNX, to run it without PyTorch (e.g. with ONNX Runtime).

    pip install -e ".[export]"
    python -m petseg_lib.export --model checkpoints/unet_best.pth --output outputs/unet.onnx

The file works for both models (UNet and ResNet34_UNet) and has dynamic axes: any batch size
and any height and width that are multiples of 32. (The models themselves accept other sizes
too, but the exported graph keeps only the path taken by multiples of 32.)

Opset 18 by default (--opset changes it): it is the opset that PyTorch's exporter
(`torch.onnx.export`, based on `torch.export`) writes natively; others go through ONNX's
version converter, which reaches the course's models from opset 16 up to the newest the
installed onnx knows. Any other --opset is refused before exporting, and a conversion that
leaves another opset in the file is an error (exit status 2) naming the opset written.

The file's metadata (onnx metadata_props, all strings) records what a user needs to know:
model_name, model_config, image_size (the size to feed; by default the training size),
threshold (0.5, on the sigmoid of the logits), opset, size_multiple (32) and description
("input: float32 (N,3,H,W) in [0,1]; output: logits (N,1,H,W)").
petseg_lib.use.onnx_segmenter.OnnxSegmenter reads them and runs the model without PyTorch.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.export import Dim

from .cli import run_cli
from .errors import UserError
from .evaluation.threshold import DEFAULT_THRESHOLD
from .inference import load_model
from .models import MODELS
from .models.classes import as_binary
from .models.summary import count_parameters
from .options import add_image_size, add_model
from .use.onnx_segmenter import OnnxSegmenter, optional_import

if TYPE_CHECKING:  # for the type hints only: onnx belongs to the optional export extra
    import onnx

__all__ = ["DEFAULT_OPSET", "OnnxSegmenter", "export_onnx", "main", "onnx_metadata"]

DEFAULT_OPSET = 18
# Below 16 ONNX's version converter has no way down for the course's models (it stops at
# Identity and leaves opset 18); above, up to the newest opset the installed onnx knows.
LOWEST_OPSET = 16
SIZE_MULTIPLE = 32  # ResNet34_UNet halves the size 5 times; UNet needs 16, we ask 32 of both
THRESHOLD = DEFAULT_THRESHOLD  # the course's threshold on sigmoid(logits), stored in the file
DESCRIPTION = "input: float32 (N,3,H,W) in [0,1]; output: logits (N,1,H,W)"


def model_name(model: nn.Module) -> str:
    """The name build_model knows MODEL by ("unet", "resnet34_unet"), else its class name."""
    names = {cls: name for name, cls in MODELS.items()}
    return names.get(type(model), type(model).__name__)


def onnx_metadata(model: nn.Module, image_size: int, opset: int) -> dict[str, str]:
    """The key-value pairs stored in the file's metadata_props (ONNX wants strings)."""
    return {
        "model_name": model_name(model),
        "model_config": json.dumps(getattr(model, "config", {})),
        "image_size": str(image_size),
        "threshold": str(THRESHOLD),
        "opset": str(opset),
        "size_multiple": str(SIZE_MULTIPLE),
        "description": DESCRIPTION,
    }


def to_onnx_proto(model: nn.Module, opset: int) -> onnx.ModelProto:
    """Trace MODEL with dynamic batch, height and width; return the onnx.ModelProto."""
    example = torch.rand(2, 3, 2 * SIZE_MULTIPLE, 2 * SIZE_MULTIPLE)  # batch 2: 1 would be fixed
    # Height = 32 * h and width = 32 * w: the exporter then knows that every skip connection
    # has the size of the upsampled tensor, so no padding branch is needed.
    height, width = Dim("h", min=1), Dim("w", min=1)
    dynamic = {"x": {0: Dim("batch", min=1), 2: SIZE_MULTIPLE * height,
                     3: SIZE_MULTIPLE * width}}
    program = torch.onnx.export(as_binary(model), (example,), input_names=["images"],
                                output_names=["logits"], opset_version=opset,
                                dynamic_shapes=dynamic, external_data=False, verbose=False)
    return program.model_proto


def export_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET,
                image_size: int | None = None) -> Path:
    """Write MODEL to the .onnx file PATH (atomically), check it and return PATH."""
    onnx = optional_import("onnx")
    optional_import("onnxscript")  # torch.onnx.export needs it
    if image_size is None:  # 0 is a size given, and refused below
        image_size = getattr(model, "image_size", None)
    if image_size is None:
        raise ValueError("the model records no training image size; pass one, "
                         "e.g. --image_size 256")
    if image_size <= 0 or image_size % SIZE_MULTIPLE:
        raise ValueError(f"image size {image_size} is not a positive multiple of "
                         f"{SIZE_MULTIPLE}; pass one, e.g. --image_size 256")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"output '{path}' is a folder; give a file name, e.g. model.onnx")
    # Written next to PATH first, so that PATH is either the old file or the new, whole one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # fail now, not after the export, when PATH cannot be written
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.touch()
    except OSError as err:
        raise OSError(f"cannot write '{path}' ({err.strerror}: '{err.filename}')") from err
    try:
        was_training = model.training
        model.eval()
        try:
            proto = to_onnx_proto(model, opset)
        finally:
            model.train(was_training)
        # The exporter may keep opset 18 when converting to another one fails: record the real one.
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        for key, value in onnx_metadata(model, image_size, opset).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save_model(proto, str(temporary))
        onnx.checker.check_model(str(temporary), full_check=True)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> Path:
    """Entry point of `python -m petseg_lib.export`; errors exit with status 2."""
    parser = argparse.ArgumentParser(
        prog="python -m petseg_lib.export",
        description="Export a trained checkpoint to an ONNX file with dynamic batch and size.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_model(parser)
    parser.add_argument("--output", required=True, help="the .onnx file to write")
    highest = optional_import("onnx").defs.onnx_opset_version()  # the newest it knows
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset version, {LOWEST_OPSET} to {highest}")
    add_image_size(parser, default="the size the model was trained at (stored in the file)")
    args = parser.parse_args(argv)
    if not LOWEST_OPSET <= args.opset <= highest:
        raise UserError(f"--opset must be from {LOWEST_OPSET} to {highest} (the opsets the "
                        f"exporter can write for these models), not {args.opset}")
    model = load_model(args.model)
    path = export_onnx(model, args.output, opset=args.opset, image_size=args.image_size)
    segmenter = OnnxSegmenter(path)
    print(f"Exported {segmenter.metadata['model_name']} "
          f"({count_parameters(model) / 1e6:.1f} M parameters, image size "
          f"{segmenter.image_size}) to {path} ({path.stat().st_size / 2**20:.1f} MiB, "
          f"opset {segmenter.metadata['opset']}, dynamic batch, height and width)")
    if segmenter.metadata["opset"] != str(args.opset):  # kept, but not what was asked
        raise UserError(f"opset {args.opset} was asked for; the exporter could not convert to "
                        f"it and {path} holds opset {segmenter.metadata['opset']}")
    return path


if __name__ == "__main__":
    run_cli(main)
