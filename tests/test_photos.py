"""Segmenting your own photos: every format and colour mode, EXIF turns, huge and broken files."""

import io
import os
import struct
import subprocess
import sys
import warnings
import zlib
from datetime import UTC, datetime

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter, features
from torch import nn

from petseg_lib import inference
from petseg_lib.data import user_files
from petseg_lib.data.mask_folder import name_fraction
from petseg_lib.evaluation.evaluate import confusion_counts, iou_from_counts
from petseg_lib.evaluation.figures import TINT_COLOURS
from petseg_lib.models import build_model
from petseg_lib.use import widgets
from petseg_lib.use.photos import (
    PhotoError,
    mask_png,
    outline,
    overlay_photo,
    read_photo,
    read_photo_for_model,
    segment,
    segment_files,
    segment_logits,
)

from .test_inference import write_checkpoint

PET, BACKGROUND = (230, 150, 60), (30, 40, 60)  # an orange pet on a dark blue-grey background


class BrightRedIsPet(nn.Module):
    """A stand-in model for any input size: the logit is high where the red channel is bright."""

    def __init__(self, image_size: int | None = 64):
        super().__init__()
        self.image_size = image_size
        self.gain = nn.Parameter(torch.tensor(20.0))
        self.inputs = []  # the shapes it was given

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":  # threads.forward_flops counts its work on meta tensors
            self.inputs.append(tuple(x.shape))
        return (x[:, :1] - 0.5) * self.gain  # (N, 1, H, W)


def pet_mask(width: int, height: int, box=(0.08, 0.3, 0.5, 0.9)) -> np.ndarray:
    """(H, W) bool: an ellipse in BOX (fractions of the width and height), low on the left."""
    canvas = Image.new("L", (width, height), 0)
    left, top, right, bottom = box
    ImageDraw.Draw(canvas).ellipse((left * width, top * height, right * width, bottom * height),
                                   fill=255)
    return np.asarray(canvas) > 0


def pet_photo(width: int = 160, height: int = 120) -> tuple[Image.Image, np.ndarray]:
    """A synthetic photo (RGB) of an orange ellipse "pet", and its true mask."""
    truth = pet_mask(width, height)
    pixels = np.where(truth[..., None], np.uint8(PET), np.uint8(BACKGROUND))  # (H, W, 3)
    return Image.fromarray(pixels), truth


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two (H, W) bool masks, with the course's own formula."""
    mask, truth = (torch.from_numpy(np.ascontiguousarray(m))[None] for m in (mask, truth))
    counts = confusion_counts(mask, truth)  # (1, H, W) each
    return iou_from_counts(*counts).item()


@pytest.fixture
def model() -> BrightRedIsPet:
    return BrightRedIsPet()


# ---------------------------------------------------------------------------
# Reading: formats, colour modes, orientation
# ---------------------------------------------------------------------------

def _rgba_with_transparent_pet(photo, truth):
    """Opaque background, fully transparent pet whose hidden colour is black: white when read."""
    rgba = np.dstack([np.asarray(photo), np.full(truth.shape, 255, np.uint8)])
    rgba[truth] = 0
    return Image.fromarray(rgba)


def _gif_with_transparent_pet(photo, truth):
    """A palette picture: index 0 the background, index 1 (the pet) transparent."""
    picture = Image.new("P", photo.size, 0)
    picture.putpalette([*BACKGROUND, 0, 0, 0])
    picture.paste(1, mask=mask_png(truth))
    return picture


def _sixteen_bit(photo, truth):
    """16-bit grey (mode I;16): Pillow's plain convert would clip both shades to white."""
    return Image.fromarray(np.where(truth, 60000, 8000).astype(np.uint16))


FORMATS = {  # name: (file suffix, how to turn the RGB photo into what is saved, save options)
    "jpeg": (".jpg", lambda p, t: p, {"quality": 90}),
    "png_rgba_transparent": (".png", _rgba_with_transparent_pet, {}),
    "webp": (".webp", lambda p, t: p, {}),
    "bmp": (".bmp", lambda p, t: p, {}),
    "tiff": (".tiff", lambda p, t: p, {}),
    "gif": (".gif", lambda p, t: p, {}),
    "gif_transparent": (".gif", _gif_with_transparent_pet, {"transparency": 1}),
    "greyscale_png": (".png", lambda p, t: p.convert("L"), {}),
    "cmyk_jpeg": (".jpg", lambda p, t: p.convert("CMYK"), {"quality": 95}),
    "png_16_bit": (".png", _sixteen_bit, {}),
}


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_and_colour_mode_reads_as_rgb_and_segments_right(kind, tmp_path, model):
    suffix, convert, options = FORMATS[kind]
    if suffix == ".webp" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    photo, truth = pet_photo()
    path = tmp_path / f"pet{suffix}"
    convert(photo, truth).save(path, **options)
    read = read_photo(path)
    assert read.mode == "RGB" and read.size == photo.size
    mask = segment(model, path)
    assert mask.dtype == bool and mask.shape == truth.shape
    assert iou(mask, truth) > 0.9, kind


