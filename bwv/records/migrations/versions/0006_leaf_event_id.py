"""every appended event has an id, unique among leaves: an append retried after a lost COMMIT
or a database failover finds its leaf instead of adding a second one (leaves written before
this revision have none)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN changes no row: the append-only triggers (0001) do not fire, and old leaves
    # keep their bytes. A unique index allows any number of NULLs on SQLite and PostgreSQL.
    op.add_column("ledger_leaf", sa.Column("event_id", sa.String(), nullable=True))
    op.create_index("uq_ledger_leaf_event_id", "ledger_leaf", ["event_id"], unique=True)


def downgrade() -> None:
    raise RuntimeError("the custody ledger is never downgraded: it would destroy evidence records")
