"""Prediction: from images to logits, at the training size or back at a photo's own size.

A model returns logits (N, 1, H, W): any real number per pixel, pet where it is above 0.
`predict_logits` can add mirror test-time augmentation; `segment_logits` runs one image of
any size at the model's training size and resizes the logits (not the mask) back, so the
mask edge stays smooth at full resolution.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .speed import amp_dtype


def binarize(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Turn logits into a bool mask: sigmoid(logits) > threshold."""
    return torch.sigmoid(logits) > threshold


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 images in 0-255 to float in [0, 1]; leave float images as they are."""
    if images.dtype == torch.uint8:
        return images.float() / 255
    return images.float()


def predict_logits(model: nn.Module, images: torch.Tensor, tta: bool = False,
                   amp: bool = False) -> torch.Tensor:
    """MODEL's float32 logits (N, 1, H, W); TTA averages the image's and its mirror's logits.

    amp runs the model under autocast (bfloat16 on a CPU, float16 on CUDA), as training does.
    """
    with torch.autocast(images.device.type, dtype=amp_dtype(images.device), enabled=amp):
        logits = model(images).float()  # (N, 1, H, W)
        if tta:  # test-time augmentation: a pet seen in a mirror is still a pet
            mirrored = model(torch.flip(images, dims=[-1])).float()
            logits = (logits + torch.flip(mirrored, dims=[-1])) / 2
    return logits


def segment_logits(model: nn.Module, image, image_size: int | None = None,
                   tta: bool = False, amp: bool = False) -> torch.Tensor:
    """Logits (H, W) float32 of one image (H, W, 3) uint8 or (3, H, W) float, at its own size.

    The model sees the image resized to IMAGE_SIZE (default: the size it was trained at).
    """
    image = torch.as_tensor(np.asarray(image))
    if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    height, width = image.shape[-2:]
    size = image_size or getattr(model, "image_size", None) or 256
    device = next(model.parameters()).device
    small = F.interpolate(to_float_images(image)[None], size=(size, size), mode="bilinear",
                          antialias=True, align_corners=False)  # (1, 3, S, S)
    with torch.no_grad():
        logits = predict_logits(model.eval(), small.to(device), tta, amp).cpu()  # (1, 1, S, S)
    return F.interpolate(logits, size=(height, width), mode="bilinear",
                         align_corners=False)[0, 0]  # (H, W)
