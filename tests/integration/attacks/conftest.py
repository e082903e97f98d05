"""One live service per test module (``api``), shared by that module's attacks; an attack that
needs its own settings starts its own with :func:`tests.support.apiserver.start_api`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.apiserver import Api, start_api


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A running service with one caller of each role and an enrolled dock (see apiserver)."""
    running = start_api(tmp_path_factory.mktemp("attacks"))
    try:
        yield running
    finally:
        running.close()
