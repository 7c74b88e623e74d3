"""The web demo: the per-request function on good and bad files, the command line, a real server."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("gradio")

from petseg_lib import app
from petseg_lib.cli import UserError, run_cli
from petseg_lib.models import UNet
from petseg_lib.training.checkpoint import checkpoint_payload, save_checkpoint
from petseg_lib.training.config import TrainConfig

from .conftest import RedIsPet, end_process, write_dataset
from .test_photos import png_header

ROOT = Path(__file__).resolve().parents[1]


def red_square_photo(path: Path, size=(90, 60)) -> np.ndarray:
    """Write a dark photo of SIZE (W, H) with a red rectangle; return where the red is."""
    width, height = size
    pixels = np.full((height, width, 3), 40, np.uint8)
    pixels[10:40, 20:70] = (250, 30, 30)
    Image.fromarray(pixels).save(path)  # PNG: no compression artefacts at the edges
    return pixels[..., 0] > 128


class CountingModel(RedIsPet):
    """RedIsPet that counts how often it runs."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return super().forward(x)


# ---------------------------------------------------------------------------
# The plain function behind the page
# ---------------------------------------------------------------------------

def test_segment_upload_gives_overlay_and_a_full_size_mask_png(tmp_path):
    red = red_square_photo(tmp_path / "cat.png")
    overlay, mask_path, message = app.segment_upload(RedIsPet(), tmp_path / "cat.png", 0.5,
                                                     tmp_path / "masks")
    assert overlay.size == (90, 60) and overlay.mode == "RGB"
    assert mask_path.parent.parent == tmp_path / "masks" and mask_path.name == "cat_mask.png"
    mask = np.array(Image.open(mask_path))
    assert mask.shape == (60, 90) and set(np.unique(mask)) <= {0, 255}
    assert ((mask == 255) == red).mean() > 0.97  # the red rectangle, up to its resized edge
    assert "cat.png: 90 x 60 pixels" in message and "threshold 0.50" in message


def test_segment_upload_takes_images_and_arrays(tmp_path):
    red = red_square_photo(tmp_path / "cat.png")
    for source in (Image.open(tmp_path / "cat.png"), np.array(Image.open(tmp_path / "cat.png"))):
        overlay, mask_path, _ = app.segment_upload(RedIsPet(), source, 0.5, tmp_path)
        assert overlay.size == (90, 60)
        assert ((np.array(Image.open(mask_path)) == 255) == red).mean() > 0.97


def test_moving_the_threshold_does_not_run_the_model_again(tmp_path):
    model = CountingModel()
    red_square_photo(tmp_path / "cat.png")
    shares = []
    for threshold in (0.1, 0.5, 0.9):
        _, mask_path, _ = app.segment_upload(model, tmp_path / "cat.png", threshold, tmp_path)
        shares.append((np.array(Image.open(mask_path)) > 0).mean())
    assert model.calls == 1 and shares[0] >= shares[1] >= shares[2] > 0
    red_square_photo(tmp_path / "cat.png", size=(80, 50))  # the file changed: run again
    overlay, _, _ = app.segment_upload(model, tmp_path / "cat.png", 0.5, tmp_path)
    assert model.calls == 2 and overlay.size == (80, 50)


def test_a_long_running_page_keeps_only_the_newest_mask_files(tmp_path, monkeypatch):
    monkeypatch.setattr(app, "KEPT_ANSWERS", 3)
    red_square_photo(tmp_path / "cat.png")
    answers = tmp_path / "answers"
    paths = [app.segment_upload(RedIsPet(), tmp_path / "cat.png", threshold, answers)[1]
             for threshold in (0.2, 0.3, 0.4, 0.5, 0.6)]
    assert sorted(answers.glob("mask-*/cat_mask.png")) == sorted(paths[-3:])
    assert len(list(answers.iterdir())) == 3


@pytest.mark.parametrize("name, contents, words", [
    ("notes.jpg", b"these bytes are no picture at all", "not an image"),
    ("random.png", bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)),
     "not an image"),
    ("empty.png", b"", "empty file"),
    ("bomb.png", png_header(12_000, 10_000), "too large: 12000 x 10000 pixels"),
])
def test_unusable_files_give_a_message_not_an_exception(tmp_path, name, contents, words):
    (tmp_path / name).write_bytes(contents)
    overlay, mask_path, message = app.segment_upload(RedIsPet(), tmp_path / name, 0.5, tmp_path)
    assert overlay is None and mask_path is None
    assert words in message and name in message and str(tmp_path) not in message
    assert "\n" not in message


def test_no_photo_and_a_missing_file(tmp_path):
    assert app.segment_upload(RedIsPet(), None) == (None, None, app.WELCOME)
    _, _, message = app.segment_upload(RedIsPet(), tmp_path / "gone.jpg")
    assert "gone.jpg: no such file" in message


