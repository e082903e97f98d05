"""The shape of the test suite (tests/README.md): unit tests run in this process, every test
folder is a package, and helpers live in tests/support, never in another test module."""

from __future__ import annotations

from tests.support import REPO
from tests.support.source import imported_modules

TESTS = REPO / "tests"


def test_no_unit_test_starts_a_process() -> None:
    starting = {"subprocess", "multiprocessing"}
    offenders = [
        str(path.relative_to(TESTS))
        for path in sorted((TESTS / "unit").rglob("*.py"))
        if starting & {name.split(".")[0] for name in imported_modules(path)}
    ]
    assert offenders == []


def test_every_test_folder_is_a_package() -> None:
    folders = {path.parent for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts}
    missing = sorted(str(f.relative_to(REPO)) for f in folders if not (f / "__init__.py").exists())
    assert missing == []


def test_no_test_module_imports_another() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}: {name}"
        for path in sorted(TESTS.rglob("*.py"))
        for name in sorted(imported_modules(path))
        if name.startswith(("tests.unit.", "tests.integration.", "tests.conftest"))
    ]
    assert offenders == []
