"""Clips: search, view, custody history, download of the original, category and legal hold."""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from bwv.access import WHOLE_CUSTODY, shown_reason
from bwv.api.deps import Access, authorise
from bwv.api.schemas import (
    PROBLEMS,
    UNPROCESSABLE,
    CategoryChange,
    ClipDetail,
    ClipOut,
    ClipPage,
    ExportOut,
    Problem,
)
from bwv.base.clock import as_utc
from bwv.base.errors import Invalid, Refused
from bwv.services import categories, clips, holds
from bwv.services.bundles import issue_bundle
from bwv.services.clips import ClipFilter
from bwv.services.downloads import footage

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


def _shown(value: object) -> object:
    return shown_reason(value) if isinstance(value, str) else value


def _check_when(name: str, when: datetime | None) -> None:
    """422 for a filter time that has no UTC equivalent (``9999-12-31T23:59:59-12:00``)."""
    if when is None:
        return
    try:
        as_utc(when)
    except (OverflowError, ValueError):
        raise Invalid(
            f"{name} {when.isoformat()[:40]} is outside the times a clip can have"
        ) from None


@router.get("", response_model=ClipPage, responses={**PROBLEMS, **UNPROCESSABLE})
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
        _check_when(name, when)
    for low, high, name in (
        (recorded_from, recorded_to, "recorded"),
        (ingested_from, ingested_to, "ingested"),
    ):
        if low and high and as_utc(low) > as_utc(high):
            raise Refused(f"{name}_from is after {name}_to")
    if access.who.role in access.rule.own_clips_only:
        if officer not in (None, access.who.name):
            raise clips.PolicyForbidden("officers can search only their own clips")
        officer = access.who.name
    where = ClipFilter(
        officer=officer,
        camera=camera,
        dock=dock,
        recorded_from=recorded_from,
        recorded_to=recorded_to,
        ingested_from=ingested_from,
        ingested_to=ingested_to,
        category=category,
        case=case,
        status=status,
        has_exports=has_exports,
    )
    total, page = clips.clip_page(access.services.ctx, where, limit=limit, offset=offset)
    filters = {
        k: as_utc(v).isoformat() if isinstance(v, datetime) else _shown(v)
        for k, v in vars(where).items()
        if v is not None
    }
    access.record(filters=filters, found=total, limit=limit, offset=offset)
    return ClipPage(
        items=[ClipOut.from_clip(c, n) for c, n in page], total=total, limit=limit, offset=offset
    )


@router.get("/{evidence_id}", response_model=ClipDetail, responses=PROBLEMS)
def view_clip(evidence_id: str, access: Annotated[Access, authorise("clip.view")]) -> ClipDetail:
    """A clip's record and its disclosure copies."""
    clip = access.clip(evidence_id)
    count, made = clips.copies_of(access.services.ctx, clip)
    access.record(target=evidence_id, sha256=clip.sha256)
    copies = [ExportOut.from_row(e) for e in made]
    if access.who.role not in WHOLE_CUSTODY:  # an officer: that a copy exists, not who or why
        copies = [c.model_copy(update={"officer": "", "reason": ""}) for c in copies]
    return ClipDetail(**ClipOut.from_clip(clip, count).model_dump(), export_list=copies)


@router.get("/{evidence_id}/custody", responses=PROBLEMS)
def clip_custody(
    evidence_id: str, access: Annotated[Access, authorise("clip.custody")]
) -> dict[str, Any]:
    """The clip's custody history: the leaves that name it that the caller may see
    (``custody_shown``: all of them for evidence officers and auditors; for an officer the
    clip's lifecycle and their own requests), each with an RFC 9162 inclusion proof against a
    fresh signed checkpoint (an audit bundle; docs/AUDIT.md). This request is recorded first,
    so the bundle proves its own issue."""
    clip = access.clip(evidence_id)
    assert access.rule.leaf is not None
    return issue_bundle(
        access.services.ctx,
        evidence_id,
        who=access.who,
        action=access.rule.leaf,
        sha256=clip.sha256,
        reason=access.reason,
    )


@router.get(
    "/{evidence_id}/original",
    responses={
        **PROBLEMS,
        200: {"content": {"application/octet-stream": {}}, "description": "The original."},
        500: {"model": Problem, "description": "The stored original is damaged (recorded)."},
    },
    response_class=StreamingResponse,
)
async def download_original(
    evidence_id: str, access: Annotated[Access, authorise("clip.download")]
) -> StreamingResponse:
    """The original's bytes, exactly as stored. ``X-Bwv-Sha256`` is what they must hash to."""
    clip = await run_in_threadpool(functools.partial(access.clip, evidence_id, live=True))
    # Checked whole before a byte leaves: a damaged original is never served as one. Minutes
    # for a large original: in threads of its own, so that downloads cannot take every worker
    # of the pool that finalise and every other request share.
    chunks: Iterator[bytes] = await anyio.to_thread.run_sync(
        footage,
        access.services.store,
        "originals",
        evidence_id,
        clip.sha256,
        clip.size,
        limiter=_verify_limiter(),
    )
    await run_in_threadpool(
        functools.partial(access.record, target=evidence_id, sha256=clip.sha256, size=clip.size)
    )
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(clip.size),
            "X-Bwv-Sha256": clip.sha256,
            "Content-Disposition": f'attachment; filename="{evidence_id}"',
        },
    )


def _changed(access: Access, evidence_id: str) -> ClipOut:
    clip = access.clip(evidence_id)
    return ClipOut.from_clip(clip, clips.copies_of(access.services.ctx, clip)[0])


@router.post(
    "/{evidence_id}/category", response_model=ClipOut, responses={**PROBLEMS, **UNPROCESSABLE}
)
def categorise_clip(
    evidence_id: str,
    change: CategoryChange,
    access: Annotated[Access, authorise("clip.categorise")],
) -> ClipOut:
    """Set a clip's category (and case reference: omitted, the clip's stays; null, none); its
    retention period follows. Once a case reference is set, only an evidence officer changes
    or removes it."""
    access.clip(evidence_id)
    s = access.services
    categories.categorise(
        s.ctx,
        s.store,
        evidence_id,
        change.category,
        change.case,
        access.who,
        access.reason,
        keep_case="case" not in change.model_fields_set,
    )
    return _changed(access, evidence_id)


@router.put("/{evidence_id}/hold", response_model=ClipOut, responses=PROBLEMS)
def place_hold(evidence_id: str, access: Annotated[Access, authorise("hold.place")]) -> ClipOut:
    """Place a legal hold: the clip is not deleted, whatever its retention date, until released."""
    access.clip(evidence_id)
    s = access.services
    holds.place_hold(s.ctx, s.store, evidence_id, access.who, access.reason)
    return _changed(access, evidence_id)


@router.delete("/{evidence_id}/hold", response_model=ClipOut, responses=PROBLEMS)
def release_hold(evidence_id: str, access: Annotated[Access, authorise("hold.release")]) -> ClipOut:
    """Release a legal hold; the clip's retention date applies again."""
    access.clip(evidence_id)
    s = access.services
    holds.release_hold(s.ctx, s.store, evidence_id, access.who, access.reason)
    return _changed(access, evidence_id)
