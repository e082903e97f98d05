"""Shared fixtures. Records and ledger tests run on SQLite and on a real PostgreSQL server
started for the session (see tests/support/pgserver.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine

from bwv.custody.ledger import Ledger
from bwv.keys import Keyring, SigningKey
from bwv.records.database import make_engine, upgrade
from tests.support import ORIGIN, REPO
from tests.support.pgserver import PostgresServer, find_bindir, postgres_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    if find_bindir() is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) not found"
        if os.environ.get("BWV_REQUIRE_POSTGRES"):
            pytest.fail(f"{message}, and BWV_REQUIRE_POSTGRES is set")
        pytest.skip(f"{message}: PostgreSQL tests skipped (install postgresql to run them)")
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bwv.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.new_database()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def signer() -> SigningKey:
    return SigningKey(ORIGIN, Ed25519PrivateKey.generate())


@pytest.fixture
def keyring(signer: SigningKey) -> Keyring:
    return Keyring([signer.verifier])


@pytest.fixture
def ledger(engine: Engine, signer: SigningKey) -> Ledger:
    return Ledger(engine, ORIGIN, signer, checkpoint_every_leaves=10, checkpoint_every_seconds=3600)


@pytest.fixture(scope="session")
def rgw():  # type: ignore[no-untyped-def]
    """A real Ceph RADOS Gateway (S3 with object lock) on loopback, for the session."""
    from tests.support.rgwserver import find_binaries, rgw_server

    missing = find_binaries()
    if missing:
        message = f"Ceph RADOS Gateway not installed (missing {', '.join(missing)})"
        if os.environ.get("BWV_REQUIRE_RGW"):
            pytest.fail(f"{message}, and BWV_REQUIRE_RGW is set")
        pytest.skip(f"{message}: S3 store tests skipped")
    with rgw_server() as server:
        yield server


@pytest.fixture
def ingest(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The ingest service running as a real uvicorn process over TLS, with its own data dir."""
    from tests.support.ingestserver import make_server

    server = make_server(tmp_path)
    server.start()
    yield server
    server.stop()


# A unit test runs in this process: no server, no database server, no service. A test that
# asks for one of these belongs in tests/integration/ (see tests/unit/test_suite_layout.py).
SERVER_FIXTURES = {"pg_server", "database_url", "rgw", "ingest", "api"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unit = REPO / "tests" / "unit"
    misplaced = [
        f"{item.nodeid} ({', '.join(sorted(SERVER_FIXTURES & set(item.fixturenames)))})"
        for item in items
        if item.path.is_relative_to(unit)
        and SERVER_FIXTURES & set(getattr(item, "fixturenames", ()))
    ]
    if misplaced:
        raise pytest.UsageError(
            "unit tests that start a server belong in tests/integration/: " + "; ".join(misplaced)
        )
