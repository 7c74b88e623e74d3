"""Tests of the offline sample dataset: layout, trimaps, determinism, difficulty, robustness."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from petseg_lib.data import __main__ as data
from petseg_lib.data import sample
from petseg_lib.data.sample import MARKER, ensure_sample_dataset, is_complete, make_sample_dataset
from petseg_lib.data.toy_pets import picture


def split_lines(path: Path) -> list[list[str]]:
    """The fields of every non-comment line of a split file."""
    return [line.split() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def names_of(root: Path, split: str) -> list[str]:
    return [fields[0] for fields in split_lines(root / "annotations" / f"{split}.txt")]


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ROOT: relative path -> (mtime in ns, contents)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------

def test_layout_and_split_files(sample_root):
    ann = sample_root / "annotations"
    images = {p.stem for p in (sample_root / "images").glob("*.jpg")}
    trimaps = {p.stem for p in (ann / "trimaps").glob("*.png")}
    listed = names_of(sample_root, "list")
    trainval, test = names_of(sample_root, "trainval"), names_of(sample_root, "test")

    counts = sample.read_marker(sample_root)
    assert len(listed) == len(set(listed)) == counts["n_trainval"] + counts["n_test"]
    assert images == trimaps == set(listed)
    assert (len(trainval), len(test)) == (counts["n_trainval"], counts["n_test"])
    assert not set(trainval) & set(test)
    assert set(trainval) | set(test) == set(listed)

    header = [line for line in (ann / "list.txt").read_text().splitlines() if line.startswith("#")]
    assert len(header) >= 3 and (ann / "list.txt").read_text().startswith("#Image CLASS-ID")
    assert not (ann / "trainval.txt").read_text().startswith("#")

    breeds = {}
    for name, class_id, species, breed_id in split_lines(ann / "list.txt"):
        breed = name.rsplit("_", 1)[0]
        # Cats are capitalised (species 1), dogs lower-case (species 2), as in the official set.
        assert species == ("1" if name[0].isupper() else "2")
        breeds.setdefault(breed, set()).add((class_id, species, breed_id))
    assert len(breeds) == 4 and all(len(ids) == 1 for ids in breeds.values())
    assert {species for ids in breeds.values() for _, species, _ in ids} == {"1", "2"}


def test_images_and_trimaps(sample_root):
    ann = sample_root / "annotations"
    orientations, values, fractions = set(), set(), []
    for name in names_of(sample_root, "list"):
        with Image.open(sample_root / "images" / f"{name}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            size = im.size
        assert 200 <= min(size) and max(size) <= 500
        orientations.add("landscape" if size[0] > size[1] else "portrait")

        with Image.open(ann / "trimaps" / f"{name}.png") as tm:
            assert tm.format == "PNG" and tm.mode == "L" and tm.size == size
            trimap = np.asarray(tm)
        assert set(np.unique(trimap).tolist()) == {1, 2, 3}, name
        values |= set(np.unique(trimap).tolist())
        fractions.append(float((trimap != 2).mean()))

        # The band (3) separates pet (1) from background (2): they never touch ...
        pet, background = trimap == 1, trimap == 2
        for a, b in [(pet, background), (background, pet)]:
            assert not (a[1:] & b[:-1]).any() and not (a[:, 1:] & b[:, :-1]).any(), name
        # ... and it is a line a few pixels wide: its area over the length of its outer edge.
        edge = (background[1:] != background[:-1]).sum() + (background[:, 1:]
                                                            != background[:, :-1]).sum()
        assert 2 <= (trimap == 3).sum() / edge <= 6, name

    assert orientations == {"landscape", "portrait"}
    assert values == {1, 2, 3}
    print(f"foreground fraction: min {min(fractions):.2f}, mean {np.mean(fractions):.2f}, "
          f"max {max(fractions):.2f}")
    assert 0.08 <= min(fractions) and max(fractions) <= 0.75
    assert 0.2 <= np.mean(fractions) <= 0.5


def test_the_loader_reads_the_sample(sample_root):
    from petseg_lib.data.oxford_pet import OxfordPetDataset

    train, valid = OxfordPetDataset(sample_root, "train"), OxfordPetDataset(sample_root, "valid")
    test = OxfordPetDataset(sample_root, "test")
    counts = sample.read_marker(sample_root)
    assert (len(train) + len(valid), len(test)) == (counts["n_trainval"], counts["n_test"])
    assert not train.skipped and not valid.skipped and not test.skipped
    item = test[0]
    assert item["image"].shape[:2] == item["trimap"].shape and item["image"].shape[2] == 3


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------

def test_same_seed_gives_identical_files(tmp_path):
    a = snapshot(make_sample_dataset(tmp_path / "a", n_trainval=6, n_test=2, seed=3))
    b = snapshot(make_sample_dataset(tmp_path / "b", n_trainval=6, n_test=2, seed=3))
    c = snapshot(make_sample_dataset(tmp_path / "c", n_trainval=6, n_test=2, seed=4))
    assert len(a) == 8 + 8 + 3 + 1  # images, trimaps, split files, marker
    assert a.keys() == b.keys() == c.keys()
    assert all(a[f][1] == b[f][1] for f in a)
    images = [f for f in a if f.endswith(".jpg")]
    assert all(a[f][1] != c[f][1] for f in images)


# ---------------------------------------------------------------------------
# Not separable by colour
# ---------------------------------------------------------------------------

def pixels(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All RGB pixels (n, 3) of a split and their trimap values (n,)."""
    rgb, trimap = [], []
    for name in names_of(root, split):
        rgb.append(np.asarray(Image.open(root / "images" / f"{name}.jpg")).reshape(-1, 3))
        trimap_path = root / "annotations" / "trimaps" / f"{name}.png"
        trimap.append(np.asarray(Image.open(trimap_path)).ravel())
    return np.concatenate(rgb), np.concatenate(trimap)


