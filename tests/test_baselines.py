"""Tests for the torchvision baselines: shapes, gradients, config, backbone weights, counts."""

import os

import pytest
import torch
import torchvision
from torchvision.models import MobileNet_V3_Large_Weights

from petseg_lib.models import pretrained_kwargs
from petseg_lib.models.baselines import DeepLabV3_ResNet50, LRASPP_MobileNetV3
from petseg_lib.models.shufflenet import LRASPP_ShuffleNetV2
from petseg_lib.models.summary import count_parameters

from .test_models import assert_eval_mode_uses_running_statistics

# The names they are meant to have in petseg_lib.models.MODELS.
BASELINES = {"lraspp_mobilenet_v3": LRASPP_MobileNetV3, "deeplabv3_resnet50": DeepLabV3_ResNet50,
             "lraspp_shufflenet_v2": LRASPP_ShuffleNetV2}
NAMES = list(BASELINES)


def build(name: str, **kwargs) -> torch.nn.Module:
    """Build a baseline by name with a fixed seed."""
    torch.manual_seed(0)
    return BASELINES[name](**kwargs)


# ---------------------------------------------------------------- outputs and gradients


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (65, 47)])
@pytest.mark.parametrize("name", NAMES)
def test_output_is_a_logits_tensor_of_the_input_size(name, size):
    model = build(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert isinstance(out, torch.Tensor)  # not torchvision's {"out": ...} dict
    assert out.shape == (2, 1, *size)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_finite_gradient(name):
    model = build(name).train()
    x = torch.rand(2, 3, 64, 64)
    target = (torch.rand(2, 1, 64, 64) > 0.5).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), target)
    loss.backward()
    for param_name, p in model.named_parameters():
        assert p.grad is not None, param_name
        assert torch.isfinite(p.grad).all(), param_name


@pytest.mark.parametrize("name", NAMES)
def test_batchnorm_statistics_follow_the_batches_within_tens_of_steps(name):
    model = build(name).train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.1 for m in norms)  # MobileNetV3's own is 0.01
    first, seen = norms[0], []
    first.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0]))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        for _ in range(30):
            model(x)
    batch_mean = seen[-1].mean(dim=(0, 2, 3))  # what evaluation should normalise with
    # After 30 steps the running mean has covered 1 - 0.9^30 = 96 % of the way (26 % at 0.01).
    torch.testing.assert_close(first.running_mean, 0.958 * batch_mean, rtol=0.02, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_eval_mode_does_not_mix_the_images_of_a_batch(name):
    assert_eval_mode_uses_running_statistics(build(name))


def test_several_output_channels():
    model = build("lraspp_mobilenet_v3", out_channels=3).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_no_auxiliary_head():
    assert build("deeplabv3_resnet50").net.aux_classifier is None


# ---------------------------------------------------------------- parameter counts


def test_parameter_counts():
    # The wrappers add no parameters (mean and std are buffers) to torchvision's models.
    segmentation = torchvision.models.segmentation
    plain = {"lraspp_mobilenet_v3": segmentation.lraspp_mobilenet_v3_large(
                 num_classes=1, weights=None, weights_backbone=None),
             "deeplabv3_resnet50": segmentation.deeplabv3_resnet50(
                 num_classes=1, weights=None, weights_backbone=None, aux_loss=False)}
    for name in plain:
        assert count_parameters(build(name)) == count_parameters(plain[name]), name


def test_shufflenet_lraspp_is_the_classifier_without_fc_and_an_lraspp_head():
    classifier = torchvision.models.shufflenet_v2_x1_0(weights=None)
    head = torchvision.models.segmentation.lraspp.LRASPPHead(116, 1024, 1, 128)
    model = build("lraspp_shufflenet_v2")
    assert pretrained_kwargs("lraspp_shufflenet_v2") == {"pretrained_backbone": True}
    backbone = {k: v.shape for k, v in classifier.state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in model.net.backbone.state_dict().items()} == backbone
    assert count_parameters(model) == (count_parameters(classifier) - 1024 * 1000 - 1000
                                       + count_parameters(head))
    with torch.no_grad():
        features = model.net.backbone.eval()(torch.rand(1, 3, 64, 96))
    assert features["low"].shape == (1, 116, 8, 12)  # stage2: H/8
    assert features["high"].shape == (1, 1024, 2, 3)  # conv5: H/32


# ---------------------------------------------------------------- config and normalisation


@pytest.mark.parametrize("name", NAMES)
def test_default_config(name):
    model = build(name)
    assert model.config == {"out_channels": 1, "normalize_input": False}
    assert not model.pretrained_backbone and not model.normalize_input


@pytest.mark.parametrize("kwargs", [{}, {"out_channels": 2, "normalize_input": True}])
@pytest.mark.parametrize("name", NAMES)
def test_config_round_trip(name, kwargs):
    model = build(name, **kwargs).eval()
    rebuilt = BASELINES[name](**model.config).eval()
    assert rebuilt.config == model.config
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_normalize_input_applies_imagenet_mean_std():
    model = build("lraspp_mobilenet_v3", normalize_input=True).eval()
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net((x - mean) / std)["out"])


# ---------------------------------------------------------------- ImageNet backbone weights


@pytest.mark.parametrize("name", NAMES)
def test_the_default_build_downloads_nothing(name, empty_hub):
    # torchvision's builders download the ImageNet backbone unless told not to.
    build(name)
    assert not empty_hub.exists()


@pytest.mark.parametrize(
    "name, backbone, weights_file",
    [
        ("lraspp_mobilenet_v3", "MobileNetV3-Large", "mobilenet_v3_large-8738ca79.pth"),
        ("deeplabv3_resnet50", "ResNet50", "resnet50-0676ba61.pth"),
        ("lraspp_shufflenet_v2", "ShuffleNetV2", "shufflenetv2_x1-5666bf0f80.pth"),
    ],
)
def test_pretrained_backbone_without_network_raises_clear_error(
    name, backbone, weights_file, empty_hub
):
    with pytest.raises(RuntimeError) as info:
        build(name, pretrained_backbone=True)
    message = str(info.value)
    assert f"Could not download the ImageNet weights for the {backbone} backbone" in message
    assert "network blocked by the test" in message
    assert f"cache is at {empty_hub}" in message
    assert os.path.join(str(empty_hub), "checkpoints", weights_file) in message
    assert "pretrained_backbone=False" in message
    assert isinstance(info.value.__cause__, OSError)


def test_pretrained_backbone_loads_weights_from_hub_cache(empty_hub):
    # A random MobileNetV3-Large saved where torchvision looks for the ImageNet weights.
    torch.manual_seed(1)
    classifier = torchvision.models.mobilenet_v3_large(weights=None)
    weights_file = os.path.basename(MobileNet_V3_Large_Weights.IMAGENET1K_V1.url)
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(classifier.state_dict(), empty_hub / "checkpoints" / weights_file)

    model = build("lraspp_mobilenet_v3", pretrained_backbone=True)
    assert model.pretrained_backbone and model.normalize_input
    saved = classifier.state_dict()
    for key, value in model.net.backbone.state_dict().items():  # "0.0.weight", ...
        assert torch.equal(value, saved["features." + key]), key

    # The config rebuilds the model without downloading, with the same normalisation.
    assert model.config == {"out_channels": 1, "normalize_input": True}
    rebuilt = LRASPP_MobileNetV3(**model.config)
    assert rebuilt.normalize_input and not rebuilt.pretrained_backbone
    rebuilt.load_state_dict(model.state_dict(), strict=True)
