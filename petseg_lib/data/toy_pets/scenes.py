"""The scene behind the toy pet: walls, floors, grass, sofas and clutter.

A background is one texture (a gradient, blotches, stripes, tiles or planks, grass, a
sofa) or a wall above a floor, in colours of which about 40 % are close to the pet's
own; clutter shapes (blobs, boxes, ellipses, thick lines) are painted over it, some in
the pet's colours or fur, so that colour alone cannot tell the pet from the scene.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .paint import along, jitter, lerp, noise, paste, tint
from .shapes import ellipse_points, rotate_about, stroke_points

# Colours of walls, floors, fabrics and gardens.
SCENE = [
    (205, 200, 190),  # off-white wall
    (214, 194, 160),  # beige
    (160, 112, 68),  # wood
    (96, 66, 46),  # dark wood
    (132, 130, 126),  # grey carpet
    (62, 62, 64),  # dark grey
    (146, 58, 52),  # red fabric
    (62, 86, 134),  # blue fabric
    (78, 122, 58),  # green grass
    (150, 140, 86),  # dry grass
    (112, 80, 56),  # brown sofa
    (42, 40, 38),  # black leather
    (72, 120, 118),  # teal
    (190, 160, 122),  # sand
    (228, 226, 220),  # white sheet
]


def scene_colours(rng: np.random.Generator, look: dict, n: int = 4) -> list[np.ndarray]:
    """N scene colours; about 40 % of them close to the pet's own fur colours."""
    colours = []
    for _ in range(n):
        if rng.random() < 0.4:
            colours.append(jitter(rng, look["base"] if rng.random() < 0.7 else look["second"], 30))
        else:
            colours.append(jitter(rng, SCENE[rng.integers(len(SCENE))], 30))
    return colours


def gradient_bg(rng: np.random.Generator, h: int, w: int, c1, c2) -> np.ndarray:
    """A smooth gradient between two colours with soft blotches (a wall, a studio backdrop)."""
    t = along(h, w, rng.uniform(0, 2 * np.pi))
    t = (t - t.min()) / (t.max() - t.min() + 1e-6)
    return lerp(c1, c2, np.clip(t + 0.12 * noise(rng, h, w, rng.uniform(40, 120)), 0, 1))


def blotchy_bg(rng: np.random.Generator, h: int, w: int, c1, c2) -> np.ndarray:
    """Two colours mixed by smooth noise (a carpet, a blanket, out-of-focus clutter)."""
    t = noise(rng, h, w, rng.uniform(12, 90)) * rng.uniform(0.5, 2.5) + 0.5
    return lerp(c1, c2, np.clip(t, 0, 1))


def stripes_bg(rng: np.random.Generator, h: int, w: int, c1, c2) -> np.ndarray:
    """Stripes (wallpaper, curtains, a striped blanket), sharp or soft, often upright."""
    angle = np.pi / 2 * rng.integers(0, 2) if rng.random() < 0.7 else rng.uniform(0, np.pi)
    wave = np.sin(2 * np.pi * along(h, w, angle) / rng.uniform(10, 60))
    t = np.clip(wave * rng.uniform(1, 6), -1, 1) * 0.5 + 0.5
    folds = 1 + 0.15 * np.sin(2 * np.pi * along(h, w, angle) / rng.uniform(60, 200))
    return lerp(c1, c2, t) * folds[..., None]


