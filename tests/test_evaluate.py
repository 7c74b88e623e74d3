"""Tests for evaluation/evaluate.py: Dice/IoU on hand-computed cases and the evaluate() loop."""

import itertools

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from petseg_lib.evaluation.evaluate import (
    SegmentationMeter,
    binarize,
    confusion_counts,
    describe_protocol,
    describe_protocols,
    dice_score,
    evaluate,
    iou_score,
    mask_dice,
    predict_logits,
    worst_predictions,
)

from .conftest import RedIsPet, shifted_samples

BIG = 10.0  # a logit far from the threshold: sigmoid(10) ~ 1, sigmoid(-10) ~ 0


def logits_from(mask: torch.Tensor) -> torch.Tensor:
    """Logits that binarise exactly to `mask`."""
    return torch.where(mask.bool(), BIG, -BIG)


def overlap_case() -> tuple[torch.Tensor, torch.Tensor]:
    """One 4x4 image: P has 6 px, T has 4 px, 3 px overlap (|P∪T| = 7)."""
    pred = torch.zeros(1, 1, 4, 4)
    pred[0, 0, 0, :] = 1  # (0,0) (0,1) (0,2) (0,3)
    pred[0, 0, 1, :2] = 1  # (1,0) (1,1)                -> |P| = 6
    target = torch.zeros(1, 1, 4, 4)
    for r, c in [(0, 0), (0, 3), (1, 1), (1, 2)]:  # -> |T| = 4
        target[0, 0, r, c] = 1
    # P∩T = (0,0) (0,3) (1,1) -> 3 px
    return pred, target


def test_overlap_case_counts():
    pred, target = overlap_case()
    intersection, pred_sum, target_sum = confusion_counts(pred, target)
    assert (intersection.item(), pred_sum.item(), target_sum.item()) == (3, 6, 4)


def test_known_overlap_dice_and_iou():
    pred, target = overlap_case()
    logits = logits_from(pred)
    assert dice_score(logits, target).item() == pytest.approx(2 * 3 / (6 + 4))
    assert iou_score(logits, target).item() == pytest.approx(3 / (6 + 4 - 3))


def test_returns_zero_dim_tensor():
    pred, target = overlap_case()
    assert dice_score(logits_from(pred), target).dim() == 0
    assert iou_score(logits_from(pred), target).dim() == 0


def test_empty_pred_and_empty_target_score_one():
    target = torch.zeros(2, 1, 4, 4)
    logits = torch.full((2, 1, 4, 4), -BIG)
    assert dice_score(logits, target).item() == 1.0
    assert iou_score(logits, target).item() == 1.0


def test_full_masks_score_one():
    target = torch.ones(2, 1, 4, 4)
    logits = torch.full((2, 1, 4, 4), BIG)
    assert dice_score(logits, target).item() == 1.0
    assert iou_score(logits, target).item() == 1.0


def test_disjoint_masks_score_zero():
    pred = torch.zeros(1, 1, 4, 4)
    pred[..., :2, :] = 1
    target = 1 - pred
    assert dice_score(logits_from(pred), target).item() == 0.0
    assert iou_score(logits_from(pred), target).item() == 0.0


def test_empty_pred_with_nonempty_target_scores_zero():
    target = torch.zeros(1, 1, 4, 4)
    target[..., 0, 0] = 1
    logits = torch.full((1, 1, 4, 4), -BIG)
    assert dice_score(logits, target).item() == 0.0


def test_batch_score_is_mean_of_images():
    # image 0: empty/empty -> 1; image 1: disjoint -> 0
    target = torch.zeros(2, 1, 4, 4)
    target[1, 0, 0, 0] = 1
    pred = torch.zeros(2, 1, 4, 4)
    pred[1, 0, 3, 3] = 1
    assert dice_score(logits_from(pred), target).item() == pytest.approx(0.5)
    assert iou_score(logits_from(pred), target).item() == pytest.approx(0.5)


def test_logit_zero_is_not_foreground_at_default_threshold():
    # sigmoid(0) = 0.5 is not > 0.5, so the prediction is empty
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.ones(1, 1, 4, 4)
    assert not binarize(logits).any()
    assert dice_score(logits, target).item() == 0.0
    # with a lower threshold every pixel is foreground
    assert binarize(logits, threshold=0.4).all()
    assert dice_score(logits, target, threshold=0.4).item() == 1.0


def test_threshold_moves_the_decision():
    logits = torch.tensor([-1.0, 0.5, 1.0, 2.0]).reshape(1, 1, 2, 2)
    # sigmoid: 0.27, 0.62, 0.73, 0.88
    assert binarize(logits, 0.5).flatten().tolist() == [False, True, True, True]
    assert binarize(logits, 0.8).flatten().tolist() == [False, False, False, True]


