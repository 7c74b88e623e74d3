"""The toy pet's coat and face, painted over the scene.

Each breed picks fur colours and a texture (stripes, spots, patches, fluffy or solid);
the pet's polygons are rasterised with smooth edges, shaded (far side darker, lit from
one side, darker towards the outline), given a soft shadow on the ground, and finished
with eyes and a nose.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .paint import along, jitter, lerp, noise, paste

SUPERSAMPLE = 4  # the silhouette is drawn 4x larger, then averaged down: smooth edges

# Fur colours (RGB) and the colours and textures each toy breed picks from.
FUR = {
    "black": (38, 34, 32),
    "chocolate": (82, 54, 38),
    "brown": (128, 88, 58),
    "ginger": (200, 122, 62),
    "tan": (184, 146, 104),
    "cream": (218, 196, 158),
    "grey": (126, 123, 119),
    "white": (226, 222, 214),
}
LOOKS = {
    "Toy_Ginger": (["ginger", "cream", "tan", "ginger"], ["stripes", "fluffy", "solid"]),
    "Toy_Tabby": (["grey", "brown", "tan", "black"], ["stripes", "stripes", "spots"]),
    "toy_spaniel": (["chocolate", "brown", "tan", "black", "white"], ["patches", "fluffy"]),
    "toy_terrier": (["tan", "grey", "white", "black", "cream"], ["fluffy", "solid", "spots"]),
}


def pet_look(rng: np.random.Generator, breed: str) -> dict:
    """Fur texture kind and its two colours for one pet of BREED."""
    colours, kinds = LOOKS[breed]
    kind = str(rng.choice(kinds))
    base = jitter(rng, FUR[str(rng.choice(colours))], 25)
    if kind == "patches":  # large patches of another fur colour
        second = jitter(rng, FUR[str(rng.choice(["white", "cream", "black", "brown"]))], 15)
    else:  # darker markings of the same hue
        second = base * rng.uniform(0.35, 0.6)
    return {"kind": kind, "base": base, "second": second}


def fur_texture(rng: np.random.Generator, h: int, w: int, look: dict, size: float,
                angle: float) -> np.ndarray:
    """Fur colours (h, w, 3) for a whole image: stripes, spots, patches, fluffy or solid.

    SIZE is the pet's body length in pixels, so markings scale with the pet.
    """
    kind = look["kind"]
    if kind == "stripes":  # tabby stripes across the body, wavy
        period = size * rng.uniform(0.05, 0.1)
        warp = noise(rng, h, w, size * rng.uniform(0.08, 0.2)) * rng.uniform(1.5, 3)
        wave = np.sin(2 * np.pi * along(h, w, angle) / period + warp)
        marks = np.clip((wave - rng.uniform(-0.2, 0.5)) * 2.5, 0, 1) * rng.uniform(0.6, 1)
    elif kind == "spots":
        marks = np.clip((noise(rng, h, w, size * 0.05) - 0.9) * 3, 0, 1)
    elif kind == "patches":
        marks = np.clip((noise(rng, h, w, size * 0.25) - 0.3) * 2.5, 0, 1)
    elif kind == "fluffy":
        marks = np.clip(0.3 + 0.25 * noise(rng, h, w, size * 0.06), 0, 1)
    else:
        marks = np.clip(0.1 + 0.1 * noise(rng, h, w, size * 0.2), 0, 1)
    colour = lerp(look["base"], look["second"], marks)
    grain = noise(rng, h, w, 1.5, 6.0)  # fine hair streaks
    amount = 0.2 if kind == "fluffy" else 0.1
    light = 1 + 0.12 * noise(rng, h, w, size * 0.3)
    return colour * ((1 + amount * grain) * light)[..., None]


def rasterise(parts: list, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Draw the pet's polygons (in pixels): coverage (h, w) in [0, 1] and a map of part shades."""
    w, h = size
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    side = Image.new("L", (w, h), 255)
    draw, draw_side = ImageDraw.Draw(canvas), ImageDraw.Draw(side)
    for points, shade in parts:
        draw.polygon((points * SUPERSAMPLE).ravel().tolist(), fill=255)
        draw_side.polygon(points.ravel().tolist(), fill=int(255 * shade))
    coverage = np.asarray(canvas.reduce(SUPERSAMPLE), np.float32) / 255
    side = np.asarray(side.filter(ImageFilter.GaussianBlur(1)), np.float32) / 255
    return coverage, side


