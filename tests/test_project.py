"""The project's own files: the package lists agree, the layout is as documented."""

import importlib.util
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """'torch==2.14.1' -> 'torch'; names compared case- and dash/underscore-insensitively."""
    return re.split(r"[=<>!~\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _environment_entries() -> list[str]:
    """The package entries under `dependencies:` (conda and pip ones), without sections."""
    text = (ROOT / "environment.yml").read_text().split("dependencies:", 1)[1]
    entries = re.findall(r"^\s*-\s+(\S+)\s*$", text, flags=re.MULTILINE)
    return [e for e in entries if not e.endswith(":")]


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = _pyproject()
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    listed = {_name(e) for e in _environment_entries() if e != "pip" and e != "python=3.11"}
    assert listed == wanted


def test_torch_pins_agree():
    pins = {_name(r): r for r in _pyproject()["dependencies"] if "==" in r}
    assert pins == {"torch": "torch==2.14.1", "torchvision": "torchvision==0.29.1"}
    entries = _environment_entries()
    assert "torch==2.14.1" in entries and "torchvision==0.29.1" in entries


def test_data_and_checkpoints_hold_only_their_readme_in_git():
    ignore = (ROOT / ".gitignore").read_text()
    for folder in ("data", "checkpoints"):
        assert (ROOT / folder / "README.md").is_file()
        assert f"{folder}/*" in ignore and f"!{folder}/README.md" in ignore


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme


def test_the_data_floor_imports_nothing_above_it_and_the_house_is_low():
    tools = ROOT / "tools" / "imports.py"
    spec = importlib.util.spec_from_file_location("petseg_imports", tools)
    imports = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(imports)
    graph = imports.import_graph()
    # data/__main__.py is the floor's command line (python -m petseg_lib.data), not a room of it
    data = {name for name in graph if name.startswith("data.")} - {"data.__main__"}
    assert {"data.oxford_pet", "data.resized", "data.mask_folder", "data.formats"} <= data
    below_data = {"errors", "paths", "threads"}  # the helpers every floor may use
    for module in sorted(data):
        assert graph[module] <= data | below_data, (module, sorted(graph[module] - data))
    for floor, allowed in (("models", set()), ("evaluation.", {"data.", "models"}),
                           ("training.", {"data.", "models", "evaluation."}),
                           ("use.", {"data.", "models", "evaluation."})):
        for module in (name for name in graph if name.startswith(floor)):
            for dep in graph[module] - below_data - {"speed", "options", "cli"}:
                assert dep.startswith((floor, *allowed)), (module, dep)
    chain = imports.longest_chain(graph)
    assert len(chain) <= 9, chain
    architecture = (ROOT / "ARCHITECTURE.md").read_text()
    for module, deps in graph.items():  # the documented ties are the real ones
        listed = ", ".join(sorted(deps)) or "(nothing of the package)"
        assert f"\n{module}: {listed}\n" in architecture, module
