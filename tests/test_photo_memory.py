"""Photos kept in memory: decoded once, the same samples as without it, within its bound."""

import numpy as np
import torch

from petseg_lib.data.oxford_pet import SimpleOxfordPetDataset
from petseg_lib.data.photo_memory import PhotoMemory

from .test_cache import same_sample


def counting_reads(dataset: SimpleOxfordPetDataset) -> list[str]:
    """Make DATASET record the name of every photo it decodes; returns that list."""
    names, read = [], dataset.read

    def recorded(name):
        names.append(name)
        return read(name)

    dataset.read = recorded
    return names


def augmented_epoch(dataset: SimpleOxfordPetDataset, seed: int) -> list[dict]:
    """The augmented samples of DATASET (odd indices), each drawn after seeding with SEED + i."""
    samples = []
    for i in range(1, len(dataset), 2):
        torch.manual_seed(seed + i)
        samples.append(dataset[i])
    return samples


def test_augmented_samples_are_the_same_with_and_without_memory(pets):
    kept = SimpleOxfordPetDataset(pets, "train", image_size=48, augment=True)
    decoded = SimpleOxfordPetDataset(pets, "train", image_size=48, augment=True)
    decoded.memory = PhotoMemory(max_bytes=0)
    for epoch in range(2):  # the second epoch reads the kept photos
        for a, b in zip(augmented_epoch(kept, 100 * epoch), augmented_epoch(decoded, 100 * epoch),
                        strict=True):
            assert same_sample(a, b), (epoch, a["name"])
    assert len(kept.memory.photos) == len(kept.names) and not decoded.memory.photos


def test_a_kept_photo_is_decoded_once_a_run(pets):
    dataset = SimpleOxfordPetDataset(pets, "train", image_size=48, augment=True)
    reads = counting_reads(dataset)
    for epoch in range(3):
        augmented_epoch(dataset, epoch)
    assert sorted(reads) == sorted(dataset.names)  # each photo once, not three times


def test_memory_stops_keeping_at_its_bound(pets):
    dataset = SimpleOxfordPetDataset(pets, "train", image_size=48, augment=True)
    image, trimap = dataset.read(dataset.names[0])
    one_photo = image.nbytes + trimap.nbytes
    dataset.memory = PhotoMemory(max_bytes=2 * one_photo)  # room for about two photos
    reads = counting_reads(dataset)
    augmented_epoch(dataset, 0)
    augmented_epoch(dataset, 1)
    kept = len(dataset.memory.photos)
    assert 0 < kept < len(dataset.names) and dataset.memory.bytes <= 2 * one_photo
    assert len(reads) == 2 * len(dataset.names) - kept  # the others are decoded every epoch


def test_what_a_transform_does_to_a_photo_does_not_reach_memory():
    memory = PhotoMemory()
    image, trimap = np.full((4, 5, 3), 7, np.uint8), np.ones((4, 5), np.uint8)
    memory.add("cat", (image, trimap))
    image[:] = 0  # the caller's own arrays, changed after they were kept
    first = memory.get("cat")
    first[0][:] = 0  # a copy handed out, changed
    second = memory.get("cat")
    assert (second[0] == 7).all() and (second[1] == 1).all()
    assert memory.get("dog") is None


def test_a_cached_plain_dataset_keeps_no_photos(pets):
    plain = SimpleOxfordPetDataset(pets, "train", image_size=48, cache=True)
    assert plain.cache is not None
    for i in range(len(plain)):
        plain[i]
    assert not plain.memory.photos  # the cache serves every later read
    uncached = SimpleOxfordPetDataset(pets, "valid", image_size=48)
    for i in range(len(uncached)):
        uncached[i]
    assert len(uncached.memory.photos) == len(uncached.names)  # decoded again each epoch
