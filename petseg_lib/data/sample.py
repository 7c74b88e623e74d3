"""An offline sample dataset of toy pets, written in the Oxford-IIIT Pet layout.

No download is needed: `make_sample_dataset` draws a deterministic (seeded) set of
synthetic pet photos with their trimaps, laid out exactly like the official dataset,
so the very same loading code (`petseg_lib.data.oxford_pet`) reads it:

    ROOT/images/NAME.jpg                 RGB JPEGs, 200-500 px per side
    ROOT/annotations/trimaps/NAME.png    'L' PNGs: 1 = pet, 2 = background, 3 = boundary
    ROOT/annotations/list.txt            all names: "NAME CLASS-ID SPECIES BREED-ID"
    ROOT/annotations/trainval.txt        the training names, same format
    ROOT/annotations/test.txt            the test names, same format

Each toy pet is a side-view animal (body, chest, hips, head, muzzle, ears, legs, tail)
with a fur texture (stripes, spots, patches, fluffy or solid) and shading, in a random
pose, size and position, over a cluttered scene (walls, floors, grass, sofas) with
distractor shapes, some in the pet's own colours. Foreground and background colours
overlap, so colour alone cannot separate the pet: a model has to learn shapes.
The drawing itself lives in `petseg_lib.data.toy_pets`; you need not read it.

Command line: `python -m petseg_lib.data --sample [--root R] [--n-trainval N] [--n-test N]
[--seed S]`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..paths import default_sample_root
from .toy_pets import make_sample_image

SAMPLE_VERSION = 1
MARKER = ".petseg-sample"  # written last: its presence means the dataset is complete

# Toy breeds named like the official ones: cats capitalised, dogs lower-case.
# Class ids follow the alphabetical order of the names; breed ids count within a species.
BREEDS = [
    # name,        class id, species (1 cat, 2 dog), breed id
    ("Toy_Ginger", 1, 1, 1),
    ("toy_spaniel", 2, 2, 1),
    ("Toy_Tabby", 3, 1, 2),
    ("toy_terrier", 4, 2, 2),
]

LIST_HEADER = [
    "#Image CLASS-ID SPECIES BREED ID",
    "#ID: 1:4 Class ids",
    "#SPECIES: 1:Cat 2:Dog",
    "#BREED ID: 1-2:Cat 1:2:Dog",
    "#All images with 1st letter as capital are cat images",
    "#images with small first letter are dog images",
]


def sample_records(n_trainval: int, n_test: int, seed: int) -> list[tuple]:
    """(index, name, class id, species, breed id, is_test) of every image, in list.txt order."""
    n = n_trainval + n_test
    test = set(np.random.default_rng([seed, n]).permutation(n)[:n_test].tolist())
    counts = {b[0]: 0 for b in BREEDS}
    records = []
    for i in range(n):
        breed, class_id, species, breed_id = BREEDS[i % len(BREEDS)]
        counts[breed] += 1
        records.append((i, f"{breed}_{counts[breed]}", class_id, species, breed_id, i in test))
    return sorted(records, key=lambda r: (r[2], int(r[1].rsplit("_", 1)[1])))


def read_marker(root: str | Path) -> dict | None:
    """The parameters stored in ROOT's marker file, or None when there is none."""
    try:
        return json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(root: str | Path) -> bool:
    """True when ROOT holds a finished sample dataset (marker, images, trimaps, split files)."""
    root = Path(root)
    marker = read_marker(root)
    if not isinstance(marker, dict) or marker.get("version") != SAMPLE_VERSION:
        return False
    ann = root / "annotations"
    if not all((ann / f).is_file() for f in ("list.txt", "trainval.txt", "test.txt")):
        return False
    n = marker.get("n_trainval", -1) + marker.get("n_test", -1)
    images = root / "images"
    trimaps = ann / "trimaps"
    return (images.is_dir() and trimaps.is_dir() and len(list(images.glob("*.jpg"))) == n
            and len(list(trimaps.glob("*.png"))) == n)


def _write_dataset(folder: Path, n_trainval: int, n_test: int, seed: int) -> None:
    """Write all images, trimaps and split files into FOLDER, then the marker."""
    (folder / "images").mkdir(parents=True)
    (folder / "annotations" / "trimaps").mkdir(parents=True)
    records = sample_records(n_trainval, n_test, seed)
    for index, name, *_ in sorted(records):  # generation order: by index
        rng = np.random.default_rng([seed, index])
        image, trimap = make_sample_image(rng, name.rsplit("_", 1)[0])
        Image.fromarray(image).save(folder / "images" / f"{name}.jpg", quality=90)
        Image.fromarray(trimap).save(folder / "annotations" / "trimaps" / f"{name}.png")
    lines = {r[1]: f"{r[1]} {r[2]} {r[3]} {r[4]}\n" for r in records}
    ann = folder / "annotations"
    (ann / "list.txt").write_text("\n".join(LIST_HEADER) + "\n" + "".join(lines.values()))
    (ann / "trainval.txt").write_text("".join(lines[r[1]] for r in records if not r[5]))
    (ann / "test.txt").write_text("".join(lines[r[1]] for r in records if r[5]))
    marker = {"version": SAMPLE_VERSION, "seed": seed, "n_trainval": n_trainval,
              "n_test": n_test}
    (folder / MARKER).write_text(json.dumps(marker) + "\n")


def make_sample_dataset(root: str | Path, n_trainval: int = 200, n_test: int = 50,
                        seed: int = 0) -> Path:
    """Generate the toy pets dataset into ROOT (unless it is already there) and return ROOT.

    The files are built in a temporary sibling folder that is renamed to ROOT at the end,
    so an interrupted run never leaves a half-made dataset at ROOT.
    """
    root = Path(root)
    wanted = {"version": SAMPLE_VERSION, "seed": seed, "n_trainval": n_trainval,
              "n_test": n_test}
    if is_complete(root) and read_marker(root) == wanted:
        return root
    if root.exists() and any(root.iterdir()) and read_marker(root) is None:
        raise FileExistsError(f"{root} exists and is not a petseg sample dataset: "
                              "remove it or pick another root.")
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_dataset(tmp, n_trainval, n_test, seed)
        if root.exists():  # an older or incomplete sample dataset
            shutil.rmtree(root)
        try:
            os.replace(tmp, root)
        except OSError:  # fine if another process has just made the same dataset
            if not (is_complete(root) and read_marker(root) == wanted):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return root


def ensure_sample_dataset(root: str | Path | None = None, **kwargs) -> Path:
    """The sample dataset's path, generating it when missing, incomplete or made differently."""
    return make_sample_dataset(default_sample_root() if root is None else root, **kwargs)
