"""The SQL for clips and their disclosure copies, in one place, answering typed rows.

Rows are the SQLModel tables of :mod:`bwv.records.tables` (:class:`Clip`, :class:`Export`),
loaded through a :class:`sqlmodel.Session` bound to the caller's connection: a connection of
a ledger transaction (``tx.conn``) keeps its transaction, so a read here sees, and a write here
commits with, the leaf appended beside it. Nothing here decides anything: what a missing or
deleted clip means is the application services' (``bwv.services.clips``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    exists,
    false,
    func,
    insert,
    true,
    update,
)
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from bwv.base.clock import as_utc
from bwv.records.tables import Clip, Export, LedgerLeaf, table_of

CLIP = table_of(Clip)
EXPORT = table_of(Export)
LEAF = table_of(LedgerLeaf)
TOMBSTONE = "clip.deleted"  # the leaf retention leaves for each deleted clip


# --- one clip ----------------------------------------------------------------------------------


def clip(conn: Connection, evidence_id: str) -> Clip | None:
    """The clip with this evidence id, deleted or not; None for none."""
    with Session(conn) as session:
        return session.exec(select(Clip).where(col(Clip.evidence_id) == evidence_id)).first()


def clip_by_id(conn: Connection, clip_id: int) -> Clip:
    with Session(conn) as session:
        return session.exec(select(Clip).where(col(Clip.id) == clip_id)).one()


def export_count(conn: Connection, clip_id: int) -> int:
    """How many disclosure copies of the clip are recorded."""
    query = core_select(func.count()).select_from(EXPORT).where(EXPORT.c.clip_id == clip_id)
    return int(conn.execute(query).scalar_one())


def uploader(conn: Connection, evidence_id: str) -> str | None:
    """The dock that uploaded the clip."""
    return conn.execute(core_select(CLIP.c.dock).where(CLIP.c.evidence_id == evidence_id)).scalar()


def has_tombstone(conn: Connection, evidence_id: str) -> bool:
    """Whether retention has left the clip's ``clip.deleted`` leaf."""
    found = conn.execute(
        core_select(LEAF.c.seq)
        .where(LEAF.c.action == TOMBSTONE, LEAF.c.target == evidence_id)
        .limit(1)
    ).first()
    return found is not None


# --- search --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipFilter:
    """What a clip search matches: every field given (None: any)."""

    officer: str | None = None
    camera: str | None = None
    dock: str | None = None
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None
    ingested_from: datetime | None = None
    ingested_to: datetime | None = None
    category: str | None = None
    case: str | None = None
    status: str | None = None  # playable, unplayable, or deleted
    has_exports: bool | None = None


def _between(query: Select[Any], column: Any, low: datetime | None, high: datetime | None) -> Any:
    # In UTC: SQLite compares the stored (UTC) text and would ignore a caller's offset.
    if low is not None:
        query = query.where(column >= as_utc(low))
    if high is not None:
        query = query.where(column <= as_utc(high))
    return query


def _exports_of_clip() -> Any:
    return (
        core_select(func.count())
        .select_from(EXPORT)
        .where(EXPORT.c.clip_id == col(Clip.id))
        .scalar_subquery()
    )


def search_clips(
    conn: Connection, where: ClipFilter, *, limit: int, offset: int
) -> tuple[int, list[tuple[Clip, int]]]:
    """How many clips match, and a page of them with their count of disclosure copies, most
    recently recorded first."""
    query: Any = select(Clip, _exports_of_clip().label("export_count"))
    for column, value in (
        (Clip.officer, where.officer),
        (Clip.camera_serial, where.camera),
        (Clip.dock, where.dock),
        (Clip.category, where.category),
        (Clip.case_ref, where.case),
    ):
        if value is not None:
            query = query.where(col(column) == value)
    query = _between(query, col(Clip.recorded_at), where.recorded_from, where.recorded_to)
    query = _between(query, col(Clip.ingested_at), where.ingested_from, where.ingested_to)
    if where.status == "deleted":
        query = query.where(col(Clip.deleted_at).is_not(None))
    elif where.status is not None:
        query = query.where(and_(col(Clip.status) == where.status, col(Clip.deleted_at).is_(None)))
    if where.has_exports is not None:
        any_export = exists().where(EXPORT.c.clip_id == col(Clip.id))
        query = query.where(any_export if where.has_exports else ~any_export)
    total = conn.execute(core_select(func.count()).select_from(query.subquery())).scalar_one()
    page = (
        query.order_by(
            col(Clip.recorded_at).desc().nulls_last(),
            col(Clip.ingested_at).desc(),
            col(Clip.id).desc(),
        )
        .limit(limit)
        .offset(offset)
    )
    with Session(conn) as session:
        rows = session.exec(page).all()
    return int(total), [(found, int(count)) for found, count in rows]


def clips_named(conn: Connection, evidence_ids: Sequence[str]) -> list[Clip]:
    """The clips with these evidence ids, in the order they were recorded."""
    with Session(conn) as session:
        query = (
            select(Clip)
            .where(col(Clip.evidence_id).in_(evidence_ids))
            .order_by(col(Clip.recorded_at))
        )
        return list(session.exec(query).all())


