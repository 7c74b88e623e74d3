"""The course notebooks: paired with their py:percent twins, clean, and shaped like lessons.

nbval executes them (see `make notebooks`); these tests check what execution cannot.
"""

from pathlib import Path

import jupytext
import nbformat
import pytest

from petseg_lib import REPOSITORY_URL

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["01_data_exploration", "02_augmentation", "03_unet", "04_resnet34_unet",
            "05_training", "06_evaluation_and_comparison", "07_beyond_the_report",
            "08_further_directions"]
# A notebook may build a layer step by step for teaching when it checks it against the library.
TEACHING_CLASSES = {"04_resnet34_unet"}


def code_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_the_eight_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_its_py_twin_agree(path):
    twin = path.with_suffix(".py")
    assert twin.is_file(), f"{twin.name} is missing: run `make sync`"
    a, b = jupytext.read(path), jupytext.read(twin)
    cells_a = [(c.cell_type, c.source.strip()) for c in a.cells]
    cells_b = [(c.cell_type, c.source.strip()) for c in b.cells]
    assert cells_a == cells_b, f"{path.name} and {twin.name} differ: run `make sync`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} has outputs: clear them before committing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_shaped_like_lessons(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert "you will be able to" in first.source.lower()
    codes = code_cells(nb)
    assert REPOSITORY_URL in codes[0] and "google.colab" in codes[0], "Colab setup cell"
    assert "find_dataset" in "\n".join(codes[:3]), "a setup cell picks the data"
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert any(m.lstrip().startswith("## Exercises") for m in markdown)
    assert "assert " in codes[-1], "the last code cell is a self-check"
    for source in codes:
        assert "\ndef " not in "\n" + source, "reusable functions belong in petseg_lib"
        if path.stem not in TEACHING_CLASSES:
            assert "\nclass " not in "\n" + source


def test_readme_names_the_repository_url():
    assert REPOSITORY_URL in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saving_in_jupyterlab_leaves_the_twin_unchanged(path):
    # JupyterLab writes the ipykernel display name and jupytext its own version on every
    # save: both notebooks and twins carry the first and leave out the second.
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    twin = path.with_suffix(".py").read_text()
    assert "display_name: Python 3 (ipykernel)" in twin and "jupytext_version:" not in twin


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_cell_ends_in_a_bare_seed_call(path):
    # torch.manual_seed returns a Generator, which a notebook would print as <torch._C...>.
    for source in code_cells(nbformat.read(path, as_version=4)):
        last = source.strip().splitlines()[-1] if source.strip() else ""
        assert not last.startswith("torch.manual_seed("), last
