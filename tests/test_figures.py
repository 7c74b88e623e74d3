"""Figures: exact black mask areas, blending, curves and grids saved as PNG."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from petseg_lib.data.augment import augment_sample, augmentation_steps
from petseg_lib.data.masks import BACKGROUND, BOUNDARY, PET
from petseg_lib.data.oxford_pet import OxfordPetDataset
from petseg_lib.evaluation.evaluate import worst_predictions
from petseg_lib.evaluation.figures import (
    TINT_COLOURS,
    contrasting_colour,
    deepest_pixel,
    label_log_axis,
    markdown_grid,
    models_side_by_side,
    overlay_mask,
    plot_curves,
    plot_training_metrics,
    prediction_gallery,
    show_attention,
    show_augmentations,
    show_images,
    show_samples,
    show_trimap,
    tint_mask,
    to_image_array,
    visualize_comparison,
)
from petseg_lib.utils import plot_scores

from .conftest import RedIsPet, shifted_samples


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


def test_curves_plot_each_runs_validation_history_on_labelled_axes(tmp_path):
    rows = [{"label": "UNet", "history": {"valid_loss": [0.6, 0.4, 0.3],
                                          "valid_dice": [0.5, 0.7, 0.8]}},
            {"label": "UNet + augmentation", "history": {"valid_loss": [0.5, 0.3],
                                                         "valid_dice": [0.6, 0.9]}}]
    fig = plot_curves(rows, tmp_path / "curves.png")
    ax_loss, ax_dice = fig.axes
    assert ax_loss.get_ylabel() == "validation loss (log scale)" and ax_dice.get_ylabel() == "Dice"
    assert ax_loss.get_yscale() == "log"  # an early spike leaves the other curves readable
    for ax, key in ((ax_loss, "valid_loss"), (ax_dice, "valid_dice")):
        assert [line.get_label() for line in ax.get_lines()] == ["UNet", "UNet + augmentation"]
        for line, row in zip(ax.get_lines(), rows, strict=True):
            assert list(line.get_xdata()) == list(range(1, len(row["history"][key]) + 1))
            assert list(line.get_ydata()) == row["history"][key]
    assert Image.open(tmp_path / "curves.png").size[0] > 0


def test_show_samples_grid(tmp_path, tiny_root):
    from petseg_lib.data.oxford_pet import load_dataset

    fig = show_samples(load_dataset(tiny_root, "train", 32), n=6, cols=4,
                       save_path=tmp_path / "g.png")
    assert sum(1 for ax in fig.axes if ax.images) == 6
    assert (tmp_path / "g.png").is_file()


def test_show_trimap_names_the_three_classes():
    trimap = np.full((20, 30), BACKGROUND, np.uint8)
    trimap[4:16, 6:24] = BOUNDARY
    trimap[6:14, 8:22] = PET
    fig = show_trimap(np.zeros((20, 30, 3), np.uint8), trimap, title="t")
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert {"1 pet", "2 background", "3 boundary"} <= set(labels)
    # The last panel shows the boundary as grey (0.5), the pet white, the background black.
    ignored = fig.axes[3].images[0].get_array()
    assert set(np.unique(ignored)) == {0.0, 0.5, 1.0}
    assert ignored[10, 15] == 1.0 and ignored[0, 0] == 0.0 and ignored[4, 6] == 0.5


def test_show_augmentations_has_one_labelled_row_per_name(tiny_root):
    raw = OxfordPetDataset(tiny_root, "train")
    rows = {"original": [augment_sample(raw[i], None, 32) for i in range(3)],
            "flip": [augment_sample(raw[i], augmentation_steps(32)["horizontal flip"], 32)
                     for i in range(2)]}
    fig = show_augmentations(rows, title="grid")
    assert len(fig.axes) == 6
    assert fig.axes[0].get_ylabel() == "original" and fig.axes[3].get_ylabel() == "flip"
    assert fig.axes[1].get_title() == raw.names[1]
    assert not fig.axes[5].axison  # the missing third flip panel stays empty
    assert fig.axes[0].images[0].get_array().shape == (32, 32, 3)


def test_show_images_draws_maps_and_pictures():
    fig = show_images({"map": torch.rand(1, 1, 8, 6), "rgb": torch.rand(3, 8, 6)},
                      colorbar=True, title="row", vmin=0, vmax=1)
    pictures = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in pictures] == ["map", "rgb"]
    assert pictures[0].images[0].get_array().shape == (8, 6)
    assert pictures[1].images[0].get_array().shape == (8, 6, 3)
    assert len(fig.axes) == 3  # two panels and one colorbar


def test_markdown_grid_lines_and_cells():
    text = markdown_grid(["stage", "shape"], [["stem", (1, 64, 128, 128)], ["layer1", 7]])
    lines = text.strip().splitlines()
    assert lines[0] == "| stage | shape |"
    assert lines[1] == "|---|---|"
    assert lines[2] == "| stem | (1, 64, 128, 128) |"
    assert len(lines) == 4
    with pytest.raises(ValueError, match="cells"):
        markdown_grid(["a", "b"], [[1]])


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


def test_a_tint_takes_the_colour_that_contrasts_with_the_fur():
    blue, orange = TINT_COLOURS
    ginger = np.full((20, 30, 3), (200, 110, 40), np.uint8)
    grey_blue = np.full((20, 30, 3), (90, 110, 140), np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[4:16, 6:24] = True
    assert contrasting_colour(ginger, mask) == blue
    assert contrasting_colour(grey_blue, mask) == orange
    assert contrasting_colour(ginger, np.zeros_like(mask)) == blue  # no pet: the whole image
    tinted = tint_mask(ginger, mask, alpha=0.5)
    np.testing.assert_allclose(tinted[4, 10], blue)  # the outline, opaque
    np.testing.assert_allclose(tinted[10, 12], (ginger[0, 0] / 255 + blue) / 2, atol=1e-6)
    np.testing.assert_allclose(tinted[0, 0], ginger[0, 0] / 255)  # the background untouched


def test_a_log_axis_labels_at_least_four_plain_numbers():
    fig, ax = plt.subplots()
    ax.plot([0.15, 0.6])
    ax.set_yscale("log")
    label_log_axis(ax)
    fig.canvas.draw()
    low, high = ax.get_ylim()
    labels = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert len(labels) >= 4 and "0.3" in labels, labels
    assert not any("10^" in label or "times" in label for label in labels)


def test_the_score_legend_stands_beside_the_bars():
    rows = [{"label": name, "dice": 0.8, "iou": 0.7} for name in ("UNet", "UNet + augmentation")]
    fig = plot_scores(rows)
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent()
    assert legend.x0 >= fig.axes[0].get_window_extent().x1  # right of the plot, on no bar


def test_the_deepest_pixel_is_far_inside_its_region_and_from_the_frame():
    region = np.zeros((40, 60), bool)
    region[10:31, 5:16] = True  # 21 x 11: one pixel at the centre lasts the longest
    region[0:3, 40:60] = True  # a thin strip elsewhere
    assert deepest_pixel(region) == (20, 10)
    assert deepest_pixel(torch.from_numpy(region)[None].float()) == (20, 10)  # (1, H, W)
    corner = np.zeros((30, 30), bool)
    corner[:11, :11] = True  # against the frame, which is an edge too: its centre
    assert deepest_pixel(corner) == (5, 5)
    with pytest.raises(ValueError, match="empty"):
        deepest_pixel(np.zeros((8, 8), bool))


def test_attention_is_drawn_over_the_image_one_square_per_token():
    image = torch.rand(3, 64, 96)
    attention = torch.zeros(2, 2, 3)  # two heads over a 2 x 3 grid of keys
    attention[0, 1, 2], attention[1, 0, 0] = 1.0, 1.0
    fig = show_attention(image, {"on the pet": ((40, 70), attention),
                                 "on the background": ((5, 5), attention.flip(0))},
                         title="Where the query looks")
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(axes) == 4 and fig._suptitle.get_text() == "Where the query looks"
    assert axes[0].get_title() == "on the pet: the query pixel (y 40, x 70)"
    assert "2 × 3 key tokens" in axes[1].get_title() and "mean of 2 heads" in axes[1].get_title()
    heat = axes[1].images[-1]
    np.testing.assert_allclose(heat.get_array(), [[0.5, 0, 0], [0, 0, 0.5]])  # the heads' mean
    assert heat.get_extent() == [-0.5, 95.5, 63.5, -0.5]  # stretched over the whole image
    assert [line.get_xydata().tolist() for line in axes[1].lines] == [[[70.0, 40.0]]]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2 and "all equal: 0.167" in bars[0].get_ylabel()
    plt.close(fig)
