"""exports: disclosure copies of clips

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("export_id", sa.String(), nullable=False, unique=True),
        sa.Column("clip_id", sa.Integer(), sa.ForeignKey("clip.id"), nullable=False),
        sa.Column("evidence_id", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("parent_sha256", sa.String(), nullable=False),
        sa.Column("plan_sha256", sa.String(), nullable=False),
        sa.Column("classes", sa.String(), nullable=False),
        sa.Column("officer", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
    )
    for column in ("clip_id", "evidence_id", "sha256"):
        op.create_index(f"ix_export_{column}", "export", [column])


def downgrade() -> None:
    raise RuntimeError("evidence records are never downgraded")
