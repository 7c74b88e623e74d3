"""The painting tools that the pet and the scene share.

Smooth random noise fields, coordinates along a direction, colour blends and tints,
random variations of a colour, and alpha compositing onto an image: every texture of
the toy pictures, fur or carpet, is built from these few float32 (h, w) and (h, w, 3)
arrays.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def noise(rng: np.random.Generator, h: int, w: int, cell_y: float,
          cell_x: float | None = None) -> np.ndarray:
    """Smooth random field (h, w) with unit spread: coarse Gaussian noise upsampled bicubically."""
    cell_x = cell_y if cell_x is None else cell_x
    gh, gw = int(h / cell_y) + 2, int(w / cell_x) + 2
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    field = np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC))
    return (field - field.mean()) / (field.std() + 1e-6)


def along(h: int, w: int, angle: float) -> np.ndarray:
    """Pixel coordinate (h, w) measured along the direction ANGLE (radians)."""
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    return x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))


def lerp(c1, c2, t: np.ndarray) -> np.ndarray:
    """Blend two RGB colours with weights t (h, w) -> (h, w, 3)."""
    c1, c2 = np.asarray(c1, np.float32), np.asarray(c2, np.float32)
    out = np.empty(t.shape + (3,), np.float32)
    for k in range(3):  # channel by channel: much faster than broadcasting over 3 values
        np.multiply(t, c2[k] - c1[k], out=out[..., k])
        out[..., k] += c1[k]
    return out


def tint(colour, t: np.ndarray) -> np.ndarray:
    """An RGB colour times a brightness map t (h, w) -> (h, w, 3)."""
    return lerp((0, 0, 0), colour, t)


def jitter(rng: np.random.Generator, colour, amount: float = 20.0) -> np.ndarray:
    """A colour near COLOUR: random brightness and a small random tint."""
    c = np.asarray(colour, np.float32) * rng.uniform(0.8, 1.2) + rng.normal(0, amount / 2, 3)
    return np.clip(c, 0, 255).astype(np.float32)


def paste(img: np.ndarray, fill: np.ndarray, alpha: np.ndarray) -> None:
    """In place: img = img * (1 - alpha) + fill * alpha, with alpha (h, w) in [0, 1]."""
    img += (fill - img) * alpha[..., None]
