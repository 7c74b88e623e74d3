"""Trimaps and masks: the dataset's three-valued annotation, and the binary mask a model learns.

An Oxford-IIIT Pet trimap marks each pixel 1 (pet), 2 (background) or 3 (boundary: the
uncertain band along the pet's outline). The design report trains on a binary mask in which
pet and boundary are foreground; scores can also leave the boundary band out.
"""

from __future__ import annotations

import numpy as np
import torch

# Trimap values.
PET, BACKGROUND, BOUNDARY = 1, 2, 3


def trimap_to_mask(trimap: np.ndarray) -> np.ndarray:
    """Binary mask from a trimap: pet (1) and boundary (3) are foreground, background (2) is not."""
    return (trimap != BACKGROUND).astype(np.float32)


def boundary_ignore(trimap: torch.Tensor) -> torch.Tensor:
    """True on the trimap's boundary band: the pixels left out when scoring without it."""
    return trimap == BOUNDARY
