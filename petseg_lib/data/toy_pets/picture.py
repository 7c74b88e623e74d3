"""One toy pet photo and its trimap, put together.

`make_sample_image` picks a photo size, draws the pet's outline, places it, paints the
scene, the clutter and the pet, and gives the result a camera look (colour cast, uneven
light, vignette, sensor noise); the trimap comes from the pet's coverage, with a boundary
band a few pixels wide around the outline, as in the official dataset.
"""

from __future__ import annotations

import numpy as np

from .fur import draw_pet, fur_texture, pet_look
from .paint import along
from .scenes import add_distractors, scene, scene_colours
from .shapes import pet_shapes, place_pet, transform

BAND = 2  # the trimap boundary band reaches 2 px each side of the outline (4 px wide)


def photo_finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Camera look: colour cast, uneven light, vignette, contrast and sensor noise -> uint8."""
    h, w, _ = img.shape
    g = along(h, w, rng.uniform(0, 2 * np.pi))
    g = (g - g.min()) / (g.max() - g.min() + 1e-6) - 0.5
    y = (np.arange(h, dtype=np.float32)[:, None] - h / 2) / (h / 2)
    x = (np.arange(w, dtype=np.float32)[None, :] - w / 2) / (w / 2)
    vignette = 1 - rng.uniform(0, 0.15) * (x**2 + y**2)
    light = (1 + rng.uniform(0, 0.5) * g) * vignette
    img = img * light[..., None]
    for k, cast in enumerate(rng.uniform(0.88, 1.12, 3)):  # colour cast: channels scaled
        img[..., k] *= np.float32(cast)
    img = (img - 128) * rng.uniform(0.85, 1.15) + 128 + rng.uniform(-20, 20)
    grain = rng.standard_normal((h, w, 1), dtype=np.float32)  # sensor noise
    img += grain * rng.uniform(1, 4)
    return np.clip(img, 0, 255).astype(np.uint8)


def image_size(rng: np.random.Generator) -> tuple[int, int]:
    """A random photo size (width, height), landscape or portrait, 200-500 px per side."""
    long = int(rng.integers(300, 501))
    short = max(int(long * rng.uniform(0.62, 0.9)), 200)
    return (long, short) if rng.random() < 0.6 else (short, long)


def make_sample_image(rng: np.random.Generator, breed: str) -> tuple[np.ndarray, np.ndarray]:
    """One toy pet photo (h, w, 3) uint8 and its trimap (h, w) uint8."""
    w, h = image_size(rng)
    parts, face = pet_shapes(rng, breed)
    place = place_pet(rng, parts, (w, h))
    parts = [(transform(p, **place), shade) for p, shade in parts]
    face = {**face, "eyes": transform(face["eyes"], **place),
            "nose": transform(face["nose"], **place)}
    look = pet_look(rng, breed)
    fur = fur_texture(rng, h, w, look, place["scale"], place["angle"])
    img = scene(rng, h, w, scene_colours(rng, look))
    add_distractors(rng, img, look, fur)
    coverage = draw_pet(rng, img, parts, face, fur, place)
    return photo_finish(rng, img), trimap_from_mask(coverage >= 0.5)


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation of a (h, w) bool mask by a (2r+1) x (2r+1) square; edges replicated."""
    h, w = mask.shape
    m = np.pad(mask, r, mode="edge")
    rows = np.zeros((h + 2 * r, w), bool)
    for dx in range(2 * r + 1):  # max over a row window ...
        rows |= m[:, dx:dx + w]
    out = np.zeros((h, w), bool)
    for dy in range(2 * r + 1):  # ... then over a column window
        out |= rows[dy:dy + h]
    return out


def trimap_from_mask(mask: np.ndarray) -> np.ndarray:
    """Trimap (h, w) uint8 from a binary mask: 1 pet, 2 background, 3 a band on the outline."""
    grown = dilate(mask, BAND)  # BAND px outside the outline ...
    shrunk = ~dilate(~mask, BAND)  # ... and BAND px inside it
    trimap = np.where(mask, 1, 2).astype(np.uint8)
    trimap[grown & ~shrunk] = 3
    return trimap
