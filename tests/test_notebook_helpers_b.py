"""Helpers of notebooks 04-06: Markdown tables, live curves, worst predictions, galleries."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from petseg_lib.evaluate import worst_predictions
from petseg_lib.utils import (
    live_metrics_plot,
    markdown_grid,
    mask_dice,
    models_side_by_side,
    prediction_gallery,
    to_image_array,
)

HISTORY = {"train_loss": [0.7, 0.5], "valid_loss": [0.72, 0.6],
           "train_dice": [0.5, 0.7], "valid_dice": [0.45, 0.6]}


class RedIsPet(nn.Module):
    """A stand-in model: a pixel is pet when its red channel is above 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] - 0.5) * 20  # (N, 1, H, W) logits


def shifted_samples(shifts: list[int], size: int = 16) -> list[dict]:
    """Samples whose mask is a square and whose red square is shifted by SHIFT pixels."""
    samples = []
    for shift in shifts:
        mask = torch.zeros(1, size, size)
        mask[0, 4:12, 4:12] = 1
        image = torch.zeros(3, size, size)
        image[0] = torch.roll(mask[0], shifts=shift, dims=1)
        samples.append({"image": image, "mask": mask, "trimap": None, "name": f"shift{shift}"})
    return samples


def test_markdown_grid_lines_and_cells():
    text = markdown_grid(["stage", "shape"], [["stem", (1, 64, 128, 128)], ["layer1", 7]])
    lines = text.strip().splitlines()
    assert lines[0] == "| stage | shape |"
    assert lines[1] == "|---|---|"
    assert lines[2] == "| stem | (1, 64, 128, 128) |"
    assert len(lines) == 4
    with pytest.raises(ValueError, match="cells"):
        markdown_grid(["a", "b"], [[1]])


def test_live_metrics_plot_clears_then_displays_one_closed_figure(monkeypatch):
    import IPython.display

    calls = []
    monkeypatch.setattr(IPython.display, "clear_output", lambda wait=False: calls.append(wait))
    monkeypatch.setattr(IPython.display, "display", lambda fig: calls.append(fig))
    live_metrics_plot(1, HISTORY)
    assert calls[0] is True  # clear_output(wait=True) comes before the new figure
    fig = calls[1]
    loss_ax, dice_ax = fig.axes[:2]
    np.testing.assert_allclose(dice_ax.lines[1].get_ydata(), HISTORY["valid_dice"])
    assert "epoch 2" in fig.get_suptitle()
    assert not plt.fignum_exists(fig.number), "the figure is closed after being displayed"


def test_worst_predictions_sorts_by_dice_and_matches_the_masks():
    samples = shifted_samples([0, 3, 1, 6, 2])
    worst = worst_predictions(RedIsPet(), samples, n=3, batch_size=2)
    assert [w["name"] for w in worst] == ["shift6", "shift3", "shift2"]
    for item in worst:
        sample = samples[[s["name"] for s in samples].index(item["name"])]
        expected = mask_dice(sample["image"][0] > 0.5, sample["mask"])
        assert item["dice"] == pytest.approx(expected)
        assert item["probability"].shape == (1, 16, 16)
        assert torch.equal(item["prediction"], item["probability"] > 0.5)
    assert worst[0]["dice"] < worst[1]["dice"] < worst[2]["dice"] < 1.0


def test_worst_predictions_restores_training_mode():
    model = nn.Sequential(RedIsPet())
    model.train()
    worst_predictions(model, shifted_samples([0, 1]), n=1)
    assert model.training


def test_prediction_gallery_shows_three_rows_per_item():
    items = worst_predictions(RedIsPet(), shifted_samples([4, 1]), n=2)
    fig = prediction_gallery(items, title="worst")
    axes = np.array(fig.axes).reshape(3, 2)
    assert axes[0, 0].get_title().startswith("shift4\nDice")
    assert [axes[r, 0].get_ylabel() for r in range(3)] == ["Input", "Ground truth",
                                                           "Prediction"]
    shown = axes[2, 0].images[0].get_array()
    pred = items[0]["prediction"][0].numpy()
    assert np.all(shown[pred] == 0.0), "predicted pixels are filled black"
    np.testing.assert_array_equal(shown[~pred], to_image_array(items[0]["image"])[~pred])


def test_models_side_by_side_titles_carry_each_models_dice():
    samples = shifted_samples([0, 2])
    masks = torch.stack([s["mask"] for s in samples])  # (2, 1, 16, 16)
    empty = torch.zeros_like(masks)
    fig = models_side_by_side(samples, {"perfect": masks, "empty": empty})
    axes = np.array(fig.axes).reshape(2, 4)
    assert axes[0, 0].get_title() == "Input shift0"
    assert axes[1, 2].get_title() == "perfect\nDice 1.000"
    assert axes[1, 3].get_title() == "empty\nDice 0.000"
    np.testing.assert_array_equal(axes[0, 3].images[0].get_array(),
                                  to_image_array(samples[0]["image"]))
