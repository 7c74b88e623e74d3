"""The segmentation models of the course, and helpers to build them by name."""

from torch import nn

from .baselines import DeepLabV3_ResNet50, LRASPP_MobileNetV3
from .resnet34_unet import ResNet34_UNet
from .unet import UNet

__all__ = ["MODELS", "DeepLabV3_ResNet50", "LRASPP_MobileNetV3", "ResNet34_UNet", "UNet",
           "build_model"]

# The course's two models, then two torchvision baselines (the report's discussion).
MODELS = {"unet": UNet, "resnet34_unet": ResNet34_UNet,
          "lraspp_mobilenet_v3": LRASPP_MobileNetV3, "deeplabv3_resnet50": DeepLabV3_ResNet50}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the model called NAME (a key of MODELS) with the given kwargs."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