def test_transparent_pixels_are_put_on_white(tmp_path):
    photo, truth = pet_photo()
    _rgba_with_transparent_pet(photo, truth).save(tmp_path / "pet.png")
    pixels = np.asarray(read_photo(tmp_path / "pet.png"))
    assert (pixels[truth] == 255).all()  # the transparent pet is white, not its hidden black
    assert (pixels[~truth] == BACKGROUND).all()


def test_exif_orientation_gives_the_upright_photo_and_mask(tmp_path, model):
    upright, truth = pet_photo(160, 120)  # landscape, pet low on the left
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone held upright stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: "turn 90 degrees clockwise to show"
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert Image.open(tmp_path / "phone.jpg").size == (120, 160)  # stored sideways
    assert read_photo(tmp_path / "phone.jpg").size == (160, 120)
    mask = segment(model, tmp_path / "phone.jpg")
    assert mask.shape == (120, 160) and iou(mask, truth) > 0.9
    for wrong in (truth[:, ::-1], truth[::-1, ::-1], truth[::-1]):  # mirrored, turned 180
        assert iou(mask, wrong) < 0.5


def test_arrays_tensors_and_pil_images_are_photos_too():
    photo, truth = pet_photo(40, 30)
    rgb = np.array(photo)  # (H, W, 3) uint8, writable
    assert np.array_equal(np.asarray(read_photo(rgb)), rgb)
    assert np.array_equal(np.asarray(read_photo(rgb / 255.0)), rgb)  # float in [0, 1]
    assert np.array_equal(np.asarray(read_photo(torch.from_numpy(rgb).permute(2, 0, 1))), rgb)
    grey = np.asarray(read_photo(rgb[..., 0]))  # (H, W) -> three equal channels
    assert grey.shape == (30, 40, 3) and (grey == rgb[..., :1]).all()
    rgba = np.dstack([rgb, np.where(truth, 0, 255).astype(np.uint8)])
    assert (np.asarray(read_photo(rgba))[truth] == 255).all()
    assert read_photo(Image.fromarray(rgba)).mode == "RGB"
    with pytest.raises(PhotoError, match=r"shape \(30, 40, 2\)"):
        read_photo(rgb[..., :2])
    with pytest.raises(PhotoError, match="uint16"):
        read_photo(rgb.astype(np.uint16))


# ---------------------------------------------------------------------------
# Files that are not usable photos: one error type, one line naming the file
# ---------------------------------------------------------------------------

