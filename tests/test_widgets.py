"""The notebook widgets and live plots: each one a thin shell over a tested function."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from petseg_lib.evaluation.evaluate import mask_dice
from petseg_lib.use import widgets
from petseg_lib.use.widgets import draw_prediction, live_metrics_plot

HISTORY = {"train_loss": [0.7, 0.5], "valid_loss": [0.72, 0.6],
           "train_dice": [0.5, 0.7], "valid_dice": [0.45, 0.6]}


def test_live_metrics_plot_clears_then_displays_one_closed_figure(monkeypatch):
    calls = []
    monkeypatch.setattr(widgets, "clear_output", lambda wait=False: calls.append(wait))
    monkeypatch.setattr(widgets, "display", lambda fig: calls.append(fig))
    live_metrics_plot(1, HISTORY)
    assert calls[0] is True  # clear_output(wait=True) comes before the new figure
    fig = calls[1]
    loss_ax, dice_ax = fig.axes[:2]
    np.testing.assert_allclose(dice_ax.lines[1].get_ydata(), HISTORY["valid_dice"])
    assert "epoch 2" in fig.get_suptitle()
    assert not plt.fignum_exists(fig.number), "the figure is closed after being displayed"
    calls.clear()
    for epoch in range(8):
        live_metrics_plot(epoch, HISTORY, every=4)
    assert len(calls) == 4  # epochs 4 and 8: clear, then display, twice
    assert "epoch 8" in calls[-1].get_suptitle()


def test_threshold_callback_rebinarises_and_scores():
    import matplotlib.pyplot as plt

    from petseg_lib.evaluation.evaluate import dice_score

    rng = np.random.default_rng(1)
    probs = rng.random((1, 16, 16)).astype(np.float32)
    gt = (rng.random((16, 16)) > 0.5).astype(np.float32)
    image = rng.random((3, 16, 16)).astype(np.float32)
    fig = plt.figure()
    for threshold in (0.2, 0.5, 0.8):
        dice = draw_prediction(fig, image, probs, gt, threshold=threshold, alpha=1.0)
        logits = torch.logit(torch.from_numpy(probs))[None] - torch.logit(
            torch.tensor(threshold)) + torch.logit(torch.tensor(0.5))
        expected = dice_score(logits, torch.from_numpy(gt)[None, None]).item()
        assert dice == pytest.approx(expected, abs=1e-6)
        shown = fig.axes[3].images[0].get_array()  # the prediction panel
        assert np.all(shown[probs[0] > threshold] == 0.0)
        assert f"{threshold:.2f}" in fig.axes[3].get_title()
    assert mask_dice(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert draw_prediction(fig, image, probs, None) is None and len(fig.axes) == 4  # 3 + colorbar


def test_prediction_explorer_updates_with_its_controls(monkeypatch):
    import ipywidgets

    calls = []
    monkeypatch.setattr(widgets, "draw_prediction",
                        lambda fig, image, prob, gt, threshold, alpha, name:
                        calls.append((name, threshold, alpha)))
    probs = torch.rand(3, 1, 8, 8)
    box = widgets.prediction_explorer(torch.rand(3, 3, 8, 8), probs, (probs > 0.5).float(),
                                      ["a", "b", "c"])
    sample, threshold, alpha = box.children[0].children
    assert isinstance(threshold, ipywidgets.FloatSlider) and calls == [("a", 0.5, 1.0)]
    threshold.value = 0.7
    alpha.value = 0.3
    sample.value = 2
    assert calls[-1] == ("c", 0.7, 0.3)
