"""The segmentation models of the course, and helpers to build them by name."""

import inspect

from torch import nn

from .baselines import DeepLabV3_ResNet50, LRASPP_MobileNetV3
from .deeplabv3plus import DeepLabV3Plus_ResNet34
from .resnet34_unet import ResNet34_UNet, imagenet_weights_problem
from .segformer import SegFormer_B0
from .shufflenet import LRASPP_ShuffleNetV2
from .unet import UNet

__all__ = ["MODELS", "DeepLabV3Plus_ResNet34", "DeepLabV3_ResNet50", "LRASPP_MobileNetV3",
           "LRASPP_ShuffleNetV2", "ResNet34_UNet", "SegFormer_B0", "UNet",
           "build_model", "imagenet_weights_problem", "one_image_batch_problem",
           "pretrained_kwargs", "settings_problem"]

# The course's two models, two torchvision baselines (the report's discussion), then the
# report's future directions: a transformer, DeepLabv3+ and the lightest backbone.
MODELS = {"unet": UNet, "resnet34_unet": ResNet34_UNet,
          "lraspp_mobilenet_v3": LRASPP_MobileNetV3, "deeplabv3_resnet50": DeepLabV3_ResNet50,
          "segformer_b0": SegFormer_B0, "deeplabv3plus_resnet34": DeepLabV3Plus_ResNet34,
          "lraspp_shufflenet_v2": LRASPP_ShuffleNetV2}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the model called NAME (a key of MODELS) with the given kwargs."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; valid names: {', '.join(MODELS)}")
    if problem := settings_problem(name, kwargs):
        raise ValueError(problem)
    return MODELS[name](**kwargs)


def settings_problem(name: str, kwargs: dict) -> str | None:
    """Why model NAME cannot take the settings KWARGS (e.g. a width), or None when it can."""
    accepted = inspect.signature(MODELS[name]).parameters
    unknown = [key for key in kwargs if key not in accepted]
    if not unknown:
        return None
    return (f"{name} has no setting {', '.join(unknown)} (its settings: "
            f"{', '.join(accepted)})")


# The setting that starts a model's encoder from ImageNet weights (torchvision's files).
PRETRAINED_SETTING = {"resnet34_unet": "pretrained_encoder",
                      "lraspp_mobilenet_v3": "pretrained_backbone",
                      "deeplabv3_resnet50": "pretrained_backbone",
                      "deeplabv3plus_resnet34": "pretrained_encoder",
                      "lraspp_shufflenet_v2": "pretrained_backbone"}


def pretrained_kwargs(name: str) -> dict:
    """The kwargs that start model NAME from ImageNet weights, or a ValueError if it has none."""
    if name not in PRETRAINED_SETTING:
        raise ValueError(f"{name} has no ImageNet weights to start from (it is trained from "
                         f"scratch); these have: {', '.join(PRETRAINED_SETTING)}")
    return {PRETRAINED_SETTING[name]: True}


def one_image_batch_problem(name: str, image_size: int) -> str | None:
    """Why model NAME cannot train on a batch of one IMAGE_SIZE image, or None when it can.

    In training, BatchNorm normalises each channel over the batch and the map, so it needs
    more than one value per channel.
    """
    if name in ("deeplabv3_resnet50", "deeplabv3plus_resnet34"):
        return "its ASPP head pools each image to 1 x 1 before a BatchNorm"
    if name == "resnet34_unet" and image_size <= 32:
        return f"its layer4 map is 1 x 1 for a {image_size} px image"
    if name == "lraspp_shufflenet_v2" and image_size <= 32:
        return f"its stage4 map is 1 x 1 for a {image_size} px image"
    return None
