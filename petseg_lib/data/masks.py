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


# How a score treats the trimap's boundary band (published numbers differ on this point).
BOUNDARY_POLICIES = {
    "pet": "boundary counted as pet",  # the design report, and the training mask
    "background": "boundary counted as background",
    "ignore": "boundary ignored",
}


def check_boundary_policy(boundary: str) -> str:
    """BOUNDARY when it is a known policy, else a ValueError listing them."""
    if boundary not in BOUNDARY_POLICIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARY_POLICIES)}, "
                         f"not {boundary!r}")
    return boundary


def scoring_target(trimap: torch.Tensor,
                   boundary: str = "pet") -> tuple[torch.Tensor, torch.Tensor | None]:
    """The mask to score against and the pixels to leave out, under a BOUNDARY policy."""
    check_boundary_policy(boundary)
    if boundary == "background":
        return trimap == PET, None
    ignore = boundary_ignore(trimap) if boundary == "ignore" else None
    return trimap != BACKGROUND, ignore


def invalid_trimap_values(trimap: np.ndarray) -> list[int]:
    """The values of TRIMAP that are not 1, 2 or 3 (an empty list for a valid trimap)."""
    return sorted(set(np.unique(trimap).tolist()) - {PET, BACKGROUND, BOUNDARY})
