"""Receipts for docks: fetch one by SHA-256, or finalise a complete upload again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from bwv.ingest.deps import DockDep, ServicesDep
from bwv.ingest.finalise import finalise, receipt_for_sha256
from bwv.ingest.routes.tus import _owned
from bwv.ingest.uploads import UploadError
from bwv.store import StoreUnavailable

router = APIRouter(prefix="/api/v1", tags=["receipts"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/receipts/{sha256}")
async def get_receipt(sha256: str, services: ServicesDep, dock: DockDep) -> dict[str, Any]:
    receipt = await run_in_threadpool(receipt_for_sha256, services, sha256.lower())
    if receipt is None:
        raise HTTPException(404, "no stored clip with that SHA-256")
    return receipt


@router.post("/uploads/{upload_id}/finalise")
async def finalise_upload(
    upload_id: str, request: Request, services: ServicesDep, dock: DockDep
) -> dict[str, Any]:
    def run() -> dict[str, Any]:
        return finalise(services, _owned(services, request, dock, upload_id))

    try:
        return await run_in_threadpool(run)
    except UploadError as exc:
        raise HTTPException(exc.status, exc.diagnosis) from None
    except StoreUnavailable as exc:
        raise HTTPException(
            503, f"store unavailable, retry later: {exc.diagnosis}", headers={"Retry-After": "5"}
        ) from None
