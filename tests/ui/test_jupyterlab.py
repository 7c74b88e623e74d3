"""What a learner clicks: notebook 06 in JupyterLab, run in a real (headless) browser.

`make ui-test` runs this; the default `pytest tests` leaves it out (marker `ui`). It starts
JupyterLab on 127.0.0.1 in quick mode, opens notebook 06 in Chromium through Playwright, runs
all cells from the Run menu, moves the prediction explorer's threshold slider with the keyboard
and checks that the figure changes, that no widget failed to load and that the "overlay alpha"
label is not cut. Screenshots for a human go to outputs/ui/; JupyterLab's log and the browser's
console go there too.

JupyterLab serves a temporary copy of notebooks/ with autosave off, so running the notebook
never writes outputs into the committed notebooks (or, through jupytext, into their twins).
The kernel imports this checkout's petseg_lib, so checkpoints/ and outputs/ are the checkout's.
Needs Playwright (the `dev` extra) and a Chromium: /usr/bin/chromium (Debian's `chromium`
package), or the one named by PETSEG_CHROMIUM.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from petseg_lib.evaluation.threshold import DEFAULT_THRESHOLD, THRESHOLD_STEP

from ..conftest import REAL, end_process

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "06_evaluation_and_comparison.ipynb"
SHOTS = ROOT / "outputs" / "ui"
RUN_ALL_TIMEOUT = 900  # seconds: quick mode trains four small models on a first run
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class")
# No autosave (the notebook is a temporary copy anyway), no news or update pop-ups over the page.
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


def chromium_path() -> str:
    path = os.environ.get("PETSEG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.skip("no Chromium: `apt-get install chromium` (or set PETSEG_CHROMIUM)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET") -> object:
    request = urllib.request.Request(f"{base}{path}", method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def folder_digest(folder: Path) -> str:
    """A hash of every file's name and contents under FOLDER."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A JupyterLab server over a copy of notebooks/: (base URL, token). Always stopped."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp("lab")
    root_dir = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", root_dir,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.py"))
    for name, values in SETTINGS.items():
        (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / name).write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    real = {"PETSEG_DATA": str(REAL)} if REAL.is_dir() else {}  # as `make notebooks` does
    env = dict(os.environ, PETSEG_QUICK="1", JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), **real,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",  # CI is root
               "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
               f"--LabApp.user_settings_dir={tmp / 'settings'}",
               f"--LabApp.workspaces_dir={tmp / 'workspaces'}"]
    log = (SHOTS / "jupyterlab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}: see {log.name}")
            try:
                api(base, token, "/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within 120 s: see {log.name}")
                time.sleep(0.5)
        yield base, token
    finally:
        stop(server, base, token)
        log.close()


def stop(server: subprocess.Popen, base: str, token: str) -> None:
    """Shut JupyterLab down with its kernels: politely, then by its process group."""
    if server.poll() is None:
        try:
            api(base, token, "/api/shutdown", method="POST")
            server.wait(timeout=30)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            end_process(server, timeout=10)
    try:  # kernels left behind share the server's process group
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kernel_states(base: str, token: str) -> list[str]:
    return [k["execution_state"] for k in api(base, token, "/api/kernels")]


def wait_for(condition, timeout: float, what: str, interval: float = 1.0):
    """Poll CONDITION until it returns something true; fail with WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def test_the_prediction_explorer_answers_its_sliders(lab):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    base, token = lab
    digest = folder_digest(ROOT / "notebooks")
    console: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            try:
                drive_notebook_06(page, base, token)
            finally:
                page.screenshot(path=SHOTS / "05_last_state.png")
        finally:
            browser.close()
            (SHOTS / "browser_console.log").write_text("\n".join(console) + "\n")
    assert folder_digest(ROOT / "notebooks") == digest, "the UI test changed notebooks/"


def drive_notebook_06(page, base: str, token: str) -> None:
    """Open notebook 06, run all cells, move the threshold slider and check what changes."""
    page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=120_000)
    wait_for(lambda: kernel_states(base, token) == ["idle"], 120, "the kernel to start")
    page.screenshot(path=SHOTS / "01_notebook_opened.png")

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    started = time.monotonic()

    # The self-check cell prints this last; a traceback means a cell failed and Run All stopped.
    def finished() -> bool:
        if page.locator(".jp-OutputArea-output", has_text="Traceback").count():
            page.screenshot(path=SHOTS / "02_failed.png", full_page=True)
            pytest.fail("a cell of notebook 06 raised: see outputs/ui/02_failed.png")
        done = page.locator(".jp-OutputArea-output", has_text="All checks passed.").count() > 0
        return done and kernel_states(base, token) == ["idle"]

    wait_for(finished, RUN_ALL_TIMEOUT, "Run All Cells to finish", interval=2)
    print(f"Run All Cells took {time.monotonic() - started:.0f} s")

    content = page.content()
    for error in WIDGET_ERRORS:
        assert error not in content, f"the page shows a widget error: {error!r}"

    # The explorer is the box with an "overlay alpha" slider (other boxes may have a threshold).
    label = page.locator(".widget-label", has_text=re.compile(r"^threshold$"))
    alpha_label = page.locator(".widget-label", has_text=re.compile(r"^overlay alpha$"))
    explorer = page.locator(".widget-vbox").filter(has=label).filter(has=alpha_label)
    assert explorer.count() == 1, f"{explorer.count()} prediction explorers on the page"
    explorer.scroll_into_view_if_needed()
    figure = explorer.locator(".widget-output img").first
    figure.wait_for(timeout=60_000)
    before = figure.get_attribute("src")
    assert before and before.startswith("data:image/png;base64,")
    explorer.screenshot(path=SHOTS / "03_explorer_before.png")
    page.screenshot(path=SHOTS / "02_after_run_all.png")

    shown_label = explorer.locator(".widget-label", has_text="overlay alpha")
    text, scroll_width, client_width = shown_label.evaluate(
        "el => [el.textContent, el.scrollWidth, el.clientWidth]")
    assert text.strip() == "overlay alpha"
    assert scroll_width <= client_width, (
        f"'overlay alpha' is cut: {scroll_width} px of text in {client_width} px")

    threshold = explorer.locator(".widget-hslider").filter(has=label)
    handle = threshold.locator(".noUi-handle")
    readout = threshold.locator(".widget-readout")
    assert readout.text_content().strip() == "0.50"
    handle.focus()
    for _ in range(20):  # 20 steps of THRESHOLD_STEP down from 0.50
        handle.press("ArrowLeft")
    lowered = f"{DEFAULT_THRESHOLD - 20 * THRESHOLD_STEP:.2f}"
    wait_for(lambda: readout.text_content().strip() == lowered, 10,
             f"the readout to say {lowered}", interval=0.2)
    wait_for(lambda: figure.get_attribute("src") != before, 60,
             "the explorer's figure to be redrawn", interval=0.5)
    # Each arrow key redraws once: wait for the last redraw (kernel idle, figure unchanged).
    seen: list[str | None] = []

    def settled() -> bool:
        seen.append(figure.get_attribute("src"))
        return len(seen) > 2 and seen[-1] == seen[-2] == seen[-3] and kernel_states(
            base, token) == ["idle"]

    wait_for(settled, 60, "the explorer's last redraw", interval=1)
    assert seen[-1] != before and seen[-1].startswith("data:image/png;base64,")
    explorer.screenshot(path=SHOTS / f"04_explorer_threshold_{lowered}.png")

    content = page.content()
    for error in WIDGET_ERRORS:
        assert error not in content, f"the page shows a widget error: {error!r}"
