"""An offline sample dataset of toy pets, written in the Oxford-IIIT Pet layout.

No download is needed: `make_sample_dataset` draws a deterministic (seeded) set of
synthetic pet photos with their trimaps, laid out exactly like the official dataset,
so the very same loading code (`petseg_lib.oxford_pet`) reads it:

    ROOT/images/NAME.jpg                 RGB JPEGs, 200-500 px per side
    ROOT/annotations/trimaps/NAME.png    'L' PNGs: 1 = pet, 2 = background, 3 = boundary
    ROOT/annotations/list.txt            all names: "NAME CLASS-ID SPECIES BREED-ID"
    ROOT/annotations/trainval.txt        the training names, same format
    ROOT/annotations/test.txt            the test names, same format

Each toy pet is a side-view animal (body, chest, hips, head, muzzle, ears, legs, tail)
with a fur texture (stripes, spots, patches, fluffy or solid) and shading, in a random
pose, size and position, over a cluttered scene (walls, floors, grass, sofas) with
distractor shapes, some in the pet's own colours. Foreground and background colours
overlap, so colour alone cannot separate the pet: a model has to learn shapes.

Command line: `python -m petseg_lib.sample [--root R] [--n-trainval N] [--n-test N] [--seed S]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SAMPLE_VERSION = 1
MARKER = ".petseg-sample"  # written last: its presence means the dataset is complete
SUPERSAMPLE = 4  # the silhouette is drawn 4x larger, then averaged down: smooth edges
BAND = 2  # the trimap boundary band reaches 2 px each side of the outline (4 px wide)

# Toy breeds named like the official ones: cats capitalised, dogs lower-case.
# Class ids follow the alphabetical order of the names; breed ids count within a species.
BREEDS = [
    # name,        class id, species (1 cat, 2 dog), breed id
    ("Toy_Ginger", 1, 1, 1),
    ("toy_spaniel", 2, 2, 1),
    ("Toy_Tabby", 3, 1, 2),
    ("toy_terrier", 4, 2, 2),
]

LIST_HEADER = [
    "#Image CLASS-ID SPECIES BREED ID",
    "#ID: 1:4 Class ids",
    "#SPECIES: 1:Cat 2:Dog",
    "#BREED ID: 1-2:Cat 1:2:Dog",
    "#All images with 1st letter as capital are cat images",
    "#images with small first letter are dog images",
]

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


# ---------------------------------------------------------------------------
# Small drawing tools
# ---------------------------------------------------------------------------

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


def ellipse_points(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0,
                   n: int = 40) -> np.ndarray:
    """Polygon points (n, 2) of an ellipse whose rx axis is rotated by ANGLE (radians)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def stroke_points(path, w_start: float, w_end: float) -> np.ndarray:
    """Polygon points around a polyline PATH (n, 2) whose width tapers from w_start to w_end."""
    path = np.asarray(path, np.float64)
    d = np.gradient(path, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1)
    half = np.linspace(w_start, w_end, len(path))[:, None] / 2
    return np.concatenate([path + normal * half, (path - normal * half)[::-1]])


def limb(path, w_start: float, w_end: float) -> list[np.ndarray]:
    """A leg or a tail: a tapered stroke with round ends."""
    path = np.asarray(path, np.float64)
    (x0, y0), (x1, y1) = path[0], path[-1]
    return [stroke_points(path, w_start, w_end),
            ellipse_points(x0, y0, w_start / 2, w_start / 2, n=16),
            ellipse_points(x1, y1, w_end / 2, w_end / 2, n=16)]


def polar(centre, radius: float, degrees: float) -> tuple[float, float]:
    """The point at RADIUS from CENTRE in direction DEGREES (0 = forward, -90 = up)."""
    a = np.radians(degrees)
    return centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)


def rotate_about(points: np.ndarray, centre, angle: float) -> np.ndarray:
    """Rotate points (n, 2) by ANGLE (radians) around CENTRE."""
    c, s = np.cos(angle), np.sin(angle)
    p = points - centre
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1]], axis=1) + centre


def transform(points: np.ndarray, scale: float, angle: float, mirror: bool,
              offset) -> np.ndarray:
    """Body units -> image pixels: mirror, rotate by ANGLE, scale, then shift by OFFSET."""
    p = points * np.array([-1.0 if mirror else 1.0, 1.0])
    return rotate_about(p, np.zeros(2), angle) * scale + np.asarray(offset, np.float64)


