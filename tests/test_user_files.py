"""Reading what a user hands in: images of every kind as RGB, text files in any encoding."""

import numpy as np
import pytest
from PIL import Image

from petseg_lib.data.user_files import load_rgb, read_text_any


@pytest.mark.parametrize("top", [1.0, 200.0])
def test_floating_point_grey_images_keep_their_brightness(tmp_path, top):
    ramp = np.linspace(0.0, top, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp, mode="F").save(tmp_path / "ramp.tif")
    rgb = np.asarray(load_rgb(tmp_path / "ramp.tif"))
    assert rgb.shape == (8, 8, 3) and (rgb[..., 0] == rgb[..., 2]).all()  # still grey
    expected = ramp * 255 if top <= 1 else ramp
    np.testing.assert_allclose(rgb[..., 0], expected.round(), atol=1)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "latin-1"])
def test_text_files_read_whole_in_any_encoding(tmp_path, encoding):
    text = "Abyssinian_1 1 1 1\nCafé_2 2 2 1\n"
    (tmp_path / "list.txt").write_bytes(text.encode(encoding))
    assert read_text_any(tmp_path / "list.txt") == text