def test_examples_come_from_the_test_split(tiny_root):
    examples = app.example_photos(tiny_root, 3)
    assert len(examples) == 3 and all(path.is_file() for path in examples)
    assert all(path.name.startswith("dog_") for path in examples)  # write_dataset's test names
    assert app.example_photos(tiny_root, 0) == []


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--model", "nowhere.pth"], "No checkpoint at 'nowhere.pth'"),
    (["--model", "x.pth", "--port", "0"], "--port must be between 1 and 65535"),
    (["--model", "x.pth", "--port", "70000"], "--port must be between 1 and 65535"),
    (["--model", "x.pth", "--threshold", "1.5"], "--threshold must be between 0.01 and 0.99"),
    (["--model", "x.pth", "--examples", "-1"], "--examples must be at least 0, not -1"),
])
def test_command_line_mistakes_are_one_line_errors(args, words, capsys, monkeypatch):
    monkeypatch.delenv("PETSEG_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(app.main, args)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and words in error and error.count("\n") == 1


def test_every_change_of_the_slider_answers_and_the_page_names_the_training_data(tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # its copy of the example
    red_square_photo(tmp_path / "cat.png")
    model = RedIsPet()
    model.trained_on = "trained on 340 real photos from oxford-iiit-pet"
    page = app.build_page(model, [tmp_path / "cat.png"])
    events = {fn.api_name: [(getattr(page.blocks.get(block), "elem_id", None), event)
                            for block, event in fn.targets] for fn in page.fns.values()}
    # `change`, not `release`: arrow keys and a typed value move the slider without a release.
    assert events["threshold"] == [("threshold", "change")]
    assert events["pick_example"] == [("examples", "select")]
    texts = [block.value for block in page.blocks.values() if block.elem_id == "trained-on"]
    assert texts and "trained on 340 real photos from oxford-iiit-pet" in texts[0]
    gallery = next(block for block in page.blocks.values() if block.elem_id == "examples")
    assert [item["caption"] for item in gallery.value] == ["cat"]
    assert list((tmp_path / "gradio").rglob("cat.png")), "the example is shown as a picture"
    assert app.example_caption(Path("images/american_bulldog_12.jpg")) == "american bulldog 12"
    assert app.trained_on(RedIsPet()) == "its training data is not known"


def test_without_gradio_the_page_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now raises ImportError
    with pytest.raises(UserError, match=r'pip install -e "\.\[app\]"'):
        app.build_page(RedIsPet(), [])


# ---------------------------------------------------------------------------
# A real server on 127.0.0.1, called through gradio_client
# ---------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_listening(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    """Return once PORT accepts connections; fail if SERVER exits or TIMEOUT seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the app exited with status {server.returncode}: "
                        f"{server.communicate()[0][-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the app did not listen on port {port} within {timeout} s")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained UNet(base_channels=4) saved as a checkpoint trained at 32 px."""
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    path = tmp_path_factory.mktemp("app_ckpt") / "tiny.pth"
    return save_checkpoint(checkpoint_payload(model, TrainConfig(image_size=32), 1, {}), path)


def test_the_served_page_segments_photos_and_reports_bad_files(tiny_checkpoint, tmp_path):
    from gradio_client import Client, handle_file

    pets = write_dataset(tmp_path / "pets", n_trainval=6, n_test=3)
    photo = pets / "images" / "dog_0.jpg"  # 48 x 40
    (tmp_path / "notes.jpg").write_bytes(b"not a photo")
    port = free_port()
    temporary = tmp_path / "tmp"  # where the server's temporary folders go
    temporary.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False",
           "PETSEG_DEBUG": "0", "TMPDIR": str(temporary)}
    env.pop("GRADIO_TEMP_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "petseg_lib.app", "--model", str(tiny_checkpoint), "--port",
         str(port), "--data_path", str(pets), "--examples", "2", "--device", "cpu"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_listening(port, server)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False,
                        download_files=str(tmp_path / "downloads"))
        shown_photo, overlay, shown, mask_file, message = client.predict(
            handle_file(str(photo)), 0.5, api_name="/segment")
        assert Image.open(overlay).size == Image.open(shown_photo).size == (48, 40)
        for path in (shown, mask_file):
            mask = np.array(Image.open(path))
            assert mask.shape == (40, 48) and set(np.unique(mask)) <= {0, 255}
        assert Path(mask_file).name == "dog_0_mask.png" and "dog_0.jpg: 48 x 40" in message

        *pictures, message = client.predict(handle_file(str(tmp_path / "notes.jpg")), 0.5,
                                            api_name="/segment")
        assert pictures == [None] * 4 and "notes.jpg: not an image" in message

        *_, message = client.predict(handle_file(str(photo)), 0.25, api_name="/threshold")
        assert "threshold 0.25" in message  # the server is still up after the bad file
        assert list(temporary.rglob("dog_0*")), "the upload and its mask are kept while serving"
    finally:
        end_process(server)  # SIGTERM, as `kill` and service managers send
    assert server.returncode is not None
    left = [p for p in temporary.rglob("*") if p.is_file()]
    assert not left, f"uploads outlived the server: {left[:3]}"
