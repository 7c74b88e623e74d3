"""Build the course as a static site: every notebook executed, one HTML page each, and a map.

    python tools/book.py                  # quick mode (PETSEG_QUICK=1), all notebooks, into site/
    python tools/book.py --full           # the report's settings (wants a GPU)
    python tools/book.py --only 01 03     # some notebooks only, by number or name prefix

Each notebook is read from notebooks/, executed in memory by nbclient with its working folder
set to notebooks/ (so relative paths work) and written only as HTML: nothing is written into
notebooks/. The widgets' state is stored in the page, so the sliders of notebook 06 are drawn
(as they were when the notebook ran: without a kernel, moving them changes nothing; the page
loads nbconvert's widget renderer from unpkg.com, so they need a network). Figures are
embedded as base64 PNGs, so a page is one self-contained file. `site/index.html` is the course
map: each notebook's title (its first heading), a one-line summary, a link and how long it took
to execute, and what the figures show (toy pets or real photos). `make book` runs this;
`FULL=1 make book` runs it with --full.

The book is the same from any checkout: the notebooks train into a fresh folder of the build
(PETSEG_CHECKPOINTS and PETSEG_OUTPUTS), never reusing what checkpoints/ or outputs/ hold.
Every widget (the sliders and the photo box of notebook 06) is followed on its page by a
picture of what it first showed, taken from its stored state, so the page shows it without a
kernel or a network.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client import KernelClient
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter

from petseg_lib.data.download import is_downloaded
from petseg_lib.data.sample import read_marker
from petseg_lib.paths import default_data_path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# Real Oxford-IIIT Pet photos beside the project, as `make notebooks` uses them: with the 568
# real pairs every notebook trains and scores on real pets; else the 26 pairs of the mini set
# show real pets in notebooks 01 and 02 (too few to train on), and the rest use the sample.
REAL = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-real"
MINI = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini"
REAL_PETS = ("01", "02")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@dataclass
class Page:
    """One built notebook: where its page is and what the map says about it."""

    stem: str
    title: str
    summary: str
    seconds: float
    data: str = ""

    @property
    def href(self) -> str:
        return f"{self.stem}.html"


def course_notebooks(only: list[str] | None = None) -> list[Path]:
    """The course's notebooks in order; with ONLY, those whose name starts with one of them."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(prefix) for prefix in only)]
        missing = [o for o in only if not any(p.stem.startswith(o) for p in paths)]
        if missing:
            raise SystemExit(f"book: no notebook matches {', '.join(missing)}")
    return paths


