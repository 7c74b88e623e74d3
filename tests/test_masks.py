"""The trimap rule (pet and boundary are foreground), the scoring policies, value checks."""

import numpy as np
import pytest
import torch

from petseg_lib.data.masks import (
    BACKGROUND,
    BOUNDARY,
    PET,
    boundary_ignore,
    invalid_trimap_values,
    scoring_target,
    trimap_to_mask,
)


def test_trimap_rule_pet_and_boundary_are_foreground():
    trimap = np.array([[1, 2, 3], [2, 2, 1]], np.uint8)
    mask = trimap_to_mask(trimap)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[1, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(boundary_ignore(torch.from_numpy(trimap)),
                                  [[0, 0, 1], [0, 0, 0]])


def test_boundary_policies_give_the_target_and_the_ignored_pixels():
    trimap = torch.tensor([[PET, BOUNDARY, BACKGROUND]], dtype=torch.uint8)
    target, ignore = scoring_target(trimap, "pet")
    assert target.tolist() == [[True, True, False]] and ignore is None
    target, ignore = scoring_target(trimap, "background")
    assert target.tolist() == [[True, False, False]] and ignore is None
    target, ignore = scoring_target(trimap, "ignore")
    assert target.tolist() == [[True, True, False]] and ignore.tolist() == [[False, True, False]]
    with pytest.raises(ValueError, match="pet, background, ignore"):
        scoring_target(trimap, "maybe")


def test_values_outside_the_trimap_encoding_are_named():
    assert invalid_trimap_values(np.array([[1, 2], [3, 3]], np.uint8)) == []
    assert invalid_trimap_values(np.array([[0, 255], [1, 2]], np.uint8)) == [0, 255]
