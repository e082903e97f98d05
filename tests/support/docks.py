"""The dock agent without the real ingest service: its configuration, camera clips in bays,
signed receipts and an in-memory fake of the service's dock-facing protocol (docs/INGEST.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx

from bwv.ingest.receipts import sign_receipt
from bwv.keys import SigningKey
from docks import DockAgent, DockConfig, RetryPolicy
from tests.support import sha256_of

SERVICE = "http://127.0.0.1:8443"
TOKEN = "dock-token-123"
FAST = RetryPolicy(multiplier=0.001, max_wait=0.01, max_attempts=50)  # a bug fails, not hangs


def dock_config(tmp_path: Path, signer: SigningKey, bays: list[Path], **extra: Any) -> DockConfig:
    return DockConfig(
        service_url=SERVICE,
        dock_name="dock-1",
        token=TOKEN,
        verifier_keys=[str(signer.verifier)],
        state_dir=tmp_path / "state",
        bays=bays,
        settle_seconds=0.0,
        **extra,
    )


def camera_clip(bay: Path, name: str = "VID0001.MP4", size: int = 3000, done: bool = True) -> Path:
    bay.mkdir(parents=True, exist_ok=True)
    path = bay / name
    path.write_bytes(os.urandom(size))
    if done:
        path.with_name(name + ".done").write_text("")
    return path


def receipt_for(signer: SigningKey, sha256: str, size: int) -> dict[str, Any]:
    return sign_receipt(
        signer,
        evidence_id="EV-1",
        sha256=sha256,
        size=size,
        ledger_index=7,
        received_at="2025-01-01T00:00:00Z",
    )


def uploaded_clip(agent: DockAgent, path: Path) -> int:
    """Queue ``path`` and take it to ``uploaded``, as the worker does before the receipt."""
    st = path.stat()
    clip = agent.queue.add(
        bay=path.parent.name, camera="CAM", path=path, size=st.st_size, mtime_ns=st.st_mtime_ns
    )
    assert clip is not None
    agent.queue.mark_hashed(clip.id, sha256_of(path))
    agent.queue.mark_uploaded(clip.id)
    return clip.id


class FakeService:
    """The ingest service's dock-facing protocol, in memory (docs/INGEST.md)."""

    def __init__(self, signer: SigningKey, *, receipt_header: bool = True) -> None:
        self.checksummed: list[bool] = []
        self.signer = signer
        self.receipt_header = receipt_header
        self.uploads: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        # Status codes to answer the next PATCH requests with, in order; "lost" applies the chunk
        # and then answers 503, as if the response were lost.
        self.patch_faults: list[int | str] = []
        self.error_bodies: dict[int, str] = {}
        self.transport_failures = 0

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def patches(self) -> list[int]:
        return [int(h["upload-offset"]) for m, _, h in self.requests if m == "PATCH"]

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.requests]

    def _finish(self, upload: dict[str, Any]) -> httpx.Response | dict[str, Any]:
        data = bytes(upload["data"])
        sha = hashlib.sha256(data).hexdigest()
        if sha != upload["meta"].get("sha256"):
            return httpx.Response(422, json={"detail": "SHA-256 does not match the claimed one"})
        if sha not in self.stored:
            self.stored[sha] = sign_receipt(
                self.signer,
                evidence_id=f"EV-{len(self.stored) + 1}",
                sha256=sha,
                size=len(data),
                ledger_index=len(self.stored),
                received_at="2025-01-01T00:00:00Z",
            )
        return self.stored[sha]

    def handle(self, request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.url.path
        self.requests.append((request.method, path, headers))
        if self.transport_failures:
            self.transport_failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"detail": "unknown dock token"})
        if path.startswith("/files") and headers.get("tus-resumable") != "1.0.0":
            return httpx.Response(412)
        if request.method == "POST" and path == "/files/":
            meta = {}
            for pair in headers.get("upload-metadata", "").split(","):
                key, value = pair.split(" ")
                meta[key] = base64.b64decode(value).decode()
            upload_id = f"u{len(self.uploads) + 1}"
            length = int(headers["upload-length"])
            self.uploads[upload_id] = {"length": length, "data": bytearray(), "meta": meta}
            return httpx.Response(201, headers={"Location": f"/files/{upload_id}"})
        if path.startswith("/files/"):
            upload = self.uploads.get(path.rsplit("/", 1)[-1])
            if upload is None:
                return httpx.Response(404, json={"detail": "no such upload"})
            if request.method == "HEAD":
                offset = str(len(upload["data"]))
                return httpx.Response(
                    200, headers={"Upload-Offset": offset, "Upload-Length": str(upload["length"])}
                )
            if request.method == "PATCH":
                return self._patch(upload, headers, request.content)
        if request.method == "POST" and path.endswith("/finalise"):
            upload = self.uploads.get(path.split("/")[-2])
            if upload is None or len(upload["data"]) != upload["length"]:
                return httpx.Response(404, json={"detail": "no complete upload"})
            result = self._finish(upload)
            if isinstance(result, httpx.Response):
                return result
            return httpx.Response(200, json=result)
        if request.method == "GET" and path.startswith("/api/v1/receipts/"):
            document = self.stored.get(path.rsplit("/", 1)[-1])
            if document is None:
                return httpx.Response(404, json={"detail": "no such clip"})
            return httpx.Response(200, json=document)
        return httpx.Response(404, json={"detail": "not found"})

    def _patch(
        self, upload: dict[str, Any], headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        fault = self.patch_faults.pop(0) if self.patch_faults else None
        if isinstance(fault, int):
            detail = self.error_bodies.get(fault, "injected")
            return httpx.Response(fault, json={"detail": detail})
        if headers.get("content-type") != "application/offset+octet-stream":
            return httpx.Response(415, json={"detail": "wrong content type"})
        if int(headers["upload-offset"]) != len(upload["data"]):
            return httpx.Response(409, json={"detail": "offset mismatch"})
        self.checksummed.append("upload-checksum" in headers)
        if "upload-checksum" in headers:
            algorithm, digest = headers["upload-checksum"].split(" ")
            if algorithm != "sha256" or base64.b64decode(digest) != hashlib.sha256(body).digest():
                return httpx.Response(460, json={"detail": "checksum mismatch"})
        upload["data"].extend(body)
        answer = {"Upload-Offset": str(len(upload["data"]))}
        if len(upload["data"]) == upload["length"]:
            result = self._finish(upload)
            if isinstance(result, httpx.Response):
                return result
            if self.receipt_header:
                raw = base64.urlsafe_b64encode(json.dumps(result).encode()).decode()
                answer["Bwv-Receipt"] = raw.rstrip("=")
        if fault == "lost":
            return httpx.Response(503, json={"detail": "response lost"})
        return httpx.Response(204, headers=answer)


def agent_for(
    tmp_path: Path, signer: SigningKey, service: FakeService, bays: list[Path], **extra: Any
) -> DockAgent:
    config = dock_config(tmp_path, signer, bays, chunk_size=1024, **extra)
    return DockAgent(config, http_client=service.client(), retry=FAST)
