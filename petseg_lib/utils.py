"""Figures and widget callbacks: masks over images, training curves, example grids.

Every function here takes plain numpy arrays or torch tensors, so notebooks, the command
lines and the tests draw the same pictures.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch


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


def visualize_comparison(image, gt_mask, pred_mask, save_path: str | Path | None = None,
                         alpha: float = 1.0, title: str | None = None) -> plt.Figure:
    """Input, ground truth and prediction side by side (mask areas filled black)."""
    panels = [("Input image", to_image_array(image))]
    if gt_mask is not None:
        panels.append(("Ground-truth mask", overlay_mask(image, gt_mask, alpha)))
    panels.append(("Predicted mask", overlay_mask(image, pred_mask, alpha)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3))
    for ax, (name, picture) in zip(axes, panels, strict=True):
        ax.imshow(picture, vmin=0.0, vmax=1.0)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if save_path is not None:
        _save(fig, save_path)
    return fig


def plot_training_metrics(history: dict, save_path: str | Path | None = None,
                          title: str | None = None) -> plt.Figure:
    """Train/valid loss and train/valid Dice per epoch as two line charts."""
    epochs = range(1, len(history["train_loss"]) + 1)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epochs, history["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, history["valid_loss"], "o-", label="valid")
    ax_loss.set(title="BCE loss", xlabel="epoch", ylabel="loss")
    ax_dice.plot(epochs, history["train_dice"], "o-", label="train")
    ax_dice.plot(epochs, history["valid_dice"], "o-", label="valid")
    ax_dice.set(title="Dice score", xlabel="epoch", ylabel="Dice", ylim=(0.0, 1.0))
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if save_path is not None:
        _save(fig, save_path)
    return fig


def show_samples(dataset, n: int = 8, cols: int = 4, save_path: str | Path | None = None,
                 alpha: float = 0.5, title: str | None = None) -> plt.Figure:
    """A grid of the first N samples of DATASET with their masks tinted in red."""
    n = min(n, len(dataset))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        sample = dataset[i]
        picture = to_image_array(sample["image"])
        if sample["mask"] is not None:
            picture = overlay_mask(picture, sample["mask"], alpha, color=(1.0, 0.0, 0.0))
        ax.imshow(picture)
        ax.set_title(str(sample.get("name", i)), fontsize=8)
    fig.suptitle(title or f"{n} samples, pet mask tinted red")
    fig.tight_layout()
    if save_path is not None:
        _save(fig, save_path)
    return fig


def _save(fig: plt.Figure, path: str | Path) -> None:
    """Save FIG as a PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
