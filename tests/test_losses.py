"""Tests for the segmentation losses: values worked out by hand, edge cases, gradients."""

import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from petseg_lib.training.losses import (
    LOSSES,
    BCEDiceLoss,
    BCEIoULoss,
    FocalLoss,
    SoftDiceLoss,
    SoftIoULoss,
    build_loss,
)

LN3 = math.log(3)  # sigmoid(ln 3) = 3/4 and sigmoid(-ln 3) = 1/4


def tiny_example() -> tuple[torch.Tensor, torch.Tensor]:
    """One 2x2 image: a pet on the top row, background on the bottom row.

    logits  [[0, ln 3], [-ln 3, 0]]  ->  p = sigmoid(logits) = [[1/2, 3/4], [1/4, 1/2]]
    targets [[1, 1], [0, 0]]
    """
    logits = torch.tensor([[0.0, LN3], [-LN3, 0.0]]).view(1, 1, 2, 2)
    targets = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    return logits, targets


def random_batch(seed: int = 0, n: int = 2, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits (N, 1, H, W) and random 0/1 float targets of the same shape."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, size, size, generator=generator) * 3
    targets = (torch.rand(n, 1, size, size, generator=generator) > 0.5).float()
    return logits, targets


BINARY_LOSSES = [name for name in LOSSES if name != "ce"]  # "ce" is for three classes


def all_losses() -> list[nn.Module]:
    """One instance of every binary loss, with the default settings."""
    return [build_loss(name) for name in BINARY_LOSSES]


# ---------------------------------------------------------------- values worked out by hand


def test_bce_by_hand():
    logits, targets = tiny_example()
    # Per pixel: -ln(p) on the pet, -ln(1 - p) on the background:
    # -ln(1/2), -ln(3/4) on the top row; -ln(3/4), -ln(1/2) on the bottom row.
    # Mean: (2 ln 2 + 2 ln(4/3)) / 4 = (ln 2 + ln(4/3)) / 2 = ln(8/3) / 2
    expected = math.log(8 / 3) / 2
    assert build_loss("bce")(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_soft_dice_by_hand():
    logits, targets = tiny_example()
    # sum(p * t) = 1/2 + 3/4 = 1.25, sum(p) = 2, sum(t) = 2
    # smooth = 1: Dice = (2 * 1.25 + 1) / (2 + 2 + 1) = 3.5 / 5 = 0.7 -> loss 0.3
    assert SoftDiceLoss()(logits, targets).item() == pytest.approx(0.3, rel=1e-6)
    # smooth = 0: Dice = 2.5 / 4 = 0.625 -> loss 0.375
    assert SoftDiceLoss(smooth=0.0)(logits, targets).item() == pytest.approx(0.375, rel=1e-6)


def test_soft_dice_is_per_image_then_mean():
    logits, targets = tiny_example()
    # Second image: no pet, every p = 1/4. sum(p * t) = 0, sum(p) = 1, sum(t) = 0
    # Dice = (0 + 1) / (1 + 0 + 1) = 0.5 -> loss 0.5
    empty_logits = torch.full((1, 1, 2, 2), -LN3)
    empty_targets = torch.zeros(1, 1, 2, 2)
    batch_logits = torch.cat([logits, empty_logits])
    batch_targets = torch.cat([targets, empty_targets])
    # Mean over the two images: (0.3 + 0.5) / 2 = 0.4
    assert SoftDiceLoss()(batch_logits, batch_targets).item() == pytest.approx(0.4, rel=1e-6)
    # Pooling the pixels first would give 1 - (2 * 1.25 + 1) / (3 + 2 + 1) = 0.41666...
    assert SoftDiceLoss()(batch_logits, batch_targets).item() != pytest.approx(1 - 3.5 / 6)


def test_bce_dice_by_hand():
    logits, targets = tiny_example()
    expected = math.log(8 / 3) / 2 + 0.3  # the BCE and Dice values above
    assert BCEDiceLoss()(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_soft_iou_by_hand():
    logits, targets = tiny_example()
    # sum(p * t) = 1.25, sum(p) + sum(t) = 4, so the union is 4 - 1.25 = 2.75
    # smooth = 1: IoU = 2.25 / 3.75 = 0.6 -> loss 0.4; smooth = 0: IoU = 5 / 11
    assert SoftIoULoss()(logits, targets).item() == pytest.approx(0.4, rel=1e-6)
    assert SoftIoULoss(smooth=0.0)(logits, targets).item() == pytest.approx(6 / 11, rel=1e-6)
    expected = math.log(8 / 3) / 2 + 0.4  # BCE + IoU
    assert BCEIoULoss()(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_soft_iou_is_dice_over_2_minus_dice_per_image():
    logits, targets = random_batch(seed=3, n=3)
    per_image = [(1 - SoftDiceLoss(smooth=0.0)(logits[i:i + 1], targets[i:i + 1]).item(),
                  1 - SoftIoULoss(smooth=0.0)(logits[i:i + 1], targets[i:i + 1]).item())
                 for i in range(3)]
    for dice, iou in per_image:
        assert iou == pytest.approx(dice / (2 - dice), rel=1e-5)
        assert iou < dice  # a partly wrong mask loses more IoU than Dice
    mean_iou = sum(iou for _, iou in per_image) / 3
    assert SoftIoULoss(smooth=0.0)(logits, targets).item() == pytest.approx(1 - mean_iou)


def test_focal_by_hand():
    logits, targets = tiny_example()
    # p_t (probability of the right class) = [1/2, 3/4, 3/4, 1/2]
    # (1 - p_t) ** 2                       = [1/4, 1/16, 1/16, 1/4]
    # bce = -ln(p_t)                       = [ln 2, ln(4/3), ln(4/3), ln 2]
    ln2, ln43 = math.log(2), math.log(4 / 3)
    # alpha=None: mean of (1 - p_t)^2 * bce = (2 * ln2 / 4 + 2 * ln43 / 16) / 4
    expected = (2 * ln2 / 4 + 2 * ln43 / 16) / 4
    assert FocalLoss(alpha=None)(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    # alpha=0.25: alpha_t = [0.25, 0.25, 0.75, 0.75] (pet, pet, background, background)
    expected = (0.25 * ln2 / 4 + 0.25 * ln43 / 16 + 0.75 * ln43 / 16 + 0.75 * ln2 / 4) / 4
    assert FocalLoss(alpha=0.25)(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    assert FocalLoss()(logits, targets).item() == pytest.approx(expected, rel=1e-6)  # default


@pytest.mark.parametrize("alpha", [None, 0.25, 0.8])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_matches_torchvision(gamma, alpha):
    logits, targets = random_batch()
    expected = sigmoid_focal_loss(logits, targets, alpha=-1 if alpha is None else alpha,
                                  gamma=gamma, reduction="mean")  # alpha < 0: no weighting
    torch.testing.assert_close(FocalLoss(gamma=gamma, alpha=alpha)(logits, targets), expected)


def test_focal_with_gamma_0_and_no_alpha_is_bce():
    logits, targets = random_batch()
    focal = FocalLoss(gamma=0.0, alpha=None)(logits, targets)
    torch.testing.assert_close(focal, F.binary_cross_entropy_with_logits(logits, targets))


def test_focal_rejects_bad_settings():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=1.5)


# ---------------------------------------------------------------- edge cases


@pytest.mark.parametrize("loss", all_losses(), ids=BINARY_LOSSES)
def test_every_loss_is_a_0_dim_float32_tensor(loss):
    logits, targets = random_batch()
    value = loss(logits, targets)
    assert value.shape == ()
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
    assert value.item() >= 0


@pytest.mark.parametrize("loss", all_losses(), ids=BINARY_LOSSES)
@pytest.mark.parametrize("pet", [False, True], ids=["all_empty", "all_pet"])
def test_perfect_prediction_gives_about_0(loss, pet):
    targets = torch.full((2, 1, 4, 4), float(pet))
    logits = torch.where(targets > 0.5, 20.0, -20.0)
    assert loss(logits, targets).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_of_empty_prediction_on_empty_mask_is_exactly_0():
    # sigmoid(-200) is 0 in float32: Dice = (0 + smooth) / (0 + 0 + smooth) = 1
    targets = torch.zeros(2, 1, 4, 4)
    assert SoftDiceLoss()(torch.full_like(targets, -200.0), targets).item() == 0.0


def test_perfect_prediction_of_a_random_mask_gives_about_0():
    _, targets = random_batch()
    logits = 20 * (2 * targets - 1)  # +20 on the pet, -20 on the background
    for loss in all_losses():
        assert loss(logits, targets).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("pet", [False, True], ids=["all_empty", "all_pet"])
def test_inverted_prediction(pet):
    targets = torch.full((2, 1, 4, 4), float(pet))
    logits = torch.where(targets > 0.5, -20.0, 20.0)  # sure, and wrong everywhere
    # BCE of a pixel is about |logit| = 20 when the sign is wrong.
    assert build_loss("bce")(logits, targets).item() == pytest.approx(20.0, rel=1e-6)
    # Dice: no overlap, sum(p) + sum(t) = 16 (one of them is 16, the other about 0)
    # -> Dice = (0 + 1) / (16 + 1) and the loss is 16/17.
    assert SoftDiceLoss()(logits, targets).item() == pytest.approx(16 / 17, rel=1e-6)
    # Focal: p_t is about 0, so (1 - p_t)^2 is about 1 and the loss is about alpha_t * 20.
    alpha_t = 0.25 if pet else 0.75
    assert FocalLoss()(logits, targets).item() == pytest.approx(alpha_t * 20, rel=1e-6)


def test_shape_mismatch_raises():
    logits, targets = random_batch()
    for loss in [SoftDiceLoss(), BCEDiceLoss(), FocalLoss()]:
        with pytest.raises(ValueError, match="same shape"):
            loss(logits, targets[:, :, :4])


# ---------------------------------------------------------------- gradients and training


@pytest.mark.parametrize("loss", [*all_losses(), FocalLoss(gamma=0.5), FocalLoss(gamma=0.0)],
                         ids=[*BINARY_LOSSES, "focal_gamma_0.5", "focal_gamma_0"])
@pytest.mark.parametrize("scale", [1.0, 100.0], ids=["moderate", "huge_logits"])
def test_gradients_are_finite_and_shaped_like_the_logits(loss, scale):
    logits, targets = random_batch()
    logits = (logits * scale).requires_grad_()
    loss(logits, targets).backward()
    assert logits.grad.shape == logits.shape
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", all_losses(), ids=BINARY_LOSSES)
def test_loss_decreases_as_predictions_improve(loss):
    _, targets = random_batch()
    direction = 2 * targets - 1  # +1 on the pet, -1 on the background
    # From sure and wrong (-4) through unsure (0) to sure and right (+4).
    values = [loss(s * direction, targets).item() for s in [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]]
    assert all(a > b for a, b in pairwise(values)), values


@pytest.mark.parametrize("loss", all_losses(), ids=BINARY_LOSSES)
def test_bfloat16_autocast_gives_a_finite_float32_loss(loss):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 1, kernel_size=3, padding=1)
    images = torch.rand(2, 3, 8, 8)
    targets = (torch.rand(2, 1, 8, 8) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = conv(images)
        value = loss(logits, targets)
    assert logits.dtype == torch.bfloat16
    assert value.dtype == torch.float32
    assert torch.isfinite(value)
    # Same value as float32 logits, up to bfloat16's rounding of the logits (~3 digits).
    reference = loss(conv(images), targets)
    torch.testing.assert_close(value, reference, rtol=2e-2, atol=2e-2)
    value.backward()
    assert torch.isfinite(conv.weight.grad).all()


# ---------------------------------------------------------------- build_loss


def test_build_loss_names():
    assert list(LOSSES) == ["bce", "dice", "bce_dice", "focal", "iou", "bce_iou", "ce"]
    assert isinstance(build_loss("bce"), nn.BCEWithLogitsLoss)
    assert isinstance(build_loss("dice"), SoftDiceLoss)
    assert isinstance(build_loss("bce_dice"), BCEDiceLoss)
    assert isinstance(build_loss("focal"), FocalLoss)
    assert isinstance(build_loss("ce"), nn.CrossEntropyLoss)  # tests/test_classes.py
    assert isinstance(build_loss("iou"), SoftIoULoss)
    assert isinstance(build_loss("bce_iou"), BCEIoULoss)
    assert build_loss("focal", gamma=0.0, alpha=None).gamma == 0.0
    with pytest.raises(ValueError, match="valid names: bce, dice, bce_dice, focal"):
        build_loss("lovasz")