def test_ignore_removes_pixels_from_pred_and_target():
    pred, target = overlap_case()
    logits = logits_from(pred)
    # ignore the 3 pixels that are only in P: P = 3, T = 4, I = 3
    ignore = (pred.bool() & ~target.bool())
    assert dice_score(logits, target, ignore=ignore).item() == pytest.approx(2 * 3 / (3 + 4))
    assert iou_score(logits, target, ignore=ignore).item() == pytest.approx(3 / 4)
    # also ignore the one pixel only in T: a perfect match
    ignore = pred.bool() ^ target.bool()
    assert dice_score(logits, target, ignore=ignore).item() == pytest.approx(1.0)
    # ignore the 3 overlap pixels instead: P = 3, T = 1, I = 0
    ignore = pred.bool() & target.bool()
    counts = confusion_counts(pred, target, ignore=ignore)
    assert [c.item() for c in counts] == [0, 3, 1]
    assert dice_score(logits, target, ignore=ignore).item() == 0.0


def test_ignore_accepts_float_and_broadcasts():
    pred, target = overlap_case()
    ignore = (pred.bool() & ~target.bool()).float()[0, 0]  # (H, W) 0/1 float
    assert dice_score(logits_from(pred), target, ignore=ignore).item() == pytest.approx(6 / 7)


def two_image_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Image 0: P = T = 1 px (Dice 1). Image 1: P = 8, T = 8, overlap 4 (Dice 0.5)."""
    pred = torch.zeros(2, 1, 4, 4)
    target = torch.zeros(2, 1, 4, 4)
    pred[0, 0, 0, 0] = 1
    target[0, 0, 0, 0] = 1
    pred[1, 0, 0:2, :] = 1  # rows 0-1
    target[1, 0, 1:3, :] = 1  # rows 1-2, overlap is row 1
    return pred, target


def test_pooled_differs_from_per_image_mean():
    pred, target = two_image_batch()
    logits = logits_from(pred)
    # per image: Dice (1 + 0.5) / 2, IoU (1 + 4/12) / 2
    assert dice_score(logits, target).item() == pytest.approx(0.75)
    assert iou_score(logits, target).item() == pytest.approx((1 + 4 / 12) / 2)
    # pooled: I = 1 + 4, P = 1 + 8, T = 1 + 8
    assert dice_score(logits, target, pooled=True).item() == pytest.approx(2 * 5 / 18)
    assert iou_score(logits, target, pooled=True).item() == pytest.approx(5 / (18 - 5))


def test_meter_over_batches_matches_whole_set():
    pred, target = two_image_batch()
    logits = logits_from(pred)
    meter = SegmentationMeter()
    meter.update(logits[:1], target[:1], names=["a"])
    meter.update(logits[1:], target[1:], names=["b"])
    results = meter.compute()
    assert results["dice"] == pytest.approx(0.75)
    assert results["dice_pooled"] == pytest.approx(10 / 18)
    assert results["iou"] == pytest.approx((1 + 1 / 3) / 2)
    assert results["iou_pooled"] == pytest.approx(5 / 13)
    assert meter.per_image_dice == pytest.approx([1.0, 0.5])
    assert meter.names == ["a", "b"]


def test_meter_compute_without_update_raises():
    with pytest.raises(ValueError):
        SegmentationMeter().compute()


def test_nhw_and_n1hw_give_the_same():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 8, 8)
    target = (torch.rand(3, 1, 8, 8) > 0.5).float()
    ignore = torch.rand(3, 1, 8, 8) > 0.8
    for fn, pooled in itertools.product((dice_score, iou_score), (False, True)):
        expected = fn(logits, target, ignore=ignore, pooled=pooled)
        assert fn(logits[:, 0], target[:, 0], ignore=ignore[:, 0],
                  pooled=pooled) == pytest.approx(expected)
        assert fn(logits, target[:, 0], ignore=ignore[:, 0],
                  pooled=pooled) == pytest.approx(expected)


# ---- evaluate() ----


class RecordingConv(nn.Module):
    """A fixed 1x1 conv that records the mode and grad state it was called in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0, 0.5]).reshape(1, 3, 1, 1))
            self.conv.bias.fill_(-0.2)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.conv(x)  # (N, 1, H, W)


