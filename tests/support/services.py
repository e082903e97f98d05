"""The service's parts in this process, without a server: records, store and uploads on a real
data dir, and clips made evidence through ``finalise`` as the tus endpoint would."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import insert

from bwv.access.roles import Principal, Role
from bwv.base.clock import MovableClock, as_utc
from bwv.custody.leaf import Event, format_time
from bwv.custody.ledger import Ledger
from bwv.ingest.finalise import Services, finalise
from bwv.ingest.uploads import Uploads
from bwv.records.tables import Export
from bwv.services.context import Context
from bwv.store import open_store
from bwv.store.base import ObjectStore, StoredObject
from tests.support.ingestserver import init_data_dir
from tests.support.records import clip_row

EXPORT = Export.__table__
# The callers of the retention and disclosure tests.
OFFICER = Principal("eo-1", Role.EVIDENCE_OFFICER, "192.0.2.7")
ADMIN = Principal("admin-1", Role.ADMIN, "192.0.2.8")
# A six-year retention period in days (2192: six years and the leap days in them).
SIX_YEARS = timedelta(days=6 * 365 + 2)


def make_services(data_dir: Path, **settings: object) -> Services:
    s = init_data_dir(data_dir, **settings)
    ctx = Context(s)
    ctx.clock = MovableClock()
    assert s.upload_dir is not None
    uploads = Uploads(s.upload_dir, s.tus_max_size, s.upload_expiry_seconds)
    return Services(ctx, open_store(s.store_url), uploads)


def ingest_clip(services: Services, recorded_at: datetime | None = None, size: int = 4096) -> str:
    """A clip made evidence by finalise, as the tus endpoint would; returns its evidence id."""
    return ingest_bytes(services, os.urandom(size), recorded_at)


def ingest_bytes(services: Services, data: bytes, recorded_at: datetime | None = None) -> str:
    """``data`` made evidence by finalise (the dock saying it was recorded at ``recorded_at``)."""
    metadata = {"filename": "clip.mp4"}
    if recorded_at is not None:
        metadata["recorded_at"] = format_time(recorded_at)
    upload = services.uploads.create("dock-a", len(data), metadata)
    services.uploads.part_path(upload).write_bytes(data)
    return finalise(services, upload)["receipt"]["evidence_id"]


def add_export(services: Services, evidence_id: str, tmp_path: Path) -> str:
    """A disclosure copy of the clip: an object in the store and its export row."""
    ctx, data = services.ctx, os.urandom(2048)
    sha256 = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{sha256}.mp4"
    path.write_bytes(data)
    clip = clip_row(ctx, evidence_id)
    services.store.put("exports", sha256, path, retain_until=as_utc(clip.retain_until))
    leaf = ctx.ledger.append(
        Event(OFFICER.name, OFFICER.role, "export.created", target=evidence_id, sha256=sha256)
    )
    with ctx.engine.begin() as conn:
        conn.execute(
            insert(EXPORT).values(
                export_id=f"EX-{sha256[:12]}",
                clip_id=clip.id,
                evidence_id=evidence_id,
                sha256=sha256,
                size=len(data),
                parent_sha256=clip.sha256,
                plan_sha256="0" * 64,
                classes="face",
                officer=OFFICER.name,
                reason="disclosure to CPS",
                created_at=datetime.now(UTC),
                ledger_index=leaf.seq,
            )
        )
    return sha256


class WatchedStore(ObjectStore):
    """A store of record that notes every call made to it and whether the ledger's append lock
    was held in this process at the time (``calls``: name, arguments, locked); ``before`` runs
    first (e.g. to block, or to change the records meanwhile)."""

    def __init__(self, inner: ObjectStore, ledger: Ledger) -> None:
        self.inner, self.ledger = inner, ledger
        self.calls: list[tuple[str, tuple[object, ...], bool]] = []
        self.before: Callable[[str, tuple[object, ...]], None] | None = None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((name, args, self.ledger.locked()))
        if self.before is not None:
            self.before(name, args)
        return getattr(self.inner, name)(*args, **kwargs)

    def under_lock(self) -> list[tuple[str, tuple[object, ...]]]:
        return [(name, args) for name, args, locked in self.calls if locked]

    def put(self, kind: str, sha256: str, source: Path, **kwargs: Any) -> StoredObject:
        return self._call("put", kind, sha256, source, **kwargs)  # type: ignore[no-any-return]

    def exists(self, kind: str, sha256: str) -> bool:
        return self._call("exists", kind, sha256)  # type: ignore[no-any-return]

    def size(self, kind: str, sha256: str) -> int:
        return self._call("size", kind, sha256)  # type: ignore[no-any-return]

    def open(self, kind: str, sha256: str) -> BinaryIO:
        return self._call("open", kind, sha256)  # type: ignore[no-any-return]

    def check(self) -> None:
        self._call("check")

    def describe(self) -> str:
        return self.inner.describe()

    def extend_retention(self, kind: str, sha256: str, until: datetime) -> None:
        self._call("extend_retention", kind, sha256, until)

    def set_legal_hold(self, kind: str, sha256: str, on: bool) -> None:
        self._call("set_legal_hold", kind, sha256, on)

    def expirable(self, kind: str, sha256: str) -> str | None:
        return self._call("expirable", kind, sha256)  # type: ignore[no-any-return]

    def expire(self, kind: str, sha256: str) -> None:
        self._call("expire", kind, sha256)


def watch_store(services: Services) -> WatchedStore:
    """Put a :class:`WatchedStore` in front of the services' store (and the context's)."""
    watched = WatchedStore(services.store, services.ctx.ledger)
    services.store = watched
    services.ctx.__dict__["store"] = watched  # Context.store is a cached property
    return watched
