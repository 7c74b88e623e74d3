"""Segment any photo: your own pictures, in any size, format and orientation, with a trained model.

The course's datasets hand the model square, resized tensors. A photo from a phone is
different: a 4000 x 3000 JPEG (or a PNG, WebP, TIFF, GIF...), stored sideways
with an EXIF tag saying how to turn it, sometimes grey, transparent or CMYK. This module reads
any of them as an upright RGB picture (`read_photo`), lets the model look at a small copy, and
brings the answer back to the photo's own size (`segment`):

    photo (H, W) ──resize──► (S, S) ──model──► logits (S, S) ──bilinear──► (H, W) ── > t ──► mask

The logits, not the mask, are enlarged: a mask enlarged from S x S pixels would have a
staircase edge; enlarged logits cross the threshold between pixels, so the edge stays smooth.

    from petseg_lib.inference import load_model
    from petseg_lib.use.photos import overlay_photo, read_photo, segment, segment_files

    model = load_model("checkpoints/unet_best.pth")
    photo = read_photo("my_cat.jpg")
    mask = segment(model, photo)               # (H, W) bool, the photo's own size
    overlay_photo(photo, mask).show()
    segment_files(model, ["my_photos/"], "outputs/photos")   # NAME_mask.png, NAME_overlay.png

or from a terminal (masks and overlays go to outputs/inference/ unless --output_dir says):

    python -m petseg_lib.inference --model checkpoints/unet_best.pth --images my_photos/ cat.jpg
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from ..data.user_files import (  # noqa: F401  (MAX_PIXELS: the limit, named here too)
    MAX_PIXELS,
    open_image,
    read_bytes,
    read_image,
    upright_rgb,
    upright_size,
)
from ..errors import UnreadableImage
from ..evaluation.figures import (
    contrasting_colour,
    outline,
    outline_width,
    to_image_array,
    to_mask_array,
)
from ..evaluation.predict import full_size_logits, input_size
from ..evaluation.threshold import DEFAULT_THRESHOLD, binarize
from ..paths import written_atomically

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
DEFAULT_SIZE = 256  # the size the model sees when it does not record its training size
PhotoError = UnreadableImage  # the name this module gave it first

# ---------------------------------------------------------------------------
# Reading: any source, any format, any colour mode -> upright RGB
# ---------------------------------------------------------------------------

def read_photo(source, name: str | None = None) -> Image.Image:
    """An upright RGB photo from a path, a binary file, a PIL image, or an array/tensor.

    Arrays are (H, W), (H, W, 3) or (H, W, 4), uint8 or float in [0, 1]; tensors may be (3, H, W).
    Transparent pixels are put on white. NAME labels the photo in error messages.
    """
    if isinstance(source, Image.Image):
        return upright_rgb(source, name or getattr(source, "filename", "") or "image")
    if isinstance(source, np.ndarray | torch.Tensor):
        return _array_to_photo(source, name or "array")
    return read_image(source, name)


def read_photo_for_model(source, side: int,
                         name: str | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The photo decoded no larger than a model of input SIDE needs, and its full (H, W).

    A JPEG file is decoded at 1/2, 1/4 or 1/8 of its size, the smallest scale whose sides
    stay at least SIDE: the decoder averages blocks of pixels instead of producing all 12
    million of a phone photo. Other formats, and photos already decoded, come at full size.
    """
    if isinstance(source, Image.Image | np.ndarray | torch.Tensor):
        photo = read_photo(source, name)
        return photo, (photo.height, photo.width)
    data, name = read_bytes(source, name)
    image = open_image(data, name)
    width, height = upright_size(image)
    image.draft("RGB", (side, side))  # JPEG only; it keeps both sides >= SIDE
    return upright_rgb(image, name), (height, width)


def _array_to_photo(array, name: str) -> Image.Image:
    """An (H, W), (H, W, 3) or (H, W, 4) uint8 or [0, 1] float array as an RGB photo."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if not (array.dtype == np.uint8 or array.dtype.kind in "fb"):
        raise UnreadableImage(f"{name}: an array of {array.dtype}; "
                              "expected uint8, or float in [0, 1]")
    if array.dtype != np.uint8 or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        # floats are clipped to [0, 1]; (3, H, W) becomes (H, W, 3)
        array = (to_image_array(array) * 255 + 0.5).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]  # (H, W, 1) -> (H, W)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise UnreadableImage(f"{name}: an array of shape {tuple(array.shape)}; "
                              "expected (H, W), (H, W, 3) or (H, W, 4)")
    return upright_rgb(Image.fromarray(np.ascontiguousarray(array)), name)  # L, RGB or RGBA


# ---------------------------------------------------------------------------
# Segmenting: the model sees a small copy, the logits come back at full size
# ---------------------------------------------------------------------------

def segment_logits(model: nn.Module, image, image_size: int | None = None,
                   tta: bool = False, amp: bool = False) -> torch.Tensor:
    """The model's logits for a photo, (H, W) float32 at the photo's own size, on the CPU.

    The model sees the photo squeezed to IMAGE_SIZE x IMAGE_SIZE (default: the size it was
    trained at), as in training; its logits are enlarged back to (H, W) with bilinear
    interpolation (predict.full_size_logits). TTA and AMP as in `predict_logits`.
    """
    side = input_size(model, image_size)
    photo, size = read_photo_for_model(image, side)  # a JPEG file: decoded at a reduced scale
    # Pillow shrinks a 12-megapixel photo with the same antialiasing as the datasets' resize,
    # several times faster than torch does; `reducing_gap` first bins whole blocks of pixels.
    small = photo.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return full_size_logits(model, TF.pil_to_tensor(small), size, tta, amp)


def threshold_logits(logits: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """(H, W) bool mask as a numpy array: sigmoid(logits) > THRESHOLD (threshold.binarize)."""
    return binarize(torch.as_tensor(logits), threshold).numpy()


def segment(model: nn.Module, image, threshold: float = DEFAULT_THRESHOLD,
            image_size: int | None = None) -> np.ndarray:
    """The pet mask of a photo, (H, W) bool at the photo's own size (see `segment_logits`)."""
    return threshold_logits(segment_logits(model, image, image_size), threshold)


