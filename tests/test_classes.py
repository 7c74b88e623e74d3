"""Three classes (--classes 3): targets, the pet logit, per-class IoU, training and export."""

import numpy as np
import pytest
import torch

from petseg_lib.evaluation.evaluate import evaluate
from petseg_lib.evaluation.figures import show_class_predictions
from petseg_lib.evaluation.predict import predict_logits
from petseg_lib.inference import load_model
from petseg_lib.models import build_model
from petseg_lib.models.classes import ClassIoU, PetLogits, as_binary, pet_logits, training_target
from petseg_lib.train import train
from petseg_lib.training.checkpoint import RESUME_MUST_MATCH, resume_problem
from petseg_lib.training.config import TrainConfig, parse_command, quick_config, recipe_config
from petseg_lib.training.loaders import make_loaders

from .conftest import tiny_config


def test_pet_logit_is_the_logit_of_pet_plus_boundary():
    logits = torch.randn(2, 3, 5, 4) * 3
    probabilities = logits.softmax(dim=1)
    pet = probabilities[:, 0:1] + probabilities[:, 2:3]
    assert torch.allclose(torch.sigmoid(pet_logits(logits)), pet, atol=1e-6)
    one = torch.randn(2, 1, 5, 4)
    assert pet_logits(one) is one  # a binary model's logits pass unchanged


def test_training_target_is_the_class_of_each_pixel():
    trimap = torch.tensor([[[[1, 2], [3, 2]]]], dtype=torch.uint8)  # (1, 1, 2, 2)
    batch = {"trimap": trimap, "mask": (trimap != 2).float()}
    target = training_target(batch, 3)
    assert target.dtype == torch.long and target.tolist() == [[[0, 1], [2, 1]]]
    assert torch.equal(training_target(batch, 1), batch["mask"])


def test_class_iou_counts_each_class_over_all_pixels():
    trimap = torch.tensor([[[[1, 1, 2, 3]]]], dtype=torch.uint8)
    predicted = torch.tensor([0, 1, 1, 2])  # pet, background, background, boundary
    logits = torch.nn.functional.one_hot(predicted, 3).T.float().reshape(1, 3, 1, 4)
    meter = ClassIoU()
    meter.update(logits, trimap)
    scores = meter.compute()
    assert scores["class_iou"] == pytest.approx({"pet": 0.5, "background": 0.5,
                                                 "boundary": 1.0})
    assert scores["mean_iou"] == pytest.approx(2 / 3)


def test_three_classes_train_with_cross_entropy_and_nothing_else():
    assert TrainConfig(classes=3).loss == "ce" and TrainConfig().loss == "bce"
    assert quick_config(classes=3).loss == "ce" and quick_config().loss == "bce_dice"
    assert recipe_config("laptop", classes=3).loss == "ce"
    with pytest.raises(ValueError, match="classes=3 cannot train with loss 'dice'"):
        TrainConfig(classes=3, loss="dice")
    with pytest.raises(ValueError, match="classes=1 cannot train with loss 'ce'"):
        TrainConfig(loss="ce")
    with pytest.raises(ValueError, match="classes must be 1"):
        TrainConfig(classes=2)
    config, _ = parse_command(["--classes", "3", "--quick"])
    assert (config.classes, config.loss) == (3, "ce")


def test_a_three_class_run_trains_scores_each_class_and_reads_as_binary(sample_root, tmp_path,
                                                                        capsys):
    config = tiny_config(sample_root, tmp_path, classes=3, run_name="three")
    history = train(config)
    assert np.isfinite(history["valid_loss"]).all() and 0 <= history["valid_dice"][-1] <= 1
    assert "IoU per class: pet " in capsys.readouterr().out
    model = load_model(tmp_path / "ckpt" / "three_best.pth")
    assert model.config["out_channels"] == 3
    _, valid_loader = make_loaders(config, sample_root)
    batch = next(iter(valid_loader))
    assert predict_logits(model, batch["image"]).shape[1] == 1  # pet against background
    scores = evaluate(model, valid_loader, "cpu", torch.nn.CrossEntropyLoss())
    assert set(scores["class_iou"]) == {"pet", "background", "boundary"}
    assert scores["mean_iou"] == pytest.approx(np.mean(list(scores["class_iou"].values())))
    assert scores["loss"] > 0


def test_a_three_class_model_exports_and_predicts_as_binary():
    model = build_model("unet", out_channels=3, base_channels=4).eval()
    wrapped = as_binary(model)
    assert isinstance(wrapped, PetLogits) and as_binary(build_model("unet")) is not wrapped
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(wrapped(images), pet_logits(model(images)))


def test_a_run_saved_before_classes_existed_resumes_as_one_class():
    config = TrainConfig(epochs=3)
    saved = {name: getattr(config, name) for name in RESUME_MUST_MATCH if name != "classes"}
    assert resume_problem(saved, config) is None
    assert resume_problem(saved, TrainConfig(epochs=3, classes=3)) is not None


def test_three_classes_refuse_mixup():
    with pytest.raises(ValueError, match="Mixup blends two masks"):
        TrainConfig(classes=3, augment=True, augment_level="mixup")
    assert TrainConfig(classes=3, augment=True, augment_level="strong").loss == "ce"


def test_class_prediction_figure_shows_argmax_in_trimap_colours():
    images = torch.rand(2, 3, 8, 8)
    trimaps = torch.randint(1, 4, (2, 1, 8, 8), dtype=torch.uint8)
    logits = torch.nn.functional.one_hot(trimaps[:, 0].long() - 1, 3).permute(0, 3, 1, 2)
    fig = show_class_predictions(images, trimaps, logits.float(), title="t")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels[:3]] == ["Image", "True trimap", "Predicted classes"]
    shown = panels[2].images[0].get_array()
    assert np.array_equal(np.asarray(shown), trimaps[0, 0].numpy())  # a perfect prediction
