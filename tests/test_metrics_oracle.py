"""Check the course's Dice and IoU (petseg_lib.evaluation.evaluate) against torchmetrics, an oracle.

For a binary mask, Dice equals the F1 score and IoU the Jaccard index, so torchmetrics'
``binary_f1_score`` and ``binary_jaccard_index`` compute the same numbers from the pixels:

    Dice = 2 TP / (2 TP + FP + FN) = 2 |P∩T| / (|P| + |T|)
    IoU  = TP / (TP + FP + FN)     = |P∩T| / |P∪T|

The course defines Dice = IoU = 1 when prediction and target are both empty (0 / 0): the
model rightly found no pet. torchmetrics returns ``zero_division`` for 0 / 0, so the oracle
passes ``zero_division=1``. (torchmetrics.segmentation's ``dice_score`` and ``mean_iou`` give
nan for such images instead, which is why they are not used here.)

torchmetrics treats float predictions in [0, 1] as probabilities and thresholds them with
``> threshold``, like the course; the oracle gets sigmoid(logits), never the logits, because
torchmetrics applies the sigmoid only when some value lies outside [0, 1].
"""

import pytest
import torch

from petseg_lib.evaluation.evaluate import (
    SegmentationMeter,
    confusion_counts,
    dice_from_counts,
    iou_from_counts,
)

pytest.importorskip("torchmetrics", reason="torchmetrics is in the dev extra")
from torchmetrics.functional.classification import (
    binary_f1_score,
    binary_jaccard_index,
    binary_stat_scores,
)

IGNORED = -1  # target value torchmetrics skips (its ignore_index)


# ---------------------------------------------------------------- test data


def edge_case_batch(size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool predictions and targets (6, 1, size, size), one edge case per image.

    0: empty prediction, some pet   1: some prediction, empty target   2: both empty
    3: both all pet                 4: all pet predicted, some pet     5: perfect, some pet
    """
    pred = torch.zeros(6, 1, size, size, dtype=torch.bool)
    target = torch.zeros(6, 1, size, size, dtype=torch.bool)
    target[0, :, 1:4, 1:4] = True
    pred[1, :, 2:5, 2:5] = True
    pred[3], target[3] = True, True
    pred[4] = True
    target[4, :, :2, :] = True
    target[5, :, 1:5, 2:4] = True
    pred[5] = target[5]
    return pred, target


def random_batch(seed: int, n: int = 5, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits (N, 1, H, W) and 0/1 float targets whose pet share varies per image."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, size, size, generator=generator) * 2
    pet_share = torch.rand(n, 1, 1, 1, generator=generator)  # from almost none to almost all
    targets = (torch.rand(n, 1, size, size, generator=generator) < pet_share).float()
    return logits, targets


def random_ignore(shape: torch.Size, seed: int) -> torch.Tensor:
    """A bool mask with about 30% of the pixels ignored, and one image ignored entirely."""
    generator = torch.Generator().manual_seed(seed)
    ignore = torch.rand(shape, generator=generator) < 0.3
    ignore[0] = True  # no pixel left to score: both empty, so Dice = IoU = 1
    return ignore


def as_logits(pred: torch.Tensor) -> torch.Tensor:
    """Logits whose sigmoid is above 0.5 exactly where `pred` is True."""
    return torch.where(pred, 5.0, -5.0)


# ---------------------------------------------------------------- the oracle


def oracle_target(target: torch.Tensor, ignore: torch.Tensor | None = None) -> torch.Tensor:
    """Integer targets for torchmetrics, with IGNORED on the ignored pixels."""
    target = (target > 0.5).long()
    if ignore is not None:
        target = torch.where(ignore, IGNORED, target)
    return target


def oracle_per_image(probabilities, target, ignore=None, threshold=0.5):
    """torchmetrics' per-image Dice and IoU, each of shape (N,)."""
    target = oracle_target(target, ignore)
    dice = binary_f1_score(probabilities, target, threshold, multidim_average="samplewise",
                           ignore_index=IGNORED, zero_division=1).reshape(-1)
    # binary_jaccard_index has no per-sample mode: one call per image.
    iou = torch.stack([
        binary_jaccard_index(probabilities[i:i + 1], target[i:i + 1], threshold,
                             ignore_index=IGNORED, zero_division=1)
        for i in range(len(target))
    ])
    return dice, iou


def oracle_pooled(probabilities, target, ignore=None, threshold=0.5):
    """torchmetrics' Dice and IoU of all pixels of the batch pooled together."""
    target = oracle_target(target, ignore)
    dice = binary_f1_score(probabilities, target, threshold, ignore_index=IGNORED,
                           zero_division=1)
    iou = binary_jaccard_index(probabilities, target, threshold, ignore_index=IGNORED,
                               zero_division=1)
    return dice, iou


def course_per_image(pred, target, ignore=None):
    """The course's per-image Dice and IoU from its confusion counts."""
    counts = confusion_counts(pred, target, ignore)
    return dice_from_counts(*counts), iou_from_counts(*counts)


def assert_close(actual, expected):
    """Compare in float64, so that a float32 rounding in either library does not matter."""
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float64),
                               torch.as_tensor(expected, dtype=torch.float64))


