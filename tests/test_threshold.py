"""The one threshold rule: logits to a mask, its range check, and every place that uses it."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from petseg_lib.evaluation import metrics, predict
from petseg_lib.evaluation.threshold import (
    DEFAULT_THRESHOLD,
    MAX_THRESHOLD,
    MIN_THRESHOLD,
    THRESHOLD_STEP,
    binarize,
    binarize_probabilities,
    check_threshold,
    logit_cut,
)
from petseg_lib.use import photos, widgets

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (MIN_THRESHOLD, 0.05, 0.3, DEFAULT_THRESHOLD, 0.7, 0.95, MAX_THRESHOLD)


@pytest.mark.parametrize("value", [0, 0.0, 1, 1.0, 1.5, -0.2, math.nan, math.inf])
def test_a_threshold_outside_zero_and_one_is_refused_in_one_line(value):
    with pytest.raises(ValueError, match="strictly between 0 and 1") as caught:
        check_threshold(value)
    assert "\n" not in str(caught.value) and str(value) in str(caught.value)
    for rule in (logit_cut, lambda t: binarize(torch.zeros(3), t),
                 lambda t: binarize_probabilities(np.zeros(3), t)):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            rule(value)


def test_the_cut_is_the_logit_whose_sigmoid_is_the_threshold():
    assert logit_cut(0.5) == 0.0 and logit_cut() == 0.0
    for t in THRESHOLDS:
        assert torch.sigmoid(torch.tensor(logit_cut(t), dtype=torch.float64)).item() == \
            pytest.approx(t, abs=1e-12)
    assert logit_cut(0.3) == pytest.approx(-logit_cut(0.7))


@pytest.mark.parametrize("t", THRESHOLDS)
def test_the_rule_equals_sigmoid_above_the_threshold_on_random_logits(t):
    logits = torch.randn(4, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 4
    mask = binarize(logits, t)
    assert mask.dtype == torch.bool and mask.shape == logits.shape
    assert torch.equal(mask, torch.sigmoid(logits) > t)
    array = logits.numpy()  # numpy arrays follow the same rule
    np.testing.assert_array_equal(binarize(array, t), mask.numpy())
    np.testing.assert_array_equal(binarize_probabilities(torch.sigmoid(logits).numpy(), t),
                                  mask.numpy())


def test_every_place_that_thresholds_logits_uses_the_rule():
    logits = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = torch.sigmoid(logits) > 0.3
    assert predict.binarize is binarize and metrics.binarize is binarize
    np.testing.assert_array_equal(photos.threshold_logits(logits[0, 0], 0.3), expected[0, 0])
    meter = metrics.SegmentationMeter(0.3)
    meter.update(logits, expected.float())
    assert meter.compute()["dice"] == 1.0  # the meter's mask is the rule's mask
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        photos.threshold_logits(logits[0, 0], 1.0)


def test_the_sliders_offer_the_range_of_the_command_lines():
    slider = widgets.threshold_slider()
    assert (slider.value, slider.min, slider.max, slider.step) == (
        DEFAULT_THRESHOLD, MIN_THRESHOLD, MAX_THRESHOLD, THRESHOLD_STEP)
    assert 0 < MIN_THRESHOLD < DEFAULT_THRESHOLD < MAX_THRESHOLD < 1


def test_the_rule_needs_neither_torch_nor_numpy():
    # onnx_segmenter runs without PyTorch, and it uses this module.
    code = ("import sys; sys.modules['torch'] = None; sys.modules['numpy'] = None\n"
            "from petseg_lib.evaluation.threshold import binarize, logit_cut\n"
            "print(binarize(0.1, 0.5), binarize(-0.1, 0.5), logit_cut(0.5))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "0.0"]
