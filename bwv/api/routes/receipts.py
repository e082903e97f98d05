"""Receipts for docks: fetch one by SHA-256, or finalise a complete upload again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from bwv.api.deps import DockDep, ServicesDep, dock_access
from bwv.ingest.finalise import finalise_for_dock, owned, receipt_for_dock

router = APIRouter(prefix="/api/v1", tags=["receipts"])


@router.get("/receipts/{sha256}")
async def get_receipt(
    sha256: str, request: Request, services: ServicesDep, dock: DockDep
) -> dict[str, Any]:
    """The receipt of a stored clip this dock uploaded. Another dock's clip is answered as an
    unknown one (404), so the endpoint tells no dock what evidence exists; either way the
    request is a leaf (``receipt.read``, or ``access.denied`` naming why)."""
    access = dock_access(request)
    access.action = "receipt"
    return await run_in_threadpool(receipt_for_dock, services, access.who, sha256)


@router.post("/uploads/{upload_id}/finalise")
async def finalise_upload(
    upload_id: str, request: Request, services: ServicesDep, dock: DockDep
) -> dict[str, Any]:
    """Finalise under the upload's lock, the one a ``PATCH`` holds, reading the upload afresh
    under it: concurrent calls answer the one receipt, and no bytes change while it is made."""

    def run() -> dict[str, Any]:
        return finalise_for_dock(services, owned(services, dock, upload_id))

    await run_in_threadpool(owned, services, dock, upload_id)
    async with services.uploads.lock(upload_id):
        return await run_in_threadpool(run)
