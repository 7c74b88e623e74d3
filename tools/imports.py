"""The import graph of petseg_lib: which module imports which, and its longest chain.

    .venv/bin/python tools/imports.py            # every module's ties, then the longest chain

Reads the source files (nothing is imported or run), counting `from .x import y`,
`from . import x` and `from ..data.masks import ...` alike. A module is named by its place
(`data.oxford_pet`, `training.config`, `train`); `models/` and `data/toy_pets/` count as one
module each; a floor's `__init__.py` holds only its description. ARCHITECTURE.md's list of
ties is this tool's output, and tests/test_project.py holds the rules it must keep (the data
floor, the chain's height).
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "petseg_lib"


GROUPS = ("models", "data.toy_pets")  # packages that count as one module each


def module_name(path: Path) -> str:
    """'data.oxford_pet' for petseg_lib/data/oxford_pet.py; 'models' for petseg_lib/models/*."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return node_of(".".join(parts))


def node_of(dotted: str) -> str:
    """The module a dotted name inside the package counts as (a group, or itself)."""
    return next((g for g in GROUPS if dotted == g or dotted.startswith(g + ".")), dotted)


def imported(path: Path, node: ast.ImportFrom) -> list[str]:
    """The dotted names (inside the package) that one relative import statement reaches."""
    package = list(path.relative_to(PACKAGE).parent.parts)
    base = package[:len(package) - (node.level - 1)]
    module = [*base, *node.module.split(".")] if node.module else base
    # `from .training import distributed` reaches training.distributed; `from .x import f`, x
    return [".".join([*module, alias.name]) for alias in node.names] + [".".join(module)]


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports."""
    sources = [p for p in PACKAGE.rglob("*.py")  # a floor's __init__.py only holds its text
               if p.name != "__init__.py" or module_name(p) in GROUPS]
    graph: dict[str, set[str]] = {module_name(p): set() for p in sources}
    for path in sources:
        name = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                targets = {node_of(t) for t in imported(path, node)}
                graph[name] |= {t for t in targets if t in graph and t != name}
    return graph


def longest_chain(graph: dict[str, set[str]]) -> list[str]:
    """The longest path of imports, top module first."""

    @functools.cache
    def chain(name: str) -> tuple[str, ...]:
        below = [chain(dep) for dep in sorted(graph[name])]
        return (name, *max(below, key=len, default=()))

    return list(max((chain(name) for name in sorted(graph)), key=len))


def main() -> None:
    """Print every module's ties and the longest chain."""
    sys.setrecursionlimit(10_000)
    graph = import_graph()
    for name in sorted(graph):
        print(f"{name}: {', '.join(sorted(graph[name])) or '(nothing of the package)'}")
    path = longest_chain(graph)
    print(f"\nlongest chain, {len(path)} modules: {' → '.join(path)}")


if __name__ == "__main__":
    main()