def paste(img: np.ndarray, fill: np.ndarray, alpha: np.ndarray) -> None:
    """In place: img = img * (1 - alpha) + fill * alpha, with alpha (h, w) in [0, 1]."""
    img += (fill - img) * alpha[..., None]


# ---------------------------------------------------------------------------
# The pet
# ---------------------------------------------------------------------------

def body_and_legs(rng: np.random.Generator, pose: str, ry: float, hr: float, lw: float,
                  leg_len: float) -> tuple[list, list, dict]:
    """Trunk and legs of a pose as (near-side, far-side) polygon lists, and where the rest joins.

    RY is the half height of the trunk, HR the head radius, LW the leg width. The dict holds
    the neck base, the head centre, the tail base and the tail's direction in degrees.
    """
    near, far = [], []
    if pose == "sitting":
        ground = 0.45
        tilt = -np.radians(rng.uniform(40, 60))  # front end up
        near += [ellipse_points(0, 0, 0.42, ry, tilt),
                 ellipse_points(-0.14, 0.28, 0.26, 0.2)]  # haunch
        for x, side in [(0.14, near), (0.08, far)]:
            side += limb([(x, -0.05), (x + 0.02, 0.2), (x + 0.04, ground - lw / 2)], lw * 1.4, lw)
        near.append(ellipse_points(0.0, ground - lw * 0.4, lw * 1.3, lw * 0.45))  # hind paw
        joints = {"neck": (0.14, -0.22),
                  "head": (0.3 + rng.uniform(-0.03, 0.06), -0.34 - hr * rng.uniform(0.5, 0.9)),
                  "tail": (-0.32, 0.4), "tail_dir": rng.uniform(150, 200)}
    elif pose == "lying":
        ground = ry * 1.05
        near += [ellipse_points(0, 0, 0.5, ry), ellipse_points(0.27, 0.02, 0.25, ry * 1.05),
                 ellipse_points(-0.22, ry * 0.3, 0.24, ry * 0.78)]  # trunk, chest, haunch
        for dx, side in [(0.0, near), (-0.06, far)]:  # front legs stretched forward
            side += limb([(0.28 + dx, ry * 0.5), (0.5 + dx, ground - lw * 0.6),
                          (0.7 + dx, ground - lw / 2)], lw * 1.3, lw * 0.95)
        near += limb([(-0.12, ry * 0.8), (0.06, ground - lw / 2)], lw * 1.1, lw * 0.9)
        joints = {"neck": (0.3, -ry * 0.3),
                  "head": (0.55 + rng.uniform(-0.02, 0.08), -ry - rng.uniform(0.0, 0.12)),
                  "tail": (-0.46, 0.0), "tail_dir": rng.uniform(150, 200)}
    else:  # standing or walking
        ground = ry + leg_len
        near += [ellipse_points(0, 0, 0.5, ry), ellipse_points(0.27, 0.02, 0.25, ry * 1.05),
                 ellipse_points(-0.3, 0.0, 0.22, ry)]  # trunk, chest, hips
        swing = 0.0 if pose == "standing" else rng.uniform(0.06, 0.14)
        legs = [(0.3, swing, near, 0.0), (0.22, -swing * 0.6, far, 0.0),
                (-0.3, -swing, near, -0.05), (-0.38, swing * 0.6, far, -0.05)]
        for x, foot, side, knee in legs:  # rear legs (knee < 0) bend backwards at the hock
            path = [(x, ry * 0.1), (x + foot * 0.5 + knee, ry + leg_len * 0.45),
                    (x + foot, ground - lw / 2)]
            side += limb(path, lw * (1.8 if knee else 1.4), lw * 0.9)
            side.append(ellipse_points(x + foot + lw * 0.3, ground - lw * 0.35, lw * 0.65,
                                       lw * 0.38))  # paw
        joints = {"neck": (0.3, -ry * 0.3),
                  "head": (0.52 + rng.uniform(-0.02, 0.1), -ry - rng.uniform(0.02, 0.2)),
                  "tail": (-0.46, -ry * 0.35), "tail_dir": rng.uniform(190, 250)}
    return near, far, joints


