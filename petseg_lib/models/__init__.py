"""The segmentation models of the course, and helpers to build them by name."""

from torch import nn

from .resnet34_unet import ResNet34_UNet
from .unet import UNet

__all__ = ["MODELS", "ResNet34_UNet", "UNet", "build_model"]

MODELS = {"unet": UNet, "resnet34_unet": ResNet34_UNet}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the model called `name` ("unet" or "resnet34_unet") with the given kwargs."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