def title_and_summary(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """The notebook's first heading, and the first sentence of the paragraph after it."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.strip().splitlines()
        if not lines or not lines[0].startswith("# "):
            continue
        title = lines[0][2:].strip()
        paragraph = []
        for line in lines[1:]:
            if line.strip():
                paragraph.append(line.strip())
            elif paragraph:
                break
        sentences = re.findall(r".+?[.!?](?=\s|$)", " ".join(paragraph)) or [" ".join(paragraph)]
        summary = sentences[0].strip()
        if len(summary) < 60 and len(sentences) > 1:  # too short to say what the notebook does
            summary += " " + sentences[1].strip()
        return title, summary
    raise ValueError("the notebook has no first heading ('# ...')")


def inline_markdown(text: str) -> str:
    """TEXT as HTML, with `code` and *emphasis* kept; everything else escaped."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)


def kernel_env(stem: str, full: bool, work: Path | None = None) -> dict[str, str]:
    """The kernel's environment: quick mode unless FULL, real photos where they are (REAL,
    else MINI for 01 and 02), checkpoints and outputs in WORK (the build's own folder), and
    this checkout's petseg_lib first on the path (whatever the venv was installed from)."""
    env = dict(os.environ)
    env.pop("PETSEG_QUICK", None)
    if not full:
        env["PETSEG_QUICK"] = "1"
    if "PETSEG_DATA" not in os.environ:
        if REAL.is_dir():
            env["PETSEG_DATA"] = str(REAL)
        elif stem[:2] in REAL_PETS and MINI.is_dir():
            env["PETSEG_DATA"] = str(MINI)
    if work is not None:  # never the checkout's checkpoints/ and outputs/
        env["PETSEG_CHECKPOINTS"] = str(work / "checkpoints")
        env["PETSEG_OUTPUTS"] = str(work / "outputs")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures as PNGs
    return env


class PollingClient(NotebookClient):
    """nbclient's client, reading the kernel's replies in short polls.

    nbclient waits for a cell's reply and for its last output with one long poll of each
    ZeroMQ socket at once; now and then (a third of the runs of a cell that displays widgets,
    here) that poll misses a message that has already arrived and waits out the whole cell
    timeout (jupyter/nbclient#312). A poll that starts again every half second finds it.
    """

    poll_seconds = 0.5

    async def async_start_new_kernel_client(self) -> KernelClient:
        client = await super().async_start_new_kernel_client()
        for channel in (client.shell_channel, client.iopub_channel):
            channel.get_msg = self._in_short_polls(channel.get_msg)
        return client

    def _in_short_polls(self, get_msg: Callable[..., Awaitable[dict]]):
        async def get(timeout: float | None = None) -> dict:
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = (self.poll_seconds if deadline is None
                        else min(self.poll_seconds, max(0.0, deadline - time.monotonic())))
                try:
                    return await get_msg(timeout=left)
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise
        return get


def data_shown(env: dict[str, str]) -> str:
    """What a notebook run with ENV shows: real photos (and from where) or the toy pets."""
    folder = Path(env["PETSEG_DATA"]) if env.get("PETSEG_DATA") else default_data_path()
    if not is_downloaded(folder) or read_marker(folder) is not None:
        return "toy pets (the offline sample)"
    return f"real photos ({folder.name})"


def execute(path: Path, full: bool, timeout: int,
            work: Path | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Run every cell of the notebook at PATH in a fresh kernel; return it and the seconds taken."""
    nb = nbformat.read(path, as_version=4)
    client = PollingClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}},
                            store_widget_state=True)
    start = time.perf_counter()
    client.execute(env=kernel_env(path.stem, full, work))
    return nb, time.perf_counter() - start


def widget_pictures(state: dict, model_id: str) -> list[dict]:
    """The image outputs held by the Output widgets inside widget MODEL_ID, in order."""
    model = state.get(model_id, {})
    values = model.get("state", {})
    pictures = [output for output in values.get("outputs", [])
                if "image/png" in output.get("data", {})]
    for child in values.get("children", []):
        pictures += widget_pictures(state, str(child).removeprefix("IPY_MODEL_"))
    return pictures


def add_static_pictures(nb: nbformat.NotebookNode) -> int:
    """After each widget's output, a picture of what it first showed; returns how many."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    added = 0
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            outputs.append(output)
            view = output.get("data", {}).get(WIDGET_VIEW)
            pictures = widget_pictures(state, view["model_id"]) if view else []
            if pictures:
                outputs.append(nbformat.v4.new_output("display_data", data={
                    "text/markdown": "*The widget above as it first appeared (a picture: run "
                                     "the notebook to move its controls):*"}))
                outputs += [nbformat.v4.new_output("display_data", data={
                    "image/png": picture["data"]["image/png"]}) for picture in pictures]
                added += len(pictures)
        if "outputs" in cell:
            cell.outputs = outputs
    return added


def navigation(pages: list[Page], index: int, total: int) -> str:
    """The bar at the top of a notebook's page: the map, the previous and the next notebook."""
    links = ['<a href="index.html">Course map</a>']
    if index > 0:
        links.append(f'<a href="{pages[index - 1].href}">&larr; {pages[index - 1].stem}</a>')
    if index + 1 < total:
        links.append(f'<a href="{pages[index + 1].href}">{pages[index + 1].stem} &rarr;</a>')
    return ('<nav class="petseg-book-nav" style="font-family: sans-serif; padding: 0.6em 1em; '
            'border-bottom: 1px solid #ddd; display: flex; gap: 1.5em;">'
            + "".join(links) + "</nav>")


def notebook_page(nb: nbformat.NotebookNode, nav: str) -> str:
    """The executed notebook as one self-contained HTML page, with NAV at the top."""
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, body, count=1)


def index_page(pages: list[Page], mode: str, total_seconds: float) -> str:
    """The course map: a table of the notebooks with their summaries and execution times."""
    rows = "\n".join(
        f'<tr><td><a href="{p.href}">{html.escape(p.title)}</a></td>'
        f"<td>{inline_markdown(p.summary)}</td>"
        f"<td>{html.escape(p.data)}</td>"
        f'<td class="time">{p.seconds:.1f} s</td></tr>' for p in pages)
    shown = sorted({p.data for p in pages})
    data = (f"All figures show {shown[0]}" if len(shown) == 1
            else "The figures show " + " or ".join(shown) + ", as the table says")
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>petseg: the course</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
        line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.5em; text-align: left;
          vertical-align: top; }}
