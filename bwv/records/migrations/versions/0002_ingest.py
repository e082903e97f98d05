"""ingest: docks, devices, clips

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dock",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False, unique=True),
        sa.Column("token_sha256", sa.String(), nullable=False, unique=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "device",
        sa.Column("serial", sa.String(), primary_key=True),
        sa.Column("officer", sa.String(), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "clip",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("evidence_id", sa.String(), nullable=False, unique=True),
        sa.Column("sha256", sa.String(), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("camera_serial", sa.String()),
        sa.Column("officer", sa.String()),
        sa.Column("dock", sa.String()),
        sa.Column("bay", sa.String()),
        sa.Column("original_name", sa.String()),
        sa.Column("recorded_at", sa.DateTime(timezone=True)),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("container", sa.String()),
        sa.Column("video_codec", sa.String()),
        sa.Column("audio_codec", sa.String()),
        sa.Column("duration_s", sa.Float()),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("frame_rate", sa.Float()),
        sa.Column("creation_time", sa.DateTime(timezone=True)),
        sa.Column("location", sa.String()),
        sa.Column("probe_error", sa.Text()),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
    )
    for column in ("status", "camera_serial", "officer", "dock", "recorded_at", "ingested_at"):
        op.create_index(f"ix_clip_{column}", "clip", [column])


def downgrade() -> None:
    raise RuntimeError("evidence records are never downgraded")
