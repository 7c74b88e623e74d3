"""What a visitor of the web demo clicks: the page in a real (headless) browser.

`make ui-test` runs this with the notebook test; the default `pytest tests` leaves it out
(marker `ui`). It starts `python -m petseg_lib.app` on 127.0.0.1 with a tiny untrained
checkpoint, opens the page in Chromium through Playwright, and checks that the photo, its
overlay, its mask, the example gallery with captions and what the model was trained on are
shown, and that moving the threshold slider with the arrow keys, or typing a value, answers
with a new mask at that threshold. Screenshots go to outputs/ui/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from petseg_lib.app import example_caption, example_photos
from petseg_lib.evaluation.threshold import DEFAULT_THRESHOLD, THRESHOLD_STEP
from petseg_lib.models import UNet
from petseg_lib.training.checkpoint import checkpoint_payload, save_checkpoint, training_data
from petseg_lib.training.config import TrainConfig

from ..conftest import REAL, end_process, write_dataset
from ..test_app import free_port, wait_until_listening
from .test_jupyterlab import SHOTS, chromium_path, wait_for

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]


def tiny_checkpoint(folder: Path, data: Path) -> Path:
    """An untrained UNet(base_channels=4) at 32 px, recorded as trained on DATA."""
    torch.manual_seed(0)
    model = UNet(base_channels=4)
    payload = checkpoint_payload(model, TrainConfig(image_size=32), 1, {},
                                 training_data(data, 12))
    return save_checkpoint(payload, folder / "tiny.pth")


def test_the_demo_page_answers_every_way_of_moving_the_slider(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    pytest.importorskip("gradio")
    SHOTS.mkdir(parents=True, exist_ok=True)
    data = REAL if REAL.is_dir() else write_dataset(tmp_path / "pets", n_trainval=6, n_test=3)
    checkpoint = tiny_checkpoint(tmp_path, data)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False",
           "TMPDIR": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "petseg_lib.app", "--model", str(checkpoint), "--port", str(port),
         "--data_path", str(data), "--examples", "3", "--device", "cpu"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_listening(port, server)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                try:
                    drive_demo(page, f"http://127.0.0.1:{port}/", data)
                finally:
                    page.screenshot(path=SHOTS / "app_last_state.png", full_page=True)
            finally:
                browser.close()
    finally:
        end_process(server)


def drive_demo(page, url: str, data: Path) -> None:
    """Open the page, check what it shows, move the slider by keyboard and by typing."""
    page.goto(url)
    status = page.locator("#status")
    wait_for(lambda: "pixels, pet" in status.text_content(), 60,
             "the first example to be segmented", interval=0.5)
    assert f"threshold {DEFAULT_THRESHOLD:.2f}" in status.text_content()
    assert (f"trained on 12 real photos from {data.name}"
            in page.locator("#trained-on").text_content())
    for name in ("photo", "overlay", "mask"):
        assert page.locator(f"#{name} img").count() == 1, f"no picture in #{name}"
    examples = page.locator("#examples")
    assert examples.locator("img").count() == 3, "the examples are shown as pictures"
    assert examples.get_by_text(data_caption(data)).count() == 1, "each with a caption"
    mask = page.locator("#mask img")
    before = mask.get_attribute("src")
    page.screenshot(path=SHOTS / "app_opened.png", full_page=True)

    slider = page.locator("#threshold input[type='range']")
    slider.focus()
    for _ in range(20):  # 20 steps of THRESHOLD_STEP down from the default
        slider.press("ArrowLeft")
    lowered = f"{DEFAULT_THRESHOLD - 20 * THRESHOLD_STEP:.2f}"
    wait_for(lambda: f"threshold {lowered}" in status.text_content(), 30,
             f"the status line to say threshold {lowered}", interval=0.3)
    wait_for(lambda: mask.get_attribute("src") != before, 30, "a new mask", interval=0.3)
    page.screenshot(path=SHOTS / f"app_threshold_{lowered}.png", full_page=True)

    typed = page.locator("#threshold input[type='number']")
    after_keys = mask.get_attribute("src")
    typed.fill("0.7")
    typed.press("Enter")
    wait_for(lambda: "threshold 0.70" in status.text_content(), 30,
             "the status line to say threshold 0.70", interval=0.3)
    wait_for(lambda: mask.get_attribute("src") != after_keys, 30, "a new mask", interval=0.3)


def data_caption(data: Path) -> str:
    """The caption of the first example of DATA's test split."""
    return example_caption(example_photos(data, 3)[0])
