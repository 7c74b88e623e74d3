"""The dataset command line: download the Oxford-IIIT Pet dataset, or print its split sizes.

    python -m petseg_lib.data --download     # into data/oxford-iiit-pet (about 800 MB)
    python -m petseg_lib.data --root FOLDER  # the number of images of each split
"""

from __future__ import annotations

import argparse

from .cli import run_cli, writable_folder
from .download import download
from .oxford_pet import MODES, OxfordPetDataset
from .paths import default_data_path


def main(argv: list[str] | None = None) -> None:
    """Command line: download the dataset, or print its split sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(default_data_path()),
                        help="dataset folder (default: %(default)s)")
    parser.add_argument("--download", action="store_true",
                        help="download and extract the official archives (about 800 MB)")
    args = parser.parse_args(argv)
    if args.download:
        download(writable_folder(args.root))  # a file, or a folder without write access: one line
    for mode in MODES:
        print(f"{mode:>5}: {len(OxfordPetDataset(args.root, mode))} images")


if __name__ == "__main__":
    run_cli(main)
