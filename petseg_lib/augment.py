"""Data augmentation: the random changes that turn one training photo into many.

The report's set, applied jointly to an image and its trimap so both get the same geometry:
crop-and-zoom, a horizontal flip, greyscale and brightness. The trimap travels as a
`tv_tensors.Mask`, so it is resized with nearest neighbours and keeps its values {1, 2, 3};
only the image is recoloured. `model_sample` then turns the pair into what a model is fed.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .masks import BACKGROUND


def augmentations(image_size: int) -> v2.Compose:
    """The training augmentations, applied jointly to an Image and its Mask."""
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(0.5, 1.0), antialias=True),  # crop and zoom
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomGrayscale(p=0.2),
        v2.ColorJitter(brightness=0.3),  # multiplies brightness by a factor in [0.7, 1.3]
    ])


def to_tv_tensors(sample: dict) -> tuple[tv_tensors.Image, tv_tensors.Mask | None]:
    """An OxfordPetDataset sample's image (3, H, W) and trimap (1, H, W) as tv_tensors.

    The trimap travels with the image as a Mask, so transforms give both the same geometry
    and nearest-neighbour resizing keeps its values in {1, 2, 3}.
    """
    image = tv_tensors.Image(torch.from_numpy(sample["image"]).permute(2, 0, 1))
    if sample["trimap"] is None:
        return image, None
    return image, tv_tensors.Mask(torch.from_numpy(sample["trimap"])[None])


def model_sample(image: tv_tensors.Image, trimap: tv_tensors.Mask | None, name: str) -> dict:
    """The dict a model is fed: float image in [0, 1], binary mask and trimap (or None)."""
    image = v2.functional.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor)
    if trimap is None:
        return {"image": image, "mask": None, "trimap": None, "name": name}
    return {
        "image": image,  # (3, S, S) float32 in [0, 1]
        "mask": (trimap != BACKGROUND).float().as_subclass(torch.Tensor),  # (1, S, S)
        "trimap": trimap.as_subclass(torch.Tensor),  # (1, S, S) uint8
        "name": name,
    }


def augmentation_steps(image_size: int) -> dict:
    """Each training augmentation on its own, by name; the random flip and greyscale always act."""
    crop, flip, greyscale, brightness = augmentations(image_size).transforms
    flip.p = 1.0  # in training: p = 0.5
    greyscale.p = 1.0  # in training: p = 0.2
    return {"crop and zoom": crop, "horizontal flip": flip, "greyscale": greyscale,
            "brightness": brightness}


def augment_sample(sample: dict, transform=None, image_size: int = 256) -> dict:
    """Apply TRANSFORM jointly to an original-size sample's image and trimap, then resize.

    SAMPLE comes from OxfordPetDataset; the result is shaped like a SimpleOxfordPetDataset sample.
    """
    image, trimap = to_tv_tensors(sample)  # (3, H, W), (1, H, W)
    if transform is not None:
        image, trimap = transform(image, trimap)  # same geometry for both
    image, trimap = v2.Resize((image_size, image_size), antialias=True)(image, trimap)
    return model_sample(image, trimap, sample["name"])
