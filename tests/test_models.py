"""Tests for the segmentation models: shapes, parameter counts, encoder weights, gradients."""

import os

import pytest
import torch
import torchvision

from petseg_lib.models import MODELS, LRASPP_MobileNetV3, build_model, settings_problem
from petseg_lib.models.resnet34_unet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BasicBlock,
    ResNet34_UNet,
)
from petseg_lib.models.summary import count_parameters, layer_shapes
from petseg_lib.models.unet import UNet

WEIGHTS_FILE = "resnet34-b627a593.pth"


def tv_encoder_state_dict(tv_model: torch.nn.Module) -> dict:
    """torchvision ResNet34 state dict without the fc layer."""
    return {k: v for k, v in tv_model.state_dict().items() if not k.startswith("fc.")}


# ---------------------------------------------------------------- output shapes


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("size", [(64, 64), (65, 47), (32, 40)])
def test_unet_output_shape(bilinear, batch, size):
    torch.manual_seed(0)
    model = UNet(base_channels=8, bilinear=bilinear).eval()
    with torch.no_grad():
        out = model(torch.rand(batch, 3, *size))
    assert out.shape == (batch, 1, *size)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("size", [(64, 64), (65, 47), (32, 40)])
def test_resnet34_unet_output_shape(bilinear, batch, size):
    torch.manual_seed(0)
    model = ResNet34_UNet(bilinear=bilinear).eval()
    with torch.no_grad():
        out = model(torch.rand(batch, 3, *size))
    assert out.shape == (batch, 1, *size)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("size", [(64, 64), (65, 47)])
def test_resnet34_unet_decoder_ends_at_half_resolution(size):
    # As in the design report: the last Up works at the stem's resolution (H/2, rounded up),
    # the 1x1 outc gives logits there, and bilinear interpolation enlarges them to the input.
    torch.manual_seed(0)
    model = ResNet34_UNet(base_channels=16).eval()
    shapes = dict(layer_shapes(model, torch.rand(1, 3, *size), ["up4", "outc"]))
    half = tuple((s + 1) // 2 for s in size)
    assert shapes["up4"] == (1, 8, *half) and shapes["outc"] == (1, 1, *half)
    seen = []
    model.outc.register_forward_hook(lambda module, inputs, output: seen.append(output))
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = model(x)
    expected = torch.nn.functional.interpolate(seen[0], size=size, mode="bilinear",
                                               align_corners=False)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("name", ["unet", "resnet34_unet"])
def test_large_odd_input_and_several_classes(name):
    torch.manual_seed(0)
    kwargs = {"base_channels": 8} if name == "unet" else {}
    model = build_model(name, out_channels=2, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 333, 250))
    assert out.shape == (1, 2, 333, 250)


def test_resnet34_encoder_feature_shapes():
    encoder = ResNet34_UNet().encoder.eval()
    with torch.no_grad():
        features = encoder(torch.rand(2, 3, 64, 96))
    shapes = [tuple(f.shape) for f in features]
    assert shapes == [
        (2, 64, 32, 48),  # stem, H/2
        (2, 64, 16, 24),  # layer1, H/4
        (2, 128, 8, 12),  # layer2, H/8
        (2, 256, 4, 6),  # layer3, H/16
        (2, 512, 2, 3),  # layer4, H/32
    ]


# ---------------------------------------------------------------- parameter counts
#
# UNet with base c, 3 input channels, 1 output channel. A 3x3 conv without bias from a to b
# channels has 9ab weights, a BatchNorm on b channels 2b, so DoubleConv(a, b) = 9ab + 9b^2 + 4b.
#   inc   DoubleConv(3, c)         = 27c + 9c^2 + 4c
#   down1 DoubleConv(c, 2c)        = 18c^2 + 36c^2 + 8c       = 54c^2 + 8c
#   down2 DoubleConv(2c, 4c)       = 72c^2 + 144c^2 + 16c     = 216c^2 + 16c
#   down3 DoubleConv(4c, 8c)       = 288c^2 + 576c^2 + 32c    = 864c^2 + 32c
#   down4 DoubleConv(8c, 16c)      = 1152c^2 + 2304c^2 + 64c  = 3456c^2 + 64c
# Each Up(a, b): a 2x2 transposed conv a -> a/2 (2a^2 weights + a/2 bias) and DoubleConv(a, b):
#   up1 (16c -> 8c)                = 512c^2 + 8c + 1728c^2 + 32c
#   up2 (8c -> 4c)                 = 128c^2 + 4c + 432c^2 + 16c
#   up3 (4c -> 2c)                 = 32c^2 + 2c + 108c^2 + 8c
#   up4 (2c -> c)                  = 8c^2 + c + 27c^2 + 4c
#   outc 1x1 conv c -> 1 with bias = c + 1
# Total: 7574c^2 + 227c + 1, i.e. 31,037,633 for c = 64.
# In bilinear mode each transposed conv (2a^2 + a/2) becomes a 1x1 conv (a^2/2 + a/2), which
# removes 1.5 * (256 + 64 + 16 + 4)c^2 = 510c^2: 7064c^2 + 227c + 1.