def _live() -> ColumnElement[bool]:
    return col(Clip.deleted_at).is_(None)


def live_in_category(conn: Connection, category: str) -> list[Clip]:
    with Session(conn) as session:
        query = select(Clip).where(col(Clip.category) == category, _live())
        return list(session.exec(query).all())


def _due(now: datetime) -> ColumnElement[bool]:
    return _live() & (col(Clip.retain_until) <= now)


def due(conn: Connection, now: datetime, *, held: bool) -> list[Clip]:
    """Clips not deleted whose retention ended by ``now``: held ones, or not held, soonest
    due first."""
    order: tuple[Any, ...] = (
        (col(Clip.retain_until), col(Clip.id)) if not held else (col(Clip.retain_until),)
    )
    with Session(conn) as session:
        query = (
            select(Clip)
            .where(_due(now), col(Clip.held) == (true() if held else false()))
            .order_by(*order)
        )
        return list(session.exec(query).all())


def unfinished_deletions(conn: Connection) -> list[Clip]:
    """Clips a retention run claimed (``deleted_at`` set) that have no tombstone yet."""
    tombstoned = exists().where(LEAF.c.action == TOMBSTONE, LEAF.c.target == col(Clip.evidence_id))
    with Session(conn) as session:
        query = (
            select(Clip)
            .where(col(Clip.deleted_at).is_not(None), ~tombstoned)
            .order_by(col(Clip.id))
        )
        return list(session.exec(query).all())


# --- changes to a clip ---------------------------------------------------------------------------


def set_policy(
    conn: Connection,
    clip_id: int,
    *,
    category: str,
    case_ref: str | None,
    retain_until: datetime,
) -> None:
    conn.execute(
        update(CLIP)
        .where(CLIP.c.id == clip_id)
        .values(category=category, case_ref=case_ref, retain_until=retain_until)
    )


def set_retain_until(conn: Connection, clip_id: int, retain_until: datetime) -> None:
    conn.execute(update(CLIP).where(CLIP.c.id == clip_id).values(retain_until=retain_until))


def set_held(conn: Connection, clip_id: int, held: bool) -> None:
    conn.execute(update(CLIP).where(CLIP.c.id == clip_id).values(held=held))


def claim_deletion(conn: Connection, clip_id: int, now: datetime) -> bool:
    """Mark the clip as being deleted, if it is still due at ``now`` and not held."""
    claimed = conn.execute(
        update(CLIP)
        .where(CLIP.c.id == clip_id, CLIP.c.held == false(), _due_core(now))
        .values(deleted_at=now)
    )
    return claimed.rowcount == 1


def _due_core(now: datetime) -> Any:
    return CLIP.c.deleted_at.is_(None) & (CLIP.c.retain_until <= now)


def mark_deleted(conn: Connection, clip_id: int, now: datetime) -> None:
    """``deleted_at`` set, if a concurrent run's refusal undid the claim meanwhile."""
    conn.execute(
        update(CLIP).where(CLIP.c.id == clip_id, CLIP.c.deleted_at.is_(None)).values(deleted_at=now)
    )


def undo_claim(conn: Connection, clip_id: int) -> None:
    conn.execute(update(CLIP).where(CLIP.c.id == clip_id).values(deleted_at=None))


# --- ingest -------------------------------------------------------------------------------------


def live_receipt(conn: Connection, sha256: str) -> str | None:
    """The stored receipt of the clip not deleted with these bytes."""
    return conn.execute(
        core_select(CLIP.c.receipt).where(CLIP.c.sha256 == sha256, CLIP.c.deleted_at.is_(None))
    ).scalar()


def receipt_of(conn: Connection, evidence_id: str) -> str:
    return str(
        conn.execute(
            core_select(CLIP.c.receipt).where(CLIP.c.evidence_id == evidence_id)
        ).scalar_one()
    )


def live_from_dock(conn: Connection, sha256: str, dock: str) -> Clip | None:
    """The clip not deleted with these bytes that ``dock`` uploaded."""
    with Session(conn) as session:
        query = select(Clip).where(col(Clip.sha256) == sha256, col(Clip.dock) == dock, _live())
        return session.exec(query).first()


def deleted_with(conn: Connection, sha256: str) -> list[tuple[str, bool]]:
    """Clips with these bytes that retention deleted, newest first: each evidence id, and
    whether its tombstone is written (False: its deletion is still under way)."""
    tombstoned = exists().where(LEAF.c.action == TOMBSTONE, LEAF.c.target == CLIP.c.evidence_id)
    rows = conn.execute(
        core_select(CLIP.c.evidence_id, tombstoned.label("gone"))
        .where(and_(CLIP.c.sha256 == sha256, CLIP.c.deleted_at.is_not(None)))
        .order_by(CLIP.c.id.desc())
    ).all()
    return [(row.evidence_id, bool(row.gone)) for row in rows]


def add_clip(conn: Connection, **values: Any) -> None:
    """Index a clip (the columns of :class:`Clip`, ``id`` assigned by the database)."""
    conn.execute(insert(CLIP).values(**values))


