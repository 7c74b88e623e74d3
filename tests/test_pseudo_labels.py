"""Pseudo-labels: the labelled share, the two-threshold rule, the masked loss, the experiment."""

import pytest
import torch

from petseg_lib import pseudo_labels as pl
from petseg_lib.cli import run_cli
from petseg_lib.data import oxford_pet
from petseg_lib.data.formats import load_dataset
from petseg_lib.training import config
from petseg_lib.training.losses import LOSSES, build_loss
from petseg_lib.training.masked_loss import masked_loss
from petseg_lib.training.step import forward_loss
from tests.conftest import RedIsPet

BINARY_LOSSES = [name for name in LOSSES if name != "ce"]


def test_the_labelled_share_is_reproducible_and_nested():
    ten, again = pl.labelled_indices(340, 0.1, 0), pl.labelled_indices(340, 0.1, 0)
    quarter, other = pl.labelled_indices(340, 0.25, 0), pl.labelled_indices(340, 0.1, 1)
    assert ten == again and len(ten) == 34 and len(quarter) == 85
    assert ten == sorted(set(ten)) and all(0 <= i < 340 for i in ten)
    assert set(ten) <= set(quarter)  # a seed's 10 % is part of its 25 %
    assert other != ten  # another seed draws other photos
    assert pl.labelled_indices(5, 0.01, 0) != []  # at least one photo is labelled


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_a_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        pl.labelled_indices(10, fraction, 0)


def test_the_two_thresholds_keep_sure_pet_and_background_and_ignore_the_rest():
    probabilities = torch.tensor([[0.0, 0.05, 0.1, 0.11], [0.5, 0.89, 0.9, 1.0]])
    mask, ignore = pl.pseudo_label(probabilities, low=0.1, high=0.9)
    assert mask.dtype == torch.float32 and ignore.dtype == torch.bool
    assert mask.tolist() == [[0, 0, 0, 0], [0, 0, 1, 1]]  # pet: p >= high
    assert ignore.tolist() == [[False, False, False, True], [True, True, False, False]]
    wide, wide_ignore = pl.pseudo_label(probabilities, low=0.45, high=0.55)
    assert wide.tolist() == [[0, 0, 0, 0], [0, 1, 1, 1]]  # other thresholds, other pixels
    assert wide_ignore.tolist() == [[False] * 4, [True, False, False, False]]


@pytest.mark.parametrize("low, high", [(0.9, 0.1), (0.5, 0.5), (0.0, 0.9), (0.1, 1.0)])
def test_thresholds_out_of_order_or_range_are_refused(low, high):
    with pytest.raises(ValueError, match="0 < low < high < 1"):
        pl.pseudo_label(torch.rand(4), low, high)


@pytest.mark.parametrize("name", BINARY_LOSSES)
def test_the_masked_loss_does_not_see_the_ignored_pixels(name):
    torch.manual_seed(0)
    criterion = build_loss(name)
    logits = torch.randn(3, 1, 8, 8, requires_grad=True)
    targets = (torch.rand(3, 1, 8, 8) > 0.5).float()
    ignore = torch.rand(3, 1, 8, 8) > 0.6
    loss = masked_loss(criterion, logits, targets, ignore)
    loss.backward()
    assert logits.grad[ignore].abs().max() == 0 and logits.grad[~ignore].abs().max() > 0
    changed_logits = torch.where(ignore, torch.full_like(logits, 50.0), logits.detach())
    changed_targets = torch.where(ignore, 1 - targets, targets)
    changed = masked_loss(criterion, changed_logits, changed_targets, ignore)
    torch.testing.assert_close(changed, loss.detach())
    kept_ones = masked_loss(criterion, logits.detach(), targets, ~ignore & (targets == 1))
    assert not torch.isclose(kept_ones, loss.detach())  # what is kept does count


@pytest.mark.parametrize("name", BINARY_LOSSES)
def test_the_masked_loss_is_the_loss_when_nothing_is_ignored(name):
    torch.manual_seed(1)
    criterion = build_loss(name)
    logits, targets = torch.randn(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.3).float()
    nothing = torch.zeros_like(targets, dtype=torch.bool)
    torch.testing.assert_close(masked_loss(criterion, logits, targets, nothing),
                               criterion(logits, targets))