def unet_params(c: int, bilinear: bool) -> int:
    """Parameter count of UNet(base_channels=c) from the formula derived above."""
    return (7064 if bilinear else 7574) * c * c + 227 * c + 1


@pytest.mark.parametrize("c", [64, 32, 8])
@pytest.mark.parametrize("bilinear", [False, True])
def test_unet_parameter_count(c, bilinear):
    model = UNet(base_channels=c, bilinear=bilinear)
    assert count_parameters(model) == unet_params(c, bilinear)


def test_unet_default_is_about_31m_and_base_32_a_quarter():
    full = count_parameters(UNet())
    small = count_parameters(UNet(base_channels=32))
    assert 30.9e6 < full < 31.1e6
    assert 0.24 < small / full < 0.26


def test_count_parameters_skips_frozen():
    model = UNet(base_channels=8)
    total = count_parameters(model)
    for p in model.inc.parameters():
        p.requires_grad_(False)
    frozen = sum(p.numel() for p in model.inc.parameters())
    assert count_parameters(model) == total - frozen


# ResNet34_UNet has 24,342,721 parameters: 21,284,672 in the encoder (torchvision's resnet34
# without fc) and 3,058,049 in the decoder:
#   up1 convT 512->256: 512*256*4 + 256 = 524,544;  DoubleConv(512, 256) = 1,770,496
#   up2 convT 256->128: 131,200;                    DoubleConv(256, 128) = 442,880
#   up3 convT 128->64:  32,832;                     DoubleConv(128, 64)  = 110,848
#   up4 convT 64->32:   8,224;                      DoubleConv(32 + 64, 32) = 36,992
#   outc 1x1 conv 32->1 at H/2: 32 + 1 = 33
def test_resnet34_unet_parameter_count():
    model = ResNet34_UNet()
    tv = torchvision.models.resnet34(weights=None)
    tv_no_fc = count_parameters(tv) - tv.fc.weight.numel() - tv.fc.bias.numel()
    assert count_parameters(model.encoder) == tv_no_fc
    decoder = 524_544 + 1_770_496 + 131_200 + 442_880 + 32_832 + 110_848 + 8_224 + 36_992
    decoder += 33
    assert count_parameters(model) - count_parameters(model.encoder) == decoder


# ---------------------------------------------------------------- encoder equivalence


def test_encoder_matches_torchvision_resnet34():
    torch.manual_seed(0)
    tv = torchvision.models.resnet34(weights=None).eval()
    model = ResNet34_UNet().eval()
    model.encoder.load_state_dict(tv_encoder_state_dict(tv), strict=True)
    # Same names, same shapes, no avgpool or fc.
    ours = {k: v.shape for k, v in model.encoder.state_dict().items()}
    theirs = {k: v.shape for k, v in tv_encoder_state_dict(tv).items()}
    assert ours == theirs
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        expected = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        expected = tv.layer4(tv.layer3(tv.layer2(tv.layer1(expected))))
        got = model.encoder(x)[-1]
    torch.testing.assert_close(got, expected)


