"""One live service per test module (``api``), shared by that module's tests: a ``bwv serve``
under uvicorn with one caller of each role and an enrolled dock (see tests/support/apiserver.py).
A test that needs its own settings starts its own with :func:`tests.support.apiserver.start_api`
or :func:`tests.support.ingestserver.running`; a module may define its own ``api``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.apiserver import Api, start_api


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    running = start_api(tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2]))
    try:
        yield running
    finally:
        running.close()
