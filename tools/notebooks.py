"""Notebook helpers shared by the tests and the exercise generator."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEFINITION_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def is_definition_cell(source: str) -> bool:
    """True when every top-level statement is an import, a ``def`` or a ``class`` (cheap to run)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics
        return False
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return bool(body) and all(isinstance(n, DEFINITION_NODES) for n in body)


def load_definitions(path: str | Path) -> dict[str, Any]:
    """Run only the definition cells of a notebook and return its namespace.

    This is how tests get a learner's (or the solution's) functions and classes out of a notebook
    without running its demonstrations or checks.
    """
    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    nb = nbformat.read(path, as_version=4)
    namespace: dict[str, Any] = {"__name__": f"notebook_{path.stem}"}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and is_definition_cell(cell.source):
            exec(compile(cell.source, f"{path.name}[cell {i}]", "exec"), namespace)
    return namespace