def make_samples(n: int = 5, size: int = 8) -> list[dict]:
    """Random image/mask/trimap samples, as a Dataset would return them."""
    torch.manual_seed(0)
    samples = []
    for i in range(n):
        mask = (torch.rand(1, size, size) > 0.5).float()
        trimap = torch.where(mask.bool(), 1, 2).to(torch.uint8)
        trimap[torch.rand(1, size, size) > 0.7] = 3
        samples.append(
            {"image": torch.rand(3, size, size), "mask": mask, "trimap": trimap, "name": f"s{i}"}
        )
    return samples


def stack(samples: list[dict], key: str) -> torch.Tensor:
    return torch.stack([s[key] for s in samples])


def test_evaluate_matches_pure_functions_on_the_whole_set():
    samples = make_samples()
    model = RecordingConv()
    loader = DataLoader(samples, batch_size=2)  # batches of 2, 2, 1
    results = evaluate(model, loader, "cpu", criterion=nn.BCEWithLogitsLoss())

    images, masks = stack(samples, "image"), stack(samples, "mask")
    with torch.no_grad():
        logits = model.conv(images)
    preds = binarize(logits)
    assert 0 < preds.sum() < preds.numel()  # the case is not trivial
    assert results["dice"] == pytest.approx(dice_score(logits, masks).item())
    assert results["iou"] == pytest.approx(iou_score(logits, masks).item())
    assert results["dice_pooled"] == pytest.approx(dice_score(logits, masks, pooled=True).item())
    assert results["iou_pooled"] == pytest.approx(iou_score(logits, masks, pooled=True).item())
    expected_loss = nn.functional.binary_cross_entropy_with_logits(logits, masks).item()
    assert results["loss"] == pytest.approx(expected_loss)


def test_evaluate_loss_is_none_without_criterion():
    results = evaluate(RecordingConv(), DataLoader(make_samples(), batch_size=2), "cpu")
    assert results["loss"] is None


def test_evaluate_converts_uint8_images():
    samples = make_samples()
    for s in samples:
        s["image"] = (s["image"] * 255).round().to(torch.uint8)
    model = RecordingConv()
    results = evaluate(model, DataLoader(samples, batch_size=2), "cpu")

    with torch.no_grad():
        logits = model.conv(stack(samples, "image").float() / 255)
    masks = stack(samples, "mask")
    assert results["dice"] == pytest.approx(dice_score(logits, masks).item())
    # scoring raw 0-255 values would give a different answer
    with torch.no_grad():
        raw_logits = model.conv(stack(samples, "image").float())
    assert dice_score(raw_logits, masks).item() != pytest.approx(results["dice"])


def test_evaluate_ignore_boundary_uses_trimap_3():
    samples = make_samples()
    model = RecordingConv()
    results = evaluate(model, DataLoader(samples, batch_size=2), "cpu", boundary="ignore")

    with torch.no_grad():
        logits = model.conv(stack(samples, "image"))
    masks, ignore = stack(samples, "mask"), stack(samples, "trimap") == 3
    assert results["dice"] == pytest.approx(dice_score(logits, masks, ignore=ignore).item())
    assert results["dice_pooled"] == pytest.approx(
        dice_score(logits, masks, ignore=ignore, pooled=True).item()
    )
    assert results["dice"] != pytest.approx(dice_score(logits, masks).item())


def test_evaluate_ignore_boundary_without_trimap_raises():
    batch = {"image": torch.rand(1, 3, 8, 8), "mask": torch.zeros(1, 1, 8, 8), "trimap": None}
    with pytest.raises(ValueError, match="trimap"):
        evaluate(RecordingConv(), [batch], "cpu", boundary="ignore")


def test_evaluate_runs_in_eval_mode_without_grad_and_restores_mode():
    loader = DataLoader(make_samples(), batch_size=2)
    model = RecordingConv()
    model.train()
    evaluate(model, loader, "cpu")
    assert model.calls and all(call == (False, False) for call in model.calls)
    assert model.training
    model.eval()
    evaluate(model, loader, "cpu")
    assert not model.training


def test_evaluate_without_masks_raises_and_restores_mode():
    batch = {"image": torch.rand(2, 3, 8, 8), "mask": None, "trimap": None, "name": ["a", "b"]}
    model = RecordingConv()
    model.train()
    with pytest.raises(ValueError, match="no ground-truth masks"):
        evaluate(model, [batch], "cpu")
    assert model.training


def test_worst_predictions_sorts_by_dice_and_matches_the_masks():
    samples = shifted_samples([0, 3, 1, 6, 2])
    worst = worst_predictions(RedIsPet(), samples, n=3, batch_size=2)
    assert [w["name"] for w in worst] == ["shift6", "shift3", "shift2"]
    for item in worst:
        sample = samples[[s["name"] for s in samples].index(item["name"])]
        expected = mask_dice(sample["image"][0] > 0.5, sample["mask"])
        assert item["dice"] == pytest.approx(expected)
        assert item["probability"].shape == (1, 16, 16)
        assert torch.equal(item["prediction"], item["probability"] > 0.5)
    assert worst[0]["dice"] < worst[1]["dice"] < worst[2]["dice"] < 1.0