# ---------------------------------------------------------------- confusion counts


@pytest.mark.parametrize("with_ignore", [False, True])
def test_confusion_counts_match_torchmetrics_stat_scores(with_ignore):
    logits, targets = random_batch(seed=1)
    pred = logits > 0
    ignore = random_ignore(targets.shape, seed=2) if with_ignore else None
    intersection, pred_sum, target_sum = confusion_counts(pred, targets, ignore)
    # Each row: TP, FP, TN, FN, support
    stats = binary_stat_scores(pred.long(), oracle_target(targets, ignore),
                               multidim_average="samplewise", ignore_index=IGNORED)
    tp, fp, fn = stats[:, 0], stats[:, 1], stats[:, 3]
    assert torch.equal(intersection, tp)  # |P∩T| = TP
    assert torch.equal(pred_sum, tp + fp)  # |P| = TP + FP
    assert torch.equal(target_sum, tp + fn)  # |T| = TP + FN


# ---------------------------------------------------------------- per image and pooled


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_masks_per_image_and_pooled(seed):
    logits, targets = random_batch(seed)
    probabilities = torch.sigmoid(logits)
    dice, iou = course_per_image(logits > 0, targets)
    expected_dice, expected_iou = oracle_per_image(probabilities, targets)
    assert_close(dice, expected_dice)
    assert_close(iou, expected_iou)

    meter = SegmentationMeter(threshold=0.5)
    meter.update(logits, targets)
    results = meter.compute()
    pooled_dice, pooled_iou = oracle_pooled(probabilities, targets)
    assert_close(results["dice"], expected_dice.mean())
    assert_close(results["iou"], expected_iou.mean())
    assert_close(results["dice_pooled"], pooled_dice)
    assert_close(results["iou_pooled"], pooled_iou)


def test_edge_cases_per_image():
    pred, target = edge_case_batch()
    dice, iou = course_per_image(pred, target.float())
    expected_dice, expected_iou = oracle_per_image(pred.float(), target.float())
    assert_close(dice, expected_dice)
    assert_close(iou, expected_iou)
    # The values themselves, image by image (see edge_case_batch).
    assert dice[:4].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert dice[5].item() == 1.0
    # All 36 pixels predicted, 12 of them pet: Dice = 2 * 12 / (36 + 12), IoU = 12 / 36
    assert dice[4].item() == pytest.approx(0.5)
    assert iou[4].item() == pytest.approx(1 / 3)


def test_edge_cases_in_the_meter():
    pred, target = edge_case_batch()
    meter = SegmentationMeter()
    meter.update(as_logits(pred), target.float())
    results = meter.compute()
    expected_dice, expected_iou = oracle_per_image(pred.float(), target.float())
    pooled_dice, pooled_iou = oracle_pooled(pred.float(), target.float())
    assert_close(results["dice"], expected_dice.mean())
    assert_close(results["iou"], expected_iou.mean())
    assert_close(results["dice_pooled"], pooled_dice)
    assert_close(results["iou_pooled"], pooled_iou)


