"""Records: migrations make the schema the models describe, on SQLite and PostgreSQL; the
database itself refuses to change or remove ledger rows; unknown schemas are refused."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

import bwv.records.tables  # noqa: F401
from bwv.base.errors import SchemaError
from bwv.custody.leaf import Event
from bwv.custody.ledger import Ledger
from bwv.records.database import check_schema, current_revision, head_revision, make_engine, upgrade
from bwv.records.tables import LEDGER_TABLES


# ix_clip_newest exists on PostgreSQL only (see Clip), and SQLite cannot reflect it anyway.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()


@pytest.mark.parametrize("table", LEDGER_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET {c} = {c}", "DELETE FROM {t}"])
def test_database_refuses_to_change_ledger_rows(ledger: Ledger, table: str, statement: str) -> None:
    for n in range(12):  # enough for nodes and a checkpoint
        ledger.append(Event(actor="a", role="admin", action=f"test.{n}"))
    column = {"ledger_leaf": "body", "merkle_node": "hash", "ledger_checkpoint": "note"}[table]
    with pytest.raises(DBAPIError, match="append-only"), ledger.engine.begin() as conn:
        conn.execute(text(statement.format(t=table, c=column)))
    with ledger.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() > 0


@pytest.mark.postgres
def test_postgres_refuses_truncate(pg_server) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(pg_server.new_database())
    upgrade(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("TRUNCATE ledger_leaf"))
    engine.dispose()


def test_uninitialised_database_is_refused(database_url: str) -> None:
    engine = make_engine(database_url)
    with pytest.raises(SchemaError, match="not initialised: run `bwv init`"):
        check_schema(engine)


def test_database_from_a_newer_schema_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaError, match="newer than this bwv"):
        check_schema(engine)
    with pytest.raises(SchemaError, match="newer than this bwv"):
        upgrade(engine)