# --- disclosure copies -------------------------------------------------------------------------


def export(conn: Connection, export_id: str) -> Export | None:
    with Session(conn) as session:
        return session.exec(select(Export).where(col(Export.export_id) == export_id)).first()


def exports_of(conn: Connection, clip_id: int) -> list[Export]:
    """The clip's disclosure copies, in the order they were made."""
    with Session(conn) as session:
        query = select(Export).where(col(Export.clip_id) == clip_id).order_by(col(Export.id))
        return list(session.exec(query).all())


def export_shas(conn: Connection, clip_id: int) -> list[str]:
    """The SHA-256 of each distinct copy object of the clip, sorted."""
    query = (
        core_select(EXPORT.c.sha256)
        .where(EXPORT.c.clip_id == clip_id)
        .distinct()
        .order_by(EXPORT.c.sha256)
    )
    return list(conn.execute(query).scalars())


def export_with_sha(conn: Connection, sha256: str) -> bool:
    """Whether any disclosure copy is recorded with these bytes."""
    found = conn.execute(core_select(EXPORT.c.id).where(EXPORT.c.sha256 == sha256)).first()
    return found is not None


def list_exports(
    conn: Connection, evidence_id: str | None, *, limit: int, offset: int
) -> tuple[int, list[Export]]:
    """How many copies there are (of one clip, or of all), and a page of them, newest first."""
    query = select(Export)
    if evidence_id is not None:
        query = query.where(col(Export.evidence_id) == evidence_id)
    total = conn.execute(core_select(func.count()).select_from(query.subquery())).scalar_one()
    page = (
        query.order_by(col(Export.created_at).desc(), col(Export.id).desc())
        .limit(limit)
        .offset(offset)
    )
    with Session(conn) as session:
        return int(total), list(session.exec(page).all())


def add_export(conn: Connection, **values: Any) -> None:
    """Record a disclosure copy (the columns of :class:`Export`)."""
    conn.execute(insert(EXPORT), values)


# --- what the index says is stored (fixity) ------------------------------------------------------


@dataclass(frozen=True)
class IndexedObject:
    """A stored object as the index names it, with the body of the leaf at the index's ledger
    position (the leaf that recorded it, if the index is right). ``export_id`` and
    ``plan_sha256`` are None for an original."""

    evidence_id: str
    sha256: str
    size: int
    deleted_at: datetime | None
    leaf_body: bytes | None
    export_id: str | None = None
    plan_sha256: str | None = None


def indexed_originals(conn: Connection) -> list[IndexedObject]:
    """Every clip's original, in the order they were indexed."""
    rows = conn.execute(
        core_select(CLIP.c.evidence_id, CLIP.c.sha256, CLIP.c.size, CLIP.c.deleted_at, LEAF.c.body)
        .select_from(CLIP.outerjoin(LEAF, LEAF.c.seq == CLIP.c.ledger_index))
        .order_by(CLIP.c.id)
    ).all()
    return [IndexedObject(r[0], r[1], r[2], r[3], _bytes(r[4])) for r in rows]


def indexed_copies(conn: Connection) -> list[IndexedObject]:
    """Every disclosure copy, in the order they were indexed, with its clip's deletion."""
    rows = conn.execute(
        core_select(
            EXPORT.c.evidence_id,
            EXPORT.c.sha256,
            EXPORT.c.size,
            CLIP.c.deleted_at,
            LEAF.c.body,
            EXPORT.c.export_id,
            EXPORT.c.plan_sha256,
        )
        .select_from(
            EXPORT.join(CLIP, CLIP.c.id == EXPORT.c.clip_id).outerjoin(
                LEAF, LEAF.c.seq == EXPORT.c.ledger_index
            )
        )
        .order_by(EXPORT.c.id)
    ).all()
    return [IndexedObject(r[0], r[1], r[2], r[3], _bytes(r[4]), r[5], r[6]) for r in rows]


def _bytes(body: Any) -> bytes | None:
    return None if body is None else bytes(body)


def tombstoned(conn: Connection, evidence_ids: Sequence[str]) -> set[str]:
    """Which of these clips retention has left a ``clip.deleted`` leaf for."""
    found: set[str] = set()
    for i in range(0, len(evidence_ids), 500):  # bound the IN list
        chunk = list(evidence_ids[i : i + 500])
        found.update(
            conn.execute(
                core_select(LEAF.c.target).where(
                    LEAF.c.action == TOMBSTONE, LEAF.c.target.in_(chunk)
                )
            ).scalars()
        )
    return found


def last_leaf_body(conn: Connection, action: str) -> bytes | None:
    """The body of the ledger's last leaf of ``action``; None if there is none."""
    query = core_select(LEAF.c.body).where(LEAF.c.action == action)
    return _bytes(conn.execute(query.order_by(LEAF.c.seq.desc()).limit(1)).scalar())


def first_leaf_body(conn: Connection) -> bytes | None:
    """The body of the ledger's first leaf; None for an empty ledger."""
    return _bytes(conn.execute(core_select(LEAF.c.body).order_by(LEAF.c.seq).limit(1)).scalar())
