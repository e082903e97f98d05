"""clip bytes unique among live clips only: after retention deletes a clip, the same bytes
docked again are new evidence (linked to the tombstone), not the deleted clip

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_LIVE = sa.text("deleted_at IS NULL")
_UNIQUE_SHA256 = ", \n\tUNIQUE (sha256)"  # as 0002's CREATE TABLE reads in SQLite


def _sqlite_rebuild(conn: sa.Connection) -> None:
    """SQLite cannot drop a table's UNIQUE constraint: rebuild the table without it.

    Export rows point at clip rows, and foreign keys are enforced inside this transaction: the
    check is deferred to commit, and re-inserting each clip row answers its exports' references
    again (which a rename of a rebuilt table would not)."""
    ddl = conn.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'clip'")
    ).scalar_one()
    if _UNIQUE_SHA256 not in ddl:
        raise RuntimeError("the clip table is not as migration 0002 made it; not rebuilt")
    indexes = (
        conn.execute(
            sa.text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'clip' "
                "AND sql IS NOT NULL"
            )
        )
        .scalars()
        .all()
    )
    rows = conn.execute(sa.text("SELECT count(*) FROM clip")).scalar_one()
    conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
    conn.exec_driver_sql("CREATE TABLE _clip_0005 AS SELECT * FROM clip")
    conn.exec_driver_sql("DROP TABLE clip")
    conn.exec_driver_sql(ddl.replace(_UNIQUE_SHA256, ""))
    conn.exec_driver_sql("INSERT INTO clip SELECT * FROM _clip_0005")
    conn.exec_driver_sql("DROP TABLE _clip_0005")
    for index in indexes:
        conn.exec_driver_sql(index)
    if conn.execute(sa.text("SELECT count(*) FROM clip")).scalar_one() != rows:
        raise RuntimeError("the rebuilt clip table lost rows")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _sqlite_rebuild(bind)
    else:
        op.drop_constraint("clip_sha256_key", "clip", type_="unique")
    op.create_index(
        "uq_clip_live_sha256",
        "clip",
        ["sha256"],
        unique=True,
        sqlite_where=_LIVE,
        postgresql_where=_LIVE,
    )
    op.create_index("ix_clip_sha256", "clip", ["sha256"])


def downgrade() -> None:
    raise RuntimeError("evidence records are never downgraded")
