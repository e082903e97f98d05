"""Clips: search, view, custody history, download of the original, category and legal hold."""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, and_, exists, func, select

from bwv.access import WHOLE_CUSTODY, custody_shown, shown_reason
from bwv.api.deps import Access, authorise
from bwv.api.schemas import CategoryChange, ClipDetail, ClipOut, ClipPage, ExportOut, Problem
from bwv.base.clock import as_utc
from bwv.base.errors import BwvError
from bwv.custody.bundle import make_bundle
from bwv.custody.leaf import Outcome, parse_leaf
from bwv.records.tables import Clip, Export
from bwv.services import retention
from bwv.services.fixity import damaged_diagnosis, verified_chunks
from bwv.store import ObjectDamaged, StoreError, StoreUnavailable

log = logging.getLogger("bwv.ingest")
VERIFIED_DOWNLOADS = 4
"""Originals checked whole before their first byte is sent, at once; more downloads wait."""
_verifying: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _verify_limiter() -> anyio.CapacityLimiter:
    # One per event loop: a limiter is bound to the loop it is first used on.
    loop = asyncio.get_running_loop()
    if loop not in _verifying:
        _verifying[loop] = anyio.CapacityLimiter(VERIFIED_DOWNLOADS)
    return _verifying[loop]


router = APIRouter(prefix="/api/v1/clips", tags=["clips"])
CLIP = Clip.__table__
EXPORT = Export.__table__
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (400, 401, 403, 404, 409, 410, 503)
}
_EXPORTS = (
    select(func.count()).select_from(EXPORT).where(EXPORT.c.clip_id == CLIP.c.id).scalar_subquery()
)


def clip_row(access: Access, evidence_id: str) -> Any:
    """The clip, if the caller may ask about it (404/403 recorded otherwise)."""
    with access.services.ctx.engine.connect() as conn:
        row = conn.execute(
            select(CLIP, _EXPORTS.label("export_count")).where(CLIP.c.evidence_id == evidence_id)
        ).first()
    access.check_clip(row, evidence_id)
    return row


def _shown(value: object) -> object:
    return shown_reason(value) if isinstance(value, str) else value


def refuse_if_deleted(access: Access, row: Any) -> None:
    """410 for footage retention has deleted: only the clip's record and custody remain."""
    if row.deleted_at is not None:
        raise access.deny(
            410,
            retention.deleted_diagnosis(row.evidence_id, row.deleted_at),
            target=row.evidence_id,
        )


def _clip_out(row: Any) -> ClipOut:
    return ClipOut.from_row(row, row.export_count)


def _between(query: Select[Any], column: Any, low: datetime | None, high: datetime | None) -> Any:
    # In UTC: SQLite compares the stored (UTC) text and would ignore a caller's offset.
    if low is not None:
        query = query.where(column >= as_utc(low))
    if high is not None:
        query = query.where(column <= as_utc(high))
    return query


def _check_when(access: Access, name: str, when: datetime | None) -> None:
    """422 for a filter time that has no UTC equivalent (``9999-12-31T23:59:59-12:00``)."""
    if when is None:
        return
    try:
        as_utc(when)
    except (OverflowError, ValueError):
        raise access.deny(
            422, f"{name} {when.isoformat()[:40]} is outside the times a clip can have"
        ) from None


