"""Reading Python source as the layout tests do: which modules a file imports."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_modules(source: ast.Module | Path) -> set[str]:
    """Every module named by an ``import`` or ``from ... import`` anywhere in ``source``."""
    tree = source if isinstance(source, ast.Module) else ast.parse(source.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found