def test_narrow_resnet34_unet_keeps_the_layout_at_a_fraction_of_the_width():
    narrow = ResNet34_UNet(base_channels=16)
    tv = torchvision.models.resnet34(weights=None)
    # Every channel count of ResNet34 (64 ... 512) divided by 4; kernels and depth unchanged.
    expected = {key: tuple(d // 4 if i < 2 and d % 64 == 0 else d for i, d in enumerate(shape))
                for key, shape in ((k, v.shape) for k, v in tv_encoder_state_dict(tv).items())}
    assert {k: tuple(v.shape) for k, v in narrow.encoder.state_dict().items()} == expected
    assert count_parameters(narrow) < count_parameters(ResNet34_UNet()) / 12  # about 1/16
    rebuilt = ResNet34_UNet(**narrow.config)  # what a checkpoint stores rebuilds the model
    rebuilt.load_state_dict(narrow.state_dict(), strict=True)
    with torch.no_grad():
        assert narrow.eval()(torch.rand(2, 3, 65, 47)).shape == (2, 1, 65, 47)


def test_zero_init_residual_starts_each_block_as_its_shortcut():
    x = torch.rand(1, 8, 16, 16)  # >= 0, so the block's last ReLU leaves its shortcut as is
    zero = ResNet34_UNet(base_channels=8, zero_init_residual=True).eval()
    blocks = [m for m in zero.encoder.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 16 and all(not b.bn2.weight.any() for b in blocks)
    with torch.no_grad():
        assert torch.equal(zero.encoder.layer1[1](x), x)
        assert not torch.equal(ResNet34_UNet(base_channels=8).eval().encoder.layer1[1](x), x)


def test_dropout_drops_whole_channels_in_training_only():
    torch.manual_seed(0)
    dropping = ResNet34_UNet(base_channels=8, dropout=0.5)
    plain = ResNet34_UNet(base_channels=8)
    plain.load_state_dict(dropping.state_dict())  # no weights of its own
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(dropping.eval()(x), plain.eval()(x))
        dropping.train(), plain.train()
        assert not torch.equal(dropping(x), plain(x))
    with pytest.raises(ValueError, match="dropout"):
        ResNet34_UNet(base_channels=8, dropout=1.5)


@pytest.mark.parametrize("kwargs", [{"base_channels": 6}, {"base_channels": 18},
                                    {"base_channels": 16, "pretrained_encoder": True}])
def test_impossible_resnet34_unet_widths_are_refused(kwargs):
    with pytest.raises(ValueError, match="base_channels"):
        ResNet34_UNet(**kwargs)


@pytest.mark.parametrize("kwargs", [{"base_channels": -3}, {"base_channels": 0},
                                    {"base_channels": 2.5}, {"in_channels": 0},
                                    {"out_channels": "1"}])
def test_impossible_unet_widths_are_refused(kwargs):
    name, value = next(iter(kwargs.items()))
    with pytest.raises(ValueError, match=f"{name} must be a whole number of at least 1, "
                                         f"not {value!r}"):
        UNet(**kwargs)


def test_normalize_input_applies_imagenet_mean_std():
    torch.manual_seed(0)
    with_norm = ResNet34_UNet(normalize_input=True).eval()
    without = ResNet34_UNet(normalize_input=False).eval()
    # Same state dict keys with or without normalisation (mean/std are not saved).
    without.load_state_dict(with_norm.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(with_norm(x), without((x - mean) / std))
        assert not torch.allclose(with_norm(x), without(x))


def test_normalisation_needs_three_channels():
    with pytest.raises(ValueError):
        ResNet34_UNet(in_channels=1, normalize_input=True)
    assert ResNet34_UNet(in_channels=1).encoder.conv1.in_channels == 1


# ---------------------------------------------------------------- gradients, determinism


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("unet", {"base_channels": 8}),
        ("unet", {"base_channels": 8, "bilinear": True}),
        ("resnet34_unet", {}),
    ],
)
def test_every_parameter_gets_a_finite_gradient(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, **kwargs).train()
    x = torch.rand(2, 3, 64, 64)
    target = (torch.rand(2, 1, 64, 64) > 0.5).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), target)
    loss.backward()
    for param_name, p in model.named_parameters():
        assert p.grad is not None, param_name
        assert torch.isfinite(p.grad).all(), param_name
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


