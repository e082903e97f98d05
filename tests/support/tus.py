"""A dock's side of the tus protocol (tus 1.0.0, docs/INGEST.md) as raw requests over verified
TLS, and the signed receipt the service answers a finished upload with."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path
from typing import Any, ClassVar

import httpx
from tusclient import client as tus_client

from tests.support.ingestserver import IngestServer

TUS = {"Tus-Resumable": "1.0.0"}


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


class Dock:
    """A dock's view of the service: raw tus requests over verified TLS."""

    opened: ClassVar[list[Dock]] = []

    def __init__(self, server: IngestServer, name: str = "dock-a") -> None:
        Dock.opened.append(self)
        self.server = server
        self.token = server.enroll(name)
        self.http = httpx.Client(
            base_url=server.url,
            timeout=30,
            verify=ssl.create_default_context(cafile=str(server.ca)),
            headers={"Authorization": f"Bearer {self.token}", **TUS},
        )

    def create(self, length: int, **metadata: str) -> httpx.Response:
        meta = ",".join(f"{k} {b64(v)}" for k, v in metadata.items())
        headers = {"Upload-Length": str(length)}
        if meta:
            headers["Upload-Metadata"] = meta
        return self.http.post("/files/", headers=headers)

    def patch(self, location: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
        return self.http.patch(
            location,
            content=data,
            headers={
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                **headers,
            },
        )

    def upload(self, path: Path, **metadata: str) -> httpx.Response:
        data = path.read_bytes()
        created = self.create(len(data), **metadata)
        assert created.status_code == 201, created.text
        return self.patch(created.headers["Location"], 0, data)

    def tuspy(self) -> tus_client.TusClient:
        client = tus_client.TusClient(
            f"{self.server.url}/files/", headers={"Authorization": f"Bearer {self.token}"}
        )
        return client


def receipt_from(response: httpx.Response) -> dict[str, Any]:
    raw = response.headers["Bwv-Receipt"]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
