"""The data floor: from files on disk to samples and batches a model is fed.

The Oxford-IIIT Pet format (`oxford_pet.py`), your own images/ + masks/ folder
(`mask_folder.py`) and the registry that picks between them (`formats.py`) all hand their
pairs to `resized.py`, which resizes, augments (`augment.py`) and caches (`cache.py`) them;
`masks.py` holds the trimap → mask rule, `batch.py` stacks samples into a batch,
`user_files.py` reads whatever a user hands in, `download.py` fetches the official archives
and `sample.py` (with `toy_pets/`) draws the offline sample. `python -m petseg_lib.data` is
the dataset command line. Nothing here imports models, training, evaluation or commands.
"""
