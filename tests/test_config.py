"""TrainConfig and the course's quick and full settings."""

import pytest

from petseg_lib.config import TrainConfig, course_config


def test_default_run_names_follow_model_and_augmentation():
    assert TrainConfig().run_name == "unet"
    assert TrainConfig(model="resnet34_unet", augment=True).run_name == "resnet34_unet_aug"
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig(model="vgg")


def test_course_config_follows_petseg_quick(monkeypatch):
    monkeypatch.setenv("PETSEG_QUICK", "1")
    quick = course_config("resnet34_unet", augment=True)
    assert quick.run_name == "resnet34_unet_aug_quick" and quick.image_size == 128
    assert quick.checkpoint_dir.endswith("checkpoints")
    assert quick.model_kwargs == {"base_channels": 16}  # a narrow ResNet34 layout
    plain = course_config("resnet34_unet")
    assert plain.epochs > quick.epochs  # an augmented epoch sees every image twice
    unet = course_config("unet", epochs=3)
    assert (unet.image_size, unet.epochs, unet.model_kwargs) == (64, 3, {"base_channels": 8})
    baseline = course_config("lraspp_mobilenet_v3", augment=True)
    assert baseline.image_size == 64 and baseline.model_kwargs == {}
    monkeypatch.setenv("PETSEG_QUICK", "0")
    full = course_config("unet")
    assert (full.run_name, full.image_size, full.epochs) == ("unet", 256, 20)
