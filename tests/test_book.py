"""The book (tools/book.py, `make book`): executed notebooks as HTML pages and a course map.

`make test` builds the whole book after nbval; here two short notebooks are built once per
session (about a minute), and what every page needs is checked on them.
"""

import html
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ["01_data_exploration", "03_unet"]
EMBEDDED_PNG = re.compile(r'<img[^>]*\ssrc="data:image/png;base64,')


def load_book():
    """tools/book.py as a module (tools/ is no package: learners never import it)."""
    if "petseg_book" not in sys.modules:
        spec = importlib.util.spec_from_file_location("petseg_book", ROOT / "tools" / "book.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["petseg_book"] = module  # its dataclass looks itself up there
        spec.loader.exec_module(module)
    return sys.modules["petseg_book"]


def notebooks_state() -> dict[str, tuple[int, int]]:
    """Every file under notebooks/ with its size and modification time."""
    return {str(p.relative_to(ROOT)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted((ROOT / "notebooks").rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The book of notebooks 01 and 03, built once per test session by the command line."""
    output = tmp_path_factory.mktemp("site")
    before = notebooks_state()
    subprocess.run([sys.executable, str(ROOT / "tools" / "book.py"), "--only", "01", "03",
                    "--output", str(output)], check=True, cwd=ROOT, timeout=900)
    assert notebooks_state() == before, "building the book wrote into notebooks/"
    return output


def test_every_page_exists_with_an_embedded_figure(site):
    for stem in SUBSET:
        page = (site / f"{stem}.html").read_text(encoding="utf-8")
        assert EMBEDDED_PNG.search(page), f"{stem}.html holds no embedded PNG figure"
        assert "Traceback" not in page, f"{stem}.html shows an error"
        assert 'href="index.html"' in page, "each page links back to the course map"
    assert sorted(p.stem for p in site.glob("*.html")) == sorted(SUBSET + ["index"])


def test_the_index_links_every_page_with_its_title_and_time(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    for stem in SUBSET:
        nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
        title = nb.cells[0].source.splitlines()[0][2:].strip()
        row = re.search(rf'<tr><td><a href="{stem}\.html">(.*?)</a></td>.*?</tr>', index)
        assert row, f"the index does not link to {stem}.html"
        assert row.group(1) == html.escape(title)
        assert re.search(r'<td class="time">\d+\.\d s</td>', row.group(0))
    assert "quick mode" in index
    for words in ("The design report", "Before you start", "At the end", "The data."):
        assert words in index, f"the index does not say {words!r}"
    book = load_book()
    shown = book.data_shown(book.kernel_env("01_data_exploration", full=False))
    assert shown in ("toy pets (the offline sample)", f"real photos ({book.REAL.name})",
                     f"real photos ({book.MINI.name})")
    assert f"<td>{html.escape(shown)}</td>" in index  # each row says what its figures show


def test_every_notebook_has_a_title_and_a_one_sentence_summary():
    book = load_book()
    for path in book.course_notebooks():
        title, summary = book.title_and_summary(nbformat.read(path, as_version=4))
        assert title.startswith(path.stem[:2]), (path.name, title)
        assert 40 <= len(summary) <= 400 and summary[-1] in ".!?", (path.name, summary)


def test_only_picks_notebooks_by_prefix():
    book = load_book()
    assert [p.stem for p in book.course_notebooks(["01", "03_unet"])] == SUBSET
    with pytest.raises(SystemExit, match="no notebook matches 99"):
        book.course_notebooks(["99"])


def test_widget_state_is_stored_so_sliders_render(tmp_path):
    book = load_book()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · Sliders\n\nA slider in a static page."),
        nbformat.v4.new_code_cell("import ipywidgets\n"
                                  "ipywidgets.FloatSlider(0.5, description='threshold')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    path = tmp_path / "99_sliders.ipynb"
    nbformat.write(nb, path)
    executed, seconds = book.execute(path, full=False, timeout=120)
    assert seconds > 0
    page = book.notebook_page(executed, "<nav>map</nav>")
    state = re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>',
                      page, flags=re.DOTALL)
    assert state, "the page stores no widget state"
    models = json.loads(state.group(1))["state"].values()
    sliders = [m["state"] for m in models if m["model_name"] == "FloatSliderModel"]
    assert [(s["description"], s["value"]) for s in sliders] == [("threshold", 0.5)]
    assert "application/vnd.jupyter.widget-view+json" in page  # where the slider is drawn


def test_the_book_uses_real_pets_where_they_are(tmp_path, monkeypatch):
    book = load_book()
    monkeypatch.delenv("PETSEG_DATA", raising=False)
    real, mini = tmp_path / "real", tmp_path / "mini"
    mini.mkdir()
    monkeypatch.setattr(book, "MINI", mini)
    monkeypatch.setattr(book, "REAL", real)
    assert book.kernel_env("01_data_exploration", full=False)["PETSEG_DATA"] == str(mini)
    assert "PETSEG_DATA" not in book.kernel_env("05_training", full=False)  # the sample
    real.mkdir()
    for stem in ("01_data_exploration", "05_training", "07_beyond_the_report"):
        env = book.kernel_env(stem, full=False)
        assert env["PETSEG_DATA"] == str(real) and env["PETSEG_QUICK"] == "1"
    monkeypatch.setenv("PETSEG_DATA", str(tmp_path / "mine"))  # the reader's choice wins
    assert book.kernel_env("05_training", full=True)["PETSEG_DATA"] == str(tmp_path / "mine")


def test_a_widget_gets_a_picture_of_what_it_first_showed(tmp_path):
    book = load_book()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 99 · A figure in a widget\n\nAn explorer."),
        nbformat.v4.new_code_cell(
            "import ipywidgets, matplotlib.pyplot as plt\n"
            "out = ipywidgets.Output()\n"
            "with out:\n"
            "    plt.plot([0, 1]); plt.title('first state'); plt.show()\n"
            "ipywidgets.VBox([ipywidgets.FloatSlider(0.5), out])")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "99_widget.ipynb")
    executed, _ = book.execute(tmp_path / "99_widget.ipynb", full=False, timeout=120,
                               work=tmp_path / "work")
    assert not EMBEDDED_PNG.search(book.notebook_page(executed, "<nav>map</nav>"))
    assert book.add_static_pictures(executed) == 1
    page = book.notebook_page(executed, "<nav>map</nav>")
    assert EMBEDDED_PNG.search(page), "no picture of the widget without a kernel"
    assert "as it first appeared" in page
    assert "application/vnd.jupyter.widget-view+json" in page  # the live widget stays


def test_the_book_trains_in_its_own_folders_never_in_the_checkouts(tmp_path):
    book = load_book()
    env = book.kernel_env("05_training", full=False, work=tmp_path)
    assert env["PETSEG_CHECKPOINTS"] == str(tmp_path / "checkpoints")
    assert env["PETSEG_OUTPUTS"] == str(tmp_path / "outputs")
    for stem in ("06_evaluation_and_comparison", "07_beyond_the_report"):
        text = (ROOT / "notebooks" / f"{stem}.py").read_text(encoding="utf-8")
        assert '"checkpoints"' not in text, f"{stem} names checkpoints/ instead of asking paths"
