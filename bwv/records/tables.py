"""Every table, in one place. The schema itself is made by the Alembic migrations in
``bwv/records/migrations``; a test checks that they and these models agree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    inspect,
    text,
)
from sqlmodel import Field, SQLModel

# SQLite makes an INTEGER PRIMARY KEY the rowid: ordered scans by sequence are then free.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

# Ledger tables are append-only: the database refuses UPDATE and DELETE on them.
LEDGER_TABLES = ("ledger_leaf", "merkle_node", "ledger_checkpoint")


def table_of(model: type[SQLModel]) -> Table:
    """The Core table a model declares, typed (SQLModel sets ``__table__`` without declaring
    it). Statements on it are plain SQLAlchemy Core; for typed rows, select the model's columns
    through ``sqlmodel.col``."""
    found = inspect(model).local_table
    assert isinstance(found, Table)
    return found


class LedgerLeaf(SQLModel, table=True):
    """One custody event. ``body`` is the canonical JSON leaf; the other columns are copies of
    its fields for queries, trusted by nothing that verifies. ``event_id`` is the event's id
    (``bwv.custody.leaf.Event.id``, not in the body), unique: one leaf per event, however often
    its append is retried; None for leaves written before migration 0006."""

    __tablename__ = "ledger_leaf"
    __table_args__ = (Index("uq_ledger_leaf_event_id", "event_id", unique=True),)

    seq: int = Field(sa_column=Column(_BigId, primary_key=True, autoincrement=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    action: str = Field(index=True)
    target: str | None = Field(default=None, index=True)
    sha256: str | None = Field(default=None, index=True)
    event_id: str | None = Field(default=None, sa_column=Column(String, nullable=True))


class MerkleNode(SQLModel, table=True):
    """A complete, aligned subtree hash (level >= 1) kept so proofs need no recomputation."""

    __tablename__ = "merkle_node"

    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LedgerCheckpoint(SQLModel, table=True):
    """A signed checkpoint as issued: the C2SP signed note, verbatim."""

    __tablename__ = "ledger_checkpoint"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    issued_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Dock(SQLModel, table=True):
    """A docking-station PC allowed to upload. Only a hash of its token is kept."""

    __tablename__ = "dock"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    name: str = Field(sa_column=Column(String, nullable=False, unique=True))
    token_sha256: str = Field(sa_column=Column(String, nullable=False, unique=True))
    enrolled_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Device(SQLModel, table=True):
    """A body-worn camera, by serial number, and the officer it is issued to."""

    __tablename__ = "device"

    serial: str = Field(sa_column=Column(String, primary_key=True))
    officer: str = Field(sa_column=Column(String, nullable=False))
    assigned_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Clip(SQLModel, table=True):
    """An original clip in the store of record, as indexed at ingest."""

    __tablename__ = "clip"
    # Search lists the most recently recorded first. SQLite reads ix_clip_recorded_at backwards
    # for that (its NULLs sort last already); PostgreSQL needs the order spelled out, or every
    # search sorts the whole table.
    __table_args__ = (
        Index(
            "ix_clip_newest",
            text("recorded_at DESC NULLS LAST"),
            text("ingested_at DESC"),
            text("id DESC"),
        ).ddl_if(dialect="postgresql"),
        # The same bytes are one live clip; after retention deleted it they may be evidence
        # again, as a new clip (migration 0005).
        Index(
            "uq_clip_live_sha256",
            "sha256",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    evidence_id: str = Field(sa_column=Column(String, nullable=False, unique=True))
    sha256: str = Field(sa_column=Column(String, nullable=False, index=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(sa_column=Column(String, nullable=False, index=True))
    camera_serial: str | None = Field(default=None, sa_column=Column(String, index=True))
    officer: str | None = Field(default=None, sa_column=Column(String, index=True))
    dock: str | None = Field(default=None, sa_column=Column(String, index=True))
    bay: str | None = Field(default=None, sa_column=Column(String))
    original_name: str | None = Field(default=None, sa_column=Column(String))
    recorded_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), index=True)
    )
    ingested_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    container: str | None = Field(default=None, sa_column=Column(String))
    video_codec: str | None = Field(default=None, sa_column=Column(String))
    audio_codec: str | None = Field(default=None, sa_column=Column(String))
    duration_s: float | None = Field(default=None, sa_column=Column(Float))
    width: int | None = Field(default=None, sa_column=Column(Integer))
    height: int | None = Field(default=None, sa_column=Column(Integer))
    frame_rate: float | None = Field(default=None, sa_column=Column(Float))
    creation_time: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    location: str | None = Field(default=None, sa_column=Column(String))
    probe_error: str | None = Field(default=None, sa_column=Column(Text))
    ledger_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    receipt: str = Field(sa_column=Column(Text, nullable=False))
    # Policy (migration 0004): what the clip is, how long it is kept, whether it is held.
    category: str = Field(
        default="uncategorised",
        sa_column=Column(String, nullable=False, index=True, server_default="uncategorised"),
    )
    case_ref: str | None = Field(default=None, sa_column=Column(String, index=True))
    retain_until: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), index=True)
    )
    held: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    deleted_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Export(SQLModel, table=True):
    """A disclosure copy: a redacted rendering of a clip, stored as its own object."""

    __tablename__ = "export"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    export_id: str = Field(sa_column=Column(String, nullable=False, unique=True))
    clip_id: int = Field(
        sa_column=Column(Integer, ForeignKey("clip.id"), nullable=False, index=True)
    )
    evidence_id: str = Field(sa_column=Column(String, nullable=False, index=True))
    sha256: str = Field(sa_column=Column(String, nullable=False, index=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    parent_sha256: str = Field(sa_column=Column(String, nullable=False))
    plan_sha256: str = Field(sa_column=Column(String, nullable=False))
    classes: str = Field(sa_column=Column(String, nullable=False))
    officer: str = Field(sa_column=Column(String, nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ledger_index: int = Field(sa_column=Column(BigInteger, nullable=False))


class User(SQLModel, table=True):
    """A person who uses the service, with one role (``bwv.access.roles.Role``)."""

    __tablename__ = "app_user"

    name: str = Field(sa_column=Column(String, primary_key=True))
    role: str = Field(sa_column=Column(String, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    disabled_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ApiToken(SQLModel, table=True):
    """A bearer token for a user. Only its SHA-256 is kept; the token is shown once."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    user_name: str = Field(
        sa_column=Column(String, ForeignKey("app_user.name"), nullable=False, index=True)
    )
    token_sha256: str = Field(sa_column=Column(String, nullable=False, unique=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class Category(SQLModel, table=True):
    """A clip category and how long clips in it are kept, counted from when they were recorded."""

    __tablename__ = "category"

    name: str = Field(sa_column=Column(String, primary_key=True))
    retention_days: int = Field(sa_column=Column(Integer, nullable=False))
