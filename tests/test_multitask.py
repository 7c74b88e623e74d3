"""Multi-task learning: species and breed labels, the class head, its loss, history, checkpoints."""

import json
import warnings

import pytest
import torch
from torch import nn

from petseg_lib.data.oxford_pet import collate, load_dataset
from petseg_lib.data.pet_labels import AUX_TASKS, read_labels
from petseg_lib.inference import load_model
from petseg_lib.models import build_model
from petseg_lib.train import train
from petseg_lib.training.checkpoint import model_from_checkpoint, read_checkpoint
from petseg_lib.training.config import TrainConfig, parse_args
from petseg_lib.training.losses import build_loss
from petseg_lib.training.multitask import ClassHead, MultiTask, deepest_features, with_aux_head
from petseg_lib.training.step import forward_loss

from .conftest import tiny_config, write_dataset
from .test_mask_folder import quietly, write_folder


def list_columns(root) -> dict[str, list[int]]:
    """NAME -> [CLASS-ID, SPECIES, BREED-ID] of each line of ROOT's list.txt, read plainly."""
    rows = {}
    for line in (root / "annotations" / "list.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, *numbers = line.split()
            rows[name] = [int(n) for n in numbers]
    return rows


def check_labels_of(root) -> None:
    """Every sample of every split of ROOT carries list.txt's species and breed, from 0."""
    rows = list_columns(root)
    for mode in ("train", "valid", "test"):
        for task, column in (("species", 1), ("breed", 0)):
            dataset = load_dataset(root, mode, 32).use_labels(task)
            for index in range(len(dataset)):
                sample = dataset[index]
                assert sample["label"] == rows[sample["name"]][column] - 1
    cats = {name for name, (_, species, _) in rows.items() if species == 1}
    assert cats == {name for name in rows if name[0].isupper()}  # the file's own rule


def test_sample_labels_come_from_list_txt(sample_root):
    check_labels_of(sample_root)
    species = set(read_labels(sample_root, "species").values())
    assert species == {0, 1}  # toy cats and toy dogs


def test_mini_labels_come_from_list_txt(mini_root):
    check_labels_of(mini_root)


def test_ordinary_samples_have_no_label_and_batches_stack_labels(sample_root):
    dataset = load_dataset(sample_root, "train", 32)
    assert "label" not in dataset[0]
    labelled = load_dataset(sample_root, "train", 32, augment=True).use_labels("breed")
    samples = [labelled[i] for i in range(6)]  # plain and augmented copies alike
    assert samples[0]["label"] == samples[1]["label"]  # the same photo, index 2i and 2i + 1
    batch = collate(samples)
    assert batch["label"].dtype == torch.int64
    assert batch["label"].tolist() == [s["label"] for s in samples]


def test_a_photo_missing_from_the_lists_is_named_in_one_error(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=10, n_test=2)  # no list.txt
    ann = root / "annotations"
    text = ann.joinpath("trainval.txt").read_text()
    ann.joinpath("trainval.txt").write_text(text.replace("Cat_3 1 1 1", "Cat_3"))  # name alone
    dataset = load_dataset(root, "train", 32)
    with pytest.raises(ValueError, match=r"1 of 9 photos .* no species .*: Cat_3;") as err:
        dataset.use_labels("species")
    assert "\n" not in str(err.value)
    assert read_labels(root, "species")["Cat_0"] == 0  # trainval.txt's columns serve


def test_labels_out_of_range_or_contradicting_are_refused(tmp_path):
    root = write_dataset(tmp_path / "pets", n_trainval=4, n_test=2)
    ann = root / "annotations"
    ann.joinpath("list.txt").write_text("Cat_0 38 1 1\n")
    with pytest.raises(ValueError, match="Cat_0 has breed '38', not a number from 1 to 37"):
        read_labels(root, "breed")
    ann.joinpath("list.txt").write_text("Cat_0 1 2 1\n")  # trainval.txt says species 1
    with pytest.raises(ValueError, match="Cat_0 has species 1, but 2"):
        read_labels(root, "species")


def test_a_mask_folder_refuses_aux_task_in_one_line(tmp_path):
    root = write_folder(tmp_path / "mine", [f"pet{i}" for i in range(12)])
    dataset, _ = quietly(load_dataset, root, "train", 32)
    with pytest.raises(ValueError, match="--aux_task species needs species and breed labels"
                       ) as err:
        dataset.use_labels("species")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, settings, channels, size", [
    ("unet", {"base_channels": 4}, 64, 4),  # (N, 16c, H/16, W/16)
    ("resnet34_unet", {"base_channels": 8}, 64, 2),  # (N, 8b, H/32, W/32)
    ("segformer_b0", {}, 256, 2),  # (N, 256, H/32, W/32)
])
def test_head_reads_the_deepest_features_of_each_model(name, settings, channels, size):
    torch.manual_seed(0)
    segmenter = build_model(name, **settings).eval()
    images = torch.rand(3, 3, 64, 64)
    seen = []
    layer, counted = deepest_features(segmenter)
    layer.register_forward_hook(lambda module, inputs, output: seen.append(output))
    with torch.no_grad():
        alone = segmenter(images)
        model = MultiTask(segmenter, AUX_TASKS["breed"]).eval()
        logits, class_logits = model(images)
    assert counted == channels and seen[0].shape == (3, channels, size, size)
    assert torch.equal(logits, alone)  # the segmentation is the model's own
    assert class_logits.shape == (3, 37)
    assert torch.allclose(class_logits, model.head(seen[-1]))
    assert model.features is None  # nothing kept between batches


