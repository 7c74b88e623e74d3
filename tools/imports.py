"""The import graph of petseg_lib: which module imports which, and its longest chain.

    .venv/bin/python tools/imports.py            # every module's ties, then the longest chain

Reads the source files (nothing is imported or run), counting `from .x import y`,
`from . import x` and `from .models import ...` alike; a package (`models/`, `toy_pets/`)
counts as one module. ARCHITECTURE.md's list of ties is this tool's output, and
tests/test_project.py holds the rules it must keep (the data floor, the chain's height).
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "petseg_lib"


def module_name(path: Path) -> str:
    """'oxford_pet' for petseg_lib/oxford_pet.py, 'models' for anything in petseg_lib/models/."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            inside = len(path.relative_to(PACKAGE).parts) > 1  # in models/ or toy_pets/
            if inside and node.level == 1:
                continue  # a sibling inside the same subpackage
            if node.module:
                targets = [node.module.split(".")[0]]
            else:  # from . import x, y
                targets = [alias.name for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
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