# ---------------------------------------------------------------------------
# Pictures of the result
# ---------------------------------------------------------------------------

def mask_png(mask) -> Image.Image:
    """MASK as an 8-bit greyscale picture: pet 255 (white), background 0 (black)."""
    return Image.fromarray(to_mask_array(mask).astype(np.uint8) * 255)  # (H, W) mode "L"


def overlay_photo(photo, mask, color=None, alpha: float = 0.45) -> Image.Image:
    """The photo with the pet tinted in COLOR (ALPHA of it) and outlined in COLOR.

    COLOR None picks the one of `figures.TINT_COLOURS` that contrasts with the pet's fur.
    Made with Pillow in 8 bits, so a 24-megapixel photo needs no float copies
    (`utils.tint_mask` is the float version, for the small tensors of the datasets).
    """
    photo = read_photo(photo)
    mask = to_mask_array(mask)  # (H, W) bool
    if mask.shape != (photo.height, photo.width):
        raise ValueError(f"mask {mask.shape[1]} x {mask.shape[0]} does not fit the photo "
                         f"{photo.width} x {photo.height}")
    if color is None:  # judged on a copy of at most about 256 px: the mean colour is enough
        step = max(1, max(mask.shape) // 256)
        small = mask[::step, ::step]
        copy = photo.resize((small.shape[1], small.shape[0]), Image.Resampling.NEAREST)
        color = tuple(round(255 * c) for c in contrasting_colour(np.asarray(copy), small))
    tinted = Image.blend(photo, Image.new("RGB", photo.size, color), alpha)
    picture = Image.composite(tinted, photo, mask_png(mask))  # tinted where the pet is
    width = outline_width(mask)  # 1 px on small pictures, 20 px on 4000 x 6000
    picture.paste(color, mask=mask_png(outline(mask, width)))
    return picture


# ---------------------------------------------------------------------------
# Many files: a folder of photos -> masks and overlays on disk
# ---------------------------------------------------------------------------

def photo_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Each path as given; a folder gives its photo files (sorted, not its subfolders)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.iterdir()
                            if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
        else:
            found.append(path)  # a missing file is reported when it is read
    return found


def save_png(picture: Image.Image, path: Path) -> Path:
    """Write PICTURE as a PNG atomically: a hidden file in the same folder, then a rename."""
    with written_atomically(path) as partial:
        picture.save(partial, format="PNG")
    return path


def _output_stem(path: Path, taken: set[str]) -> str:
    """PATH's stem; stem_ext when another photo has it (a.jpg, a.png); then stem_ext2, ..."""
    stem = path.stem
    if stem.casefold() in taken:  # casefold: A.jpg and a.png collide on macOS and Windows
        stem = f"{path.stem}_{path.suffix.lstrip('.').lower()}"
    base, number = stem, 2
    while stem.casefold() in taken:  # a.jpg in two folders
        stem, number = f"{base}{number}", number + 1
    taken.add(stem.casefold())
    return stem


def segment_files(model: nn.Module, paths, output_dir: str | Path,
                  threshold: float = DEFAULT_THRESHOLD,
                  image_size: int | None = None) -> list[dict]:
    """Segment every photo of PATHS (files or folders); write NAME_mask.png, NAME_overlay.png.

    Returns one dict per photo: path, width, height, pet_share, ms (time to segment),
    mask_path, overlay_path. Unreadable photos are skipped and listed in one warning.
    """
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    files = photo_paths(paths)
    if not files:
        raise UnreadableImage(f"no photos found in {', '.join(map(str, paths))}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results, problems, taken = [], [], set()
    for path in files:
        try:
            photo = read_photo(path)
        except UnreadableImage as error:
            problems.append(str(error))
            continue
        start = time.perf_counter()
        mask = segment(model, photo, threshold, image_size)  # (H, W) bool
        ms = (time.perf_counter() - start) * 1000
        stem = _output_stem(path, taken)
        results.append({
            "path": path, "width": photo.width, "height": photo.height,
            "pet_share": float(mask.mean()), "ms": ms,
            "mask_path": save_png(mask_png(mask), output_dir / f"{stem}_mask.png"),
            "overlay_path": save_png(overlay_photo(photo, mask),
                                     output_dir / f"{stem}_overlay.png"),
        })
    if not results:
        raise UnreadableImage(f"none of the {len(files)} photos could be read: "
                              + "; ".join(problems))
    if problems:
        listing = "\n".join(f"  {problem}" for problem in problems)
        warnings.warn(f"Skipped {len(problems)} of {len(files)} photos:\n{listing}",
                      stacklevel=2)
    return results