def test_every_pixel_ignored_gives_a_zero_loss_and_three_classes_are_refused():
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    everything = torch.ones_like(logits, dtype=torch.bool)
    for name in BINARY_LOSSES:
        loss = masked_loss(build_loss(name), logits, torch.ones_like(logits), everything)
        assert torch.isfinite(loss) and loss.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="cannot leave pixels out"):
        masked_loss(build_loss("ce"), logits, torch.ones_like(logits), everything)
    with pytest.raises(ValueError, match="ignore map"):
        masked_loss(build_loss("bce"), logits, torch.ones_like(logits), everything[:1])


def test_the_training_step_masks_a_batch_that_carries_an_ignore_map():
    torch.manual_seed(2)
    model, criterion = torch.nn.Conv2d(3, 1, 3, padding=1), build_loss("bce_dice")
    batch = {"image": torch.rand(2, 3, 8, 8), "mask": (torch.rand(2, 1, 8, 8) > 0.5).float()}
    plain = forward_loss(model, batch, criterion, torch.device("cpu"))[2]
    ignore = torch.rand(2, 1, 8, 8) > 0.5
    masked = forward_loss(model, {**batch, "ignore": ignore}, criterion, torch.device("cpu"))[2]
    logits = model(batch["image"])
    torch.testing.assert_close(plain, criterion(logits, batch["mask"]))
    torch.testing.assert_close(masked, masked_loss(criterion, logits, batch["mask"], ignore))
    assert not torch.isclose(plain, masked)


def test_pseudo_labels_are_predicted_once_at_the_training_size():
    images = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    images[0, 0] = 255  # red everywhere: sure pet
    images[1, 0, :, :4] = 128  # half of it about 0.5: unsure, the rest sure background
    photos = pl.predict_pseudo_labels(RedIsPet(), images, ["a", "b", "c"], 0.1, 0.9,
                                      batch_size=2)
    assert photos.masks[0].all() and not photos.masks[1:].any()
    assert photos.ignore[1, 0, :, :4].all() and not photos.ignore[1, 0, :, 4:].any()
    assert photos.kept() == pytest.approx(1 - 32 / (3 * 64))
    sample = photos[1]
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, 8, 8)
    assert sample["mask"].shape == sample["ignore"].shape == (1, 8, 8)
    assert sample["name"] == "b"


def read_trimaps(monkeypatch) -> list[str]:
    """The names whose trimaps the Oxford format reads from now on."""
    names, read = [], oxford_pet.read_trimap
    monkeypatch.setattr(oxford_pet, "read_trimap",
                        lambda path, *args: names.append(path.stem) or read(path, *args))
    return names


def test_only_the_labelled_photos_masks_are_read(sample_root, monkeypatch):
    photos = load_dataset(sample_root, "train", 32)
    labelled = pl.labelled_indices(len(photos.names), 0.25, 3)
    rest = sorted(set(range(len(photos.names))) - set(labelled))
    read = read_trimaps(monkeypatch)
    labelled_set = pl.LabelledPhotos(photos, labelled)
    samples = [labelled_set[i] for i in range(len(labelled_set))]
    images = pl.read_photos(photos, rest)
    assert sorted(set(read)) == sorted(photos.names[i] for i in labelled)
    assert images.shape == (len(rest), 3, 32, 32) and images.dtype == torch.uint8
    assert all(not s["ignore"].any() and s["mask"].shape == (1, 32, 32) for s in samples)
    assert [s["name"] for s in samples] == labelled_set.names


def tiny_settings(root, tmp_path, monkeypatch) -> pl.Settings:
    """Quick settings shrunk to seconds: 32 px, one epoch of 32 samples."""
    monkeypatch.setattr(config, "QUICK_EPOCH_SAMPLES", 32)
    return pl.Settings(root, quick=True, epochs=1, image_size=32, test_limit=4,
                       checkpoint_dir=str(tmp_path / "c"), output_dir=str(tmp_path / "out"))