def tail_parts(rng: np.random.Generator, breed: str, base, direction: float) -> list:
    """A tail as a tapered curve: long and thin for cats, short and thick for dogs."""
    if breed[0].isupper():
        length, w0, w1, bend = rng.uniform(0.45, 0.7), 0.065, 0.04, rng.uniform(-70, 90)
    elif breed == "toy_spaniel":
        length, w0, w1, bend = rng.uniform(0.22, 0.35), 0.09, 0.05, rng.uniform(-40, 40)
    else:  # a terrier's short tail points up
        length, w0, w1, bend = rng.uniform(0.15, 0.25), 0.08, 0.045, rng.uniform(-30, 30)
        direction += 30
    theta = np.radians(direction + bend * np.linspace(0, 1, 10))  # the curve turns by BEND
    steps = np.stack([np.cos(theta), np.sin(theta)], axis=1) * length / 10
    return limb(np.asarray(base) + np.cumsum(steps, axis=0), w0, w1)


def head_parts(rng: np.random.Generator, breed: str, head, hr: float,
               neck: tuple[float, float, float]) -> tuple[list, list, list, dict]:
    """Neck, head, muzzle and ears (pointed for cats, floppy for dogs), and the face.

    NECK is (x, y, width) of the neck base. Returns (far, near, ears, face) polygon lists
    and the eye centres, eye radius and nose point, all tilted a little around the neck.
    """
    hx, hy = head
    far, near, ears = [], [], []
    near += limb([neck[:2], (hx - hr * 0.2, hy + hr * 0.3)], neck[2], hr * 1.5)
    near.append(ellipse_points(hx, hy, hr * 1.05, hr))
    cat = breed[0].isupper()
    if cat:  # small muzzle, pointed ears
        mx, my, mrx, mry = hx + hr * 0.72, hy + hr * 0.35, hr * 0.38, hr * 0.32
        for phi, side in [(-112, far), (-62, near)]:
            phi, half, tip = phi + rng.uniform(-8, 8), rng.uniform(18, 24), rng.uniform(1.65, 1.95)
            side.append(np.array([polar(head, hr * 0.85, phi - half), polar(head, hr * tip, phi),
                                  polar(head, hr * 0.85, phi + half)]))
    elif breed == "toy_spaniel":  # long muzzle, long ears hanging over the side of the head
        mx, my = hx + hr * 0.85, hy + hr * 0.3
        mrx, mry = hr * rng.uniform(0.65, 0.85), hr * rng.uniform(0.4, 0.5)
        ear_len, ear_w = hr * rng.uniform(1.6, 2.2), hr * rng.uniform(0.4, 0.5)
        droop = rng.uniform(-0.45, 0.0)  # radians, negative swings the ear backwards
        ax, ay = polar(head, hr * 0.8, -125 + rng.uniform(-10, 10))
        cx, cy = ax + np.sin(droop) * ear_len * 0.45, ay + np.cos(droop) * ear_len * 0.45
        ears.append(ellipse_points(cx, cy, ear_len / 2, ear_w, np.pi / 2 - droop))
    else:  # short muzzle, folded ears: a short flap rising from the head, tip falling forward
        mx, my = hx + hr * 0.85, hy + hr * 0.3
        mrx, mry = hr * rng.uniform(0.5, 0.7), hr * rng.uniform(0.4, 0.5)
        for phi, side in [(-100, far), (-140, ears)]:
            phi = phi + rng.uniform(-8, 8)
            rise, fold = hr * rng.uniform(1.35, 1.55), hr * rng.uniform(1.15, 1.3)
            side.append(np.array([polar(head, hr * 0.85, phi), polar(head, rise, phi + 30),
                                  polar(head, fold, phi + 60), polar(head, hr * 0.85, phi + 70)]))
    near.append(ellipse_points(mx, my, mrx, mry))
    eyes = np.array([(hx + hr * 0.3, hy - hr * 0.2), (hx + hr * 0.72, hy - hr * 0.25)])
    nose = np.array([(mx + mrx * 0.9, my - mry * 0.35)])

    nod, pivot = rng.uniform(-0.3, 0.3), np.asarray(neck[:2])  # raise or lower the head
    far, near, ears = ([rotate_about(p, pivot, nod) for p in group] for group in (far, near, ears))
    face = {"eyes": rotate_about(eyes, pivot, nod), "nose": rotate_about(nose, pivot, nod),
            "eye_r": hr * (0.13 if cat else 0.11), "cat": cat}
    return far, near, ears, face


