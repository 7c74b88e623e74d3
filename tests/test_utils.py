"""Figures: exact black mask areas, blending, curves and grids saved as PNG."""

import numpy as np
import pytest
import torch
from PIL import Image

from petseg_lib.utils import (
    draw_prediction,
    mask_dice,
    overlay_mask,
    plot_training_metrics,
    show_samples,
    to_image_array,
    visualize_comparison,
)


@pytest.fixture
def image_and_masks():
    rng = np.random.default_rng(0)
    image = rng.integers(1, 256, (20, 30, 3), dtype=np.uint8)  # no pixel is black already
    gt = np.zeros((20, 30), np.float32)
    gt[5:15, 5:20] = 1
    pred = np.zeros((1, 20, 30), np.float32)
    pred[0, 8:18, 10:25] = 1
    return image, gt, pred


def test_image_conversions_agree():
    chw = torch.rand(3, 8, 6)
    hwc_uint8 = (chw.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_allclose(to_image_array(chw), chw.permute(1, 2, 0).numpy())
    np.testing.assert_allclose(to_image_array(hwc_uint8), to_image_array(chw), atol=1 / 255)
    assert to_image_array(np.zeros((5, 4))).shape == (5, 4, 3)


def test_alpha_one_paints_exact_black_and_leaves_the_rest(image_and_masks):
    image, gt, pred = image_and_masks
    fig = visualize_comparison(image, gt, pred, alpha=1.0)
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert [ax.get_title() for ax in fig.axes] == ["Input image", "Ground-truth mask",
                                                  "Predicted mask"]
    original = to_image_array(image)
    for picture, mask in ((shown[1], gt > 0), (shown[2], pred[0] > 0)):
        assert np.all(picture[mask] == 0.0)
        np.testing.assert_array_equal(picture[~mask], original[~mask])
    np.testing.assert_array_equal(shown[0], original)


def test_alpha_below_one_blends(image_and_masks):
    image, gt, _ = image_and_masks
    half = overlay_mask(image, gt, alpha=0.5)
    np.testing.assert_allclose(half[gt > 0], to_image_array(image)[gt > 0] * 0.5, rtol=1e-6)
    assert np.all(half[gt > 0] > 0)


def test_no_ground_truth_gives_two_panels_and_a_png(tmp_path, image_and_masks):
    image, _, pred = image_and_masks
    path = tmp_path / "figs" / "cmp.png"
    fig = visualize_comparison(torch.from_numpy(image).permute(2, 0, 1), None, pred,
                               save_path=path)
    assert len(fig.axes) == 2
    assert Image.open(path).format == "PNG"


def test_training_metrics_plot(tmp_path):
    history = {"train_loss": [0.7, 0.5, 0.4], "valid_loss": [0.72, 0.6, 0.5],
               "train_dice": [0.5, 0.7, 0.8], "valid_dice": [0.45, 0.6, 0.75]}
    fig = plot_training_metrics(history, tmp_path / "m.png")
    loss_ax, dice_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and dice_ax.get_ylabel() == "Dice"
    np.testing.assert_allclose(dice_ax.lines[1].get_ydata(), history["valid_dice"])
    assert (tmp_path / "m.png").stat().st_size > 1000


def test_show_samples_grid(tmp_path, tiny_root):
    from petseg_lib.oxford_pet import load_dataset

    fig = show_samples(load_dataset(tiny_root, "train", 32), n=6, cols=4,
                       save_path=tmp_path / "g.png")
    assert sum(1 for ax in fig.axes if ax.images) == 6
    assert (tmp_path / "g.png").is_file()


def test_threshold_callback_rebinarises_and_scores():
    import matplotlib.pyplot as plt

    from petseg_lib.evaluate import dice_score

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

    from petseg_lib import utils

    calls = []
    monkeypatch.setattr(utils, "draw_prediction",
                        lambda fig, image, prob, gt, threshold, alpha, name:
                        calls.append((name, threshold, alpha)))
    probs = torch.rand(3, 1, 8, 8)
    box = utils.prediction_explorer(torch.rand(3, 3, 8, 8), probs, (probs > 0.5).float(),
                                    ["a", "b", "c"])
    sample, threshold, alpha = box.children[0].children
    assert isinstance(threshold, ipywidgets.FloatSlider) and calls == [("a", 0.5, 1.0)]
    threshold.value = 0.7
    alpha.value = 0.3
    sample.value = 2
    assert calls[-1] == ("c", 0.7, 0.3)
