"""TrainConfig and the course's quick and full settings."""

import pytest
import torch

from petseg_lib.models import MODELS, build_model, one_image_batch_problem
from petseg_lib.training.config import TrainConfig
from petseg_lib.training.course import course_config


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
    assert quick.epoch_samples is not None  # a fixed budget, whatever the dataset's size
    unet = course_config("unet", epochs=3)
    assert (unet.image_size, unet.epochs, unet.model_kwargs) == (64, 3, {"base_channels": 8})
    baseline = course_config("lraspp_mobilenet_v3", augment=True)
    assert baseline.image_size == 64 and baseline.model_kwargs == {}
    monkeypatch.setenv("PETSEG_QUICK", "0")
    full = course_config("unet")
    assert (full.run_name, full.image_size, full.epochs) == ("unet", 256, 20)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [32, 64])
def test_a_batch_of_one_is_refused_exactly_where_batchnorm_cannot_train(name, size):
    torch.manual_seed(0)
    model = build_model(name).train()
    try:
        model(torch.rand(1, 3, size, size)).mean().backward()
        trains = True
    except ValueError as err:  # BatchNorm: "Expected more than 1 value per channel ..."
        assert "more than 1 value per channel" in str(err)
        trains = False
    problem = one_image_batch_problem(name, size)
    assert (problem is None) == trains, problem
    if problem:
        with pytest.raises(ValueError, match=f"batch_size 1 cannot train {name} "):
            TrainConfig(model=name, image_size=size, batch_size=1)
    else:
        assert TrainConfig(model=name, image_size=size, batch_size=1).batch_size == 1


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x\\y", "with space", 7])
def test_a_run_name_that_is_not_a_plain_file_name_is_refused(name):
    with pytest.raises(ValueError, match="run_name names the run's files"):
        TrainConfig(run_name=name)


def test_plain_run_names_are_kept():
    for name in ("unet", "unet_aug_quick", "s64", "my-run.v2"):
        assert TrainConfig(run_name=name).run_name == name
