"""Which of the package's files a piece of code depends on: a module and, transitively, every opbench module it
imports (at the top or inside a function). The workflow makes these files inputs of the jobs whose results they
decide, so editing a backend's or an op's code reruns exactly the jobs it decides.

A package's __init__.py counts where it is imported by name (`from opbench.backends import ...`), not where a
submodule is (`from opbench.backends.base import ...`); registries that discover their members at import time
(opbench.ops, opbench.backends) do not make every member a dependency of each other.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # holds opbench/


def module_file(module: str) -> Path | None:
    """The file of an opbench module (a package's __init__.py), or None for a name that is no module (an attribute
    of one, e.g. `opbench.dtypes.get_dtype`)."""
    base = PACKAGE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _direct_imports(path: Path) -> tuple[str, ...]:
    """The opbench modules a file imports by name (`import opbench.x`, `from opbench.x import y` with y a module)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "opbench"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "opbench":
            found.append(node.module)
            found += [
                f"{node.module}.{alias.name}" for alias in node.names if module_file(f"{node.module}.{alias.name}")
            ]
    return tuple(name for name in dict.fromkeys(found) if module_file(name))


@cache
def _closure(module: str) -> frozenset[Path]:
    start = module_file(module)
    if start is None:
        raise ModuleNotFoundError(f"{module!r} is no module of the opbench package")
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [p for name in _direct_imports(path) if (p := module_file(name)) is not None]
    return frozenset(seen)


def module_files(*modules: str) -> list[Path]:
    """The files of the named modules and of every opbench module they import, transitively; sorted."""
    return sorted(set().union(*(_closure(m) for m in modules)))