def png_header(width: int, height: int) -> bytes:
    """A tiny PNG file whose header claims WIDTH x HEIGHT pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _truncated_jpeg() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    data = io.BytesIO()
    Image.fromarray(noise).save(data, format="JPEG")
    return data.getvalue()[: len(data.getvalue()) // 2]


BAD_FILES = {  # file name: (contents, words the message must hold)
    "notes.jpg": (b"Shopping list: cat food, a ball of wool\n", "not an image Pillow can read"),
    "empty.png": (b"", "empty file"),
    "cut.jpg": (_truncated_jpeg(), "truncated"),
    "bomb.png": (png_header(12_000, 10_000), "too large: 12000 x 10000 pixels"),
    "huge_bomb.png": (png_header(30_000, 30_000), "too large"),  # over Pillow's own limit
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_unusable_files_give_one_clear_photo_error(name, tmp_path):
    contents, words = BAD_FILES[name]
    (tmp_path / name).write_bytes(contents)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning leaks out either
        with pytest.raises(PhotoError, match=words) as caught:
            read_photo(tmp_path / name)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError) and name in message and "\n" not in message


def test_missing_files_and_folders_are_photo_errors_too(tmp_path):
    with pytest.raises(PhotoError, match="gone.jpg: no such file"):
        read_photo(tmp_path / "gone.jpg")
    with pytest.raises(PhotoError, match="a folder"):
        read_photo(tmp_path)


# ---------------------------------------------------------------------------
# Segmenting: original size, smooth edges, thresholds
# ---------------------------------------------------------------------------

def test_a_24_megapixel_photo_is_segmented_at_its_size_from_a_small_copy(tmp_path, model):
    photo = Image.new("RGB", (6000, 4000), BACKGROUND)
    ImageDraw.Draw(photo).ellipse((900, 1000, 4200, 3400), fill=PET)
    photo.save(tmp_path / "big.jpg", quality=75)
    logits = segment_logits(model, tmp_path / "big.jpg")
    assert logits.shape == (4000, 6000) and logits.dtype == torch.float32
    assert not logits.requires_grad
    assert model.inputs == [(1, 3, 64, 64)]  # the network never saw the full size
    mask = segment(model, tmp_path / "big.jpg")
    assert mask.shape == (4000, 6000)
    assert iou(mask, np.asarray(photo)[..., 0] > 127) > 0.98


def test_a_jpeg_is_decoded_only_as_large_as_the_model_needs(tmp_path, model):
    upright, truth = pet_photo(1600, 1200)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # a phone photo, stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=90)
    small, size = read_photo_for_model(tmp_path / "phone.jpg", 64)
    assert small.size == (200, 150) and size == (1200, 1600)  # 1/8 scale, upright, full size
    assert read_photo_for_model(tmp_path / "phone.jpg", 400)[0].size == (800, 600)  # 1/2
    assert read_photo_for_model(upright, 64)[0].size == (1600, 1200)  # already decoded
    reduced = segment(model, tmp_path / "phone.jpg")  # from the 1/8-scale decode
    full = segment(model, read_photo(tmp_path / "phone.jpg"))  # from every pixel
    assert reduced.shape == full.shape == (1200, 1600)
    assert (reduced == full).mean() > 0.995 and iou(reduced, truth) > 0.97


def test_image_size_defaults_to_the_models_then_256(model):
    photo, _ = pet_photo(50, 40)
    segment(model, photo)
    segment(model, photo, image_size=32)
    model.image_size = None
    segment(model, photo)
    assert model.inputs == [(1, 3, 64, 64), (1, 3, 32, 32), (1, 3, 256, 256)]


def rows_that_change(mask: np.ndarray) -> int:
    """How many rows differ from the row above: a staircase edge changes only every few rows."""
    return int(np.count_nonzero((mask[1:] != mask[:-1]).any(axis=1)))


def test_enlarged_logits_give_a_smooth_edge_not_a_staircase(model):
    photo = Image.new("RGB", (1000, 1000), BACKGROUND)
    ImageDraw.Draw(photo).ellipse((150, 150, 850, 850), fill=PET)
    truth = np.asarray(photo)[..., 0] > 127
    smooth = segment(model, photo)  # the model sees 64 x 64
    small = segment(model, photo.resize((64, 64), Image.Resampling.BILINEAR))  # (64, 64)
    rows = np.arange(1000) * 64 // 1000
    blocky = small[rows][:, rows]  # the 64 x 64 mask enlarged with nearest neighbours
    assert rows_that_change(blocky) <= 64
    assert rows_that_change(smooth) > 5 * rows_that_change(blocky)
    assert iou(smooth, truth) > iou(blocky, truth) > 0.9


def test_a_higher_threshold_keeps_fewer_pixels_and_matches_the_sigmoid(model):
    photo, _ = pet_photo(200, 150)
    photo = photo.filter(ImageFilter.GaussianBlur(6))  # soft edges: thresholds differ
    logits = segment_logits(model, photo)
    masks = [segment(model, photo, threshold) for threshold in (0.1, 0.3, 0.5, 0.7, 0.9)]
    for low, high in zip(masks, masks[1:], strict=False):
        assert not (high & ~low).any()  # every pixel kept at a higher threshold is kept lower
        assert high.sum() < low.sum()
    for threshold, mask in zip((0.1, 0.3, 0.5, 0.7, 0.9), masks, strict=True):
        assert np.array_equal(mask, (torch.sigmoid(logits) > threshold).numpy())
    with pytest.raises(ValueError, match="between 0 and 1"):
        segment(model, photo, threshold=1.0)


# ---------------------------------------------------------------------------
# Pictures: mask PNG, overlay with outline
# ---------------------------------------------------------------------------

def test_outline_is_the_mask_minus_its_erosion_and_ignores_the_frame():
    mask = np.zeros((12, 12), bool)
    mask[2:9, 3:12] = True  # touches the right edge of the picture
    ring = outline(mask, 1)
    assert ring[2, 5] and ring[8, 5] and ring[5, 3] and not ring[5, 5]
    assert not ring[5, 11]  # the picture's frame is not the pet's edge
    assert outline(mask, 2).sum() > ring.sum() and not (outline(mask, 2) & ~mask).any()


def test_overlay_tints_the_pet_and_draws_its_outline_at_full_size():
    photo, truth = pet_photo(900, 600)
    picture = overlay_photo(photo, truth, color=(255, 64, 0), alpha=0.5)
    pixels, original = np.asarray(picture).astype(int), np.asarray(photo).astype(int)
    assert picture.size == photo.size and picture.mode == "RGB"
    edge = outline(truth, 3)  # 600 // 200 = 3 pixels wide
    assert (pixels[edge] == (255, 64, 0)).all()
    inside = truth & ~edge
    assert np.abs(pixels[inside] - (original[inside] + (255, 64, 0)) / 2).max() <= 1
    assert (pixels[~truth] == original[~truth]).all()
    png = mask_png(truth)
    assert png.mode == "L" and set(np.unique(np.asarray(png))) == {0, 255}
    with pytest.raises(ValueError, match="does not fit"):
        overlay_photo(photo, truth[1:])
    blue = tuple(round(255 * c) for c in TINT_COLOURS[0])  # the orange pet's contrast
    assert (np.asarray(overlay_photo(photo, truth))[edge] == blue).all()


# ---------------------------------------------------------------------------
# Many files
# ---------------------------------------------------------------------------

def test_segment_files_writes_both_pngs_skips_bad_files_and_keeps_same_stems_apart(tmp_path,
                                                                                   model):
    shots, extra, out = tmp_path / "shots", tmp_path / "extra", tmp_path / "out"
    (shots / "sub").mkdir(parents=True)
    extra.mkdir()
    sizes = {shots / "a.jpg": (160, 120), shots / "a.png": (90, 70), shots / "c.JPG": (64, 100),
             extra / "a.jpg": (50, 40), shots / "sub" / "deep.jpg": (30, 30)}
    for path, size in sizes.items():
        pet_photo(*size)[0].save(path)
    (shots / "broken.jpg").write_bytes(b"not a photo")
    (shots / "notes.txt").write_text("not a photo either, and not picked up from the folder")
    with pytest.warns(UserWarning) as caught:
        results = segment_files(model, [shots, extra / "a.jpg"], out)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "broken.jpg: not an image" in message and "notes.txt" not in message
    names = [(r["path"].name, r["mask_path"].name) for r in results]
    assert names == [("a.jpg", "a_mask.png"), ("a.png", "a_png_mask.png"),
                     ("c.JPG", "c_mask.png"), ("a.jpg", "a_jpg_mask.png")]
    for r in results:
        assert set(r) == {"path", "width", "height", "pet_share", "ms", "mask_path",
                          "overlay_path"}
        size = sizes[r["path"]]
        assert (r["width"], r["height"]) == size
        with Image.open(r["mask_path"]) as mask, Image.open(r["overlay_path"]) as overlay:
            assert mask.size == overlay.size == size and mask.mode == "L"
            assert iou(np.asarray(mask) > 0, pet_mask(*size)) > 0.85
        assert r["pet_share"] == pytest.approx(pet_mask(*size).mean(), abs=0.05)
        assert r["ms"] > 0
    written = sorted(p.name for p in out.iterdir())  # no temporary files left behind
    assert written == sorted(f"{stem}_{kind}.png" for stem in ("a", "a_png", "c", "a_jpg")
                             for kind in ("mask", "overlay"))


def test_segment_files_takes_one_path_and_fails_when_nothing_is_readable(tmp_path, model):
    pet_photo()[0].save(tmp_path / "only.png")
    assert len(segment_files(model, str(tmp_path / "only.png"), tmp_path / "out")) == 1
    (tmp_path / "bad.jpg").write_bytes(b"")
    with pytest.raises(PhotoError, match="none of the 1 photos.*bad.jpg: empty file"):
        segment_files(model, [tmp_path / "bad.jpg"], tmp_path / "out")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(PhotoError, match="no photos found"):
        segment_files(model, tmp_path / "empty_folder", tmp_path / "out")


def test_command_line_segments_files_with_a_loaded_checkpoint(tmp_path, capsys):
    sizes = {"cat": (160, 120), "dog": (90, 130)}
    paths = [tmp_path / f"{name}.jpg" for name in sizes]
    for path, size in zip(paths, sizes.values(), strict=True):
        pet_photo(*size)[0].save(path)
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4).eval()
    with torch.no_grad():  # shift the logits so that about half of the cat is pet
        model.outc.bias -= segment_logits(model, paths[0], 32).median()
    checkpoint = write_checkpoint(tmp_path / "unet.pth", state_dict=model.state_dict())
    results = inference.main(["--model", str(checkpoint), "--images", *map(str, paths),
                              "--output_dir", str(tmp_path / "out"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert [r["path"] for r in results] == paths
    for path, (name, size) in zip(paths, sizes.items(), strict=True):
        with Image.open(tmp_path / "out" / f"{name}_mask.png") as mask:
            assert mask.size == size and mask.mode == "L"
            pixels = np.asarray(mask)
        assert set(np.unique(pixels)) == {0, 255}
        np.testing.assert_array_equal(pixels, 255 * segment(model, read_photo(path), 0.5, 32))
        assert (tmp_path / "out" / f"{name}_overlay.png").is_file()
        assert f"{name}_mask.png" in out and "{}x{}".format(*size) in out
    assert "model unet.pth: trained on data it does not record" in out  # no config saved


# ---------------------------------------------------------------------------
# The notebook widget
# ---------------------------------------------------------------------------

def test_photo_callback_draws_titled_panels_and_returns_the_pet_share(model):
    import matplotlib.pyplot as plt

    photo, _ = pet_photo()
    logits = segment_logits(model, photo)
    fig = plt.figure()
    share = widgets.draw_photo_segmentation(fig, photo, logits, threshold=0.3,
                                            trained_on="trained on 340 real photos from pets")
    assert share == pytest.approx(segment(model, photo, 0.3).mean())
    assert fig.get_suptitle() == "The model was trained on 340 real photos from pets"
    photo_ax, overlay_ax = fig.axes
    assert "160 x 120" in photo_ax.get_title()
    assert "0.30" in overlay_ax.get_title() and f"{share:.1%}" in overlay_ax.get_title()
    assert overlay_ax.images[0].get_array().shape == (120, 160, 3)


def uploaded(name: str, content: bytes) -> tuple[dict, ...]:
    """What ipywidgets 8's FileUpload holds after one file is chosen."""
    return ({"name": name, "type": "image/jpeg", "size": len(content),
             "content": memoryview(content), "last_modified": datetime.now(UTC)},)


