"""Run an exported petseg model with ONNX Runtime: numpy in, numpy out, no PyTorch needed.

The .onnx file is written by `python -m petseg_lib.export` (see petseg_lib/export.py).
This module imports only numpy, onnxruntime and the threshold rule (threshold.py, plain
Python), never PyTorch or the course's model code: in the course environment
`pip install -e ".[export]"` adds onnxruntime; elsewhere copy this file and threshold.py into
a folder petseg_lib/ next to the .onnx file and `pip install numpy onnxruntime` is all it needs.

    from petseg_lib.use.onnx_segmenter import OnnxSegmenter

    segmenter = OnnxSegmenter("model.onnx")
    logits = segmenter.logits(images)  # images: float32 (N, 3, H, W) in [0, 1]
    masks = segmenter.masks(images)  # bool (N, 1, H, W), True = pet
"""

from __future__ import annotations

import importlib
import reprlib
from pathlib import Path
from types import ModuleType

import numpy as np

from ..evaluation.threshold import DEFAULT_THRESHOLD, binarize, check_threshold

INSTALL_HINT = 'pip install -e ".[export]"'
# image_size and size_multiple above this: a damaged or crafted file. The same limit as
# options.MAX_IMAGE_SIZE, kept here because this module imports nothing of PyTorch.
LARGEST = 4096


def optional_import(name: str) -> ModuleType:
    """Import NAME, a package of the optional `export` extra, or say how to install it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        raise ImportError(f"{name} is not installed; install the export extra: "
                          f"{INSTALL_HINT}") from err


def first_line(err: Exception) -> str:
    """The first line of ERR's message, or its type's name when it has none."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


class OnnxSegmenter:
    """An exported petseg model, run by ONNX Runtime on the CPU."""

    def __init__(self, path: str | Path):
        ort = optional_import("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No ONNX model at '{self.path}'. Export one first: "
                                    "python -m petseg_lib.export --model CKPT --output FILE")
        try:
            self.session = ort.InferenceSession(str(self.path),
                                                providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's errors derive from Exception only
            raise ValueError(f"'{self.path}' is not a model ONNX Runtime can run (damaged, or "
                             f"not an .onnx file): {first_line(err)}") from err
        # The key-value pairs written by petseg_lib.export (all values are strings).
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.image_size = self.whole_number("image_size", None)  # the size it was trained at
        self.size_multiple = self.whole_number("size_multiple", 32)
        self.threshold = self.probability("threshold", DEFAULT_THRESHOLD)
        if self.image_size is not None and self.image_size % self.size_multiple:
            raise self.bad_metadata("image_size",
                                    f"a multiple of its size_multiple ({self.size_multiple})")
        self.input_name = self.session.get_inputs()[0].name

    def bad_metadata(self, key: str, expected: str) -> ValueError:
        """The error for a metadata entry KEY that is not EXPECTED."""
        return ValueError(f"'{self.path}' has the metadata entry {key}="
                          f"{reprlib.repr(self.metadata[key])}, not {expected}; export the "
                          "model again with python -m petseg_lib.export")

    def whole_number(self, key: str, default: int | None) -> int | None:
        """The metadata entry KEY as an int from 1 to LARGEST, DEFAULT when absent."""
        if not self.metadata.get(key):
            return default
        try:
            value = int(self.metadata[key])
        except ValueError:
            value = 0
        if not 1 <= value <= LARGEST:
            raise self.bad_metadata(key, f"a whole number from 1 to {LARGEST}")
        return value

    def probability(self, key: str, default: float) -> float:
        """The metadata entry KEY as a number strictly between 0 and 1, DEFAULT when absent."""
        if not self.metadata.get(key):
            return default
        try:
            return check_threshold(float(self.metadata[key]))  # also refuses NaN
        except ValueError:
            raise self.bad_metadata(key, "a number between 0 and 1") from None

    def suggested_size(self) -> int:
        """A side the model takes: its training size, else 8 times its size multiple."""
        return self.image_size or 8 * self.size_multiple

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
                             f"e.g. to {self.suggested_size()}x{self.suggested_size()}")
        return np.ascontiguousarray(images, dtype=np.float32)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits (N, 1, H, W) float32 of float32 images (N, 3, H, W) in [0, 1]."""
        images = self.check_images(images)
        try:
            logits = self.session.run(None, {self.input_name: images})[0]
        except Exception as err:  # a model that is not a petseg export
            raise ValueError(f"'{self.path}' could not segment images of shape {images.shape}"
                             f" (not exported by petseg_lib.export?): {first_line(err)}") from err
        if logits.shape != (images.shape[0], 1, *images.shape[2:]):
            raise ValueError(f"'{self.path}' gave logits of shape {logits.shape} for images of "
                             f"shape {images.shape}, not (N, 1, H, W): not a petseg export")
        return logits

    def masks(self, images: np.ndarray) -> np.ndarray:
        """Bool masks (N, 1, H, W): sigmoid(logits) > the threshold stored in the file."""
        return binarize(self.logits(images), self.threshold)
