"""Disclosure copies: plan a redaction, make a copy, list copies, download one."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from bwv.errors import BwvError
from bwv.ingest.deps import Access, authorise
from bwv.ingest.routes.clips import ERRORS, clip_row, refuse_if_deleted
from bwv.ingest.schemas import ExportOut, ExportPage, ExportRequest, PlanOut, PlanRequest
from bwv.models import Export
from bwv.redact.disclosure import export_clip, plan_clip, work_dir
from bwv.redact.plan import Options

router = APIRouter(prefix="/api/v1", tags=["disclosure copies"])
EXPORT = Export.__table__
_FAILED = {500: {"model": ERRORS[400]["model"], "description": "The export failed (recorded)."}}


def _disclosure_error(exc: BwvError) -> HTTPException:
    """The disclosure module has already recorded this refusal or failure as a leaf; answer
    with its status (400 refused, 410 deleted under retention, 500 failed)."""
    return HTTPException(getattr(exc, "status", 400), exc.diagnosis)


def _spans(request: PlanRequest) -> tuple[tuple[float, float], ...]:
    return tuple((float(a), float(b)) for a, b in request.mute)


@router.post("/clips/{evidence_id}/plan", response_model=PlanOut, responses={**ERRORS, **_FAILED})
def plan_redaction(
    evidence_id: str, body: PlanRequest, access: Annotated[Access, authorise("redact.plan")]
) -> PlanOut:
    """Find faces and plates; answer the redaction plan and its contact sheet for review."""
    clip_row(access, evidence_id)  # the policy's 404 / own-clip check; the rest is disclosure's
    ctx = access.services.ctx
    with work_dir(ctx) as tmp:
        plan_path, sheet_path = Path(tmp) / "plan.json", Path(tmp) / "sheet.png"
        try:
            result = plan_clip(
                ctx,
                evidence_id,
                body.options or Options(),
                plan_path=plan_path,
                sheet_path=sheet_path,
                mute=_spans(body),
                who=access.who,
                reason=access.reason,
            )
        except BwvError as exc:
            raise _disclosure_error(exc) from None
        return PlanOut(
            plan=plan_path.read_text(),
            plan_sha256=result.plan_sha256,
            sheet_png=base64.b64encode(sheet_path.read_bytes()).decode(),
        )


@router.post(
    "/clips/{evidence_id}/exports",
    response_model=ExportOut,
    status_code=201,
    responses={**ERRORS, **_FAILED},
)
def create_export(
    evidence_id: str, body: ExportRequest, access: Annotated[Access, authorise("export.create")]
) -> ExportOut:
    """Make a disclosure copy: render the given plan (or plan and render in one go), sign it
    (C2PA), store it and record it."""
    clip_row(access, evidence_id)  # the policy's 404 / own-clip check; the rest is disclosure's
    ctx = access.services.ctx
    assert access.reason is not None
    with work_dir(ctx) as tmp:
        plan_path = None
        if body.plan is not None:
            plan_path = Path(tmp) / "plan.json"
            plan_path.write_bytes(body.plan.encode())
        try:
            result = export_clip(
                ctx,
                evidence_id,
                reason=access.reason,
                plan_path=plan_path,
                plan_label="in the request",
                options=body.options,
                mute=_spans(body),
                who=access.who,
            )
        except BwvError as exc:
            raise _disclosure_error(exc) from None
    with ctx.engine.connect() as conn:
        created = conn.execute(select(EXPORT).where(EXPORT.c.export_id == result.export_id)).one()
    return ExportOut.from_row(created)


@router.get("/exports", response_model=ExportPage, responses=ERRORS)
def list_exports(
    access: Annotated[Access, authorise("exports.list")],
    evidence_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ExportPage:
    """Disclosure copies made, newest first."""
    query = select(EXPORT)
    if evidence_id is not None:
        query = query.where(EXPORT.c.evidence_id == evidence_id)
    with access.services.ctx.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        rows = conn.execute(
            query.order_by(EXPORT.c.created_at.desc(), EXPORT.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    access.record(target=evidence_id, found=total)
    return ExportPage(
        items=[ExportOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/exports/{export_id}/content",
    responses={
        **ERRORS,
        200: {"content": {"video/mp4": {}}, "description": "The disclosure copy."},
    },
    response_class=StreamingResponse,
)
def download_copy(
    export_id: str, access: Annotated[Access, authorise("export.download")]
) -> StreamingResponse:
    """The disclosure copy's bytes. ``X-Bwv-Sha256`` is what they must hash to."""
    with access.services.ctx.engine.connect() as conn:
        row: Any = conn.execute(select(EXPORT).where(EXPORT.c.export_id == export_id)).first()
    if row is None:
        raise access.deny(404, f"no disclosure copy with id {export_id!r}")
    refuse_if_deleted(access, clip_row(access, row.evidence_id))
    access.record(target=row.evidence_id, sha256=row.sha256, export_id=export_id, to=None)
    return StreamingResponse(
        access.services.store.read_chunks("exports", row.sha256),
        media_type="video/mp4",
        headers={
            "Content-Length": str(row.size),
            "X-Bwv-Sha256": row.sha256,
            "Content-Disposition": f'attachment; filename="{export_id}.mp4"',
        },
    )
