"""Prediction: from images to logits, at the training size or back at a photo's own size.

A model returns logits (N, 1, H, W): any real number per pixel, pet where it is above 0.
`predict_logits` can add mirror test-time augmentation; `full_size_logits` runs one image of
any size at the model's training size and resizes the logits (not the mask) back, so the
mask edge stays smooth at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.classes import pet_logits
from ..speed import amp_dtype
from ..threads import forward_threads
from .threshold import binarize  # noqa: F401  (the one rule of threshold.py, named here too)


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 images in 0-255 to float in [0, 1]; leave float images as they are."""
    if images.dtype == torch.uint8:
        return images.float() / 255
    return images.float()


def predict_logits(model: nn.Module, images: torch.Tensor, tta: bool = False,
                   amp: bool = False, as_pet: bool = True) -> torch.Tensor:
    """MODEL's float32 logits (N, 1, H, W); TTA averages the image's and its mirror's logits.

    A three-class model's logits become pet against background (classes.pet_logits), unless
    AS_PET is False: then they are its own (N, 3, H, W).

    amp runs the model under autocast (bfloat16 on a CPU, float16 on CUDA), as training does.
    On a CPU the pass gets threads sized to its work (threads.forward_threads).
    """
    with forward_threads(model, images), \
            torch.autocast(images.device.type, dtype=amp_dtype(images.device), enabled=amp):
        logits = model(images).float()  # (N, C, H, W): C = 1, or 3 classes
        if tta:  # test-time augmentation: a pet seen in a mirror is still a pet
            mirrored = model(torch.flip(images, dims=[-1])).float()
            logits = (logits + torch.flip(mirrored, dims=[-1])) / 2
    return pet_logits(logits) if as_pet else logits


def model_device(model: nn.Module) -> torch.device:
    """Where MODEL's weights are; the CPU for a model without any."""
    return next(model.parameters(), torch.empty(0)).device


def full_size_logits(model: nn.Module, small: torch.Tensor, size: tuple[int, int],
                     tta: bool = False, amp: bool = False) -> torch.Tensor:
    """Logits (H, W) float32, on the CPU, of an image the model sees as SMALL (3, S, S) uint8.

    SMALL is the image squeezed to the model's input size; its logits (1, 1, S, S) are
    enlarged back to SIZE = (H, W), the image's own size, with bilinear interpolation, once.
    """
    device = model_device(model)
    model.eval()
    with torch.no_grad():
        logits = predict_logits(model, to_float_images(small[None]).to(device), tta, amp)
        full = F.interpolate(logits.cpu(), size=tuple(size), mode="bilinear",
                             align_corners=False)  # (1, 1, H, W) float32
    return full[0, 0]  # (H, W)


def probabilities_at_model_size(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Pet probabilities (N, 1, H, W) of float IMAGES (N, 3, H, W), computed at the model's size.

    Each model sees the images at the size it was trained at (its `image_size`); its logits
    are resized back to (H, W) before the sigmoid. So models trained at different sizes can be
    compared on the same images. The result is on the images' device, whatever the model's.
    """
    size, side = images.shape[-2:], input_size(model)
    device = model_device(model)
    model.eval()
    with torch.no_grad():
        seen = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True,
                             align_corners=False)  # (N, 3, S, S): the model's own size
        logits = predict_logits(model, seen.to(device)).to(images.device)
        logits = F.interpolate(logits, size=tuple(size), mode="bilinear",
                               align_corners=False)  # (N, 1, H, W)
    return torch.sigmoid(logits)


def input_size(model: nn.Module, image_size: int | None = None) -> int:
    """The side of the square a model sees: IMAGE_SIZE, else its training size, else 256."""
    return image_size or getattr(model, "image_size", None) or 256