def test_a_fraction_never_reads_the_labels_it_holds_out(sample_root, tmp_path, monkeypatch):
    settings = tiny_settings(sample_root, tmp_path, monkeypatch)
    train_names = load_dataset(sample_root, "train", 32).names
    held_out = set(train_names) - {train_names[i]
                                   for i in pl.labelled_indices(len(train_names), 0.25, 0)}
    read = read_trimaps(monkeypatch)
    run = pl.run_fraction(settings, 0.25, 0)
    assert read and not held_out & set(read)  # training, validation and test read theirs
    assert run["pseudo_labelled"] == len(held_out)
    assert run["labelled"] + run["pseudo_labelled"] == len(train_names)
    assert 0 <= run["labelled_only"] <= 1 and 0 <= run["with_pseudo"] <= 1
    assert (tmp_path / "c" / "unet_pseudo_25pc_pseudo_s0_quick_best.pth").is_file()


def test_the_command_writes_the_table_and_the_figure(sample_root, tmp_path, monkeypatch,
                                                    capsys):
    monkeypatch.setattr(config, "QUICK_EPOCH_SAMPLES", 32)
    out = tmp_path / "out"
    results = pl.main(["--quick", "--data_path", str(sample_root), "--epochs", "1",
                       "--image_size", "32", "--test_limit", "4", "--fractions", "0.25", "0.1",
                       "--seeds", "2", "--checkpoint_dir", str(tmp_path / "c"),
                       "--output_dir", str(out)])
    assert results["fractions"] == [0.1, 0.25] and len(results["runs"]) == 4
    assert len(results["every_label"]) == 2
    table = (out / "results.md").read_text()
    assert table in capsys.readouterr().out
    assert "over 2 seeds" in table and "at 32 px" in table
    for row in ("| 10 % |", "| 25 % |", "| 100 % (every label) |"):
        assert row in table
    every = pl.mean_std(results["every_label"])
    assert f"{every[0]:.4f} ± {every[1]:.4f}" in table
    figure = (out / "dice_by_fraction.png").read_bytes()
    assert figure.startswith(b"\x89PNG") and len(figure) > 10_000
    assert not list(out.glob(".*partial"))  # written atomically


@pytest.mark.parametrize("argv, message", [
    (["--fractions", "1.5"], "strictly between 0 and 1, not 1.5"),
    (["--fractions", "0.1", "0"], "strictly between 0 and 1, not 0.0"),
    (["--low", "0.9", "--high", "0.1"], "0 < low < high < 1"),
    (["--high", "1"], "0 < low < high < 1"),
    (["--seeds", "0"], "--seeds must be at least 1, not 0"),
])
def test_command_line_mistakes_are_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(pl.main, [*argv, "--output_dir", str(out), "--checkpoint_dir",
                          str(tmp_path / "c")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error:") and message in error
    assert not out.exists()  # refused before anything ran


def test_shared_settings_reach_every_run_and_given_scores_stand_for_every_label(
        sample_root, tmp_path, monkeypatch):
    settings = tiny_settings(sample_root, tmp_path, monkeypatch)
    settings.shared = {"epoch_samples": 16, "valid_limit": 4}
    config = settings.config("probe", 1)
    assert (config.epoch_samples, config.valid_limit, config.seed) == (16, 4, 1)
    with pytest.raises(ValueError, match="2 scores for 1 seeds"):
        pl.run_experiment(settings, [0.25], [0], every_label=[0.5, 0.6])
    results = pl.run_experiment(settings, [0.25], [0], every_label=[0.5])
    assert results["every_label"] == [0.5]
    assert not list((tmp_path / "c").glob("*_all_*")), "no run trained on every label"
    assert (tmp_path / "c" / "unet_pseudo_25pc_pseudo_s0_quick_best.pth").is_file()
    assert "| 100 % (every label) | all | 0.5000 ± 0.0000 |" in pl.markdown_table(results)