def soft(mask: np.ndarray, radius: float) -> np.ndarray:
    """Gaussian blur of a (h, w) map in [0, 1], computed at quarter size for speed."""
    h, w = mask.shape
    small = Image.fromarray((mask * 255).astype(np.uint8)).reduce(4)
    small = small.filter(ImageFilter.GaussianBlur(max(radius / 4, 0.5)))
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), np.float32) / 255


def cast_shadow(rng: np.random.Generator, img: np.ndarray, coverage: np.ndarray,
                size: float) -> None:
    """Darken the scene under and behind the pet with a soft shadow (in place)."""
    shadow = soft(coverage, size * 0.08)
    shift = int(size * rng.uniform(0.02, 0.08)) + 1
    shadow[shift:] = shadow[:-shift].copy()
    shadow[:shift] = 0
    img *= (1 - rng.uniform(0.2, 0.45) * shadow)[..., None]


def draw_face(rng: np.random.Generator, img: np.ndarray, face: dict, scale: float) -> None:
    """Paint eyes (iris and pupil) and a dark nose onto the image (in place)."""
    h, w, _ = img.shape
    r = max(face["eye_r"] * scale, 1.5)
    points = np.concatenate([face["eyes"], face["nose"]])
    x0, y0 = np.clip(np.floor(points.min(axis=0) - 2 * r), 0, (w, h)).astype(int)
    x1, y1 = np.clip(np.ceil(points.max(axis=0) + 2 * r), 0, (w, h)).astype(int)
    if x1 - x0 < 1 or y1 - y0 < 1:  # the face is out of the frame
        return
    iris, dark = Image.new("L", (x1 - x0, y1 - y0), 0), Image.new("L", (x1 - x0, y1 - y0), 0)
    d_iris, d_dark = ImageDraw.Draw(iris), ImageDraw.Draw(dark)
    for x, y in face["eyes"] - (x0, y0):
        d_iris.ellipse([x - r, y - r, x + r, y + r], fill=255)
        pw = r * (0.35 if face["cat"] else 0.6)  # cats have slit pupils
        d_dark.ellipse([x - pw, y - r * 0.85, x + pw, y + r * 0.85], fill=255)
    (x, y), n = face["nose"][0] - (x0, y0), r * 1.1
    d_dark.polygon([(x - n, y - n * 0.6), (x + n, y - n * 0.6), (x, y + n * 0.6)], fill=255)
    blur = ImageFilter.GaussianBlur(0.6)
    crop = img[y0:y1, x0:x1]
    iris_colour = jitter(rng, (150, 160, 60) if face["cat"] else (70, 45, 28), 30)
    paste(crop, iris_colour, np.asarray(iris.filter(blur), np.float32) / 255)
    paste(crop, np.float32([22, 18, 16]), np.asarray(dark.filter(blur), np.float32) / 255)


def draw_pet(rng: np.random.Generator, img: np.ndarray, parts: list, face: dict,
             fur: np.ndarray, place: dict) -> np.ndarray:
    """Composite the pet (fur, shading, shadow, face) onto img in place; returns its coverage."""
    h, w, _ = img.shape
    size = place["scale"]
    coverage, side = rasterise(parts, (w, h))
    cast_shadow(rng, img, coverage, size)
    inner = soft(coverage, size * 0.05)  # 1 deep inside, about 0.5 on the outline
    light = along(h, w, rng.uniform(0, 2 * np.pi)) / size
    light = 1 + 0.25 * np.clip(light - np.mean(light), -1, 1)  # light from one side
    shade = (0.55 + 0.55 * inner) * side * light
    alpha = np.asarray(Image.fromarray((coverage * 255).astype(np.uint8))
                       .filter(ImageFilter.GaussianBlur(0.5)), np.float32) / 255
    paste(img, fur * shade[..., None], alpha)
    draw_face(rng, img, face, size)
    return coverage
