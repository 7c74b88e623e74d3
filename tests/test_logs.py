"""Offline experiment logs: the CSV file, the TensorBoard events, the log that writes nothing."""

import csv
import sys

import pytest
import torch
from torch import nn

from petseg_lib.cli import UserError
from petseg_lib.data.oxford_pet import load_dataset
from petseg_lib.training.history import HISTORY_KEYS, new_history, record_epoch
from petseg_lib.training.logs import CSV_HEADER, first_samples, open_run_log, prediction_grid

HEADER = "epoch,train_loss,valid_loss,train_dice,valid_dice,learning_rate"


def numbers(epoch: int) -> tuple[float, float, float, float]:
    """Four made-up curve values for EPOCH (counted from 1), not round in binary."""
    return 1 / (epoch + 2), 1 / (epoch + 3), 1 - 1 / (epoch + 4), 1 - 1 / (epoch + 5)


def run(log, first: int, last: int, model=None, batch=None, multitask: bool = False) -> dict:
    """Log epochs FIRST..LAST as train() does (MULTITASK: with class accuracy); the history."""
    history = new_history()
    for epoch in range(first, last + 1):
        train_loss, valid_loss, train_dice, valid_dice = numbers(epoch)
        valid = {"loss": valid_loss, "dice": valid_dice, "accuracy": 1 / (epoch + 6)}
        record_epoch(history, train_loss, train_dice, valid,
                     1 / (epoch + 7) if multitask else None)
        log.epoch(epoch, history, 1e-3 / epoch, model, batch)
    return history


def read_csv(path) -> list[list[str]]:
    with path.open(newline="") as file:
        return list(csv.reader(file))


def rows_for(epochs) -> list[list[float]]:
    """The rows the CSV log should hold for EPOCHS, as numbers."""
    return [[epoch, *numbers(epoch), 1e-3 / epoch] for epoch in epochs]


def as_numbers(rows: list[list[str]]) -> list[list[float]]:
    return [[float(value) for value in row] for row in rows]


@pytest.fixture
def model() -> nn.Module:
    """A tiny model: one 1x1 convolution from 3 channels to 1 logit per pixel."""
    torch.manual_seed(0)
    return nn.Conv2d(3, 1, kernel_size=1)


@pytest.fixture
def batch() -> dict:
    """Six validation images 16x16, each with a square pet in the middle."""
    mask = torch.zeros(6, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1.0
    return {"image": torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)),
            "mask": mask}


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------

def test_csv_rows_equal_the_history(tmp_path):
    with open_run_log("csv", tmp_path / "logs", "unet") as log:
        history = run(log, 1, 3)
    rows = read_csv(tmp_path / "logs" / "unet_history.csv")
    assert ",".join(rows[0]) == HEADER == ",".join(CSV_HEADER)
    assert as_numbers(rows[1:]) == rows_for([1, 2, 3])  # exact: floats written in full
    for column, key in enumerate(HISTORY_KEYS, start=1):
        assert [float(row[column]) for row in rows[1:]] == history[key]


def test_a_multitask_run_logs_its_class_accuracy(tmp_path):
    with open_run_log("csv", tmp_path, "unet_species") as log:
        history = run(log, 1, 2, multitask=True)
    rows = read_csv(tmp_path / "unet_species_history.csv")
    assert rows[0] == [*CSV_HEADER[:-1], "train_accuracy", "valid_accuracy", "learning_rate"]
    assert [float(row[5]) for row in rows[1:]] == history["train_accuracy"] == [1 / 8, 1 / 9]
    assert [float(row[6]) for row in rows[1:]] == history["valid_accuracy"] == [1 / 7, 1 / 8]
    with open_run_log("csv", tmp_path, "unet_species") as log:  # resumed: appended, no warning
        run(log, 3, 3, multitask=True)
    assert len(read_csv(tmp_path / "unet_species_history.csv")) == 4


def test_csv_rows_are_on_disk_before_the_log_is_closed(tmp_path):
    log = open_run_log("csv", tmp_path, "unet")
    run(log, 1, 2)
    assert as_numbers(read_csv(tmp_path / "unet_history.csv")[1:]) == rows_for([1, 2])
    log.close()


def test_a_resumed_run_appends_its_rows(tmp_path):
    with open_run_log("csv", tmp_path, "unet") as log:
        run(log, 1, 2)
    with open_run_log("csv", tmp_path, "unet") as log:
        run(log, 3, 4)
    rows = read_csv(tmp_path / "unet_history.csv")
    assert ",".join(rows[0]) == HEADER
    assert as_numbers(rows[1:]) == rows_for([1, 2, 3, 4])


def test_a_new_run_starts_the_file_again(tmp_path):
    with open_run_log("csv", tmp_path, "unet") as log:
        run(log, 1, 3)
    with open_run_log("csv", tmp_path, "unet") as log:  # from epoch 1 again
        run(log, 1, 1)
    assert as_numbers(read_csv(tmp_path / "unet_history.csv")[1:]) == rows_for([1])


