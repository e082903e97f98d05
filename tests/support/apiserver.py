"""A live service with one caller of each role and clips from two officers' cameras, for the
tests that walk the API (the role matrix, the schema run).

Clips are ingested the real way: a dock uploads them over tus, and the camera→officer register
says whose they are."""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bwv.access import add_user
from bwv.access.docks import assign_device
from bwv.records.tables import Clip
from bwv.services.context import Context
from bwv.services.samples import make_sample_clip
from tests.support import sha256_of
from tests.support.ingestserver import IngestServer, make_server
from tests.support.ledger import leaves
from tests.support.tus import Dock

ROLES = ("officer", "evidence-officer", "auditor", "admin", "dock")
OFFICER = "pc-a"  # the officer role's caller: "own" clips come from their camera
OTHER_OFFICER = "pc-b"  # another officer, whose clips the caller may not see
CAMERAS = {OFFICER: "CAM-A", OTHER_OFFICER: "CAM-B"}
USERS = {"officer": OFFICER, "evidence-officer": "eo-1", "auditor": "au-1", "admin": "ad-1"}
DOCK = "dock-a"
CLIENT = "127.0.0.1"


@dataclass
class Api:
    """The running service, a token for each role, and the test process's own view of the
    database and ledger."""

    server: IngestServer
    ctx: Context
    clips_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    dock: Dock | None = None
    http: httpx.Client | None = None
    metrics_token: str = ""  # the scrape credential (BWV_METRICS_TOKEN_FILE)
    _seed: int = 0

    def call(self, role: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to the service as the caller with ``role``."""
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.http.request(method, path, headers=headers, **kwargs)

    def ingest(self, officer: str) -> str:
        """A new clip recorded on ``officer``'s camera, uploaded by the dock; its evidence id."""
        assert self.dock is not None
        self._seed += 1
        path = make_sample_clip(
            self.clips_dir / f"{CAMERAS[officer]}_{self._seed:04d}.mp4",
            seconds=0.6,
            width=160,
            height=120,
            seed=self._seed,
        )
        sha = sha256_of(path)
        done = self.dock.upload(path, sha256=sha, camera=CAMERAS[officer], filename=path.name)
        assert done.status_code == 204, done.text
        with self.ctx.engine.connect() as conn:
            return conn.execute(
                select(Clip.__table__.c.evidence_id).where(Clip.__table__.c.sha256 == sha)
            ).scalar_one()

    def ledger_size(self) -> int:
        return self.ctx.ledger.size()

    def leaves_since(self, size: int) -> list[dict[str, Any]]:
        """Every leaf appended at or after sequence number ``size``, decoded."""
        return leaves(self.ctx, since=size)

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.dock is not None:
            self.dock.http.close()
            Dock.opened.remove(self.dock)
        self.server.stop()
        self.ctx.close()


def start_api(root: Path) -> Api:
    """Start a service under ``root`` with a user of each person role, an enrolled dock, and
    both officers' cameras registered, and a metrics scrape credential. The caller must
    :meth:`Api.close` it."""
    root.mkdir(parents=True, exist_ok=True)
    token_file = root / "metrics.token"
    token_file.write_text(secrets.token_hex(32) + "\n")
    token_file.chmod(0o600)
    server = make_server(root, metrics_token_file=token_file)
    ctx = Context(server.settings)
    api = Api(server, ctx, root / "clips", metrics_token=token_file.read_text().strip())
    api.clips_dir.mkdir()
    now = ctx.clock()
    for role, name in USERS.items():
        api.tokens[role] = add_user(ctx.engine, name, role, now, 30)
        api.names[role] = name
    for officer, camera in CAMERAS.items():
        assign_device(ctx.engine, camera, officer)
    server.start()
    try:
        api.dock = Dock(server, DOCK)  # enrols the dock and keeps its token
        api.tokens["dock"], api.names["dock"] = api.dock.token, DOCK
        api.http = httpx.Client(
            base_url=server.url,
            timeout=120,
            verify=ssl.create_default_context(cafile=str(server.ca)),
        )
    except BaseException:
        api.close()
        raise
    return api