@pytest.mark.parametrize("pet", [False, True], ids=["both_empty", "both_all_pet"])
def test_a_set_of_only_empty_or_only_full_images_scores_1(pet):
    target = torch.full((3, 1, 5, 5), float(pet))
    pred = target > 0.5
    meter = SegmentationMeter()
    meter.update(as_logits(pred), target)
    expected_dice, expected_iou = oracle_pooled(pred.float(), target)
    assert expected_dice.item() == expected_iou.item() == 1.0
    assert meter.compute() == {"dice": 1.0, "dice_pooled": 1.0, "iou": 1.0, "iou_pooled": 1.0}


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_meter_over_several_batches(threshold):
    batches = [random_batch(seed, n=n) for seed, n in [(10, 3), (11, 1), (12, 4)]]
    pred, target = edge_case_batch(size=12)
    batches.append((as_logits(pred), target.float()))
    meter = SegmentationMeter(threshold)
    for logits, targets in batches:
        meter.update(logits, targets)
    results = meter.compute()

    probabilities = torch.cat([torch.sigmoid(logits) for logits, _ in batches])
    targets = torch.cat([targets for _, targets in batches])
    expected_dice, expected_iou = oracle_per_image(probabilities, targets, threshold=threshold)
    pooled_dice, pooled_iou = oracle_pooled(probabilities, targets, threshold=threshold)
    assert_close(results["dice"], expected_dice.mean())
    assert_close(results["iou"], expected_iou.mean())
    assert_close(results["dice_pooled"], pooled_dice)
    assert_close(results["iou_pooled"], pooled_iou)


# ---------------------------------------------------------------- ignored pixels


@pytest.mark.parametrize("seed", [0, 1])
def test_ignored_pixels_with_ignore_index(seed):
    logits, targets = random_batch(seed)
    ignore = random_ignore(targets.shape, seed)
    probabilities = torch.sigmoid(logits)
    dice, iou = course_per_image(logits > 0, targets, ignore)
    expected_dice, expected_iou = oracle_per_image(probabilities, targets, ignore)
    assert_close(dice, expected_dice)
    assert_close(iou, expected_iou)
    assert dice[0].item() == iou[0].item() == 1.0  # every pixel ignored

    meter = SegmentationMeter()
    meter.update(logits, targets, ignore=ignore)
    results = meter.compute()
    pooled_dice, pooled_iou = oracle_pooled(probabilities, targets, ignore)
    assert_close(results["dice"], expected_dice.mean())
    assert_close(results["iou"], expected_iou.mean())
    assert_close(results["dice_pooled"], pooled_dice)
    assert_close(results["iou_pooled"], pooled_iou)


def test_ignored_pixels_by_keeping_only_the_scored_pixels():
    # A second formulation: score each image on the 1-D list of its kept pixels only.
    logits, targets = random_batch(seed=3)
    ignore = random_ignore(targets.shape, seed=3)
    ignore[0] = False  # torchmetrics cannot score an image with no pixel at all
    pred = logits > 0
    dice, iou = course_per_image(pred, targets, ignore)
    for i in range(len(targets)):
        keep = ~ignore[i]
        kept_pred, kept_target = pred[i][keep].long(), targets[i][keep].long()  # 1-D
        assert_close(dice[i], binary_f1_score(kept_pred, kept_target, zero_division=1))
        assert_close(iou[i], binary_jaccard_index(kept_pred, kept_target, zero_division=1))


def test_ignoring_a_mistake_removes_it():
    # One image: pet on the top row; the prediction also covers one background pixel.
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    pred = torch.tensor([[True, True], [True, False]]).view(1, 1, 2, 2)
    dice, iou = course_per_image(pred, target)
    assert dice.item() == pytest.approx(2 * 2 / (3 + 2))  # 0.8
    assert iou.item() == pytest.approx(2 / 3)
    ignore = torch.tensor([[False, False], [True, False]]).view(1, 1, 2, 2)
    dice, iou = course_per_image(pred, target, ignore)
    expected_dice, expected_iou = oracle_per_image(pred.float(), target, ignore)
    assert dice.item() == iou.item() == 1.0
    assert_close(dice, expected_dice)
    assert_close(iou, expected_iou)