def dice(pred: np.ndarray, true: np.ndarray) -> float:
    return 2 * float((pred & true).sum()) / float(pred.sum() + true.sum())


def best_threshold_dice(values: np.ndarray, true: np.ndarray) -> float:
    """Best Dice of 'pet where value >= t' or 'pet where value < t' over every threshold t."""
    every = np.bincount(values, minlength=256).astype(float)
    pets = np.bincount(values, weights=true, minlength=256)
    above_all, above_pets = np.cumsum(every[::-1])[::-1], np.cumsum(pets[::-1])[::-1]
    below_all, below_pets = every.sum() - above_all, pets.sum() - above_pets
    scores = [2 * above_pets / (above_all + pets.sum()), 2 * below_pets / (below_all + pets.sum())]
    return float(np.max(scores))


def test_colour_alone_cannot_find_the_pet(tmp_path):
    root = make_sample_dataset(tmp_path / "pets", n_trainval=60, n_test=20, seed=0)
    train_rgb, train_trimap = pixels(root, "trainval")
    test_rgb, test_trimap = pixels(root, "test")
    train_rgb, train_pet = train_rgb[train_trimap != 3], train_trimap[train_trimap != 3] == 1
    test_rgb, test_pet = test_rgb[test_trimap != 3], test_trimap[test_trimap != 3] == 1

    # The best per-pixel colour classifier: a 16x16x16 RGB histogram fitted on trainval,
    # predicting 'pet' in every colour bin where most trainval pixels are pet pixels.
    def bins(rgb):
        q = rgb.astype(np.int64) // 16
        return (q[:, 0] * 16 + q[:, 1]) * 16 + q[:, 2]

    total = np.bincount(bins(train_rgb), minlength=4096)
    pet = np.bincount(bins(train_rgb), weights=train_pet, minlength=4096)
    is_pet_colour = pet > 0.5 * total
    histogram_train = dice(is_pet_colour[bins(train_rgb)], train_pet)
    histogram_test = dice(is_pet_colour[bins(test_rgb)], test_pet)
    # The same histogram tuned for Dice: the cut on the pet fraction of a bin that scores
    # best on trainval (majority vote maximises accuracy, not Dice).
    fraction = pet / np.maximum(total, 1)
    cut = max(np.linspace(0, 1, 41),  # Dice on trainval from the bin counts alone
              key=lambda c: 2 * pet[fraction > c].sum() / (total[fraction > c].sum() + pet.sum()))
    tuned_test = dice(fraction[bins(test_rgb)] > cut, test_pet)

    # The simplest: one threshold on grey level or on one channel, either way round,
    # the best one chosen on the test split itself.
    grey = test_rgb.astype(np.float64).mean(axis=1).round().astype(np.int64)
    channels = [grey] + [test_rgb[:, k].astype(np.int64) for k in range(3)]
    threshold = max(best_threshold_dice(v, test_pet) for v in channels)
    everything = dice(np.ones_like(test_pet), test_pet)

    print(f"colour-only Dice on test: histogram {histogram_test:.3f} (on its own training "
          f"pixels {histogram_train:.3f}), histogram tuned for Dice {tuned_test:.3f} "
          f"(cut {cut:.3f}), best threshold {threshold:.3f}, all pet {everything:.3f}")
    assert histogram_test < 0.8 and histogram_train < 0.8 and tuned_test < 0.8
    assert threshold < 0.8


