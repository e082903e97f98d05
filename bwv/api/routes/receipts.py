"""Receipts for docks: fetch one by SHA-256, or finalise a complete upload again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from bwv.access import Principal, Role
from bwv.api.deps import DockDep, ServicesDep, client_address, record_denial
from bwv.api.routes.tus import _owned, record_damage, record_refusal
from bwv.ingest.finalise import finalise, receipt_for_sha256
from bwv.ingest.uploads import UploadError
from bwv.records.tables import Clip
from bwv.store import ObjectDamaged, StoreUnavailable

CLIP = Clip.__table__

router = APIRouter(prefix="/api/v1", tags=["receipts"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


_NO_RECEIPT = "no stored clip with that SHA-256"


@router.get("/receipts/{sha256}")
async def get_receipt(
    sha256: str, request: Request, services: ServicesDep, dock: DockDep
) -> dict[str, Any]:
    """The receipt of a stored clip this dock uploaded. Another dock's clip is answered as an
    unknown one (404), so the endpoint tells no dock what evidence exists; either way the
    request is a leaf (``receipt.read``, or ``access.denied`` naming why)."""

    def run() -> dict[str, Any] | None:
        who = Principal(dock, Role.DOCK, client_address(request))
        asked = sha256.lower()
        receipt = receipt_for_sha256(services, asked)
        evidence_id = None if receipt is None else receipt["receipt"]["evidence_id"]
        if evidence_id is not None:
            with services.ctx.engine.connect() as conn:
                uploader = conn.execute(
                    select(CLIP.c.dock).where(CLIP.c.evidence_id == evidence_id)
                ).scalar()
            if uploader != dock:
                why = f"{evidence_id} was uploaded by another dock"
                record_denial(services, request, who, why, asked="receipt", target=evidence_id)
                return None
            services.ctx.ledger.append(who.event("receipt.read", target=evidence_id, sha256=asked))
            return receipt
        record_denial(services, request, who, _NO_RECEIPT, asked="receipt", target=sha256)
        return None

    receipt = await run_in_threadpool(run)
    if receipt is None:
        raise HTTPException(404, _NO_RECEIPT)
    return receipt


@router.post("/uploads/{upload_id}/finalise")
async def finalise_upload(
    upload_id: str, request: Request, services: ServicesDep, dock: DockDep
) -> dict[str, Any]:
    """Finalise under the upload's lock, the one a ``PATCH`` holds, reading the upload afresh
    under it: concurrent calls answer the one receipt, and no bytes change while it is made."""

    def run() -> dict[str, Any]:
        return finalise(services, _owned(services, dock, upload_id))

    try:
        await run_in_threadpool(_owned, services, dock, upload_id)
        async with services.uploads.lock(upload_id):
            return await run_in_threadpool(run)
    except UploadError as exc:
        await record_refusal(services, request, dock, exc)
        raise HTTPException(exc.status, exc.diagnosis) from None
    except ObjectDamaged as exc:
        raise HTTPException(500, await record_damage(services, request, dock, exc)) from None
    except StoreUnavailable as exc:
        shown = getattr(exc, "shown", exc.diagnosis)
        raise HTTPException(
            503, f"store unavailable, retry later: {shown}", headers={"Retry-After": "5"}
        ) from None
