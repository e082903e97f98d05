"""people and policy: users, API tokens, categories, retention and legal hold on clips

Revision ID: 0004
Revises: 0003
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# UK body-worn video practice: non-evidential footage 31 days; evidential kept for years.
DEFAULT_CATEGORIES = (("uncategorised", 31), ("non-evidential", 31), ("evidential", 6 * 365 + 2))


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_name", sa.String(), sa.ForeignKey("app_user.name"), nullable=False),
        sa.Column("token_sha256", sa.String(), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_api_token_user_name", "api_token", ["user_name"])
    category = op.create_table(
        "category",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("retention_days", sa.Integer(), nullable=False),
    )
    op.bulk_insert(category, [{"name": n, "retention_days": d} for n, d in DEFAULT_CATEGORIES])
    with op.batch_alter_table("clip") as batch:
        batch.add_column(
            sa.Column("category", sa.String(), nullable=False, server_default="uncategorised")
        )
        batch.add_column(sa.Column("case_ref", sa.String()))
        batch.add_column(sa.Column("retain_until", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True)))
    for column in ("category", "case_ref", "retain_until"):
        op.create_index(f"ix_clip_{column}", "clip", [column])
    if op.get_bind().dialect.name == "postgresql":  # see Clip.__table_args__
        op.create_index(
            "ix_clip_newest",
            "clip",
            [
                sa.text("recorded_at DESC NULLS LAST"),
                sa.text("ingested_at DESC"),
                sa.text("id DESC"),
            ],
        )
    # Clips ingested before this revision: uncategorised, kept 31 days from recording, but never
    # less than 31 days from the upgrade. Counted from recording alone, every clip older than a
    # month would be due at the first retention run after the upgrade, before any officer had
    # the chance to categorise it. The camera's time counts only within a year before ingest to
    # a day after (as bwv.services.retention.retention_start, repeated here: a migration must
    # not change
    # when the code does).
    days = timedelta(days=DEFAULT_CATEGORIES[0][1])
    floor = datetime.now(UTC) + days
    clip = sa.table(
        "clip",
        sa.column("id", sa.Integer()),
        sa.column("recorded_at", sa.DateTime(timezone=True)),
        sa.column("ingested_at", sa.DateTime(timezone=True)),
        sa.column("retain_until", sa.DateTime(timezone=True)),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(clip.c.id, clip.c.recorded_at, clip.c.ingested_at)).all():
        start = _start(row.recorded_at, row.ingested_at)
        conn.execute(
            clip.update().where(clip.c.id == row.id).values(retain_until=max(start + days, floor))
        )


def _start(recorded: datetime | None, ingested: datetime) -> datetime:
    ingested = _utc(ingested)
    if recorded is not None:
        recorded = _utc(recorded)
        if ingested - timedelta(days=366) <= recorded <= ingested + timedelta(days=1):
            return recorded
    return ingested


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite: naive


def downgrade() -> None:
    raise RuntimeError("evidence records are never downgraded")
