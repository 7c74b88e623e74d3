"""The toy pet's outline: body, legs, tail, head and ears as polygons.

A pet is drawn in body units (body length 1, x forward, y down) as a list of polygons
(ellipses, tapered strokes, triangles) in drawing order, in one of four poses
(standing, walking, sitting, lying), with cat or dog ears, muzzle and tail. `place_pet`
then picks its size, tilt, mirroring and position in the photo, and `transform` maps
body units to pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


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
