"""Figures: masks over images, training curves, example grids, the comparison charts.

Every function here takes plain numpy arrays or torch tensors and returns a matplotlib
Figure laid out with constrained layout; `save_figure` writes any of them as a PNG. So
notebooks, the command lines and the tests draw the same pictures. (The sliders over these
pictures are in widgets.py; utils.py, this room's first name, names them all too.)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

from ..data.masks import BOUNDARY, trimap_to_mask
from ..paths import written_atomically
from .evaluate import describe_protocols
from .metrics import mask_dice
from .threshold import DEFAULT_THRESHOLD, binarize_probabilities

LOSS_NAMES = {"bce": "BCE", "dice": "Soft Dice", "bce_dice": "BCE + Dice", "focal": "Focal"}


def to_image_array(image) -> np.ndarray:
    """An image as (H, W, 3) float in [0, 1], from CHW/HWC, tensor/array, uint8/float."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)  # CHW -> HWC
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def to_mask_array(mask) -> np.ndarray:
    """A mask as (H, W) bool, from (1, H, W) or (H, W), tensor or array."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[0]
    return mask > 0.5


def overlay_mask(image, mask, alpha: float = 1.0, color=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The image with the mask area filled with COLOR (black); ALPHA < 1 blends."""
    out = to_image_array(image).copy()
    area = to_mask_array(mask)
    if alpha >= 1.0:
        out[area] = color  # fully opaque: the masked pixels are exactly COLOR
    else:
        out[area] = (1.0 - alpha) * out[area] + alpha * np.asarray(color, dtype=np.float32)
    return out


# A colour-blind-safe pair (Okabe and Ito's blue and orange), opposite on the yellow-blue axis
# that fur colours lie along: a ginger or tan pet is tinted blue, a grey-blue one orange.
TINT_COLOURS = ((0.0, 0.447, 0.698), (0.902, 0.624, 0.0))


def contrasting_colour(image, mask) -> tuple[float, float, float]:
    """Blue of TINT_COLOURS for a yellowish pet under MASK (the whole image when MASK is
    empty), else orange: the one on the other side of the yellow-blue axis."""
    pixels = to_image_array(image)
    area = to_mask_array(mask)
    red, green, blue = (pixels[area] if area.any() else pixels.reshape(-1, 3)).mean(axis=0)
    return TINT_COLOURS[0] if blue <= (red + green) / 2 else TINT_COLOURS[1]


def outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The pixels of MASK less than WIDTH pixels from its edge: MASK XOR MASK eroded WIDTH times.

    The frame of the picture does not count as an edge: a pet cut by it is not outlined there.
    """
    inner = mask
    for _ in range(width):  # each pass removes the pet pixels with a background neighbour
        eroded = inner.copy()
        eroded[1:] &= inner[:-1]  # the pixel above is pet too
        eroded[:-1] &= inner[1:]  # ... below
        eroded[:, 1:] &= inner[:, :-1]  # ... left
        eroded[:, :-1] &= inner[:, 1:]  # ... right
        inner = eroded
    return mask & ~inner


def outline_width(mask: np.ndarray) -> int:
    """An outline's width in pixels: 1 below 400 px pictures, then one more per 200 px."""
    return max(1, min(mask.shape) // 200)


def tint_mask(image, mask, alpha: float = 0.45) -> np.ndarray:
    """The image with the mask tinted and outlined in `contrasting_colour`, (H, W, 3) floats."""
    area = to_mask_array(mask)
    colour = contrasting_colour(image, area)
    out = overlay_mask(image, area, alpha, colour)
    out[outline(area, outline_width(area))] = colour
    return out


def visualize_comparison(image, gt_mask, pred_mask, save_path: str | Path | None = None,
                         alpha: float = 1.0, title: str | None = None) -> plt.Figure:
    """Input, ground truth and prediction side by side (mask areas filled black)."""
    panels = [("Input image", to_image_array(image))]
    if gt_mask is not None:
        panels.append(("Ground-truth mask", overlay_mask(image, gt_mask, alpha)))
    panels.append(("Predicted mask", overlay_mask(image, pred_mask, alpha)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3), layout="constrained")
    for ax, (name, picture) in zip(axes, panels, strict=True):
        ax.imshow(picture, vmin=0.0, vmax=1.0)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def plot_training_metrics(history: dict, save_path: str | Path | None = None,
                          title: str | None = None, loss_name: str = "BCE") -> plt.Figure:
    """Train/valid loss and train/valid Dice per epoch as two line charts."""
    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    ax_loss.plot(epochs, history["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, history["valid_loss"], "o-", label="valid")
    ax_loss.set(title=f"{loss_name} loss", xlabel="epoch", ylabel="loss")
    ax_dice.plot(epochs, history["train_dice"], "o-", label="train")
    ax_dice.plot(epochs, history["valid_dice"], "o-", label="valid")
    for split in ("train", "valid"):  # a multi-task run's class head (multitask.py)
        if f"{split}_accuracy" in history:
            ax_dice.plot(epochs, history[f"{split}_accuracy"], "s--",
                         label=f"{split} class accuracy")
    ax_dice.set(title="Dice score", xlabel="epoch", ylabel="Dice", ylim=(0.0, 1.0))
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
    if title:
        fig.suptitle(title)
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def save_training_curves(history: dict, config) -> Path:
    """Draw a run's curves into OUTPUT_DIR/RUN_NAME_metrics.png (CONFIG: a TrainConfig)."""
    path = Path(config.output_dir) / f"{config.run_name}_metrics.png"
    fig = plot_training_metrics(history, path, title=f"{config.run_name}: training curves",
                                loss_name=LOSS_NAMES.get(config.loss, config.loss))
    plt.close(fig)
    return path


def show_samples(dataset, n: int = 8, cols: int = 4, save_path: str | Path | None = None,
                 alpha: float = 0.5, title: str | None = None) -> plt.Figure:
    """A grid of N samples spread over DATASET, each mask tinted and outlined (`tint_mask`)."""
    n = min(n, len(dataset))
    picks = np.linspace(0, len(dataset) - 1, n).round().astype(int)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        sample = dataset[int(picks[i])]
        picture = to_image_array(sample["image"])
        if sample["mask"] is not None:
            picture = tint_mask(picture, sample["mask"], alpha)
        ax.imshow(picture)
        ax.set_title(str(sample.get("name", picks[i])), fontsize=8)
    fig.suptitle(title or f"{n} samples, pet mask tinted and outlined in blue or orange")
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Save FIG as a PNG, creating the folder; every figure of the course is saved this way."""
    path = Path(path)
    with written_atomically(path) as partial:
        fig.savefig(partial, dpi=100, format="png")
    return path


def squeeze_mask(array) -> np.ndarray:
    """(1, H, W) or (H, W) tensor/array -> (H, W) numpy array."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    return array[0] if array.ndim == 3 else array


# ---------------------------------------------------------------------------
# Data figures: dataset statistics, trimaps, single augmentations, rows of pictures
# ---------------------------------------------------------------------------

TRIMAP_COLOURS = ("#d95f02", "#1b3b6f", "#f2e205")  # pet (orange), background (blue), boundary


def show_trimap(image, trimap, title: str | None = None) -> plt.Figure:
    """An image, its trimap in three named colours, and the two binary readings of it."""
    trimap = squeeze_mask(trimap)
    mask = trimap_to_mask(trimap)  # boundary counted as pet
    ignored = np.where(trimap == BOUNDARY, 0.5, mask)  # boundary left out (grey)
    cmap = ListedColormap(TRIMAP_COLOURS)
    norm = BoundaryNorm([0.5, 1.5, 2.5, 3.5], cmap.N)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4), layout="constrained")
    axes[0].imshow(to_image_array(image))
    axes[0].set_title("Image")
    shown = axes[1].imshow(trimap, cmap=cmap, norm=norm, interpolation="nearest")
    bar = fig.colorbar(shown, ax=axes[1], ticks=[1, 2, 3], fraction=0.046)
    bar.ax.set_yticklabels(["1 pet", "2 background", "3 boundary"])
    axes[1].set_title("Trimap: three classes")
    axes[2].imshow(mask, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[2].set_title("Training mask: boundary = pet\n(white pet, black background)")
    axes[3].imshow(ignored, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[3].set_title("Scoring variant: boundary ignored\n(grey pixels are not scored)")
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def show_augmentations(rows: dict[str, list[dict]], alpha: float = 0.3,
                       title: str | None = None) -> plt.Figure:
    """One row of samples per name in ROWS; each mask tinted and outlined (`tint_mask`)."""
    n_cols = max(len(samples) for samples in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.8 * n_cols + 0.8, 2.9 * len(rows)),
                             squeeze=False, layout="constrained")
    for ax_row, (label, samples) in zip(axes, rows.items(), strict=True):
        for ax, sample in zip(ax_row, samples, strict=False):
            ax.imshow(tint_mask(sample["image"], sample["mask"], alpha))
            ax.set_title(sample["name"], fontsize=8)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in ax_row[len(samples):]:
            ax.axis("off")
        ax_row[0].set_ylabel(label, fontsize=11)
    fig.suptitle(title or "Masks tinted and outlined in blue or orange")
    return fig


def show_images(panels: dict, cmap: str = "viridis", title: str | None = None,
                colorbar: bool = False, vmin: float | None = None,
                vmax: float | None = None, columns: int = 3) -> plt.Figure:
    """Pictures titled by the keys of PANELS, at most COLUMNS a row (titles stay readable on
    a laptop screen); single-channel maps use CMAP."""
    rows = -(-len(panels) // columns)
    cols = -(-len(panels) // rows)  # balanced: four panels in two rows of two
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.3 * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)  # an empty place in the last row
    for ax, (name, picture) in zip(axes.flat, panels.items(), strict=False):
        if isinstance(picture, torch.Tensor):
            picture = picture.detach().cpu().numpy()
        picture = np.squeeze(np.asarray(picture))  # (1, 1, H, W) -> (H, W)
        if picture.ndim == 2:
            shown = ax.imshow(picture, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if colorbar:
                fig.colorbar(shown, ax=ax, fraction=0.046)
        else:
            ax.imshow(to_image_array(picture))
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------
# Evaluation figures and tables: models side by side, galleries, the comparison
# ---------------------------------------------------------------------------

def markdown_grid(header: list[str], rows: list[list]) -> str:
    """A Markdown table with one HEADER line and one line per row of cells."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row} has {len(row)} cells, the header {len(header)}")
    lines = ["| " + " | ".join(str(cell) for cell in header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def models_side_by_side(samples: list[dict], probabilities: dict,
                        threshold: float = DEFAULT_THRESHOLD,
                        alpha: float = 1.0, title: str | None = None) -> plt.Figure:
    """One row per sample: input, ground truth, then each model's prediction with its Dice.

    PROBABILITIES maps a model's label to its (N, 1, H, W) probabilities for the N SAMPLES.
    """
    n_cols = 2 + len(probabilities)
    fig, axes = plt.subplots(len(samples), n_cols, figsize=(2.7 * n_cols, 2.9 * len(samples)),
                             squeeze=False, layout="constrained")
    for i, (ax_row, sample) in enumerate(zip(axes, samples, strict=True)):
        ax_row[0].imshow(to_image_array(sample["image"]))
        ax_row[0].set_title(f"Input {sample['name']}", fontsize=9)
        ax_row[1].imshow(overlay_mask(sample["image"], sample["mask"], alpha))
        ax_row[1].set_title("Ground truth", fontsize=9)
        for ax, (name, probs) in zip(ax_row[2:], probabilities.items(), strict=True):
            pred = binarize_probabilities(squeeze_mask(probs[i]), threshold)
            ax.imshow(overlay_mask(sample["image"], pred, alpha))
            ax.set_title(f"{name}\nDice {mask_dice(pred, sample['mask']):.3f}", fontsize=9)
        for ax in ax_row:
            ax.axis("off")
    fig.suptitle(title or f"Predicted masks (probability > {threshold:.2f}) filled black")
    return fig


def prediction_gallery(items: list[dict], alpha: float = 1.0,
                       title: str | None = None) -> plt.Figure:
    """A column per item of `worst_predictions`: input, ground truth, prediction, and its Dice."""
    fig, axes = plt.subplots(3, len(items), figsize=(2.6 * len(items) + 0.8, 8.4),
                             squeeze=False, layout="constrained")
    for col, item in enumerate(items):
        pictures = (to_image_array(item["image"]), overlay_mask(item["image"], item["mask"], alpha),
                    overlay_mask(item["image"], item["prediction"], alpha))
        for row, picture in enumerate(pictures):
            axes[row, col].imshow(picture, vmin=0.0, vmax=1.0)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[0, col].set_title(f"{item['name']}\nDice {item['dice']:.3f}", fontsize=9)
    for row, name in enumerate(("Input", "Ground truth", "Prediction")):
        axes[row, 0].set_ylabel(name)
    fig.suptitle(title or "Lowest Dice first (masks filled black)")
    return fig


def plot_scores(rows: list[dict], save_path: str | Path | None = None) -> plt.Figure:
    """Bar chart of per-image Dice and IoU on the test split for each configuration.

    Rows with a `<key>_std` (several seeds) get error bars of one standard deviation.
    """
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(9, 2.2 * len(rows)), 4.8), layout="constrained")
    for offset, key, name in ((-0.2, "dice", "Dice"), (0.2, "iou", "IoU")):
        spread = [r.get(f"{key}_std", 0.0) for r in rows]
        bars = ax.bar(x + offset, [r[key] for r in rows], width=0.4, label=name,
                      yerr=spread if any(spread) else None, capsize=4)
        ax.bar_label(bars, fmt="%.3f", fontsize=9, label_type="center", color="white",
                     fontweight="bold")  # inside the bar: clear of the error bar's cap
    ax.set_xticks(x, [r["label"].replace(" + ", "\n+ ") for r in rows])
    protocol = describe_protocols([r["protocol"] for r in rows if "protocol" in r])
    seeds = max(r.get("seeds", 1) for r in rows)
    spread_note = f", bars: ± 1 std over {seeds} seeds" if seeds > 1 else ""
    ax.set(title=f"Test scores of {len(rows)} configurations{spread_note}"
           + (f"\n{protocol}" if protocol else ""),
           ylabel="score (per-image mean)", ylim=(0, 1.05))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not on them
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def plot_curves(rows: list[dict], save_path: str | Path | None = None) -> plt.Figure:
    """The validation loss and Dice of each configuration's (first) run side by side."""
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    for r in rows:
        epochs = range(1, len(r["history"]["valid_loss"]) + 1)
        ax_loss.plot(epochs, r["history"]["valid_loss"], "o-", label=r["label"])
        ax_dice.plot(epochs, r["history"]["valid_dice"], "o-", label=r["label"])
    # A log scale keeps one early spike (common while BatchNorm statistics settle) from
    # flattening every other curve.
    ax_loss.set(title="Validation loss", xlabel="epoch", ylabel="validation loss (log scale)",
                yscale="log")
    label_log_axis(ax_loss)
    ax_dice.set(title="Validation Dice", xlabel="epoch", ylabel="Dice", ylim=(0, 1))
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def label_log_axis(ax: plt.Axes, least: int = 4) -> None:
    """Label ax's log-scale y axis in plain numbers (0.3, not 3 x 10^-1), at LEAST ticks.

    1-2-5 per decade when that gives LEAST labels in the axis's range, else 1 to 9.
    """
    low, high = ax.get_ylim()
    for subs in ((1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0, 7.0), tuple(np.arange(1.0, 10.0))):
        locator = LogLocator(subs=subs, numticks=40)
        if sum(low <= tick <= high for tick in locator.tick_values(low, high)) >= least:
            break
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_lr_finder(result: dict, save_path: str | Path | None = None) -> plt.Figure:
    """The learning-rate range test: smoothed loss against rate, the suggested rate marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["rates"], result["losses"], color="tab:blue")
    ax.axvline(result["suggested"], color="tab:red", linestyle="--",
               label=f"suggested rate {result['suggested']:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("Learning-rate range test")
    ax.legend()
    fig.tight_layout()
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def save_lr_finder(result: dict, path: str | Path) -> Path:
    """Save the range test's figure to PATH and close it; returns PATH."""
    fig = plot_lr_finder(result, path)
    plt.close(fig)
    return Path(path)


def show_class_predictions(images, trimaps, class_logits, title: str | None = None
                           ) -> plt.Figure:
    """Rows of image, true trimap and predicted classes (argmax of (N, 3, H, W) logits)."""
    cmap = ListedColormap(TRIMAP_COLOURS)
    norm = BoundaryNorm([0.5, 1.5, 2.5, 3.5], cmap.N)
    predicted = class_logits.argmax(dim=1).cpu().numpy() + 1  # classes 0-2 -> trimap values
    fig, axes = plt.subplots(len(images), 3, figsize=(10, 3.4 * len(images)), squeeze=False,
                             layout="constrained")
    for row, (image, trimap, classes) in enumerate(zip(images, trimaps, predicted,
                                                       strict=True)):
        axes[row, 0].imshow(to_image_array(image))
        axes[row, 1].imshow(squeeze_mask(trimap), cmap=cmap, norm=norm, interpolation="nearest")
        shown = axes[row, 2].imshow(classes, cmap=cmap, norm=norm, interpolation="nearest")
        for ax, name in zip(axes[row], ("Image", "True trimap", "Predicted classes"),
                            strict=True):
            ax.set_title(name)
            ax.axis("off")
    bar = fig.colorbar(shown, ax=axes[:, 2], ticks=[1, 2, 3], fraction=0.046)
    bar.ax.set_yticklabels(["pet", "background", "boundary"])
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------
# Attention: where a transformer's query pixel looks (SegFormer's attention_map)
# ---------------------------------------------------------------------------

def deepest_pixel(region) -> tuple[int, int]:
    """(y, x) of a pixel deep inside REGION ((H, W) or (1, H, W), true inside): far from its
    edge and from the image's frame, where a query surely belongs to it and a marker shows.
    The region is eroded (3x3, outside the image counts as outside the region) until one
    more erosion would empty it; of what is left, the pixel nearest its centre. A ValueError
    for an empty region."""
    area = torch.from_numpy(to_mask_array(region)).float()[None, None]  # (1, 1, H, W)
    if not area.any():
        raise ValueError("the region is empty: it has no pixel to pick")
    while True:  # a 3x3 minimum: 1 - max(1 - x), padded with 1 - 0: the frame erodes too
        eroded = 1 - torch.nn.functional.max_pool2d(
            torch.nn.functional.pad(1 - area, (1, 1, 1, 1), value=1.0), 3, stride=1)
        if not eroded.any():
            break
        area = eroded
    points = torch.nonzero(area[0, 0]).float()  # (K, 2): the deepest pixels
    nearest = (points - points.mean(dim=0)).pow(2).sum(dim=1).argmin()
    y, x = points[nearest].long().tolist()
    return y, x


def show_attention(image, queries: dict[str, tuple[tuple[int, int], torch.Tensor]],
                   title: str | None = None) -> plt.Figure:
    """One row per query of QUERIES (its label: ((y, x), attention (heads, h, w))): the image
    with the query pixel marked, and the attention from it, averaged over the heads, laid over
    the image, one square per key token (h x w over the whole image)."""
    picture = to_image_array(image)
    height, width = picture.shape[:2]
    fig, axes = plt.subplots(len(queries), 2, figsize=(8.6, 4.0 * len(queries)),
                             squeeze=False, layout="constrained")
    for row, (name, ((y, x), attention)) in enumerate(queries.items()):
        weights = torch.as_tensor(attention, dtype=torch.float32).detach().cpu()
        heads, rows, cols = weights.shape
        mean = weights.mean(dim=0).numpy()  # (h, w): the keys' weights, summing to 1
        photo, heat = axes[row]
        photo.imshow(picture)
        photo.set_title(f"{name}: the query pixel (y {y}, x {x})")
        heat.imshow(picture)
        shown = heat.imshow(mean, cmap="magma", alpha=0.7, interpolation="nearest",
                            extent=(-0.5, width - 0.5, height - 0.5, -0.5), vmin=0.0)
        heat.set_title(f"its attention over {rows} × {cols} key tokens\n"
                       f"(mean of {heads} head{'s' if heads > 1 else ''})")
        for ax in (photo, heat):
            ax.plot(x, y, marker="P", markersize=13, color="cyan", markeredgecolor="black")
            ax.axis("off")
        bar = fig.colorbar(shown, ax=heat, fraction=0.046)
        bar.set_label(f"attention weight (all equal: {1 / (rows * cols):.3f})")
    if title:
        fig.suptitle(title)
    return fig
