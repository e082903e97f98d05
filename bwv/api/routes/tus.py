"""tus 1.0.0 resumable uploads (https://tus.io/protocols/resumable-upload): core, creation,
creation-with-upload, checksum, termination, expiration."""

from __future__ import annotations

import base64
import json
import re
from email.utils import formatdate
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from bwv.access.text import shown_badly
from bwv.api.deps import DockDep, ServicesDep
from bwv.api.errors import ANSWER_HEADERS
from bwv.ingest.finalise import finalise_for_dock, owned
from bwv.ingest.uploads import (
    CHECKSUM_ALGORITHMS,
    Upload,
    UploadError,
    parse_checksum,
    parse_metadata,
    parse_offset,
)
from bwv.services.context import Services

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_SHA256_HEX = set("0123456789abcdef")
# A camera serial: a plain printable token (it is a key of the device register and is shown).
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,63}")
MAX_FILENAME = 255


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store", **extra}


def _tus_answers(request: Request) -> None:
    """Every answer here, a refusal too, is a tus one (bwv.api.errors adds these headers)."""
    setattr(request.state, ANSWER_HEADERS, _headers())


router = APIRouter(prefix="/files", tags=["tus"], dependencies=[Depends(_tus_answers)])


def _header(request: Request, name: str) -> str | None:
    """A tus header that must appear at most once: two differing values would let the server
    and a proxy (or a log) disagree about, say, the length (400)."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise UploadError(400, f"{name} appears {len(values)} times; send it once")
    return values[0] if values else None


def _check_version(request: Request) -> None:
    if _header(request, "Tus-Resumable") != TUS_VERSION:
        raise UploadError(
            412, f"Tus-Resumable must be {TUS_VERSION}", headers={"Tus-Version": TUS_VERSION}
        )


def _expires(services: Services, upload: Upload) -> str:
    return formatdate(services.uploads.expires_at(upload), usegmt=True)


def _validate_metadata(metadata: dict[str, str]) -> None:
    sha = metadata.get("sha256")
    if sha is not None and (len(sha) != 64 or not set(sha) <= _SHA256_HEX):
        raise UploadError(400, "Upload-Metadata sha256 must be 64 lowercase hex digits")
    name = metadata.get("filename")
    if name is not None and (
        not name
        or len(name) > MAX_FILENAME
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or any(shown_badly(c) for c in name)
    ):
        raise UploadError(
            400,
            f"Upload-Metadata filename must be a plain file name of at most {MAX_FILENAME} "
            "characters, without control or bidirectional characters",
        )
    camera = metadata.get("camera")
    if camera is not None and not _SERIAL.fullmatch(camera):
        raise UploadError(
            400,
            "Upload-Metadata camera must be a serial number: 1 to 64 letters, digits and "
            "'.', '_', ':', '+', '-', starting with a letter or digit",
        )


def _receipt_header(receipt: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(receipt).encode()).decode().rstrip("=")


async def _patch_body(
    services: Services, request: Request, upload: Upload, offset: int
) -> tuple[int, dict[str, Any] | None]:
    """Write the body at ``offset``; finalise when it completes the upload. The caller holds
    the upload's lock."""
    checksum = parse_checksum(_header(request, "Upload-Checksum"))
    try:
        new_offset = await services.uploads.write(upload, offset, request.stream(), checksum)
    finally:  # what was kept, also of a body cut short or refused past a bad checksum
        kept = services.uploads.offset(upload) - offset
        if kept > 0:
            services.metrics.bytes_received.inc(kept)
    receipt = None
    if new_offset == upload.length:
        receipt = await run_in_threadpool(finalise_for_dock, services, upload)
    return new_offset, receipt


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
    _check_version(request)
    if _header(request, "Upload-Defer-Length") is not None:
        raise UploadError(400, "Upload-Defer-Length is not supported: send Upload-Length")
    length = parse_offset(_header(request, "Upload-Length"), "Upload-Length")
    if length == 0:
        raise UploadError(400, "zero-byte clip: there is nothing to store")
    metadata = parse_metadata(_header(request, "Upload-Metadata"))
    _validate_metadata(metadata)
    upload = await run_in_threadpool(services.uploads.create, dock, length, metadata)
    services.metrics.uploads_started.inc()
    headers = {"Location": f"{request.url.path.rstrip('/')}/{upload.id}"}
    if request.headers.get("content-type") == OFFSET_CONTENT_TYPE:
        async with services.uploads.lock(upload.id):
            offset, receipt = await _patch_body(services, request, upload, 0)
        headers["Upload-Offset"] = str(offset)
        if receipt is not None:
            headers["Bwv-Receipt"] = _receipt_header(receipt)
    headers["Upload-Expires"] = _expires(services, upload)
    return Response(status_code=201, headers=_headers(**headers))


@router.head("/{upload_id}")
async def head(upload_id: str, request: Request, services: ServicesDep, dock: DockDep) -> Response:
    _check_version(request)
    upload = await run_in_threadpool(owned, services, dock, upload_id)
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


@router.patch("/{upload_id}")
async def patch(upload_id: str, request: Request, services: ServicesDep, dock: DockDep) -> Response:
    _check_version(request)
    if request.headers.get("content-type") != OFFSET_CONTENT_TYPE:
        raise UploadError(415, f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}")
    offset = parse_offset(_header(request, "Upload-Offset"), "Upload-Offset")
    await run_in_threadpool(owned, services, dock, upload_id)
    async with services.uploads.lock(upload_id):
        # Read again under the lock: a finalisation may have finished while we waited.
        upload = await run_in_threadpool(owned, services, dock, upload_id)
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


@router.delete("/{upload_id}")
async def terminate(
    upload_id: str, request: Request, services: ServicesDep, dock: DockDep
) -> Response:
    _check_version(request)
    await run_in_threadpool(owned, services, dock, upload_id)
    async with services.uploads.lock(upload_id):
        upload = await run_in_threadpool(owned, services, dock, upload_id)
        await run_in_threadpool(services.uploads.discard, upload)
    return Response(status_code=204, headers=_headers())