def test_a_run_resumed_from_an_earlier_epoch_drops_the_later_rows(tmp_path):
    with open_run_log("csv", tmp_path, "unet") as log:
        run(log, 1, 3)
    with open_run_log("csv", tmp_path, "unet") as log:  # the last checkpoint was epoch 1
        run(log, 2, 2)
    assert as_numbers(read_csv(tmp_path / "unet_history.csv")[1:]) == rows_for([1, 2])


def test_a_file_with_another_header_is_replaced_with_a_warning(tmp_path):
    path = tmp_path / "unet_history.csv"
    path.write_text("epoch,loss\n1,0.5\n")
    log = open_run_log("csv", tmp_path, "unet")
    with pytest.warns(UserWarning, match="another header"):
        run(log, 2, 2)
    log.close()
    rows = read_csv(path)
    assert ",".join(rows[0]) == HEADER
    assert as_numbers(rows[1:]) == rows_for([2])


# ---------------------------------------------------------------------------
# No log, unknown logs
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [None, "none"])
def test_no_log_writes_nothing(tmp_path, kind, model, batch):
    with open_run_log(kind, tmp_path / "logs", "unet") as log:
        run(log, 1, 2, model, batch)
    assert not (tmp_path / "logs").exists()
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_kind_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match="none, csv, tensorboard, not 'wandb'"):
        open_run_log("wandb", tmp_path, "unet")


def test_tensorboard_without_the_package_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(UserError, match=r'pip install -e "\.\[logs\]"'):
        open_run_log("tensorboard", tmp_path, "unet")


# ---------------------------------------------------------------------------
# TensorBoard
# ---------------------------------------------------------------------------

def cell(grid: torch.Tensor, row: int, column: int) -> torch.Tensor:
    """One 16x16 picture of a prediction grid (2 px of padding around each)."""
    top, left = 2 + 18 * row, 2 + 18 * column
    return grid[:, top:top + 16, left:left + 16]


@pytest.mark.parametrize("training", [True, False])
def test_prediction_grid_columns_and_training_mode(model, batch, training):
    model.train(training)
    with torch.no_grad():  # every logit above 0: the whole image is predicted as pet
        model.weight.zero_()
        model.bias.fill_(5.0)
    grid = prediction_grid(model, batch)
    assert model.training is training
    assert grid.shape == (3, 2 + 3 * 18, 2 + 4 * 18)  # 3 rows, 4 columns, 2 px padding
    for column in range(4):
        image = batch["image"][column]
        truth = image.clone()
        truth[:, 4:12, 4:12] = 0.0  # the pet filled black
        assert torch.equal(cell(grid, 0, column), image)
        assert torch.allclose(cell(grid, 1, column), truth)
        assert torch.equal(cell(grid, 2, column), torch.zeros(3, 16, 16))  # all pet: all black


def test_first_samples_leave_the_random_state_as_it_was(tiny_root):
    dataset = load_dataset(tiny_root, "valid", image_size=32)
    state = torch.get_rng_state()
    batch = first_samples(dataset)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(dataset) == 3  # fewer than 4: all of them
    assert batch["image"].shape == (3, 3, 32, 32) and batch["mask"].shape == (3, 1, 32, 32)
    assert torch.equal(batch["mask"][1], dataset[1]["mask"])


def test_tensorboard_scalars_and_image_read_back(tmp_path, model, batch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with open_run_log("tensorboard", tmp_path / "logs", "unet") as log:
        history = run(log, 1, 2, model, batch)
    events = EventAccumulator(str(tmp_path / "logs" / "unet"))
    events.Reload()
    tags = events.Tags()
    expected = {"loss/train": history["train_loss"], "loss/valid": history["valid_loss"],
                "dice/train": history["train_dice"], "dice/valid": history["valid_dice"],
                "learning_rate": [1e-3, 1e-3 / 2]}
    assert set(tags["scalars"]) == set(expected)
    for tag, values in expected.items():
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx(values, rel=1e-6)  # float32
    assert tags["images"] == ["valid/predictions"]
    images = events.Images("valid/predictions")
    assert [i.step for i in images] == [1, 2]
    assert (images[0].width, images[0].height) == (2 + 4 * 18, 2 + 3 * 18)
    assert images[0].encoded_image_string.startswith(b"\x89PNG")


def test_tensorboard_without_model_writes_only_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with open_run_log("tensorboard", tmp_path, "unet") as log:
        run(log, 1, 1)
    events = EventAccumulator(str(tmp_path / "unet"))
    events.Reload()
    assert len(events.Tags()["scalars"]) == 5 and events.Tags()["images"] == []


def test_tensorboard_draws_a_multitask_runs_accuracy(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with open_run_log("tensorboard", tmp_path, "unet_breed") as log:
        history = run(log, 1, 2, multitask=True)
    events = EventAccumulator(str(tmp_path / "unet_breed"))
    events.Reload()
    assert len(events.Tags()["scalars"]) == 7
    for tag, key in (("accuracy/train", "train_accuracy"), ("accuracy/valid", "valid_accuracy")):
        values = [s.value for s in events.Scalars(tag)]
        assert values == pytest.approx(history[key], rel=1e-6)
