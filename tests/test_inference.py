"""Inference: rebuilding a model from a checkpoint, and the inference command line."""

import pytest
import torch
from PIL import Image
from torch import nn

from petseg_lib.checkpoint import CheckpointError
from petseg_lib.inference import load_model, predict
from petseg_lib.inference import main as inference_main
from petseg_lib.oxford_pet import load_dataset
from petseg_lib.predict import probabilities_at_model_size
from petseg_lib.train import train

from .conftest import tiny_config, write_dataset


def test_load_model_round_trip(sample_root, tmp_path):
    config = tiny_config(sample_root, tmp_path, epochs=1, run_name="rt")
    train(config)
    model = load_model(tmp_path / "ckpt/rt_best.pth")
    state = torch.load(tmp_path / "ckpt/rt_best.pth", weights_only=False)["state_dict"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert not model.training and model.image_size == 32
    images = load_dataset(sample_root, "test", 32)[0]["image"][None]
    masks = predict(model, images)
    assert masks.shape == (1, 1, 32, 32) and set(masks.unique().tolist()) <= {0.0, 1.0}


def test_load_model_errors_name_the_problem(sample_root, tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_model(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_text("these are not weights")
    with pytest.raises(CheckpointError, match="not a petseg checkpoint"):
        load_model(junk)
    plain = tmp_path / "plain.pth"
    torch.save(nn.Linear(2, 2).state_dict(), plain)
    with pytest.raises(CheckpointError, match="not a petseg checkpoint"):
        load_model(plain)
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="m"))
    state = torch.load(tmp_path / "ckpt/m_best.pth", weights_only=False)
    state["model_kwargs"]["base_channels"] = 8
    torch.save(state, tmp_path / "mismatch.pth")
    with pytest.raises(CheckpointError, match="do not fit") as info:
        load_model(tmp_path / "mismatch.pth")
    assert "size mismatch for inc.double_conv.0.weight" in str(info.value)


def test_inference_on_a_split_without_ground_truth(sample_root, tmp_path, capsys):
    train(tiny_config(sample_root, tmp_path, epochs=1, run_name="nogt"))
    root = write_dataset(tmp_path / "nogt", n_trainval=2, n_test=3, test_trimaps=False)
    scores = inference_main(["--model", str(tmp_path / "ckpt/nogt_best.pth"), "--data_path",
                             str(root), "--output_dir", str(tmp_path / "inf")])
    assert scores is None
    assert "no ground truth" in capsys.readouterr().out
    figures = sorted((tmp_path / "inf").glob("*.png"))
    assert len(figures) == 3
    width, height = Image.open(figures[0]).size
    assert width < 2.5 * height  # two panels, not three


def test_probabilities_at_model_size_feed_each_model_its_training_size():
    model = nn.Conv2d(3, 1, kernel_size=3, padding=1)
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    images = torch.rand(2, 3, 64, 64)
    model.image_size = 64  # trained at the images' size: exactly the model's own output
    expected = torch.sigmoid(model(images)).detach()
    torch.testing.assert_close(probabilities_at_model_size(model, images), expected)
    model.image_size = 32  # trained at 32 px: it sees the images at 32 px, answers at 64
    probabilities = probabilities_at_model_size(model, images)
    assert seen[-1] == (2, 3, 32, 32) and probabilities.shape == (2, 1, 64, 64)
    small = torch.nn.functional.interpolate(images, size=(32, 32), mode="bilinear",
                                            antialias=True, align_corners=False)
    coarse = torch.sigmoid(model(small)).detach()  # (2, 1, 32, 32)
    torch.testing.assert_close(probabilities[..., ::2, ::2].mean(), coarse.mean(), atol=0.01,
                               rtol=0)
    assert not model.training  # evaluation mode
