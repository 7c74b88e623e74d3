"""Reading the files a user hands in: any image as upright RGB, any split file's encoding.

Photos come from phones, scanners and editors: greyscale, 16-bit, palette, transparent, CMYK,
turned by an EXIF tag, or a PNG named .jpg. `read_image` (a path or an open file) and
`load_rgb` (a path) read them all as the (H, W, 3) RGB picture a person sees, through the same
steps (`read_bytes`, `open_image`, `upright_rgb`); a file that cannot be used (missing, empty,
not an image, damaged, too large) raises `UnreadableImage`, one line naming the file.
`UNREADABLE` is what Pillow itself can raise on a damaged or hostile file (UnreadableImage
included), for the code that opens files with Pillow directly, so that callers skip them with a
warning instead of stopping. Text files saved by Notepad or Excel may carry a byte-order mark or
be UTF-16: `read_text_any` reads them whole, and `unique_names` keeps each name of a split
file once, saying in one warning which it skipped.
"""

from __future__ import annotations

import codecs
import io
import warnings
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ..errors import UnreadableImage

MAX_PIXELS = 100_000_000  # 100 megapixels: larger "photos" are refused (decompression bombs)
EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how a stored photo must be turned
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# What a damaged or hostile file can raise while Pillow opens and decodes it.
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
SPLIT_WARNINGS_SHOWN: set[tuple] = set()  # (file, its version, message): each one shown once


def load_rgb(path: str | Path, upright: bool = True) -> Image.Image:
    """Open any image file as RGB (see `to_rgb`), turned as its EXIF tag says when UPRIGHT."""
    return read_image(path, upright=upright)


def read_image(source: str | Path | BinaryIO, name: str | None = None,
               upright: bool = True) -> Image.Image:
    """The RGB picture of a path or an open binary file; NAME labels it in error messages."""
    data, name = read_bytes(source, name)
    return upright_rgb(open_image(data, name), name, upright)


def read_bytes(source: str | Path | BinaryIO, name: str | None = None) -> tuple[bytes, str]:
    """The bytes of a path or an open binary file, and the name to show in errors."""
    if hasattr(source, "read"):  # an open binary file, or io.BytesIO of uploaded bytes
        return source.read(), name or getattr(source, "name", "upload")
    name = name or str(source)
    try:
        return Path(source).read_bytes(), name
    except FileNotFoundError:
        raise UnreadableImage(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UnreadableImage(f"{name}: a folder, not a photo") from None
    except OSError as error:
        raise UnreadableImage(f"{name}: cannot be read ({error.strerror})") from None


def open_image(data: bytes, name: str) -> Image.Image:
    """The image in DATA, header read only; empty, unreadable and oversized files refused."""
    if not data:
        raise UnreadableImage(f"{name}: empty file")
    with warnings.catch_warnings():
        # Pillow warns above ~89 megapixels; the size is checked just below, against MAX_PIXELS.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only
        except Image.DecompressionBombError as error:  # Pillow's own hard limit
            raise UnreadableImage(f"{name}: too large: {error}") from None
        except (OSError, SyntaxError, ValueError):
            raise UnreadableImage(f"{name}: not an image Pillow can read") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise UnreadableImage(f"{name}: too large: {width} x {height} pixels "
                              f"(limit {MAX_PIXELS:,})")
    return image


def upright_rgb(image: Image.Image, name: str, upright: bool = True) -> Image.Image:
    """IMAGE decoded, turned as its EXIF orientation says (when UPRIGHT), and made RGB."""
    try:
        image.load()  # decodes the pixels: a truncated or damaged file fails here
        if upright:
            image = ImageOps.exif_transpose(image)  # phones store pictures sideways plus a tag
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        reason = " ".join(str(error).split())  # one line
        raise UnreadableImage(f"{name}: truncated or damaged ({reason})") from None
    try:
        return to_rgb(image)  # 16-bit grey scaled, transparent pixels on white
    except ValueError:
        raise UnreadableImage(f"{name}: colour mode {image.mode} is not supported") from None


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


def shown(name: str | Path) -> str:
    """NAME as text any terminal can print: bytes that are not UTF-8 (a file name from an old
    Windows zip, say) appear as escapes such as \\xe9 instead of stopping the print."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_text_any(path: str | Path) -> str:
    """A text file's contents, whatever its encoding: UTF-16 or UTF-8 (by BOM), else Latin-1."""
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # never fails: every byte is a character


def unique_names(names: list[str], path: Path, taken: dict[str, str]) -> list[str]:
    """NAMES read from PATH less repeats and names TAKEN by another file; one warning lists them.

    The warning is shown once per version of the file: the train and validation sets read the
    same file, and a notebook builds its datasets again each time its cell runs.
    """
    why = {name: f"also in {taken[name]}, which keeps it" for name in names if name in taken}
    for name, count in Counter(names).items():
        if count > 1 and name not in why:
            why[name] = f"listed {count} times; the first counts"
    kept = list(dict.fromkeys(name for name in names if name not in taken))
    if len(kept) < len(names):
        listing = "\n".join(f"  {name}: {reason}" for name, reason in why.items())
        message = f"Skipped {len(names) - len(kept)} of {len(names)} names listed in {path}:\n"
        version = path.stat()
        shown = (str(path.resolve()), version.st_mtime_ns, version.st_size, message + listing)
        if shown not in SPLIT_WARNINGS_SHOWN:
            SPLIT_WARNINGS_SHOWN.add(shown)
            warnings.warn(message + listing, stacklevel=4)
    return kept