def pet_shapes(rng: np.random.Generator, breed: str) -> tuple[list, dict]:
    """Body parts of a toy pet in body units (body length 1, x forward, y down).

    Returns (parts, face): parts is a list of (points (n, 2), shade) polygons in drawing
    order, shade 1 for the near side, darker for the far side and for dog ears;
    face holds the eye centres, eye radius and nose point.
    """
    cat = breed[0].isupper()
    ry = 0.5 * rng.uniform(0.36, 0.5) if cat else 0.5 * rng.uniform(0.4, 0.56)  # half height
    hr = rng.uniform(0.16, 0.21) if cat else rng.uniform(0.14, 0.18)  # head radius
    lw = rng.uniform(0.075, 0.09) if cat else rng.uniform(0.085, 0.11)  # leg width
    leg_len = {"toy_terrier": (0.2, 0.28), "toy_spaniel": (0.28, 0.4)}.get(breed, (0.28, 0.38))
    pose = str(rng.choice(["standing", "walking", "sitting", "lying"], p=[0.3, 0.3, 0.2, 0.2]))

    near, far, joints = body_and_legs(rng, pose, ry, hr, lw, rng.uniform(*leg_len))
    near += tail_parts(rng, breed, joints["tail"], joints["tail_dir"])
    head_far, head_near, ears, face = head_parts(rng, breed, joints["head"], hr,
                                                 (*joints["neck"], ry * 1.1))
    far, near = far + head_far, near + head_near
    parts = [(p, 0.68) for p in far] + [(p, 1.0) for p in near] + [(p, 0.72) for p in ears]
    return parts, face


def polygon_area(parts: list, px_per_unit: float = 60.0) -> float:
    """Area of the union of the parts' polygons, in body units squared (rasterised)."""
    pts = np.concatenate([p for p, _ in parts])
    low = pts.min(axis=0)
    w, h = np.ceil((pts.max(axis=0) - low) * px_per_unit).astype(int) + 2
    canvas = Image.new("L", (int(w), int(h)), 0)
    draw = ImageDraw.Draw(canvas)
    for p, _ in parts:
        draw.polygon(((p - low) * px_per_unit).ravel().tolist(), fill=1)
    return float(np.asarray(canvas).sum()) / px_per_unit**2


def place_pet(rng: np.random.Generator, parts: list, size: tuple[int, int]) -> dict:
    """Pick scale, rotation, mirroring and position so the pet covers about 15-60 % of the image."""
    w, h = size
    angle, mirror = np.radians(rng.uniform(-15, 15)), bool(rng.random() < 0.5)
    pts = transform(np.concatenate([p for p, _ in parts]), 1.0, angle, mirror, (0, 0))
    low, high = pts.min(axis=0), pts.max(axis=0)
    box = high - low  # (width, height) in body units
    scale = np.sqrt(rng.uniform(0.15, 0.6) * w * h / polygon_area(parts))
    scale = min(scale, 1.1 * w / box[0], 1.1 * h / box[1])  # at most a little out of frame
    offset = []
    for extent, side, lo in [(box[0] * scale, w, low[0]), (box[1] * scale, h, low[1])]:
        if extent <= side:  # fits: anywhere, up to 5 % of the pet outside the frame
            start = rng.uniform(-0.05 * extent, side - 0.95 * extent)
        else:  # too big: crop it on both sides
            start = rng.uniform(side - extent, 0)
        offset.append(start - lo * scale)
    return {"scale": float(scale), "angle": float(angle), "mirror": mirror, "offset": offset}


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


# ---------------------------------------------------------------------------
# The scene behind the pet
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# The dataset on disk
# ---------------------------------------------------------------------------

def sample_records(n_trainval: int, n_test: int, seed: int) -> list[tuple]:
    """(index, name, class id, species, breed id, is_test) of every image, in list.txt order."""
    n = n_trainval + n_test
    test = set(np.random.default_rng([seed, n]).permutation(n)[:n_test].tolist())
    counts = {b[0]: 0 for b in BREEDS}
    records = []
    for i in range(n):
        breed, class_id, species, breed_id = BREEDS[i % len(BREEDS)]
        counts[breed] += 1
        records.append((i, f"{breed}_{counts[breed]}", class_id, species, breed_id, i in test))
    return sorted(records, key=lambda r: (r[2], int(r[1].rsplit("_", 1)[1])))


