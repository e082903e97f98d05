"""custody ledger: leaves, Merkle nodes, checkpoints; append-only by trigger

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LEDGER_TABLES = ("ledger_leaf", "merkle_node", "ledger_checkpoint")
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _append_only_triggers() -> None:
    """The database, not only the code, refuses to change or remove ledger rows."""
    if op.get_bind().dialect.name == "sqlite":
        for table in LEDGER_TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {verb} refused'); END"
                )
        return
    op.execute(
        """
        CREATE FUNCTION bwv_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    # One round trip takes the append lock and then reads the size: a PL/pgSQL statement gets a
    # fresh snapshot, so the size is read after the lock is held (READ COMMITTED).
    op.execute(
        """
        CREATE FUNCTION bwv_ledger_lock_size() RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(1651996161);
            RETURN coalesce((SELECT max(seq) + 1 FROM ledger_leaf), 0);
        END
        $$
        """
    )
    for table in LEDGER_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION bwv_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bwv_refuse_change()"
        )


def upgrade() -> None:
    op.create_table(
        "ledger_leaf",
        sa.Column("seq", _BigId, primary_key=True, autoincrement=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=True),
        sa.Column("sha256", sa.String(), nullable=True),
    )
    op.create_index("ix_ledger_leaf_action", "ledger_leaf", ["action"])
    op.create_index("ix_ledger_leaf_target", "ledger_leaf", ["target"])
    op.create_index("ix_ledger_leaf_sha256", "ledger_leaf", ["sha256"])
    op.create_table(
        "merkle_node",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "ledger_checkpoint",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ledger_checkpoint_tree_size", "ledger_checkpoint", ["tree_size"])
    _append_only_triggers()


def downgrade() -> None:
    raise RuntimeError("the custody ledger is never downgraded: it would destroy evidence records")
