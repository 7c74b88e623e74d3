"""The report's future directions in compare: the new models, losses, Mixup and schedule."""

import pytest
import torch

from petseg_lib import compare
from petseg_lib.models import MODELS, build_model
from petseg_lib.training.losses import LOSSES, build_loss

NEW_MODELS = ("segformer_b0", "deeplabv3plus_resnet34", "lraspp_shufflenet_v2")


@pytest.mark.parametrize("name", NEW_MODELS)
def test_each_new_model_takes_one_training_step_on_a_64_px_batch_of_2(name):
    torch.manual_seed(0)
    model = build_model(name).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(2, 3, 64, 64)
    masks = torch.zeros(2, 1, 64, 64)
    masks[:, :, 16:48, 16:48] = 1
    loss = build_loss("bce_iou")(model(images), masks)
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), parameter_name
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_compare_names_every_model_and_loss():
    assert set(MODELS) <= set(compare.LABELS)
    assert {"iou", "bce_iou"} <= set(compare.LOSS_LABELS)
    assert (compare.label("segformer_b0", True, "bce_iou")
            == "SegFormer-B0 + augmentation + BCE+IoU loss")
    assert all(loss in LOSSES for loss in compare.LOSS_LABELS)


def test_compare_offers_the_schedules_and_augmentation_levels(capsys):
    with pytest.raises(SystemExit):
        compare.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--lr_schedule {constant,cosine,one_cycle,step}" in text
    assert "--augment_level {report,strong,mixup}" in text
    for name in NEW_MODELS:
        assert name in text


def test_compare_trains_and_scores_the_new_models_with_mixup_and_the_step_schedule(
        sample_root, tmp_path):
    shared = dict(data_path=str(sample_root), epochs=1, image_size=64, limit=4, batch_size=2,
                  valid_limit=2, lr_schedule="step", augment_level="mixup",
                  checkpoint_dir=str(tmp_path / "c"), output_dir=str(tmp_path / "out"))
    rows = compare.run_comparison(report_dir=tmp_path / "cmp", test_limit=2, models=NEW_MODELS,
                                  losses=("bce_iou",), augments=(True,), **shared)
    assert [r["label"] for r in rows] == [
        "SegFormer-B0 + augmentation + BCE+IoU loss",
        "DeepLabv3+ ResNet34 + augmentation + BCE+IoU loss",
        "LR-ASPP ShuffleNetV2 + augmentation + BCE+IoU loss"]
    assert rows[0]["run_name"] == "segformer_b0_aug_mixup_bce_iou"
    for row in rows:
        assert 0 <= row["dice"] <= 1 and len(row["history"]["train_loss"]) == 1
    saved = torch.load(tmp_path / "c" / "segformer_b0_aug_mixup_bce_iou_best.pth",
                       weights_only=True)
    assert saved["model_name"] == "segformer_b0"
    assert (saved["config"]["lr_schedule"], saved["config"]["augment_level"]) == ("step",
                                                                                   "mixup")
