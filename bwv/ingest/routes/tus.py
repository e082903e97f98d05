"""tus 1.0.0 resumable uploads (https://tus.io/protocols/resumable-upload): core, creation,
creation-with-upload, checksum, termination, expiration."""

from __future__ import annotations

import base64
import json
import logging
from email.utils import formatdate
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from bwv.ingest.deps import DockDep, ServicesDep, refuse
from bwv.ingest.finalise import Services, finalise
from bwv.ingest.uploads import (
    CHECKSUM_ALGORITHMS,
    Upload,
    UploadError,
    parse_checksum,
    parse_metadata,
    parse_offset,
)
from bwv.store import StoreUnavailable

log = logging.getLogger("bwv.ingest")
router = APIRouter(prefix="/files", tags=["tus"])

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_SHA256_HEX = set("0123456789abcdef")


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def _error(status: int, detail: str, **headers: str) -> Response:
    return Response(
        json.dumps({"detail": detail}),
        status_code=status,
        media_type="application/json",
        headers=_headers(**headers),
    )


def _check_version(request: Request) -> Response | None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        return _error(412, f"Tus-Resumable must be {TUS_VERSION}", **{"Tus-Version": TUS_VERSION})
    return None


def _expires(services: Services, upload: Upload) -> str:
    return formatdate(services.uploads.expires_at(upload), usegmt=True)


def _validate_metadata(metadata: dict[str, str]) -> None:
    sha = metadata.get("sha256")
    if sha is not None and (len(sha) != 64 or not set(sha) <= _SHA256_HEX):
        raise UploadError(400, "Upload-Metadata sha256 must be 64 lowercase hex digits")
    name = metadata.get("filename")
    if name is not None and (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or any(ord(c) < 32 for c in name)
    ):
        raise UploadError(400, "Upload-Metadata filename must be a plain file name")


def _owned(services: Services, request: Request, dock: str, upload_id: str) -> Upload:
    upload = services.uploads.get(upload_id)
    if upload is None:
        raise UploadError(404, "no such upload (unknown, finished or expired)")
    if upload.dock != dock:
        refuse(services, request, dock, f"upload belongs to dock {upload.dock}")
        raise UploadError(403, "this upload belongs to another dock")
    return upload


def _receipt_header(receipt: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(receipt).encode()).decode().rstrip("=")


async def _patch_body(
    services: Services, request: Request, upload: Upload, offset: int
) -> tuple[int, dict[str, Any] | None]:
    """Write the body at ``offset``; finalise when it completes the upload."""
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    new_offset = await services.uploads.write(upload, offset, request.stream(), checksum)
    receipt = None
    if new_offset == upload.length:
        receipt = await run_in_threadpool(finalise, services, upload)
    return new_offset, receipt


async def _guarded(coro: Any) -> Response:
    """Map expected failures to one-line JSON errors; nothing the client sends yields a 500."""
    try:
        return await coro
    except UploadError as exc:
        return _error(exc.status, exc.diagnosis)
    except StoreUnavailable as exc:
        log.warning("store unavailable at finalisation: %s", exc.diagnosis)
        return _error(
            503, f"store unavailable, retry later: {exc.diagnosis}", **{"Retry-After": "5"}
        )
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening any more


@router.options("/")
@router.options("/{upload_id}")
async def options(services: ServicesDep, dock: DockDep) -> Response:
    return Response(
        status_code=204,
        headers=_headers(
            **{
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": EXTENSIONS,
                "Tus-Max-Size": str(services.uploads.max_size),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            }
        ),
    )


@router.post("/")
async def create(request: Request, services: ServicesDep, dock: DockDep) -> Response:
    async def run() -> Response:
        if (bad := _check_version(request)) is not None:
            return bad
        if request.headers.get("upload-defer-length") is not None:
            raise UploadError(400, "Upload-Defer-Length is not supported: send Upload-Length")
        length = parse_offset(request.headers.get("upload-length"), "Upload-Length")
        if length == 0:
            raise UploadError(400, "zero-byte clip: there is nothing to store")
        metadata = parse_metadata(request.headers.get("upload-metadata"))
        _validate_metadata(metadata)
        upload = await run_in_threadpool(services.uploads.create, dock, length, metadata)
        headers = {"Location": f"{request.url.path.rstrip('/')}/{upload.id}"}
        if request.headers.get("content-type") == OFFSET_CONTENT_TYPE:
            async with services.uploads.lock(upload.id):
                offset, receipt = await _patch_body(services, request, upload, 0)
            headers["Upload-Offset"] = str(offset)
            if receipt is not None:
                headers["Bwv-Receipt"] = _receipt_header(receipt)
        headers["Upload-Expires"] = _expires(services, upload)
        return Response(status_code=201, headers=_headers(**headers))

    return await _guarded(run())


@router.head("/{upload_id}")
async def head(upload_id: str, request: Request, services: ServicesDep, dock: DockDep) -> Response:
    async def run() -> Response:
        if (bad := _check_version(request)) is not None:
            return bad
        upload = await run_in_threadpool(_owned, services, request, dock, upload_id)
        return Response(
            status_code=200,
            headers=_headers(
                **{
                    "Upload-Offset": str(services.uploads.offset(upload)),
                    "Upload-Length": str(upload.length),
                    "Upload-Expires": _expires(services, upload),
                }
            ),
        )

    return await _guarded(run())


@router.patch("/{upload_id}")
async def patch(upload_id: str, request: Request, services: ServicesDep, dock: DockDep) -> Response:
    async def run() -> Response:
        if (bad := _check_version(request)) is not None:
            return bad
        if request.headers.get("content-type") != OFFSET_CONTENT_TYPE:
            return _error(415, f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
        offset = parse_offset(request.headers.get("upload-offset"), "Upload-Offset")
        upload = await run_in_threadpool(_owned, services, request, dock, upload_id)
        async with services.uploads.lock(upload.id):
            current = services.uploads.offset(upload)
            if offset != current:
                raise UploadError(409, f"Upload-Offset {offset} is not the server's {current}")
            if upload.evidence_id is not None:
                raise UploadError(409, "upload is already complete")
            new_offset, receipt = await _patch_body(services, request, upload, offset)
        headers = {"Upload-Offset": str(new_offset), "Upload-Expires": _expires(services, upload)}
        if receipt is not None:
            headers["Bwv-Receipt"] = _receipt_header(receipt)
        return Response(status_code=204, headers=_headers(**headers))

    return await _guarded(run())


@router.delete("/{upload_id}")
async def terminate(
    upload_id: str, request: Request, services: ServicesDep, dock: DockDep
) -> Response:
    async def run() -> Response:
        if (bad := _check_version(request)) is not None:
            return bad
        upload = await run_in_threadpool(_owned, services, request, dock, upload_id)
        async with services.uploads.lock(upload.id):
            services.uploads.discard(upload)
        return Response(status_code=204, headers=_headers())

    return await _guarded(run())