def tiles_bg(rng: np.random.Generator, h: int, w: int, c1, c2) -> np.ndarray:
    """Floor tiles with grout lines, or wooden planks with grain."""
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    if rng.random() < 0.5:  # tiles: checker or random tones
        size = rng.uniform(25, 90)
        i, j = (x // size).astype(int), (y // size).astype(int)
        if rng.random() < 0.5:
            t = ((i + j) % 2).astype(np.float32)  # checkerboard
        else:
            tones = rng.random((h // int(size) + 2, w // int(size) + 2)) < 0.5
            t = tones[j, i].astype(np.float32)  # a random tone per tile
        edge = np.minimum(np.minimum(x % size, size - x % size),
                          np.minimum(y % size, size - y % size))  # distance to the grout
        grout = np.clip(edge / 2.5, 0, 1)
        return lerp(c1, c2, t * 0.8) * (0.6 + 0.4 * grout)[..., None]
    height = rng.uniform(18, 50)  # planks
    row = (y // height).astype(int)
    tones = rng.uniform(0, 1, row.max() + 1).astype(np.float32)
    grain = noise(rng, h, w, 2.0, 50.0)
    t = np.clip(tones[row] * 0.7 + 0.15 * grain, 0, 1)  # one tone per plank, plus grain
    gap = np.clip(np.minimum(y % height, height - y % height) / 1.5, 0, 1)
    return lerp(c1, c2, t) * (0.65 + 0.35 * gap)[..., None]


def grass_bg(rng: np.random.Generator, h: int, w: int, c1, c2) -> np.ndarray:
    """Grass-like upright blades in green or straw tones, with darker clumps."""
    green = jitter(rng, (78, 122, 58) if rng.random() < 0.6 else (150, 140, 86), 25)
    base = green if rng.random() < 0.7 else c1
    blades = noise(rng, h, w, rng.uniform(8, 20), 1.5) + 0.5 * noise(rng, h, w, 30, 3)
    clumps = noise(rng, h, w, rng.uniform(30, 80))
    t = np.clip(0.5 + 0.25 * blades, 0, 1)
    colour = tint(base, (0.55 + 0.7 * t) * (1 - 0.3 * np.clip(clumps, 0, 1)))
    paste(colour, tint(c2, 0.55 + 0.7 * t), np.clip(clumps - 1.2, 0, 1))  # bare patches
    return colour


def sofa_bg(rng: np.random.Generator, h: int, w: int, c1, c2) -> np.ndarray:
    """A sofa: cushions with dark seams, and a woven fabric texture."""
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    cw, ch = w / rng.uniform(1.3, 3.0), h / rng.uniform(1.0, 2.2)
    ox, oy = rng.uniform(0, cw), rng.uniform(0, ch)
    dx = np.minimum((x + ox) % cw, cw - (x + ox) % cw)
    dy = np.minimum((y + oy) % ch, ch - (y + oy) % ch)
    seams = (1 - 0.45 * np.exp(-dx / 10)) * (1 - 0.45 * np.exp(-dy / 10))
    period = rng.uniform(2.5, 5)
    weave = 1 + 0.07 * np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / period)
    puff = 1 + 0.1 * noise(rng, h, w, rng.uniform(50, 120))
    colour = c1 if rng.random() < 0.7 else c2
    return tint(colour, seams * weave * puff)


BACKGROUNDS = {"gradient": gradient_bg, "blotchy": blotchy_bg, "stripes": stripes_bg,
               "tiles": tiles_bg, "grass": grass_bg, "sofa": sofa_bg}


def scene(rng: np.random.Generator, h: int, w: int, colours: list) -> np.ndarray:
    """A background (h, w, 3): one textured area, or a wall above a floor, sofa or lawn."""
    c1, c2, c3, c4 = colours[:4]
    if rng.random() < 0.35:  # one texture everywhere (a close-up)
        kind = str(rng.choice(list(BACKGROUNDS)))
        img = BACKGROUNDS[kind](rng, h, w, c1, c2)
    else:  # an upper and a lower area split by a slightly tilted horizon
        top = BACKGROUNDS[str(rng.choice(["gradient", "blotchy", "stripes", "grass"]))]
        bottom = BACKGROUNDS[str(rng.choice(["tiles", "blotchy", "grass", "sofa", "stripes"]))]
        y = np.arange(h, dtype=np.float32)[:, None]
        x = np.arange(w, dtype=np.float32)[None, :]
        horizon = rng.uniform(0.25, 0.7) * h + rng.uniform(-0.15, 0.15) * (x - w / 2)  # (1, w)
        below = np.clip((y - horizon) / 2, 0, 1)  # (h, w), 0 above the horizon, 1 below
        img = top(rng, h, w, c1, c2)
        paste(img, bottom(rng, h, w, c3, c4), below)
    grain = 1 + 0.05 * noise(rng, h, w, 1.5)  # fine texture everywhere, as on the pet
    return (img * grain[..., None]).astype(np.float32)


def distractor_points(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Polygon of a random clutter shape: a blob, a box, an ellipse or a thick line."""
    side = min(h, w)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    kind = rng.choice(["blob", "box", "ellipse", "line"])
    if kind == "blob":  # a wobbly round shape
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        r = side * rng.uniform(0.04, 0.18) * (1 + 0.25 * np.sin(3 * t + rng.uniform(0, 6))
                                               + 0.15 * np.sin(5 * t + rng.uniform(0, 6)))
        return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
    if kind == "box":
        bw, bh = side * rng.uniform(0.05, 0.4, 2)
        box = np.array([(-bw, -bh), (bw, -bh), (bw, bh), (-bw, bh)]) / 2
        return rotate_about(box, np.zeros(2), rng.uniform(-0.5, 0.5)) + (cx, cy)
    if kind == "ellipse":
        return ellipse_points(cx, cy, *(side * rng.uniform(0.03, 0.15, 2)), rng.uniform(0, 3))
    angle, length = rng.uniform(0, 2 * np.pi), side * rng.uniform(0.2, 0.8)
    end = (cx + length * np.cos(angle), cy + length * np.sin(angle))
    return stroke_points([(cx, cy), end], rng.uniform(2, 12), rng.uniform(2, 12))


def add_distractors(rng: np.random.Generator, img: np.ndarray, look: dict,
                    fur: np.ndarray) -> None:
    """Paint clutter over the scene (in place); some in the pet's colours or fur."""
    h, w, _ = img.shape
    shading = 1 + 0.12 * noise(rng, h, w, 25)
    for _ in range(int(rng.integers(3, 10))):
        points = distractor_points(rng, h, w)
        x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 1, (w, h))
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        mask = Image.new("L", (int(x1 - x0), int(y1 - y0)), 0)
        ImageDraw.Draw(mask).polygon((points - (x0, y0)).ravel().tolist(), fill=255)
        alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(0.7)), np.float32) / 255
        pick = rng.random()
        if pick < 0.15:  # a fur-like cushion or toy
            fill = fur[y0:y1, x0:x1]
        elif pick < 0.5:  # something in the pet's colours
            colour = jitter(rng, look["base"] if rng.random() < 0.7 else look["second"], 25)
            fill = tint(colour, shading[y0:y1, x0:x1])
        else:
            fill = tint(jitter(rng, SCENE[rng.integers(len(SCENE))], 40), shading[y0:y1, x0:x1])
        paste(img[y0:y1, x0:x1], fill, alpha)
