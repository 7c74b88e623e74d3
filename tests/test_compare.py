"""The four-configuration comparison, on tiny runs of the sample dataset."""

import pytest
import torch

from petseg_lib import compare


def test_comparison_trains_scores_and_reports_then_reuses(sample_root, tmp_path, monkeypatch):
    shared = dict(data_path=str(sample_root), image_size=32, epochs=1, limit=8, batch_size=4,
                  checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "out"),
                  progress=False)
    rows = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                  **shared)
    assert [r["label"] for r in rows] == ["UNet", "ResNet34-UNet", "UNet + augmentation",
                                          "ResNet34-UNet + augmentation"]
    assert [r["run_name"] for r in rows] == ["unet_quick", "resnet34_unet_quick",
                                             "unet_aug_quick", "resnet34_unet_aug_quick"]
    for r in rows:
        for key in ("dice", "dice_pooled", "iou", "iou_pooled", "dice_no_boundary"):
            assert 0.0 <= r[key] <= 1.0
        assert r["iou"] <= r["dice"] + 1e-9  # IoU never exceeds Dice
        assert len(r["history"]["valid_dice"]) == 1
    table = (tmp_path / "cmp" / "results.md").read_text().splitlines()
    assert len(table) == 6 and table[2].startswith("| UNet |")
    assert f"{rows[0]['dice']:.4f}" in table[2]
    for name in ("test_scores.png", "validation_curves.png"):
        assert (tmp_path / "cmp" / name).stat().st_size > 1000

    def no_training(config):
        raise AssertionError(f"{config.run_name} was trained again")

    monkeypatch.setattr(compare, "train", no_training)
    again = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                   **shared)
    assert [r["dice"] for r in again] == pytest.approx([r["dice"] for r in rows])


def test_a_checkpoint_that_no_longer_fits_is_trained_again(sample_root, tmp_path, monkeypatch,
                                                           capsys):
    shared = dict(data_path=str(sample_root), image_size=32, epochs=1, limit=8, batch_size=4,
                  checkpoint_dir=str(tmp_path / "ckpt"), output_dir=str(tmp_path / "out"),
                  progress=False)
    compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4, **shared)
    # As if saved by an older version whose UNet was wider: the weights no longer fit.
    path = tmp_path / "ckpt" / "unet_quick_best.pth"
    state = torch.load(path, weights_only=False)
    state["model_kwargs"]["base_channels"] *= 2
    torch.save(state, path)

    trained, real_train = [], compare.train

    def recording_train(config):
        trained.append(config.run_name)
        return real_train(config)

    monkeypatch.setattr(compare, "train", recording_train)
    rows = compare.run_comparison(quick=True, report_dir=tmp_path / "cmp", test_limit=4,
                                  **shared)
    assert trained == ["unet_quick"]
    assert "unet_quick_best.pth cannot be reused" in capsys.readouterr().out
    assert all(0.0 <= r["dice"] <= 1.0 for r in rows)
