"""The dataset command line: download the Oxford-IIIT Pet dataset, make the offline sample,
or print a dataset's split sizes.

    python -m petseg_lib.data --download     # into data/oxford-iiit-pet (about 800 MB)
    python -m petseg_lib.data --sample       # toy pets into data/oxford-iiit-pet-sample
    python -m petseg_lib.data --root FOLDER  # the number of images of each split
"""

from __future__ import annotations

import argparse

from ..cli import positive, run_cli, writable_folder
from ..paths import default_data_path, default_sample_root
from .download import download
from .oxford_pet import MODES, OxfordPetDataset
from .sample import ensure_sample_dataset


def main(argv: list[str] | None = None) -> None:
    """Command line: download the dataset or make the sample, then print its split sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="dataset folder (default: data/oxford-iiit-pet, or "
                        "data/oxford-iiit-pet-sample with --sample)")
    parser.add_argument("--download", action="store_true",
                        help="download and extract the official archives (about 800 MB)")
    parser.add_argument("--sample", action="store_true",
                        help="generate the offline sample dataset of toy pets")
    parser.add_argument("--n-trainval", type=int, default=200, help="--sample: trainval pets")
    parser.add_argument("--n-test", type=int, default=50, help="--sample: test pets")
    parser.add_argument("--seed", type=int, default=0, help="--sample: random seed")
    args = parser.parse_args(argv)
    if args.sample:
        positive("--n-trainval", args.n_trainval)
        positive("--n-test", args.n_test)
        root = ensure_sample_dataset(args.root or default_sample_root(),
                                     n_trainval=args.n_trainval, n_test=args.n_test,
                                     seed=args.seed)
        print(f"Sample dataset ({args.n_trainval} trainval + {args.n_test} test toy pets) "
              f"in {root}")
        return
    root = args.root or str(default_data_path())
    if args.download:
        download(writable_folder(root))  # a file, or a folder without write access: one line
    for mode in MODES:
        print(f"{mode:>5}: {len(OxfordPetDataset(root, mode))} images")


if __name__ == "__main__":
    run_cli(main)
