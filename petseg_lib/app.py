"""A web demo: segment a photo in the browser, with a threshold slider and a mask to download.

    pip install -e ".[app]"
    python -m petseg_lib.app --model checkpoints/unet_best.pth     # then open http://127.0.0.1:7860

The page (made with Gradio) offers:

- what the model was trained on, in one line (`checkpoint.describe_training_data`);
- an upload box for a photo of your own, and a gallery of examples from the test split of the
  dataset in use (`find_dataset`: the real one, or the offline sample), pictures with captions;
  the first one is shown at once;
- a threshold slider: every change (dragging, arrow keys, a typed value) re-thresholds the
  logits kept for the photo, the model does not run again;
- the photo, the photo with the pet tinted and outlined, the mask (white pet, black
  background), and the mask as a PNG at the photo's own size, to download;
- one status line: the photo's size and pet share, or why a file cannot be used (not an image,
  damaged, too large); the server keeps running.

All the work of a request is in `segment_upload`, a plain function that the tests call; the page
(`build_page`) only wires it to the widgets. The server listens on 127.0.0.1 unless --host says
otherwise: nothing leaves your machine.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch import nn

from .cli import UserError, positive, run_cli
from .data.oxford_pet import find_dataset, load_dataset
from .errors import UnreadableImage
from .evaluation.threshold import DEFAULT_THRESHOLD, MAX_THRESHOLD, MIN_THRESHOLD, THRESHOLD_STEP
from .inference import load_model
from .options import add_data_path, add_device, add_model, add_threshold
from .speed import pick_device
from .use.photos import (
    mask_png,
    overlay_photo,
    read_photo,
    save_png,
    segment_logits,
    threshold_logits,
)

if TYPE_CHECKING:  # for the type hint of build_page only: gradio is an optional extra
    import gradio as gr

KEPT_PHOTOS = 4  # the logits of this many photos are kept, for the slider
KEPT_ANSWERS = 50  # mask files kept for download; older ones are removed
DISPLAY_SIZE = 1600  # the overlay is shown at most this wide and high; the mask file is full size
MAX_UPLOAD = "200mb"  # Gradio refuses larger uploads before any of our code reads them
WELCOME = "Upload a photo, or pick an example below."


# ---------------------------------------------------------------------------
# One request: a photo and a threshold -> overlay, mask file, status line
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=KEPT_PHOTOS)
def _file_logits(model: nn.Module, path: str, name: str,
                 stamp: tuple[int, int]) -> tuple[Image.Image, torch.Tensor]:
    """The photo at PATH and its logits; STAMP (modification time, size) tells a changed file."""
    photo = read_photo(path, name=name)
    return photo, segment_logits(model, photo)


def photo_logits(model: nn.Module, source, name: str) -> tuple[Image.Image, torch.Tensor]:
    """The upright RGB photo and its (H, W) logits; a file seen recently is not run again."""
    if isinstance(source, str | Path):
        try:
            stat = os.stat(source)
        except OSError:
            pass  # missing or unreadable: read_photo below says so in an UnreadableImage
        else:
            return _file_logits(model, str(source), name, (stat.st_mtime_ns, stat.st_size))
    photo = read_photo(source, name=name)
    return photo, segment_logits(model, photo)


def segment_upload(model: nn.Module, source, threshold: float = DEFAULT_THRESHOLD,
                   output_dir: str | Path | None = None,
                   ) -> tuple[Image.Image | None, Path | None, str]:
    """One photo (path, file, PIL image or array) -> (overlay, mask PNG path, status line).

    A file that cannot be used gives (None, None, the reason) instead of an exception. The mask
    PNG (pet 255, background 0, the photo's own size) goes to a new folder in OUTPUT_DIR
    (default: the system's temporary folder), named after the photo; in OUTPUT_DIR only the
    KEPT_ANSWERS newest such folders stay, so a server that runs for days keeps its disk.
    """
    if source is None:
        return None, None, WELCOME
    name = Path(source).name if isinstance(source, str | Path) else "photo"
    try:
        photo, logits = photo_logits(model, source, name)
    except UnreadableImage as error:
        return None, None, f"**Cannot use this file.** {error}"
    mask = threshold_logits(logits, threshold)  # (H, W) bool
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="mask-", dir=output_dir))  # one per answer: no clashes
    mask_path = save_png(mask_png(mask), folder / f"{Path(name).stem}_mask.png")
    if output_dir is not None:
        drop_old_answers(Path(output_dir))
    message = (f"{name}: {photo.width} x {photo.height} pixels, pet {100 * mask.mean():.1f} % "
               f"at threshold {threshold:.2f}")
    return overlay_photo(photo, mask), mask_path, message


def drop_old_answers(output_dir: Path) -> None:
    """Remove all but the KEPT_ANSWERS newest answer folders (mask-*) in OUTPUT_DIR."""
    folders = sorted(output_dir.glob("mask-*"), key=lambda folder: folder.stat().st_mtime_ns)
    for folder in folders[:-KEPT_ANSWERS]:
        shutil.rmtree(folder, ignore_errors=True)


def example_photos(data_path: str | Path | None = None, count: int = 4) -> list[Path]:
    """COUNT photos of the test split of the dataset in use (`find_dataset`), evenly spread."""
    if count < 1:
        return []
    dataset = load_dataset(find_dataset(data_path), "test", limit=count)  # any format
    return [dataset.image_path(name) for name in dataset.names]


def example_caption(path: Path) -> str:
    """An example's caption: its file name without the suffix, underscores as spaces."""
    return Path(path).stem.replace("_", " ")


def trained_on(model: nn.Module) -> str:
    """What MODEL was trained on, as `load_model` records it, or that it is not known."""
    return getattr(model, "trained_on", None) or "its training data is not known"


# ---------------------------------------------------------------------------
# The page: Gradio widgets around segment_upload
# ---------------------------------------------------------------------------

def build_page(model: nn.Module, examples: list[Path], threshold: float = DEFAULT_THRESHOLD,
               output_dir: str | Path | None = None) -> gr.Blocks:
    """The Gradio Blocks of the demo (not started: call its `launch`)."""
    # Gradio is an optional extra (a large web stack); the rest of the course runs without it,
    # so it is imported here, where it is needed, and not when petseg_lib is imported.
    try:
        import gradio as gr
    except ImportError:
        raise UserError('the web demo needs Gradio: pip install -e ".[app]"') from None

    def answer(source: str | None, cut: float):
        """The five outputs of the page: photo, overlay, shown mask, mask to download, status."""
        overlay, mask_path, message = segment_upload(model, source, cut, output_dir)
        if overlay is None:
            return None, None, None, None, message
        photo = photo_logits(model, source, Path(source).name)[0].copy()  # kept: not run again
        for picture in (photo, overlay):
            picture.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE))  # in place; keeps the aspect ratio
        return photo, overlay, str(mask_path), str(mask_path), message  # gr.File: str, not Path

    def pick_example(selected) -> str:
        """The example photo clicked in the gallery, as the upload box's file."""
        return str(examples[selected.index])

    # Gradio hands the click's SelectData to a parameter annotated with it; this module's
    # annotations are strings that name `gr`, imported here only, so it is given as the class.
    pick_example.__annotations__["selected"] = gr.SelectData

    with gr.Blocks(title="petseg: pet or background?", analytics_enabled=False,
                   delete_cache=(600, 3600)) as page:  # Gradio's copies of files: 1 hour
        gr.Markdown("## petseg: pet or background?\nUpload a photo: the model marks the pet.\n\n"
                    f"**The model:** {trained_on(model)}.", elem_id="trained-on")
        with gr.Row():
            with gr.Column(scale=1):
                first = str(examples[0]) if examples else None  # shown when the page opens
                photo = gr.File(first, label="Your photo", type="filepath")
                slider = gr.Slider(MIN_THRESHOLD, MAX_THRESHOLD, threshold, step=THRESHOLD_STEP,
                                   label="Threshold",
                                   info="a pixel is pet when the model's probability is above",
                                   elem_id="threshold")
                status = gr.Markdown(WELCOME, elem_id="status")
                if examples:
                    gallery = gr.Gallery([(str(path), example_caption(path)) for path in examples],
                                         label="Examples from the test split: click one",
                                         columns=min(len(examples), 4), height=220,
                                         allow_preview=False, interactive=False,
                                         elem_id="examples")
                    gallery.select(pick_example, None, photo, api_visibility="private")
            with gr.Column(scale=2):
                with gr.Row():
                    shown_photo = gr.Image(label="The photo", type="pil", format="jpeg",
                                           interactive=False, elem_id="photo")
                    overlay = gr.Image(label="Pet tinted and outlined", type="pil",
                                       format="jpeg", interactive=False, elem_id="overlay")
                    mask = gr.Image(label="Mask", type="filepath", interactive=False,
                                    elem_id="mask")
                mask_file = gr.File(label="Mask PNG (the photo's size)", interactive=False)
        outputs = [shown_photo, overlay, mask, mask_file, status]
        photo.change(answer, [photo, slider], outputs, api_name="segment")
        # Every change of the slider (dragging, arrow keys, a typed value) re-thresholds the
        # kept logits; while it moves, only the latest value is answered.
        slider.change(answer, [photo, slider], outputs, api_name="threshold",
                      trigger_mode="always_last")
        page.load(answer, [photo, slider], outputs, api_visibility="private")  # the first example
    return page


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of `python -m petseg_lib.app`."""
    parser = argparse.ArgumentParser(
        prog="python -m petseg_lib.app",
        description="A web page that segments your photos with a trained checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add_model(parser)
    add("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole network)")
    add("--port", type=int, default=7860, help="port of the page")
    add_threshold(parser)  # the slider's starting value
    add_data_path(parser)
    add("--examples", type=int, default=4,
        help="how many examples from the dataset's test split (0: none)")
    add_device(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, not {args.port}")
    positive("--examples", args.examples, minimum=0)
    return args


def stop_like_ctrl_c(signum: int, frame) -> None:
    """SIGTERM (`kill`, a service manager, a container stop) ends the server as Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m petseg_lib.app`: serve the page until Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    model = load_model(args.model, pick_device(args.device))
    examples = example_photos(args.data_path, args.examples)
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)  # so that the folder below is removed
    with tempfile.TemporaryDirectory(prefix="petseg-app-") as masks:  # removed on exit
        # Gradio keeps every uploaded photo in its temporary folder: put it in ours, so that
        # no one's photo outlives the server.
        os.environ["GRADIO_TEMP_DIR"] = str(Path(masks) / "uploads")
        page = build_page(model, examples, args.threshold, masks)
        page.launch(server_name=args.host, server_port=args.port, max_file_size=MAX_UPLOAD,
                    allowed_paths=sorted({str(path.parent) for path in examples}))


if __name__ == "__main__":
    run_cli(main)
