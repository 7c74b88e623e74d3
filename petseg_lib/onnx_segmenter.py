"""Run an exported petseg model with ONNX Runtime: numpy in, numpy out, no PyTorch needed.

The .onnx file is written by `python -m petseg_lib.export` (see petseg_lib/export.py).
This module imports only numpy and onnxruntime, never PyTorch or the course's model code:
in the course environment `pip install -e ".[export]"` adds onnxruntime; elsewhere copy this
file next to the .onnx file and `pip install numpy onnxruntime` is all it needs.

    from petseg_lib.onnx_segmenter import OnnxSegmenter

    segmenter = OnnxSegmenter("model.onnx")
    logits = segmenter.logits(images)  # images: float32 (N, 3, H, W) in [0, 1]
    masks = segmenter.masks(images)  # bool (N, 1, H, W), True = pet
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from types import ModuleType

import numpy as np

INSTALL_HINT = 'pip install -e ".[export]"'


def optional_import(name: str) -> ModuleType:
    """Import NAME, a package of the optional `export` extra, or say how to install it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise ImportError(f"{name} is not installed; install the export extra: "
                          f"{INSTALL_HINT}") from err


class OnnxSegmenter:
    """An exported petseg model, run by ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path):
        ort = optional_import("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No ONNX model at '{self.path}'. Export one first: "
                                    "python -m petseg_lib.export --model CKPT --output FILE")
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        # The key-value pairs written by petseg_lib.export (all values are strings).
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        size = self.metadata.get("image_size")
        self.image_size = int(size) if size else None  # the size the model was trained at
        self.threshold = float(self.metadata.get("threshold", 0.5))
        self.size_multiple = int(self.metadata.get("size_multiple", 32))
        self.input_name = self.session.get_inputs()[0].name

    def __repr__(self) -> str:
        return (f"OnnxSegmenter('{self.path}', model={self.metadata.get('model_name')}, "
                f"image_size={self.image_size}, opset={self.metadata.get('opset')})")

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """IMAGES as a contiguous float32 array, or a ValueError saying what is wrong."""
        images = np.asarray(images)
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(f"images must be float in [0, 1], got {images.dtype}; "
                             "divide uint8 images by 255 first")
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {images.shape}")
        height, width = images.shape[2:]
        if height % self.size_multiple or width % self.size_multiple or height == 0:
            raise ValueError(f"height and width must be positive multiples of "
                             f"{self.size_multiple}, got {height}x{width}; resize the images, "
                             f"e.g. to {self.image_size or 256}x{self.image_size or 256}")
        return np.ascontiguousarray(images, dtype=np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits (N, 1, H, W) float32 of float32 images (N, 3, H, W) in [0, 1]."""
        return self.session.run(None, {self.input_name: self.check_images(images)})[0]

    def masks(self, images: np.ndarray) -> np.ndarray:
        """Bool masks (N, 1, H, W): sigmoid(logits) > the threshold stored in the file."""
        # sigmoid(x) > t is the same as x > log(t / (1 - t)), which is 0 for t = 0.5.
        return self.logits(images) > math.log(self.threshold / (1 - self.threshold))
