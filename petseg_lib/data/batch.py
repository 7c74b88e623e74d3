"""A batch: samples stacked by key, "image" (N, 3, S, S), "mask" (N, 1, S, S), "name" [str].

Every dataset of the course gives samples as dicts with the same keys; a key whose value is
None in any sample (no mask for photos without ground truth) stays None in the batch. A
multi-task run's samples also have "label", an int: the batch's is a (N,) int64 tensor.
"""

from __future__ import annotations

from torch.utils.data import default_collate

from ..threads import limit_threads


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch; a key whose values are None stays None."""
    batch = {}
    with limit_threads(1):  # small copies: more threads would wait for each other
        for key in samples[0]:
            values = [s[key] for s in samples]
            batch[key] = None if any(v is None for v in values) else default_collate(values)
    return batch