def test_class_head_pools_then_maps_linearly():
    head = ClassHead(4, 2)
    features = torch.rand(2, 4, 3, 5)
    expected = features.mean(dim=(2, 3)) @ head.fc.weight.T + head.fc.bias
    assert torch.allclose(head(features), expected, atol=1e-6)


def test_the_loss_adds_aux_weight_times_cross_entropy(sample_root):
    torch.manual_seed(0)
    batch = collate([load_dataset(sample_root, "train", 32).use_labels("species")[i]
                     for i in range(4)])
    model = with_aux_head(build_model("unet", base_channels=4), "species").eval()
    criterion = build_loss("bce")
    losses = {w: forward_loss(model, batch, criterion, torch.device("cpu"), aux_weight=w)[2]
              for w in (0.0, 0.5, 1.0)}
    plain = criterion(model.segmenter(batch["image"]), batch["mask"])
    _, class_logits = model(batch["image"])
    cross_entropy = nn.functional.cross_entropy(class_logits, batch["label"])
    assert torch.allclose(losses[0.0], plain)
    assert torch.allclose(losses[0.5], plain + 0.5 * cross_entropy)
    assert torch.allclose(losses[1.0] - losses[0.0], cross_entropy)
    *_, none = forward_loss(model.segmenter, batch, criterion, torch.device("cpu"))
    assert none is None  # a segmentation-only model gives no class logits


def test_training_with_aux_task_records_accuracy_and_loads_for_inference(sample_root, tmp_path):
    config = tiny_config(sample_root, tmp_path, aux_task="species", run_name="m",
                         lr_schedule="constant")
    history = train(config)
    for key in ("train_accuracy", "valid_accuracy"):
        assert len(history[key]) == 2 and all(0 <= a <= 1 for a in history[key])
    assert json.loads((tmp_path / "out/m_history.json").read_text()) == history
    best = tmp_path / "ckpt/m_best.pth"
    state = read_checkpoint(best)
    assert state["config"]["aux_task"] == "species"
    assert state["aux_head"]["fc.weight"].shape == (2, 16 * 4)
    model = load_model(best, "cpu")  # inference: the segmenter alone
    images = torch.rand(2, 3, 32, 32)
    assert model(images).shape == (2, 1, 32, 32)
    segmenter = model_from_checkpoint(state, best)
    assert not any(key.startswith("head") for key in segmenter.state_dict())
    resumed = train(TrainConfig(**{**vars(config), "epochs": 3, "resume": True}))
    assert resumed["train_accuracy"][:2] == history["train_accuracy"]
    assert len(resumed["valid_accuracy"]) == 3


def test_a_plain_run_records_no_accuracy(sample_root, tmp_path):
    history = train(tiny_config(sample_root, tmp_path, epochs=1))
    assert "train_accuracy" not in history and "valid_accuracy" not in history


def test_training_on_a_mask_folder_with_aux_task_is_refused(tmp_path):
    root = write_folder(tmp_path / "mine", [f"pet{i}" for i in range(12)])
    with warnings.catch_warnings(), pytest.raises(ValueError, match="which has none"):
        warnings.simplefilter("ignore")
        train(tiny_config(root, tmp_path, aux_task="breed"))


@pytest.mark.parametrize("settings, message", [
    (dict(aux_task="colour"), "aux_task must be one of species, breed"),
    (dict(aux_task="species", model="lraspp_mobilenet_v3"), "aux_task needs a model with a"),
    (dict(aux_weight=-0.1), "aux_weight must be a number from 0 to 100"),
    (dict(aux_weight="high"), "aux_weight must be a number from 0 to 100"),
])
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(ValueError, match=message) as err:
        TrainConfig(**settings)
    assert "\n" not in str(err.value)


def test_other_models_have_no_deepest_features():
    with pytest.raises(ValueError, match="has no class head"):
        with_aux_head(build_model("lraspp_mobilenet_v3"), "species")


def test_command_line_options_and_run_names():
    config = parse_args(["--quick", "--aux_task", "breed", "--aux_weight", "0.5"])
    assert (config.aux_task, config.aux_weight) == ("breed", 0.5)
    assert parse_args([]).aux_task is None
    assert TrainConfig(aux_task="species").run_name == "unet_species"
    with pytest.raises(SystemExit):
        parse_args(["--aux_task", "colour"])


def test_compare_names_each_configuration_by_its_head():
    from petseg_lib.compare import label, make_config

    plain, species = (make_config("unet", False, quick=True, aux_task=task)
                      for task in (None, "species"))
    assert (plain.aux_task, species.aux_task) == (None, "species")
    assert plain.run_name != species.run_name  # never each other's checkpoint
    assert label("unet", False, aux_task="breed") == "UNet + breed head"


def test_training_curves_show_the_class_accuracy():
    from petseg_lib.evaluation.figures import plot_training_metrics

    history = {"train_loss": [1.0, 0.5], "valid_loss": [1.1, 0.6], "train_dice": [0.5, 0.7],
               "valid_dice": [0.4, 0.6], "train_accuracy": [0.6, 0.9],
               "valid_accuracy": [0.5, 0.8]}
    dice_axis = plot_training_metrics(history).axes[1]
    curves = {line.get_label(): list(line.get_ydata()) for line in dice_axis.get_lines()}
    assert curves["train class accuracy"] == history["train_accuracy"]
    assert curves["valid class accuracy"] == history["valid_accuracy"]
