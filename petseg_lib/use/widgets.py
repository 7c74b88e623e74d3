"""Interactive notebook pieces: sliders over predictions, live training curves, your own photo.

Each widget is a thin shell around a plain function (`draw_prediction`, `plot_training_metrics`,
`draw_photo_segmentation`) that the tests call directly, so what a slider shows is tested even
where no browser runs.
"""

from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import clear_output, display

from ..errors import UnreadableImage
from ..evaluation.figures import overlay_mask, plot_training_metrics, squeeze_mask, to_image_array
from ..evaluation.metrics import mask_dice
from ..evaluation.threshold import (
    DEFAULT_THRESHOLD,
    MAX_THRESHOLD,
    MIN_THRESHOLD,
    THRESHOLD_STEP,
    binarize_probabilities,
)
from .photos import overlay_photo, read_photo, segment_logits, threshold_logits

# A label as wide as its text: ipywidgets' default width cuts "overlay alpha" to "overlay al…".
FULL_LABEL = {"description_width": "initial"}


def threshold_slider(value: float = DEFAULT_THRESHOLD) -> widgets.FloatSlider:
    """The threshold slider of every widget: the range and step of threshold.py."""
    return widgets.FloatSlider(value, min=MIN_THRESHOLD, max=MAX_THRESHOLD, step=THRESHOLD_STEP,
                               description="threshold", continuous_update=False,
                               style=FULL_LABEL)


def draw_prediction(fig: plt.Figure, image, probabilities, gt_mask=None,
                    threshold: float = DEFAULT_THRESHOLD, alpha: float = 1.0,
                    name: str = "") -> float | None:
    """Redraw FIG with the input, the probability map and the thresholded mask; return Dice."""
    pred = binarize_probabilities(squeeze_mask(probabilities), threshold)
    dice = None if gt_mask is None else mask_dice(pred, gt_mask)
    fig.clear()
    axes = fig.subplots(1, 3 if gt_mask is None else 4)
    axes[0].imshow(to_image_array(image))
    axes[0].set_title(f"Input {name}".strip())
    shown = axes[1].imshow(squeeze_mask(probabilities), cmap="magma", vmin=0, vmax=1)
    axes[1].set_title("Predicted probability")
    fig.colorbar(shown, ax=axes[1], fraction=0.046)
    column = 2
    if gt_mask is not None:
        axes[column].imshow(overlay_mask(image, gt_mask, alpha))
        axes[column].set_title("Ground truth")
        column += 1
    axes[column].imshow(overlay_mask(image, pred, alpha))
    score = "" if dice is None else f", Dice {dice:.3f}"
    axes[column].set_title(f"Prediction > {threshold:.2f}{score}")
    for ax in axes:
        ax.axis("off")
    return dice


def prediction_explorer(images, probabilities, gt_masks=None, names=None):
    """Sliders for threshold and overlay alpha, and a sample picker, over precomputed predictions.

    IMAGES, PROBABILITIES and GT_MASKS are sequences (or batched tensors) of equal length.
    """
    n = len(images)
    names = names or [str(i) for i in range(n)]
    sample = widgets.Dropdown(options=[(name, i) for i, name in enumerate(names)],
                              description="sample", style=FULL_LABEL)
    threshold = threshold_slider()
    alpha = widgets.FloatSlider(1.0, min=0.0, max=1.0, step=0.1, description="overlay alpha",
                                continuous_update=False, style=FULL_LABEL)
    output = widgets.Output()

    def update(_change=None) -> None:
        i = sample.value
        gt = None if gt_masks is None else gt_masks[i]
        with output:
            output.clear_output(wait=True)
            fig = plt.figure(figsize=(14, 3.8))
            draw_prediction(fig, images[i], probabilities[i], gt, threshold.value,
                            alpha.value, names[i])
            plt.show()

    for control in (sample, threshold, alpha):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([sample, threshold, alpha]), output])


def live_metrics_plot(epoch: int, history: dict, title: str | None = None,
                      every: int = 1) -> None:
    """Replace the notebook cell's output with the curves so far (fits `on_epoch_end`).

    With EVERY > 1 only every EVERY-th epoch is drawn: drawing costs a fraction of a second,
    as much as a short epoch.
    """
    if (epoch + 1) % every != 0:
        return
    fig = plot_training_metrics(history, title=title or f"Training curves after epoch {epoch + 1}")
    clear_output(wait=True)  # the old figure goes when the new one arrives: no flicker
    display(fig)
    plt.close(fig)  # displayed once, not a second time at the end of the cell


def draw_photo_segmentation(fig: plt.Figure, photo, logits,
                            threshold: float = DEFAULT_THRESHOLD, trained_on: str = "") -> float:
    """Redraw FIG with the photo and its pet overlay at THRESHOLD, titled with what the model
    was TRAINED_ON; return the pet's share."""
    photo = read_photo(photo)
    mask = threshold_logits(logits, threshold)  # (H, W) bool, the photo's size
    share = float(mask.mean())
    fig.clear()
    axes = fig.subplots(1, 2)
    axes[0].imshow(photo)
    axes[0].set_title(f"Photo, {photo.width} x {photo.height}")
    axes[1].imshow(overlay_photo(photo, mask))
    axes[1].set_title(f"Pet at threshold {threshold:.2f}: {share:.1%} of the photo")
    for ax in axes:
        ax.axis("off")
    if trained_on:
        fig.suptitle(f"The model was {trained_on}")
    return share


def photo_segmenter(model, fallback_image, threshold: float = DEFAULT_THRESHOLD,
                    display_size: int = 1024):
    """Upload a photo of your own (FALLBACK_IMAGE until then) and slide the mask's threshold.

    The model runs once per photo, on a copy at most DISPLAY_SIZE pixels wide and high; the
    slider only re-thresholds its logits (`draw_photo_segmentation`), so it answers at once.
    """
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="your photo")
    slider = threshold_slider(threshold)
    output = widgets.Output()
    shown = {}

    def redraw(_change=None) -> None:
        with output:
            output.clear_output(wait=True)
            fig = plt.figure(figsize=(11, 4.6))
            draw_photo_segmentation(fig, shown["photo"], shown["logits"], slider.value,
                                    getattr(model, "trained_on", ""))
            plt.show()

    def show(photo) -> None:
        photo.thumbnail((display_size, display_size))  # in place, keeping the aspect ratio
        shown.update(photo=photo, logits=segment_logits(model, photo))  # logits (h, w)
        redraw()

    def on_upload(change) -> None:
        if not change["new"]:
            return  # the upload was cleared
        upload_file = change["new"][0]  # ipywidgets 8: a tuple of dicts, "content" a memoryview
        try:
            photo = read_photo(io.BytesIO(upload_file["content"]), name=upload_file["name"])
        except UnreadableImage as error:
            output.outputs = ()
            output.append_stdout(f"{error}\n")  # one line, not a traceback
            return
        show(photo)

    upload.observe(on_upload, names="value")
    slider.observe(redraw, names="value")
    show(read_photo(fallback_image))
    return widgets.VBox([widgets.HBox([upload, slider]), output])
