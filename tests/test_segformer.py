"""Tests for SegFormer-B0: shapes, attention, config, and Hugging Face's model as an oracle."""

import pytest
import torch

from petseg_lib.models import build_model
from petseg_lib.models.segformer import EfficientSelfAttention, SegFormer_B0
from petseg_lib.models.summary import count_parameters, layer_shapes

STAGES = ["encoder.stage1", "encoder.stage2", "encoder.stage3", "encoder.stage4"]


def build(**kwargs) -> SegFormer_B0:
    """SegFormer-B0 with a fixed seed."""
    torch.manual_seed(0)
    return SegFormer_B0(**kwargs)


@pytest.mark.parametrize("size", [(64, 64), (65, 47)])
def test_logits_of_the_input_size_from_stages_at_a_quarter_to_a_32nd(size):
    model = build().eval()
    x = torch.rand(2, 3, *size)
    shapes = dict(layer_shapes(model, x, [*STAGES, "decoder"]))
    h, w = size
    for i, (name, channels) in enumerate(zip(STAGES, (32, 64, 160, 256), strict=True)):
        # 7x7 stride 4 padding 3, then 3x3 stride 2 padding 1: each rounds up
        h, w = ((h - 1) // 4 + 1, (w - 1) // 4 + 1) if i == 0 else ((h + 1) // 2, (w + 1) // 2)
        assert shapes[name] == (2, channels, h, w), name
    assert shapes["decoder"] == (2, 1, *shapes[STAGES[0]][-2:])  # fused at H/4
    with torch.no_grad():
        assert model(x).shape == (2, 1, *size)


def test_build_model_and_config_round_trip():
    model = build_model("segformer_b0")
    assert isinstance(model, SegFormer_B0)
    assert model.config == {"in_channels": 3, "out_channels": 1}
    model = build(out_channels=2).eval()
    rebuilt = build_model("segformer_b0", **model.config).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))
    with torch.device("meta"):  # how checkpoints are checked before loading
        assert count_parameters(SegFormer_B0()) == count_parameters(build())


def test_every_parameter_gets_a_finite_gradient():
    model = build().train()
    model(torch.rand(2, 3, 64, 64)).mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_keys_and_values_come_from_a_map_shrunk_by_the_reduction_ratio():
    attention = EfficientSelfAttention(32, num_heads=1, reduction=8)
    attention.keep_weights = True
    attention(torch.rand(2, 16 * 24, 32), 16, 24)
    assert attention.weights.shape == (2, 1, 16 * 24, 2 * 3)
    assert attention.grids == ((16, 24), (2, 3))
    torch.testing.assert_close(attention.weights.sum(-1), torch.ones(2, 1, 16 * 24))


def test_attention_map_is_the_row_of_the_query_pixel():
    model = build().eval()
    images = torch.rand(2, 3, 64, 96)  # stage 4: 2 x 3 tokens of 32 x 32 pixels
    maps = model.attention_map(images, y=40, x=70)  # the token in row 1, column 2
    assert maps.shape == (2, 8, 2, 3)
    torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(2, 8))
    attention = model.encoder.stage4.blocks[-1].attn
    assert not attention.keep_weights and attention.weights is None  # left as it was
    attention.keep_weights = True
    with torch.no_grad():
        model(images)
    torch.testing.assert_close(maps, attention.weights[:, :, 1 * 3 + 2].reshape(2, 8, 2, 3))


# ---------------------------------------------------------------- Hugging Face as an oracle


def hugging_face_b0():
    """Hugging Face's SegFormer with the MiT-B0 settings and 1 label, eager attention."""
    transformers = pytest.importorskip("transformers")
    config = transformers.SegformerConfig(
        num_labels=1, num_channels=3, num_encoder_blocks=4, depths=[2, 2, 2, 2],
        sr_ratios=[8, 4, 2, 1], hidden_sizes=[32, 64, 160, 256], patch_sizes=[7, 3, 3, 3],
        strides=[4, 2, 2, 2], num_attention_heads=[1, 2, 5, 8], mlp_ratios=[4, 4, 4, 4],
        decoder_hidden_size=256, drop_path_rate=0.0)
    config._attn_implementation = "eager"  # so that it returns its attention weights
    torch.manual_seed(1)
    return transformers.SegformerForSemanticSegmentation(config).eval()


def test_parameter_count_equals_hugging_faces():
    reference = hugging_face_b0()
    ours = build()
    assert count_parameters(ours) == count_parameters(reference) == 3_714_401
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]


def test_stages_logits_and_attention_equal_hugging_faces_with_its_weights():
    reference = hugging_face_b0()
    ours = build().eval()
    # Same layers in the same order: its weights load one for one into ours.
    weights = reference.state_dict().values()
    ours.load_state_dict(dict(zip(ours.state_dict(), weights, strict=True)), strict=True)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        theirs = reference(pixel_values=x, output_hidden_states=True, output_attentions=True)
        stages = ours.encoder(x)
        logits = ours(x)
    for mine, other in zip(stages, theirs.hidden_states, strict=True):
        assert mine.shape == other.shape
        torch.testing.assert_close(mine, other, rtol=1e-4, atol=1e-4)
    upsampled = torch.nn.functional.interpolate(theirs.logits, size=(64, 96), mode="bilinear",
                                                align_corners=False)
    torch.testing.assert_close(logits, upsampled, rtol=1e-4, atol=1e-4)
    last = theirs.attentions[-1]  # (N, 8, 6, 6): stage 4's 2 x 3 tokens
    torch.testing.assert_close(ours.attention_map(x, y=0, x=0), last[:, :, 0].reshape(2, 8, 2, 3),
                               rtol=1e-4, atol=1e-4)
