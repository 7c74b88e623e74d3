"""The trimap rule: pet and boundary are foreground, background is not."""

import numpy as np
import torch

from petseg_lib.masks import boundary_ignore, trimap_to_mask


def test_trimap_rule_pet_and_boundary_are_foreground():
    trimap = np.array([[1, 2, 3], [2, 2, 1]], np.uint8)
    mask = trimap_to_mask(trimap)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [[1, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(boundary_ignore(torch.from_numpy(trimap)),
                                  [[0, 0, 1], [0, 0, 0]])