# ---------------------------------------------------------------------------
# Robust generation
# ---------------------------------------------------------------------------

def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "pets"
    real_draw_pet, calls = picture.draw_pet, []

    def failing_draw_pet(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt  # as if the learner pressed Ctrl-C
        return real_draw_pet(*args, **kwargs)

    monkeypatch.setattr(picture, "draw_pet", failing_draw_pet)
    with pytest.raises(KeyboardInterrupt):
        make_sample_dataset(root, n_trainval=6, n_test=2)
    assert len(calls) == 4
    assert not root.exists() and list(tmp_path.iterdir()) == []  # temporary folder removed

    monkeypatch.setattr(picture, "draw_pet", real_draw_pet)
    assert make_sample_dataset(root, n_trainval=6, n_test=2) == root and is_complete(root)


def test_ensure_reuses_or_regenerates(tmp_path):
    root = ensure_sample_dataset(tmp_path / "pets", n_trainval=6, n_test=2, seed=1)
    assert is_complete(root)
    before = snapshot(root)
    assert ensure_sample_dataset(root, n_trainval=6, n_test=2, seed=1) == root
    assert snapshot(root) == before  # nothing rewritten: same files, same mtimes

    # Other parameters in the marker: generated again.
    ensure_sample_dataset(root, n_trainval=8, n_test=2, seed=1)
    assert len(names_of(root, "trainval")) == 8 and len(list((root / "images").iterdir())) == 10
    assert '"n_trainval": 8' in (root / MARKER).read_text()

    # A missing file makes it incomplete: generated again.
    next((root / "images").iterdir()).unlink()
    assert not is_complete(root)
    ensure_sample_dataset(root, n_trainval=8, n_test=2, seed=1)
    assert is_complete(root) and len(list((root / "images").iterdir())) == 10


def test_never_overwrites_a_foreign_folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_sample_dataset(root, n_trainval=2, n_test=1)
    assert (root / "notes.txt").read_text() == "keep me"
    assert not is_complete(root)


def test_command_line(tmp_path, capsys):
    root = tmp_path / "cli"
    data.main(["--sample", "--root", str(root), "--n-trainval", "3", "--n-test", "1",
               "--seed", "5"])
    assert str(root) in capsys.readouterr().out
    assert is_complete(root) and len(names_of(root, "test")) == 1
