"""The one rule that turns a model's logits into a mask: pet where sigmoid(logit) > threshold.

Compared as logit > log(t / (1 - t)), the logit whose sigmoid is t (`logit_cut`): the same
answer, without a sigmoid over millions of pixels. `binarize` works on torch tensors and numpy
arrays alike, and this module imports neither, so that `onnx_segmenter` runs without PyTorch.
A threshold is a probability strictly between 0 and 1; the sliders and the command lines offer
MIN_THRESHOLD to MAX_THRESHOLD in steps of THRESHOLD_STEP.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the type hints only: this module runs without numpy and PyTorch
    import numpy as np
    import torch

DEFAULT_THRESHOLD = 0.5
MIN_THRESHOLD, MAX_THRESHOLD, THRESHOLD_STEP = 0.01, 0.99, 0.01  # sliders and --threshold


def check_threshold(threshold: float) -> float:
    """THRESHOLD itself when it is strictly between 0 and 1, else a ValueError."""
    if not 0.0 < threshold < 1.0:  # `not <` also refuses NaN
        raise ValueError(f"threshold must be strictly between 0 and 1, not {threshold}")
    return threshold


def logit_cut(threshold: float = DEFAULT_THRESHOLD) -> float:
    """The logit whose sigmoid is THRESHOLD, log(t / (1 - t)): 0.0 for 0.5."""
    threshold = check_threshold(threshold)
    return math.log(threshold / (1.0 - threshold))


def binarize(logits: torch.Tensor | np.ndarray,
             threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor | np.ndarray:
    """The bool mask of LOGITS (a tensor or an array): sigmoid(logits) > THRESHOLD."""
    return logits > logit_cut(threshold)


def binarize_probabilities(probabilities: torch.Tensor | np.ndarray,
                           threshold: float = DEFAULT_THRESHOLD) -> torch.Tensor | np.ndarray:
    """The bool mask of PROBABILITIES, sigmoid(logits) already taken: the rule of `binarize`."""
    return probabilities > check_threshold(threshold)
