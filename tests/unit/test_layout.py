"""The layout of docs/ARCHITECTURE.md: what `lint-imports` cannot see for itself.

import-linter checks packages; ``cli.py`` is a module at the root, and a package added to ``bwv``
without a layer would escape the contract. These tests close both gaps.
"""

from __future__ import annotations

import ast
import configparser

from tests.support import REPO
from tests.support.source import imported_modules


def test_cli_root_imports_only_typer_and_the_command_groups() -> None:
    tree = ast.parse((REPO / "cli.py").read_text())
    outside = {
        name
        for name in imported_modules(tree)
        if name not in {"__future__", "typer"} and not name.startswith("bwv.cli")
    }
    assert outside == set()


def test_cli_root_declares_no_command_of_its_own() -> None:
    tree = ast.parse((REPO / "cli.py").read_text())
    decorated = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(
            "command" in ast.unparse(d) or "callback" in ast.unparse(d) for d in node.decorator_list
        )
    ]
    assert decorated == []


def test_every_bwv_package_has_a_layer() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    named = {
        part.strip() for line in layers.splitlines() for part in line.replace(":", "|").split("|")
    }
    packages = {f"bwv.{path.parent.name}" for path in (REPO / "bwv").glob("*/__init__.py")}
    modules = {
        f"bwv.{path.stem}" for path in (REPO / "bwv").glob("*.py") if path.stem != "__init__"
    }
    assert packages | modules <= named, (
        f"not in a layer of .importlinter: {(packages | modules) - named}"
    )
