"""What each photo shows besides its mask: the pet's species (cat or dog) and its breed.

The Oxford-IIIT Pet annotations give them on every line of three files:

    ROOT/annotations/list.txt       "NAME CLASS-ID SPECIES BREED-ID" for every photo
    ROOT/annotations/trainval.txt   the same columns, for the photos of that split
    ROOT/annotations/test.txt

CLASS-ID (1 to 37) is the breed over both species, SPECIES is 1 for a cat and 2 for a dog.
A multi-task run (`--aux_task`, multitask.py) learns one of them beside the mask; its labels
count from 0: species 0 cat, 1 dog; breed CLASS-ID - 1. `AUX_TASKS` gives each task's number
of classes. A photo with no line in any file is refused by name, never given a guessed label.
"""

from __future__ import annotations

from pathlib import Path

from .user_files import read_text_any

AUX_TASKS = {"species": 2, "breed": 37}  # task: number of classes
COLUMNS = {"breed": 1, "species": 2}  # task: its column in "NAME CLASS-ID SPECIES BREED-ID"
LABEL_FILES = ("list.txt", "trainval.txt", "test.txt")  # read in this order


def check_aux_task(task: str | None) -> None:
    """A ValueError unless TASK is None or a key of AUX_TASKS."""
    if task is not None and task not in AUX_TASKS:
        raise ValueError(f"aux_task must be one of {', '.join(AUX_TASKS)} (or None), "
                         f"not {task!r}")


def read_labels(root: str | Path, task: str) -> dict[str, int]:
    """The class of TASK (from 0) of every photo with a full line in ROOT's annotation files."""
    check_aux_task(task)
    column, classes = COLUMNS[task], AUX_TASKS[task]
    labels: dict[str, int] = {}
    for file in LABEL_FILES:
        path = Path(root) / "annotations" / file
        if not path.is_file():
            continue
        for line in read_text_any(path).splitlines():
            fields = line.split()
            if len(fields) < 4 or fields[0].startswith("#"):  # a comment, or a name alone
                continue
            name, value = fields[0], fields[column]
            label = int(value) - 1 if value.isdigit() else -1
            if not 0 <= label < classes:
                raise ValueError(f"{path}: {name} has {task} {value!r}, not a number from 1 "
                                 f"to {classes}")
            if labels.setdefault(name, label) != label:
                raise ValueError(f"{path}: {name} has {task} {value}, but "
                                 f"{labels[name] + 1} in a file read before it")
    return labels


def labels_of(names: list[str], root: str | Path, task: str) -> dict[str, int]:
    """The class of TASK of each of NAMES; a ValueError naming the photos that have none."""
    labels = read_labels(root, task)
    missing = [name for name in names if name not in labels]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ValueError(f"{len(missing)} of {len(names)} photos in {root} have no {task} in "
                         f"annotations/{', '.join(LABEL_FILES)}: {', '.join(missing[:5])}"
                         f"{more}; add their 'NAME CLASS-ID SPECIES BREED-ID' lines or train "
                         "without --aux_task")
    return {name: labels[name] for name in names}
