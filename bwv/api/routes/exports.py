"""Disclosure copies: plan a redaction, make a copy, list copies, download one."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from bwv.api.deps import Access, authorise
from bwv.api.schemas import (
    PROBLEMS,
    ExportOut,
    ExportPage,
    ExportRequest,
    PlanOut,
    PlanRequest,
    Problem,
)
from bwv.base.errors import TooLarge
from bwv.redact.plan import Options
from bwv.services import clips
from bwv.services.disclosure import export_clip, plan_clip, work_dir
from bwv.services.downloads import footage

router = APIRouter(prefix="/api/v1", tags=["disclosure copies"])
_FAILED: dict[int | str, dict[str, Any]] = {
    500: {"model": Problem, "description": "The export failed (recorded)."}
}


_EXPORT_SCHEMA = {
    k: v
    for k, v in ExportRequest.model_json_schema(ref_template="#/components/schemas/{model}").items()
    if k != "$defs"
}
_TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "The plan is over the size limit."}
}


def max_export_body(max_plan_bytes: int) -> int:
    """The most an export request's body may be: the plan as a JSON string (escaping can at
    most double it: a newline is two characters) and the rest of the request."""
    return 2 * max_plan_bytes + 64 * 1024


async def _export_body(
    request: Request, evidence_id: str, access: Annotated[Access, authorise("export.create")]
) -> ExportRequest:
    """The export request's body, read only once the caller is authorised for this clip,
    refused (413, recorded) as soon as it runs over the cap, and parsed off the event loop."""
    await run_in_threadpool(access.clip, evidence_id)
    limit = access.services.ctx.settings.max_plan_bytes
    cap = max_export_body(limit)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _plan_too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise _plan_too_large(limit)
    try:
        return await run_in_threadpool(ExportRequest.model_validate_json, body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def _plan_too_large(limit: int) -> TooLarge:
    return TooLarge(f"the plan is larger than this service takes ({limit:,} bytes): split the clip")


def _spans(request: PlanRequest) -> tuple[tuple[float, float], ...]:
    return tuple((float(a), float(b)) for a, b in request.mute)


@router.post("/clips/{evidence_id}/plan", response_model=PlanOut, responses={**PROBLEMS, **_FAILED})
def plan_redaction(
    evidence_id: str, body: PlanRequest, access: Annotated[Access, authorise("redact.plan")]
) -> PlanOut:
    """Find faces and plates; answer the redaction plan and its contact sheet for review."""
    access.clip(evidence_id)  # the policy's 404 / own-clip check; the rest is disclosure's
    ctx = access.services.ctx
    with work_dir(ctx) as tmp:
        plan_path, sheet_path = Path(tmp) / "plan.json", Path(tmp) / "sheet.png"
        result = plan_clip(  # what stops it is recorded there (redact.refused, redact.failed)
            ctx,
            evidence_id,
            body.options or Options(),
            plan_path=plan_path,
            sheet_path=sheet_path,
            mute=_spans(body),
            who=access.who,
            reason=access.reason,
        )
        return PlanOut(
            plan=plan_path.read_text(),
            plan_sha256=result.plan_sha256,
            sheet_png=base64.b64encode(sheet_path.read_bytes()).decode(),
        )


@router.post(
    "/clips/{evidence_id}/exports",
    response_model=ExportOut,
    status_code=201,
    responses={**PROBLEMS, **_TOO_LARGE, **_FAILED},
    # The body is read by _export_body (after authorisation, capped, off the event loop), so
    # its schema is given here. Options is in the document through PlanRequest.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _EXPORT_SCHEMA}},
        }
    },
)
def create_export(
    evidence_id: str,
    body: Annotated[ExportRequest, Depends(_export_body)],
    access: Annotated[Access, authorise("export.create")],
) -> ExportOut:
    """Make a disclosure copy: render the given plan (or plan and render in one go) with the
    mute spans and render options asked merged into it, sign it (C2PA), store it and record
    it. What cannot apply to a reviewed plan (classes, the detection schedule, less padding)
    or to the clip (a mute span past its end) is 422."""
    ctx = access.services.ctx
    assert access.reason is not None
    plan_bytes = body.plan.encode() if body.plan is not None else None
    if plan_bytes is not None and len(plan_bytes) > ctx.settings.max_plan_bytes:
        raise _plan_too_large(ctx.settings.max_plan_bytes)
    result = export_clip(  # what stops it is recorded there (export.refused, export.failed)
        ctx,
        evidence_id,
        reason=access.reason,
        plan_bytes=plan_bytes,
        plan_label="in the request",
        options=body.options,
        mute=_spans(body),
        who=access.who,
    )
    return ExportOut.from_row(clips.find_copy(ctx, result.export_id))


@router.get("/exports", response_model=ExportPage, responses=PROBLEMS)
def list_exports(
    access: Annotated[Access, authorise("exports.list")],
    evidence_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ExportPage:
    """Disclosure copies made, newest first."""
    total, rows = clips.copy_page(access.services.ctx, evidence_id, limit=limit, offset=offset)
    access.record(target=evidence_id, found=total)
    return ExportPage(
        items=[ExportOut.from_row(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/exports/{export_id}/content",
    responses={
        **PROBLEMS,
        200: {"content": {"video/mp4": {}}, "description": "The disclosure copy."},
    },
    response_class=StreamingResponse,
)
def download_copy(
    export_id: str, access: Annotated[Access, authorise("export.download")]
) -> StreamingResponse:
    """The disclosure copy's bytes. ``X-Bwv-Sha256`` is what they must hash to."""
    row = clips.copy_to_hand_out(access.services.ctx, export_id)  # 404, or 410 its clip deleted
    access.about(row.evidence_id, row.sha256)
    # Checked whole first, as an original is.
    chunks = footage(access.services.store, "exports", row.evidence_id, row.sha256, row.size)
    access.record(target=row.evidence_id, sha256=row.sha256, export_id=export_id, to=None)
    return StreamingResponse(
        chunks,
        media_type="video/mp4",
        headers={
            "Content-Length": str(row.size),
            "X-Bwv-Sha256": row.sha256,
            "Content-Disposition": f'attachment; filename="{export_id}.mp4"',
        },
    )