td.time {{ white-space: nowrap; text-align: right; }}
a {{ color: #0b57d0; }}
</style>
</head>
<body>
<h1>petseg: pet segmentation with PyTorch</h1>
<p>Binary segmentation (pet vs background) of the Oxford-IIIT Pet dataset in {len(pages)}
notebooks, executed and shown with their figures. Read them in order; each one ends with
exercises and a self-check. The sliders are shown as pictures of what they first showed: to
move them, run the notebook in JupyterLab (<code>make lab</code>).</p>
<p><strong>The design report</strong> is the short study this course follows and checks:
it trained a UNet and a UNet with a ResNet34 encoder on the Oxford-IIIT Pet photos, each
with and without data augmentation, and compared their test Dice scores (its settings: 256
px, batch 8, Adam 1e-4, 20 epochs). The notebooks rebuild its code, rerun its experiment and
look past it.</p>
<p><strong>Before you start</strong> you need Python (functions, classes, lists and dicts)
and a little NumPy; PyTorch tensors, convolutions and training loops are explained as they
come. <strong>At the end</strong> you will have built both networks, trained and scored
them, compared the four configurations with their seed spread, and segmented a photo of
your own.</p>
<p><strong>The data.</strong> {data}. Without the real Oxford-IIIT Pet photos the course
falls back to toy pets drawn offline: the code is the same, the pictures and scores are not
those of real pets.</p>
<table>
<thead><tr><th>notebook</th><th>what it is about</th><th>figures show</th>
<th>execution</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
<p>Built {built} in {mode}; executing the notebooks took {total_seconds:.0f} s.</p>
</body>
</html>
"""


def build(output: Path, only: list[str] | None = None, full: bool = False,
          timeout: int = 3600) -> list[Page]:
    """Execute the notebooks and write their pages and the course map into OUTPUT."""
    paths = course_notebooks(only)
    mode = "full mode (the report's settings)" if full else "quick mode (PETSEG_QUICK=1)"
    output.mkdir(parents=True, exist_ok=True)
    executed, pages = [], []
    with tempfile.TemporaryDirectory(prefix="petseg-book-") as work:  # trained from scratch
        for path in paths:
            print(f"book: executing {path.name} ...", flush=True)
            try:
                nb, seconds = execute(path, full, timeout, Path(work))
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
                raise SystemExit(f"book: {path.name} failed:\n{error}") from None
            print(f"book: {path.name} took {seconds:.1f} s", flush=True)
            add_static_pictures(nb)
            title, summary = title_and_summary(nb)
            executed.append(nb)
            data = data_shown(kernel_env(path.stem, full))
            pages.append(Page(path.stem, title, summary, seconds, data))
    for i, (nb, page) in enumerate(zip(executed, pages, strict=True)):
        text = notebook_page(nb, navigation(pages, i, len(pages)))
        (output / page.href).write_text(text, encoding="utf-8")
    total = sum(p.seconds for p in pages)
    (output / "index.html").write_text(index_page(pages, mode, total), encoding="utf-8")
    print(f"book: {len(pages)} notebooks in {total:.0f} s, {mode}: {output / 'index.html'}")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NN",
                        help="build only these notebooks (number or name prefix, e.g. 01 03)")
    parser.add_argument("--full", action="store_true",
                        help="run without PETSEG_QUICK: the report's settings (wants a GPU)")
    parser.add_argument("--output", type=Path, default=ROOT / "site",
                        help="where the site goes (default: site/)")
    parser.add_argument("--timeout", type=int, default=3600,
                        help="seconds one cell may run (default: 3600)")
    args = parser.parse_args(argv)
    build(args.output, args.only, args.full, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
