"""Tests for DeepLabv3+ on the ResNet34 encoder: output stride 16, ASPP, the v3+ decoder."""

import pytest
import torch
import torchvision

from petseg_lib.models import build_model, pretrained_kwargs
from petseg_lib.models.deeplabv3plus import DeepLabV3Plus_ResNet34, dilate_layer4
from petseg_lib.models.resnet34_unet import ResNet34Encoder
from petseg_lib.models.summary import layer_shapes


def build(**kwargs) -> DeepLabV3Plus_ResNet34:
    """DeepLabv3+ with a fixed seed."""
    torch.manual_seed(0)
    return DeepLabV3Plus_ResNet34(**kwargs)


@pytest.mark.parametrize("size", [(64, 64), (65, 47)])
def test_aspp_at_a_16th_and_the_decoder_at_a_quarter(size):
    model = build(base_channels=16)
    names = ["encoder.layer1", "encoder.layer4", "aspp", "low_level", "decoder", "classifier"]
    shapes = dict(layer_shapes(model, torch.rand(2, 3, *size), names))
    quarter = tuple((s - 1) // 4 + 1 for s in size)  # the stem's two stride-2 steps round up
    sixteenth = tuple((s - 1) // 16 + 1 for s in size)
    assert shapes["encoder.layer1"] == (2, 16, *quarter)
    assert shapes["encoder.layer4"] == (2, 128, *sixteenth)  # not a 32nd: dilated
    assert shapes["aspp"] == (2, 64, *sixteenth)
    assert shapes["low_level"] == (2, 12, *quarter)  # 48 at ResNet34's width
    assert shapes["decoder"] == (2, 64, *quarter)
    assert shapes["classifier"] == (2, 1, *quarter)
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 3, *size)).shape == (2, 1, *size)


def test_the_dilated_layer4_sees_what_the_strided_one_saw():
    # Without the stride, layer4 computes every position; every other one is the old output.
    torch.manual_seed(0)
    strided = ResNet34Encoder(width=16).eval()
    dilated = ResNet34Encoder(width=16).eval()
    dilated.load_state_dict(strided.state_dict())
    dilate_layer4(dilated)
    x = torch.rand(2, 3, 128, 96)
    with torch.no_grad():
        old, new = strided(x)[-1], dilated(x)[-1]
    assert old.shape[-2:] == (4, 3) and new.shape[-2:] == (8, 6)
    torch.testing.assert_close(new[..., ::2, ::2], old, rtol=1e-4, atol=1e-5)


def test_the_head_is_torchvisions_aspp_and_the_encoder_resnet34s():
    model = build()
    assert isinstance(model.aspp, torchvision.models.segmentation.deeplabv3.ASPP)
    assert [conv[0].dilation for conv in model.aspp.convs[1:4]] == [(6, 6), (12, 12), (18, 18)]
    # Every encoder weight has the shape of torchvision's ResNet34: ImageNet weights load.
    reference = {k: v.shape for k, v in torchvision.models.resnet34().state_dict().items()
                 if not k.startswith("fc.")}
    assert {k: v.shape for k, v in model.encoder.state_dict().items()} == reference


def test_config_round_trip_and_gradients():
    model = build_model("deeplabv3plus_resnet34", base_channels=8, normalize_input=True)
    assert model.config == {"in_channels": 3, "out_channels": 1, "normalize_input": True,
                            "base_channels": 8}
    model.train()(torch.rand(2, 3, 64, 64)).mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    rebuilt = build_model("deeplabv3plus_resnet34", **model.config).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x))


@pytest.mark.parametrize("kwargs", [{"base_channels": 6}, {"pretrained_encoder": True,
                                                            "base_channels": 16}])
def test_impossible_widths_are_refused(kwargs):
    with pytest.raises(ValueError, match="base_channels"):
        DeepLabV3Plus_ResNet34(**kwargs)


def test_pretrained_is_the_encoders_setting_and_offline_it_says_so(empty_hub):
    kwargs = pretrained_kwargs("deeplabv3plus_resnet34")
    assert kwargs == {"pretrained_encoder": True}
    with pytest.raises(RuntimeError, match="ImageNet weights for the ResNet34 encoder"):
        build_model("deeplabv3plus_resnet34", **kwargs)