@router.get("", response_model=ClipPage, responses=ERRORS)
def search_clips(
    access: Annotated[Access, authorise("clips.search")],
    officer: str | None = None,
    camera: str | None = None,
    dock: str | None = None,
    recorded_from: datetime | None = None,
    recorded_to: datetime | None = None,
    ingested_from: datetime | None = None,
    ingested_to: datetime | None = None,
    category: str | None = None,
    case: str | None = None,
    status: Literal["playable", "unplayable", "deleted"] | None = None,
    has_exports: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ClipPage:
    """Clips matching every filter given, most recently recorded first. An officer sees only
    clips from cameras issued to them."""
    for name, when in (
        ("recorded_from", recorded_from),
        ("recorded_to", recorded_to),
        ("ingested_from", ingested_from),
        ("ingested_to", ingested_to),
    ):
        _check_when(access, name, when)
    for low, high, name in (
        (recorded_from, recorded_to, "recorded"),
        (ingested_from, ingested_to, "ingested"),
    ):
        if low and high and as_utc(low) > as_utc(high):
            raise access.deny(400, f"{name}_from is after {name}_to")
    if access.who.role in access.rule.own_clips_only:
        if officer not in (None, access.who.name):
            raise access.deny(403, "officers can search only their own clips")
        officer = access.who.name
    query = select(CLIP, _EXPORTS.label("export_count"))
    for column, value in (
        (CLIP.c.officer, officer),
        (CLIP.c.camera_serial, camera),
        (CLIP.c.dock, dock),
        (CLIP.c.category, category),
        (CLIP.c.case_ref, case),
    ):
        if value is not None:
            query = query.where(column == value)
    query = _between(query, CLIP.c.recorded_at, recorded_from, recorded_to)
    query = _between(query, CLIP.c.ingested_at, ingested_from, ingested_to)
    if status == "deleted":
        query = query.where(CLIP.c.deleted_at.is_not(None))
    elif status is not None:
        query = query.where(and_(CLIP.c.status == status, CLIP.c.deleted_at.is_(None)))
    if has_exports is not None:
        any_export = exists().where(EXPORT.c.clip_id == CLIP.c.id)
        query = query.where(any_export if has_exports else ~any_export)
    with access.services.ctx.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(
            query.order_by(
                CLIP.c.recorded_at.desc().nulls_last(), CLIP.c.ingested_at.desc(), CLIP.c.id.desc()
            )
            .limit(limit)
            .offset(offset)
        ).all()
    given = {
        "officer": officer,
        "camera": camera,
        "dock": dock,
        "recorded_from": recorded_from,
        "recorded_to": recorded_to,
        "ingested_from": ingested_from,
        "ingested_to": ingested_to,
        "category": category,
        "case": case,
        "status": status,
        "has_exports": has_exports,
    }
    filters = {
        k: as_utc(v).isoformat() if isinstance(v, datetime) else _shown(v)
        for k, v in given.items()
        if v is not None
    }
    access.record(filters=filters, found=total, limit=limit, offset=offset)
    return ClipPage(items=[_clip_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{evidence_id}", response_model=ClipDetail, responses=ERRORS)
def view_clip(evidence_id: str, access: Annotated[Access, authorise("clip.view")]) -> ClipDetail:
    """A clip's record and its disclosure copies."""
    row = clip_row(access, evidence_id)
    with access.services.ctx.engine.connect() as conn:
        exports = conn.execute(
            select(EXPORT).where(EXPORT.c.clip_id == row.id).order_by(EXPORT.c.created_at)
        ).all()
    access.record(target=evidence_id, sha256=row.sha256)
    copies = [ExportOut.from_row(e) for e in exports]
    if access.who.role not in WHOLE_CUSTODY:  # an officer: that a copy exists, not who or why
        copies = [c.model_copy(update={"officer": "", "reason": ""}) for c in copies]
    return ClipDetail(**_clip_out(row).model_dump(), export_list=copies)


@router.get("/{evidence_id}/custody", responses=ERRORS)
def clip_custody(
    evidence_id: str, access: Annotated[Access, authorise("clip.custody")]
) -> dict[str, Any]:
    """The clip's custody history: the leaves that name it that the caller may see
    (``custody_shown``: all of them for evidence officers and auditors; for an officer the
    clip's lifecycle and their own requests), each with an RFC 9162 inclusion proof against a
    fresh signed checkpoint (an audit bundle; docs/AUDIT.md). This request is recorded first,
    so the bundle proves its own issue."""
    row = clip_row(access, evidence_id)
    access.record(target=evidence_id, sha256=row.sha256)
    ctx = access.services.ctx
    bundle = make_bundle(ctx.ledger, evidence_id, ctx.keyring, ctx.rotations)
    who = access.who
    bundle["leaves"] = [
        entry
        for entry in bundle["leaves"]
        if custody_shown(who.role, who.name, parse_leaf(entry["leaf"].encode("utf-8")))
    ]
    return bundle


@router.get(
    "/{evidence_id}/original",
    responses={
        **ERRORS,
        200: {"content": {"application/octet-stream": {}}, "description": "The original."},
        500: {"model": Problem, "description": "The stored original is damaged (recorded)."},
    },
    response_class=StreamingResponse,
)
async def download_original(
    evidence_id: str, access: Annotated[Access, authorise("clip.download")]
) -> StreamingResponse:
    """The original's bytes, exactly as stored. ``X-Bwv-Sha256`` is what they must hash to."""
    row = await run_in_threadpool(clip_row, access, evidence_id)
    await run_in_threadpool(refuse_if_deleted, access, row)
    store = access.services.store
    try:  # checked whole before a byte leaves: a damaged original is never served as one
        # Minutes for a large original: in threads of its own, so that downloads cannot take
        # every worker of the pool that finalise and every other request share.
        chunks: Iterator[bytes] = await anyio.to_thread.run_sync(
            verified_chunks, store, "originals", row.sha256, row.size, limiter=_verify_limiter()
        )
    except StoreError as exc:
        raise await run_in_threadpool(store_fault, access, "originals", row, exc) from None
    await run_in_threadpool(
        functools.partial(access.record, target=evidence_id, sha256=row.sha256, size=row.size)
    )
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(row.size),
            "X-Bwv-Sha256": row.sha256,
            "Content-Disposition": f'attachment; filename="{evidence_id}"',
        },
    )


def store_fault(access: Access, kind: str, row: Any, exc: StoreError) -> HTTPException:
    """A stored object that cannot be served: the server's fault, never the caller's. 503 while
    the store is unreachable, 500 for a damaged or missing object; either is a ``failed`` leaf
    of what was asked, and the answer carries no server path (the log has it)."""
    evidence_id = row.evidence_id
    if isinstance(exc, StoreUnavailable):
        status, why = 503, f"the store of record cannot be read just now: {exc.shown}"
    else:
        status, why = 500, damaged_diagnosis(kind, evidence_id, exc)
    log.error("%s (%s)", why, exc.diagnosis)
    access.services.ctx.ledger.append(
        access.who.event(
            access.rule.leaf or access.action,
            target=evidence_id,
            sha256=row.sha256,
            outcome=Outcome.FAILED,
            reason=access.reason,
            details={"request": access.action, "why": why},
        )
    )
    headers = {"Retry-After": "30"} if status == 503 else None
    return HTTPException(status, why, headers=headers)


def _policy_change(access: Access, evidence_id: str, change: Any) -> ClipOut:
    row = clip_row(access, evidence_id)
    try:
        change()
    except retention.PolicyError as exc:
        raise access.deny(exc.status, exc.diagnosis, target=evidence_id) from None
    except ObjectDamaged as exc:  # a missing or damaged object: no retry mends it
        raise store_fault(access, "object", row, exc) from None
    except BwvError as exc:  # the store refused or is unreachable: nothing promised, say so
        why = exc.shown if isinstance(exc, StoreError) else exc.diagnosis  # no server paths
        raise access.deny(503, why, target=evidence_id, **{"Retry-After": "30"}) from None
    return _clip_out(clip_row(access, evidence_id))


@router.post("/{evidence_id}/category", response_model=ClipOut, responses=ERRORS)
def categorise_clip(
    evidence_id: str,
    change: CategoryChange,
    access: Annotated[Access, authorise("clip.categorise")],
) -> ClipOut:
    """Set a clip's category (and case reference: omitted, the clip's stays; null, none); its
    retention period follows. Once a case reference is set, only an evidence officer changes
    or removes it."""
    s = access.services
    return _policy_change(
        access,
        evidence_id,
        lambda: retention.categorise(
            s.ctx,
            s.store,
            evidence_id,
            change.category,
            change.case,
            access.who,
            access.reason,
            keep_case="case" not in change.model_fields_set,
        ),
    )


@router.put("/{evidence_id}/hold", response_model=ClipOut, responses=ERRORS)
def place_hold(evidence_id: str, access: Annotated[Access, authorise("hold.place")]) -> ClipOut:
    """Place a legal hold: the clip is not deleted, whatever its retention date, until released."""
    s = access.services
    return _policy_change(
        access,
        evidence_id,
        lambda: retention.place_hold(s.ctx, s.store, evidence_id, access.who, access.reason),
    )


@router.delete("/{evidence_id}/hold", response_model=ClipOut, responses=ERRORS)
def release_hold(evidence_id: str, access: Annotated[Access, authorise("hold.release")]) -> ClipOut:
    """Release a legal hold; the clip's retention date applies again."""
    s = access.services
    return _policy_change(
        access,
        evidence_id,
        lambda: retention.release_hold(s.ctx, s.store, evidence_id, access.who, access.reason),
    )
