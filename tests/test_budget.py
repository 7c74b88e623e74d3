"""Runs whose time does not grow with the dataset: quick mode's and the laptop recipe's budget."""

import numpy as np
import pytest
import torch
from PIL import Image

from petseg_lib.data.oxford_pet import SimpleOxfordPetDataset
from petseg_lib.train import train
from petseg_lib.training.config import (
    CONFIGURATION_SETTINGS,
    QUICK_EPOCH_SAMPLES,
    QUICK_MODELS,
    QUICK_VALID_IMAGES,
    RECIPES,
    TrainConfig,
    parse_args,
    quick_config,
    recipe_config,
)
from petseg_lib.training.loaders import make_loaders

from .conftest import tiny_config, write_dataset
from .test_bench import load_benchmark


def test_an_epoch_draws_epoch_samples_from_the_whole_split(tiny_root, tmp_path):
    config = tiny_config(tiny_root, tmp_path, limit=None, epoch_samples=10, batch_size=5)
    train_loader, _ = make_loaders(config, tiny_root)
    split_size = len(train_loader.dataset)
    epochs = [[n for batch in train_loader for n in batch["name"]] for _ in range(6)]
    assert all(len(epoch) == 10 and len(set(epoch)) == 10 for epoch in epochs)  # no repeats
    assert len({n for epoch in epochs for n in epoch}) > 10  # each epoch is a fresh draw
    # More samples than the split: whole shuffles in a row, then part of one.
    config = tiny_config(tiny_root, tmp_path, limit=None, epoch_samples=2 * split_size + 2)
    train_loader, _ = make_loaders(config, tiny_root)
    epoch = [n for batch in train_loader for n in batch["name"]]
    assert len(epoch) == 2 * split_size + 2
    assert sorted(epoch[:split_size]) == sorted(epoch[split_size:2 * split_size])


def test_valid_limit_spreads_over_the_split(tiny_root, tmp_path):
    config = tiny_config(tiny_root, tmp_path, limit=None, valid_limit=2)
    _, valid_loader = make_loaders(config, tiny_root)
    full = SimpleOxfordPetDataset(tiny_root, "valid", 32).names
    assert valid_loader.dataset.names == [full[0], full[-1]]


def test_a_budget_run_takes_the_same_steps_on_a_dataset_ten_times_larger(tmp_path, capsys):
    small = write_dataset(tmp_path / "small", n_trainval=40, n_test=2)
    large = load_benchmark("quick_budget").linked_copy(small, tmp_path / "large", 10)
    steps = {}
    for name, root in (("small", small), ("large", large)):
        config = tiny_config(root, tmp_path / name, limit=None, epoch_samples=12, batch_size=4,
                             valid_limit=3, epochs=2)
        train_loader, valid_loader = make_loaders(config, root)
        steps[name] = (len(train_loader), len(valid_loader.dataset))
        history = train(config)
        assert len(history["valid_dice"]) == 2
    assert steps["small"] == steps["large"] == (3, 3)
    out = capsys.readouterr().out
    assert "Each epoch draws 12 of the 36 training samples" in out
    assert "Each epoch draws 12 of the 360 training samples" in out


def test_quick_mode_has_a_fixed_budget(monkeypatch):
    quick = quick_config(model="resnet34_unet", augment=True)
    assert quick.epoch_samples == QUICK_EPOCH_SAMPLES and quick.valid_limit == QUICK_VALID_IMAGES
    assert parse_args(["--quick", "--epoch_samples", "50"]).epoch_samples == 50
    assert TrainConfig().epoch_samples is None  # the report's epochs see every image
    with pytest.raises(ValueError, match="epoch_samples must be a whole number"):
        TrainConfig(epoch_samples=0)


def test_each_quick_model_trains_at_its_own_rate_unless_told_otherwise():
    rates = {model: quick_config(model=model).learning_rate for model in QUICK_MODELS}
    assert rates == {model: settings[2] for model, settings in QUICK_MODELS.items()}
    assert rates["resnet34_unet"] != rates["unet"]  # chosen per model (benchmarks/README.md)
    assert quick_config(model="resnet34_unet", augment=True).learning_rate == rates["resnet34_unet"]
    given = parse_args(["--quick", "--model", "resnet34_unet", "--learning_rate", "0.02"])
    assert given.learning_rate == 0.02


