"""Inference: rebuilding a model from a checkpoint, and the inference command line."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from petseg_lib.cli import run_cli
from petseg_lib.data.masks import BACKGROUND, PET
from petseg_lib.data.oxford_pet import load_dataset, original_size_dataset
from petseg_lib.evaluation.evaluate import evaluate_at_original_size, scores_at_original_size
from petseg_lib.evaluation.predict import probabilities_at_model_size
from petseg_lib.inference import load_model, predict
from petseg_lib.inference import main as inference_main
from petseg_lib.models import build_model
from petseg_lib.train import train
from petseg_lib.training.checkpoint import (
    FORMAT,
    CheckpointError,
    describe_training_data,
    training_data,
)

from .conftest import RedIsPet, tiny_config, write_dataset


def write_checkpoint(path: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    """An untrained narrow UNet saved as petseg_lib.train saves it, with CHANGES, less DROP."""
    model = build_model("unet", base_channels=4)
    state = {"format": FORMAT, "model_name": "unet", "model_kwargs": dict(model.config),
             "state_dict": model.state_dict(), "image_size": 32, "epoch": 1, "metrics": {},
             "config": {}, **changes}
    torch.save({key: value for key, value in state.items() if key not in drop}, path)
    return path


def write_mask_folder(root: Path, n: int = 4, size: tuple[int, int] = (50, 38)) -> Path:
    """Your own folder of N test photos whose red pixels are exactly the pets of their masks."""
    width, height = size
    for i in range(n):
        pet = np.zeros((height, width), bool)
        pet[5 + i:30, 8:40 - i] = True
        pixels = np.zeros((height, width, 3), np.uint8)
        pixels[..., 0] = 255 * pet
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(pixels).save(root / "images" / f"pet{i}.png")
        Image.fromarray(255 * pet.astype(np.uint8)).save(root / "masks" / f"pet{i}.png")
    (root / "test.txt").write_text("".join(f"pet{i}\n" for i in range(n)))
    return root


def test_load_model_round_trip(sample_root, tmp_path):
    config = tiny_config(sample_root, tmp_path, epochs=1, run_name="rt")
    train(config)
    model = load_model(tmp_path / "ckpt/rt_best.pth")
    state = torch.load(tmp_path / "ckpt/rt_best.pth", weights_only=False)["state_dict"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])
    assert not model.training and model.image_size == 32
    assert model.trained_on == ("trained on the offline toy sample (8 drawn pets): expect poor "
                                "masks on real photos")  # tiny_config's limit of 8
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
    assert ("(inc.double_conv.0.weight has shape (4, 3, 3, 3) in the file, (8, 3, 3, 3) in "
            "the model)") in str(info.value)
    state["model_kwargs"]["base_channels"] = 4  # back to the trained width
    del state["state_dict"]["outc.bias"]
    state["state_dict"].update({f"final_conv.{i}.weight": torch.ones(1) for i in range(5)})
    torch.save(state, tmp_path / "other_layers.pth")  # as from another version of the model
    with pytest.raises(CheckpointError, match="do not fit") as info:
        load_model(tmp_path / "other_layers.pth")
    assert ("(1 missing key: outc.bias; 5 unexpected keys: final_conv.0.weight, "
            "final_conv.1.weight, final_conv.2.weight and 2 more)") in str(info.value)


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


@pytest.mark.parametrize("drop, changes, words", [
    ((), {"model_kwargs": {"base_channels": 4, "dropout": 0.1}}, "dropout"),
    ((), {"model_kwargs": [1, 2]}, "model_kwargs"),
    (("model_kwargs",), {}, "model_kwargs"),
    ((), {"model_kwargs": {"base_channels": -3}}, "base_channels must be"),
    ((), {"image_size": "64"}, "image_size is '64'"),
    ((), {"image_size": 16}, "image_size is 16"),
    ((), {"image_size": 10**6}, "image_size is 1000000, not a whole number from 32 to 4096"),
    ((), {"state_dict": "weights"}, "its state_dict is 'weights', not a dict of tensors"),
    ((), {"model_name": "resnet34_unet", "model_kwargs": {"pretrained_encoder": True}},
     "downloaded weights \\(pretrained_encoder\\)"),
])
def test_altered_model_entries_give_one_checkpoint_error(tmp_path, drop, changes, words):
    path = write_checkpoint(tmp_path / "altered.pth", drop, **changes)
    with pytest.raises(CheckpointError, match=words) as info:
        load_model(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("size, words", [("16", "--image_size must be at least 32, not 16"),
                                         ("100000", "--image_size must be at most 4096")])
def test_inference_refuses_an_image_size_it_cannot_run_at(tmp_path, capsys, size, words):
    args = ["--model", str(write_checkpoint(tmp_path / "m.pth")), "--image_size", size]
    with pytest.raises(SystemExit):
        run_cli(inference_main, args)
    assert words in capsys.readouterr().err


def test_a_file_asking_for_a_giant_model_is_refused_before_any_memory_is_taken(tmp_path,
                                                                              monkeypatch):
    # 10**5 channels: a UNet of 7.6e13 parameters, which would need 300 TB to build.
    path = write_checkpoint(tmp_path / "giant.pth", model_kwargs={"base_channels": 10**5})
    built = []
    monkeypatch.setattr("petseg_lib.training.checkpoint.build_model",
                        lambda *args, **kwargs: built.append(torch.empty(0).device.type)
                        or build_model(*args, **kwargs))
    with pytest.raises(CheckpointError, match=r"inc.double_conv.0.weight has shape \(4, 3, 3, 3\) "
                                              r"in the file, \(100000, 3, 3, 3\) in the model"):
        load_model(path)
    assert built == ["meta"]  # only the outline was built, on the device that allocates nothing


def test_weights_that_are_not_finite_are_refused(tmp_path):
    weights = build_model("unet", base_channels=4).state_dict()
    weights["up2.conv.double_conv.1.running_var"][3] = float("inf")
    path = write_checkpoint(tmp_path / "diverged.pth", state_dict=weights)
    with pytest.raises(CheckpointError, match="NaN or infinite") as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert "up2.conv.double_conv.1.running_var" in str(info.value)


def test_scores_at_original_size_on_your_own_mask_folder(tmp_path, capsys):
    folder = write_mask_folder(tmp_path / "mine")
    scores = inference_main(["--model", str(write_checkpoint(tmp_path / "m.pth")),
                             "--data_path", str(folder), "--at_original_size", "--output_dir",
                             str(tmp_path / "inf"), "--device", "cpu"])
    assert "at each image's original size, threshold 0.5, 4 images" in capsys.readouterr().out
    assert 0.0 <= scores["dice"] <= 1.0 and len(list((tmp_path / "inf").glob("*.png"))) == 4
    originals = original_size_dataset(load_dataset(folder, "test", 32))
    sample = originals[1]
    assert sample["image"].shape == (38, 50, 3) and sample["trimap"].shape == (38, 50)
    assert set(np.unique(sample["trimap"]).tolist()) == {PET, BACKGROUND}
    perfect = evaluate_at_original_size(RedIsPet(), originals, 32)  # red is exactly the pet
    assert len(originals) == 4 and perfect["dice"] > 0.95


class CountingReads(torch.utils.data.Dataset):
    """DATASET, counting how often its samples are read (each read decodes a photo)."""

    def __init__(self, dataset):
        self.dataset, self.reads = dataset, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        sample = self.dataset[index]  # past the end: IndexError, which ends a for loop
        self.reads += 1
        return sample


def test_several_boundary_policies_score_in_one_pass_over_the_photos(sample_root):
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4).eval()  # random weights: imperfect masks
    originals = CountingReads(original_size_dataset(load_dataset(sample_root, "test", 32), 6))
    policies = ("pet", "background", "ignore")
    together = scores_at_original_size(model, originals, 32, policies)
    assert originals.reads == 6  # each photo read and predicted once, for all three
    for boundary in policies:
        alone = evaluate_at_original_size(model, originals, 32, boundary=boundary)
        assert together[boundary] == alone, boundary
    assert len({together[b]["dice"] for b in policies}) == 3  # the policies do differ here


def test_a_checkpoint_says_in_one_line_what_it_was_trained_on(tmp_path, sample_root):
    real = write_dataset(tmp_path / "my-pets", n_trainval=4, n_test=2)
    assert (describe_training_data({"training_data": training_data(real, 340)})
            == "trained on 340 real photos from my-pets")
    toy = describe_training_data({"training_data": training_data(sample_root, 36)})
    assert toy == ("trained on the offline toy sample (36 drawn pets): expect poor masks on "
                   "real photos")
    # Checkpoints saved before they recorded their data: the configuration's data_path.
    assert (describe_training_data({"config": {"data_path": str(real)}})
            == "trained on real photos from my-pets")
    assert describe_training_data({"config": {"data_path": str(sample_root)}}).startswith(
        "trained on the offline toy sample (drawn pets)")
    assert "does not record" in describe_training_data({"config": {"data_path": None}})
    for state in ({}, {"training_data": training_data(real, 3)}, {"config": {}}):
        assert "\n" not in describe_training_data(state)
