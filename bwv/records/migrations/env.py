"""Alembic environment: migrations run on the connection bwv hands over
(see bwv.records.database.upgrade)."""

from alembic import context
from sqlmodel import SQLModel

import bwv.records.tables  # noqa: F401 - registers the tables on SQLModel.metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `bwv init`, which supplies the connection")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