def test_settings_chosen_per_configuration_and_explicit_values_win():
    plain, augmented = quick_config(model="unet"), quick_config(model="unet", augment=True)
    chosen = CONFIGURATION_SETTINGS
    assert (plain.weight_decay == chosen["quick", "unet", False]["weight_decay"]
            > augmented.weight_decay)
    assert quick_config(model="resnet34_unet").weight_decay == augmented.weight_decay
    schedules = {augment: quick_config(model="resnet34_unet", augment=augment).lr_schedule
                 for augment in (False, True)}
    assert schedules == {False: chosen["quick", "resnet34_unet", False]["lr_schedule"],
                         True: plain.lr_schedule} and plain.lr_schedule != schedules[False]
    laptop = {(m, a): recipe_config("laptop", model=m, augment=a).weight_decay
              for m in ("unet", "resnet34_unet") for a in (False, True)}
    assert laptop.pop(("unet", True)) == chosen["laptop", "unet", True]["weight_decay"]
    assert set(laptop.values()) == {RECIPES["laptop"]["all"]["weight_decay"]}
    assert quick_config(model="unet", weight_decay=0.1).weight_decay == 0.1  # explicit wins
    assert parse_args(["--quick", "--weight_decay", "0"]).weight_decay == 0
    assert parse_args(["--recipe", "laptop", "--augment", "--weight_decay", "0"]).weight_decay == 0
    longer = recipe_config("laptop", model="unet", augment=True)
    assert longer.epochs == CONFIGURATION_SETTINGS["laptop", "unet", True]["epochs"]
    assert longer.epochs > recipe_config("laptop", model="unet").epochs
    assert recipe_config("laptop", model="unet", augment=True, epochs=5).epochs == 5


@pytest.mark.parametrize("model", ["unet", "resnet34_unet"])
def test_the_laptop_recipe_and_explicit_flags(model):
    config = parse_args(["--recipe", "laptop", "--model", model, "--augment"])
    expected = {**RECIPES["laptop"]["all"], **RECIPES["laptop"][model],
                **CONFIGURATION_SETTINGS.get(("laptop", model, True), {})}
    for key, value in expected.items():
        assert getattr(config, key) == value, key
    assert config.augment and config.run_name.endswith("_laptop")
    assert parse_args(["--recipe", "laptop", "--epochs", "3"]).epochs == 3  # explicit wins
    assert parse_args(["--recipe", "laptop", "--no-keep_originals"]).keep_originals is False
    with pytest.raises(ValueError, match="give one of them"):
        parse_args(["--recipe", "laptop", "--quick"])
    with pytest.raises(ValueError, match="the laptop recipe is for unet, resnet34_unet"):
        recipe_config("laptop", model="deeplabv3_resnet50")


def test_weight_decay_is_checked_and_shrinks_unused_weights():
    with pytest.raises(ValueError, match="weight_decay must be a number"):
        TrainConfig(weight_decay=-0.1)
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight], lr=0.1, weight_decay=0.5, decoupled_weight_decay=True)
    weight.grad = torch.zeros(3)
    optimizer.step()  # no gradient: decoupled decay alone, 1 - lr * decay
    assert torch.allclose(weight, torch.full((3,), 0.95))


def test_without_originals_every_training_sample_is_augmented(tiny_root):
    torch.manual_seed(0)
    kept = SimpleOxfordPetDataset(tiny_root, "train", 32, augment=True)
    every = SimpleOxfordPetDataset(tiny_root, "train", 32, augment=True, keep_originals=False)
    plain = SimpleOxfordPetDataset(tiny_root, "train", 32)
    assert len(every) == len(kept) == 2 * len(plain)
    assert torch.equal(kept[0]["image"], plain[0]["image"])
    assert not torch.equal(every[0]["image"], plain[0]["image"])


def test_large_photos_are_decoded_small_with_image_and_trimap_aligned(tmp_path):
    root = write_dataset(tmp_path / "big", n_trainval=10, n_test=2)
    name = "Cat_0"  # a 1000 x 800 photo: white pet square on black, trimap to match
    image = np.zeros((800, 1000, 3), np.uint8)
    image[200:600, 250:750] = 255
    trimap = np.full((800, 1000), 2, np.uint8)
    trimap[200:600, 250:750] = 1
    Image.fromarray(image).save(root / "images" / f"{name}.jpg", quality=95)
    Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
    ds = SimpleOxfordPetDataset(root, "train", 64)
    decoded, decoded_trimap, _ = ds._decode(ds.names.index(name))
    assert decoded.shape[-2:] == decoded_trimap.shape[-2:] == (200, 250)  # 1/4 of the photo
    sample = ds[ds.names.index(name)]
    assert sample["image"].shape == (3, 64, 64)
    agree = ((sample["image"].mean(0) > 0.5) == sample["mask"][0].bool()).float().mean()
    assert agree > 0.97


def test_under_torchrun_each_process_reads_its_share_and_says_epoch_samples_is_unused(
        tiny_root, tmp_path, monkeypatch, capsys):
    from torch.utils.data import DistributedSampler

    from petseg_lib.training import distributed

    monkeypatch.setattr(distributed, "train_sampler",
                        lambda dataset, seed: DistributedSampler(dataset, num_replicas=2, rank=0,
                                                                 seed=seed))
    config = tiny_config(tiny_root, tmp_path, limit=None, epoch_samples=4, batch_size=2)
    train_loader, _ = make_loaders(config, tiny_root)
    assert isinstance(train_loader.sampler, DistributedSampler)
    assert len(train_loader.sampler) == (len(train_loader.dataset) + 1) // 2  # half the split
    assert "epoch_samples=4 is not used" in capsys.readouterr().out