def read_marker(root: str | Path) -> dict | None:
    """The parameters stored in ROOT's marker file, or None when there is none."""
    try:
        return json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_complete(root: str | Path) -> bool:
    """True when ROOT holds a finished sample dataset (marker, images, trimaps, split files)."""
    root = Path(root)
    marker = read_marker(root)
    if not isinstance(marker, dict) or marker.get("version") != SAMPLE_VERSION:
        return False
    ann = root / "annotations"
    if not all((ann / f).is_file() for f in ("list.txt", "trainval.txt", "test.txt")):
        return False
    n = marker.get("n_trainval", -1) + marker.get("n_test", -1)
    images = root / "images"
    trimaps = ann / "trimaps"
    return (images.is_dir() and trimaps.is_dir() and len(list(images.glob("*.jpg"))) == n
            and len(list(trimaps.glob("*.png"))) == n)


def _write_dataset(folder: Path, n_trainval: int, n_test: int, seed: int) -> None:
    """Write all images, trimaps and split files into FOLDER, then the marker."""
    (folder / "images").mkdir(parents=True)
    (folder / "annotations" / "trimaps").mkdir(parents=True)
    records = sample_records(n_trainval, n_test, seed)
    for index, name, *_ in sorted(records):  # generation order: by index
        rng = np.random.default_rng([seed, index])
        image, trimap = make_sample_image(rng, name.rsplit("_", 1)[0])
        Image.fromarray(image).save(folder / "images" / f"{name}.jpg", quality=90)
        Image.fromarray(trimap).save(folder / "annotations" / "trimaps" / f"{name}.png")
    lines = {r[1]: f"{r[1]} {r[2]} {r[3]} {r[4]}\n" for r in records}
    ann = folder / "annotations"
    (ann / "list.txt").write_text("\n".join(LIST_HEADER) + "\n" + "".join(lines.values()))
    (ann / "trainval.txt").write_text("".join(lines[r[1]] for r in records if not r[5]))
    (ann / "test.txt").write_text("".join(lines[r[1]] for r in records if r[5]))
    marker = {"version": SAMPLE_VERSION, "seed": seed, "n_trainval": n_trainval,
              "n_test": n_test}
    (folder / MARKER).write_text(json.dumps(marker) + "\n")


def make_sample_dataset(root: str | Path, n_trainval: int = 200, n_test: int = 50,
                        seed: int = 0) -> Path:
    """Generate the toy pets dataset into ROOT (unless it is already there) and return ROOT.

    The files are built in a temporary sibling folder that is renamed to ROOT at the end,
    so an interrupted run never leaves a half-made dataset at ROOT.
    """
    root = Path(root)
    wanted = {"version": SAMPLE_VERSION, "seed": seed, "n_trainval": n_trainval,
              "n_test": n_test}
    if is_complete(root) and read_marker(root) == wanted:
        return root
    if root.exists() and any(root.iterdir()) and read_marker(root) is None:
        raise FileExistsError(f"{root} exists and is not a petseg sample dataset: "
                              "remove it or pick another root.")
    tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_dataset(tmp, n_trainval, n_test, seed)
        if root.exists():  # an older or incomplete sample dataset
            shutil.rmtree(root)
        try:
            os.replace(tmp, root)
        except OSError:  # fine if another process has just made the same dataset
            if not (is_complete(root) and read_marker(root) == wanted):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return root


def project_root() -> Path | None:
    """The course repository when this package runs from a checkout, else None."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").exists() else None


def default_sample_root() -> Path:
    """Where the sample dataset goes: data/oxford-iiit-pet-sample in the repository (or cwd)."""
    return (project_root() or Path.cwd()) / "data" / "oxford-iiit-pet-sample"


def ensure_sample_dataset(root: str | Path | None = None, **kwargs) -> Path:
    """The sample dataset's path, generating it when missing, incomplete or made differently."""
    return make_sample_dataset(default_sample_root() if root is None else root, **kwargs)


def main(argv: list[str] | None = None) -> None:
    """Command line: generate the sample dataset and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(default_sample_root()),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--n-trainval", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = ensure_sample_dataset(args.root, n_trainval=args.n_trainval, n_test=args.n_test,
                                 seed=args.seed)
    print(f"Sample dataset ({args.n_trainval} trainval + {args.n_test} test toy pets) "
          f"in {root}")


if __name__ == "__main__":
    main()
