"""Reading the files a user hands in: any image as upright RGB, any split file's encoding.

Photos come from phones, scanners and editors: greyscale, 16-bit, palette, transparent, CMYK,
turned by an EXIF tag, or a PNG named .jpg. `load_rgb` reads them all as the (H, W, 3) RGB
picture a person sees; `UNREADABLE` is what a damaged or hostile file can raise on the way, so
that callers skip it with a warning instead of stopping. Text files saved by Notepad or Excel
may carry a byte-order mark or be UTF-16: `read_text_any` reads them whole.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how a stored photo must be turned
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# What a damaged or hostile file can raise while Pillow opens and decodes it.
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def load_rgb(path: str | Path, upright: bool = True) -> Image.Image:
    """Open any image as RGB (see `to_rgb`), turned as its EXIF tag says when UPRIGHT."""
    with Image.open(path) as im:
        return to_rgb(ImageOps.exif_transpose(im) if upright else im)


def to_rgb(image: Image.Image) -> Image.Image:
    """IMAGE (grey, 16-bit grey, RGBA, CMYK, palette...) as RGB, transparent pixels on white."""
    if image.mode in SIXTEEN_BIT_MODES:
        # 16-bit grey: Pillow's convert would clip everything above 255 to white.
        scaled = np.asarray(image, dtype=np.float32) / 257.0  # 0..65535 -> 0..255
        image = Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8))
    if image.mode == "F":  # floating-point grey (TIFF): 0..1 as most tools write it, else 0..255
        pixels = np.nan_to_num(np.asarray(image, dtype=np.float32))
        scaled = pixels * 255.0 if pixels.max(initial=0.0) <= 1.0 else pixels
        image = Image.fromarray(np.clip(scaled, 0, 255).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))  # transparent pixels show the white
        return image
    return image.convert("RGB")  # L, P, 1, CMYK, YCbCr, F...


def upright_size(image: Image.Image) -> tuple[int, int]:
    """IMAGE's (width, height) once turned as its EXIF orientation tag says."""
    width, height = image.size
    if image.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):  # stored turned by 90 degrees
        return height, width
    return width, height


def read_text_any(path: str | Path) -> str:
    """A text file's contents, whatever its encoding: UTF-16 or UTF-8 (by BOM), else Latin-1."""
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # never fails: every byte is a character