def test_worst_predictions_restores_training_mode():
    model = nn.Sequential(RedIsPet())
    model.train()
    worst_predictions(model, shifted_samples([0, 1]), n=1)
    assert model.training


def test_evaluate_boundary_as_background_scores_only_the_pet_class():
    samples = make_samples()
    model = RecordingConv()
    results = evaluate(model, DataLoader(samples, batch_size=2), "cpu", boundary="background")
    with torch.no_grad():
        logits = model.conv(stack(samples, "image"))
    pet_only = (stack(samples, "trimap") == 1).float()
    assert results["dice"] == pytest.approx(dice_score(logits, pet_only).item())
    with pytest.raises(ValueError, match="boundary must be one of"):
        evaluate(model, DataLoader(samples, batch_size=2), "cpu", boundary="half")


def test_mirror_tta_averages_the_logits_of_the_image_and_its_mirror():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 1, 3, padding=1)
    images = torch.rand(2, 3, 8, 8)
    expected = (conv(images) + torch.flip(conv(torch.flip(images, dims=[-1])), dims=[-1])) / 2
    torch.testing.assert_close(predict_logits(conv, images, tta=True), expected)
    torch.testing.assert_close(predict_logits(conv, images), conv(images))
    symmetric = nn.Conv2d(3, 1, (1, 3), padding=(0, 1))
    with torch.no_grad():
        symmetric.weight[..., 2] = symmetric.weight[..., 0]  # a mirror-symmetric filter
    torch.testing.assert_close(predict_logits(symmetric, images, tta=True), symmetric(images))


def test_protocols_are_described_in_words():
    assert describe_protocol("test", "pet", 64) == "test split, boundary counted as pet, at 64 px"
    text = describe_protocol("valid", "ignore", 64, original_size=True, tta=True)
    assert text == "valid split, boundary ignored, at each image's original size, mirror TTA"


def test_protocols_that_differ_only_in_size_are_named_together():
    small, large = (describe_protocol("test", "pet", size) for size in (64, 128))
    assert describe_protocols([small, small]) == small
    assert describe_protocols([large, small, large]) == (
        "test split, boundary counted as pet, at 64 or 128 px (each model at its training size)")
    other = describe_protocol("test", "ignore", 64)
    assert describe_protocols([small, other]) == f"{small}; {other}"  # not only the size
    at_original = describe_protocol("test", "pet", 64, original_size=True)
    assert describe_protocols([at_original, large]) == f"{large}; {at_original}"


def test_worst_predictions_show_the_augmented_sample_that_was_scored():
    class RandomShift(torch.utils.data.Dataset):  # a new random sample at every read
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return shifted_samples([int(torch.randint(0, 8, ()))])[0] | {"name": f"s{i}"}

    for item in worst_predictions(RedIsPet(), RandomShift(), n=4, batch_size=2):
        assert item["dice"] == pytest.approx(mask_dice(item["prediction"], item["mask"]))
        assert torch.equal(item["prediction"], RedIsPet()(item["image"][None])[0] > 0)


class LeansRight(nn.Module):
    """Red is pet, with a pull towards pet that grows to the right: not mirror-symmetric."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, :1] - 0.5) * 4 + torch.linspace(-1.5, 1.5, x.shape[-1])


def test_evaluate_with_mirror_tta_scores_the_averaged_logits():
    samples = make_samples(4)
    samples[3]["image"][0] = 0.3  # no pet: empty with TTA (-0.8), pet on the right without
    samples[3]["mask"].zero_()
    model, loader = LeansRight(), DataLoader(samples, batch_size=3)
    with_tta = evaluate(model, loader, "cpu", tta=True)
    without = evaluate(model, loader, "cpu")

    images, masks = stack(samples, "image"), stack(samples, "mask").bool()
    logits = (model(images) + torch.flip(model(torch.flip(images, dims=[-1])), dims=[-1])) / 2
    dice = []
    for pred, target in zip(logits > 0, masks, strict=True):
        total = pred.sum().item() + target.sum().item()
        dice.append(1.0 if total == 0 else 2 * (pred & target).sum().item() / total)
    assert dice[3] == 1.0  # both empty
    assert with_tta["dice"] == pytest.approx(sum(dice) / len(dice))
    assert without["dice"] != pytest.approx(with_tta["dice"], abs=0.01)