def assert_eval_mode_uses_running_statistics(model: torch.nn.Module) -> None:
    """After model.eval() an image's output does not depend on the rest of its batch, and it
    differs from train mode's, which normalises with the batch's own statistics."""
    x = torch.rand(3, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        evaluated = model(x)
        torch.testing.assert_close(evaluated[:1], model(x[:1]), rtol=1e-4, atol=1e-4)
        trained = model.train()(x)  # last: it updates the running statistics
    assert not torch.allclose(trained, evaluated, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", ["unet", "resnet34_unet"])
def test_eval_mode_does_not_mix_the_images_of_a_batch(name):
    torch.manual_seed(0)
    kwargs = {"base_channels": 8} if name == "unet" else {}
    assert_eval_mode_uses_running_statistics(build_model(name, **kwargs))


# ---------------------------------------------------------------- pretrained encoder


def test_pretrained_encoder_without_network_raises_clear_error(empty_hub):
    with pytest.raises(RuntimeError) as info:
        ResNet34_UNet(pretrained_encoder=True)
    message = str(info.value)
    assert "Could not download" in message
    assert f"cache is at {empty_hub}" in message
    assert os.path.join(str(empty_hub), "checkpoints", WEIGHTS_FILE) in message
    assert "pretrained_encoder=False" in message


def test_pretrained_encoder_loads_weights_from_hub_cache(empty_hub):
    torch.manual_seed(0)
    tv = torchvision.models.resnet34(weights=None)
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(tv.state_dict(), empty_hub / "checkpoints" / WEIGHTS_FILE)

    model = ResNet34_UNet(pretrained_encoder=True)
    assert model.pretrained_encoder and model.normalize_input
    for key, value in tv_encoder_state_dict(tv).items():
        assert torch.equal(model.encoder.state_dict()[key], value), key

    # The config rebuilds the model without downloading, with the same normalisation.
    assert "pretrained_encoder" not in model.config
    rebuilt = build_model("resnet34_unet", **model.config)
    assert rebuilt.normalize_input and not rebuilt.pretrained_encoder
    rebuilt.load_state_dict(model.state_dict(), strict=True)


# ---------------------------------------------------------------- build_model and config


def test_build_model_names():
    assert set(MODELS) == {"unet", "resnet34_unet", "lraspp_mobilenet_v3", "deeplabv3_resnet50",
                           "segformer_b0", "deeplabv3plus_resnet34", "lraspp_shufflenet_v2"}
    assert isinstance(build_model("unet", base_channels=8), UNet)
    assert isinstance(build_model("resnet34_unet"), ResNet34_UNet)
    assert isinstance(build_model("lraspp_mobilenet_v3"), LRASPP_MobileNetV3)
    with pytest.raises(ValueError, match="unet, resnet34_unet, lraspp_mobilenet_v3"):
        build_model("segformer")


def test_build_model_names_a_setting_the_model_does_not_have():
    assert settings_problem("unet", {"base_channels": 8, "bilinear": True}) is None
    with pytest.raises(ValueError, match="lraspp_shufflenet_v2 has no setting base_channels, "
                                         "depth .*pretrained_backbone"):
        build_model("lraspp_shufflenet_v2", base_channels=8, depth=3)


def test_unet_config():
    assert UNet().config == {
        "in_channels": 3,
        "out_channels": 1,
        "base_channels": 64,
        "bilinear": False,
    }


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("unet", {"base_channels": 8, "bilinear": True, "out_channels": 2}),
        ("resnet34_unet", {"normalize_input": True, "bilinear": True}),
    ],
)
def test_config_round_trip(name, kwargs):
    torch.manual_seed(0)
    model = build_model(name, **kwargs)
    rebuilt = build_model(name, **model.config)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), model.eval()(x))


def test_layer_shapes_follow_the_unet_stages():
    torch.manual_seed(0)
    model = UNet(base_channels=8)
    x = torch.rand(1, 3, 64, 48)
    names = ["inc", "down1", "down4", "up1", "up4", "outc"]
    before = model.inc.double_conv[1].running_mean.clone()
    shapes = layer_shapes(model, x, names)
    assert [name for name, _ in shapes] == names
    assert dict(shapes) == {"inc": (1, 8, 64, 48), "down1": (1, 16, 32, 24),
                            "down4": (1, 128, 4, 3), "up1": (1, 64, 8, 6),
                            "up4": (1, 8, 64, 48), "outc": (1, 1, 64, 48)}
    assert model.training  # the mode is restored ...
    assert torch.equal(model.inc.double_conv[1].running_mean, before)  # ... stats untouched
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed
    with pytest.raises(ValueError, match="nope"):
        layer_shapes(model, x, ["inc", "nope"])
