"""Engines and schema revisions, for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from bwv.base.errors import SchemaError

CONNECT_TIMEOUT_SECONDS = 5
WRITE = {"bwv_write": True}
"""Execution option for a connection that will write: on SQLite it takes the write lock at
BEGIN, so two writers never both read the same ledger size."""


def normalise_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A server that does not answer is an error within seconds, not after the kernel's
        # TCP timeout (minutes): readiness (bwv.services.health) must say so quickly.
        return create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_timeout=10,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
    if parsed.database and parsed.database != ":memory:":
        _private_file(Path(parsed.database))
    engine = create_engine(url, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")  # a commit is on disk before it returns
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA recursive_triggers=ON")  # REPLACE's delete fires the refusal too
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("bwv_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _private_file(path: Path) -> None:
    """The SQLite file made owner-only before SQLite first opens it: its -wal and -shm files
    take the database's mode, and the index and ledger are for the service's user alone."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "bwv.records:migrations")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise SchemaError(f"cannot open the database: {exc.orig}") from None


def upgrade(engine: Engine) -> None:
    """Apply every migration up to head (what ``bwv init`` does)."""
    _refuse_unknown(current_revision(engine))
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _refuse_unknown(revision: str | None) -> None:
    if revision is None:
        return
    script = ScriptDirectory.from_config(_alembic_config())
    try:
        script.get_revision(revision)
    except Exception:
        raise SchemaError(
            f"database schema is at revision {revision!r}, newer than this bwv knows "
            f"(latest {head_revision()!r}): upgrade bwv before using this database"
        ) from None


def ping(engine: Engine) -> None:
    """Raise :class:`SQLAlchemyError` unless the database answers a query now."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1").scalar_one()


def check_schema(engine: Engine) -> None:
    """Refuse a database that is uninitialised, behind, or from a newer bwv."""
    revision = current_revision(engine)
    if revision is None:
        raise SchemaError("database is not initialised: run `bwv init`")
    _refuse_unknown(revision)
    if revision != head_revision():
        raise SchemaError(f"database schema is at {revision!r}, behind this bwv: run `bwv init`")


def open_engine(url: str) -> Engine:
    """An engine on a database at the current schema, or a SchemaError saying what to do."""
    engine = make_engine(url)
    try:
        check_schema(engine)
    except (SchemaError, SQLAlchemyError):
        engine.dispose()
        raise
    return engine
