"""The worked solutions in notebooks/solutions/: one per notebook, one per exercise, and they run.

Each solution ends its exercises with asserts that check the answer, so running it as a
script (in QUICK mode, as the notebooks are tested) checks the answers too.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from jupytext.config import load_jupytext_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.py"))


def markdown_cells(path: Path) -> list[str]:
    return [c.source for c in jupytext.read(path).cells if c.cell_type == "markdown"]


def exercises_cell(notebook: Path) -> str:
    cells = [m for m in markdown_cells(notebook) if m.lstrip().startswith("## Exercises")]
    assert len(cells) == 1, f"{notebook.name} needs one '## Exercises' cell"
    return cells[0]


def test_every_notebook_has_a_solutions_file():
    assert len(NOTEBOOKS) == 8
    assert [p.name for p in SOLUTIONS] == [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_solution_per_exercise(notebook):
    items = re.findall(r"^\d+\. ", exercises_cell(notebook), flags=re.MULTILINE)
    solution = notebook.parent / "solutions" / notebook.name
    headers = [int(n) for m in markdown_cells(solution)
               for n in re.findall(r"^## Exercise (\d+)\b", m, flags=re.MULTILINE)]
    assert items, f"{notebook.name}: no numbered exercises found"
    assert headers == list(range(1, len(items) + 1)), (
        f"{solution.name} has exercise headers {headers}, the notebook {len(items)} exercises")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_points_to_its_solutions(notebook):
    assert f"`solutions/{notebook.name}`" in exercises_cell(notebook)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_opens_as_a_notebook_titled_as_solutions(solution):
    nb = jupytext.read(solution)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith(f"# Solutions to notebook {solution.name[:2]}")
    assert "try the exercises yourself first" in first.source
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "formats" not in nb.metadata.get("jupytext", {}), "solutions are not paired"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_saving_a_solution_in_jupyterlab_changes_nothing(solution):
    # notebooks/solutions/jupytext.toml overrides the pairing of the repository's config:
    # saving a solution writes back the same .py, and no .ipynb beside it.
    assert not any(load_jupytext_config(str(solution)).formats), "no pairing"
    assert "ipynb" in "".join(load_jupytext_config(str(NOTEBOOKS[0])).formats), "notebooks are"
    assert jupytext.writes(jupytext.read(solution), "py:percent") == solution.read_text()
    assert not list(solution.parent.glob("*.ipynb")), "solutions are .py files only"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_runs_and_its_checks_pass(solution, tmp_path):
    # TMPDIR: the checkpoints of 05 and 06 land under pytest's tmp_path, even after a timeout.
    # One thread: the solutions' tiny models gain little from a second one, and on a machine
    # shared with other jobs the threads of thousands of small operations wait for each
    # other (06 took minutes with two threads under load, under a minute with one).
    env = {**os.environ, "PETSEG_QUICK": "1", "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(solution)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"{solution.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    assert "All checks passed." in result.stdout