def test_photo_segmenter_shows_the_fallback_then_uploads_and_a_clear_line_for_junk(model,
                                                                                   monkeypatch):
    calls = []
    monkeypatch.setattr(widgets, "draw_photo_segmentation",
                        lambda fig, photo, logits, threshold, trained_on:
                        calls.append((photo.size, tuple(logits.shape), threshold)))
    box = widgets.photo_segmenter(model, np.asarray(pet_photo(80, 60)[0]), threshold=0.4)
    (upload, slider), output = box.children[0].children, box.children[1]
    assert isinstance(upload, ipywidgets.FileUpload) and upload.accept == "image/*"
    assert not upload.multiple
    assert slider.description == "threshold" and slider.style.description_width == "initial"
    assert calls == [((80, 60), (60, 80), 0.4)]  # the fallback image, before any upload
    slider.value = 0.6
    assert calls[-1] == ((80, 60), (60, 80), 0.6)

    upload.value = uploaded("junk.jpg", b"\x00garbage, not a photo")
    assert len(calls) == 2  # nothing drawn
    (stream,) = output.outputs
    assert stream["text"].count("\n") == 1
    assert "junk.jpg: not an image Pillow can read" in stream["text"]

    big = io.BytesIO()
    pet_photo(2048, 1536)[0].save(big, format="PNG")
    upload.value = uploaded("big.png", big.getvalue())
    assert calls[-1] == ((1024, 768), (768, 1024), 0.6)  # shrunk for the screen, then segmented


def test_a_photo_name_that_is_not_utf8_is_segmented_and_printed(tmp_path):
    folder = tmp_path / "zip"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")  # a byte the user did not choose, from an old zip
    pet_photo(80, 60)[0].save(folder / name)
    pet_photo(80, 60)[0].save(folder / "plain.jpg")
    checkpoint = write_checkpoint(tmp_path / "unet.pth")
    strict = dict(os.environ, PYTHONIOENCODING="utf-8:strict")
    done = subprocess.run([sys.executable, "-m", "petseg_lib.inference", "--model",
                           str(checkpoint), "--images", str(folder), "--output_dir",
                           str(tmp_path / "out"), "--device", "cpu"], env=strict,
                          capture_output=True, text=True, errors="replace", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "caf\\xe9.jpg: 80x60" in done.stdout and "plain.jpg: 80x60" in done.stdout
    assert (tmp_path / "out" / os.fsdecode(b"caf\xe9_mask.png")).is_file()
    assert user_files.shown("plain") == "plain"


def test_a_mask_folder_name_that_is_not_utf8_gets_a_split():
    assert 0 <= name_fraction(os.fsdecode(b"caf\xe9")) < 1
    assert name_fraction(os.fsdecode(b"caf\xe9")) != name_fraction("cafe")
