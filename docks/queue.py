"""The dock's persistent clip queue: one SQLite row per clip, one transaction per transition.

The database runs in WAL mode with ``synchronous=FULL``, so a committed transition survives a
power cut or ``kill -9``. Each clip moves through

    found -> hashed -> uploading -> uploaded -> receipted -> wiped

or ends ``rejected`` (the service refused it for good; the camera keeps the file) or sits in
``failed`` (retried later, for as long as the file on the camera is the one that was hashed).
A clip is identified by (path, size, mtime_ns): the same path with another size or mtime is a new
clip. Only a ``wiped`` clip frees its identity, since its file is gone.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bwv.base.clock import system_clock
from bwv.base.errors import BwvError

FOUND = "found"
HASHED = "hashed"
UPLOADING = "uploading"
UPLOADED = "uploaded"
RECEIPTED = "receipted"
WIPED = "wiped"
REJECTED = "rejected"
FAILED = "failed"

STATES = (FOUND, HASHED, UPLOADING, UPLOADED, RECEIPTED, WIPED, REJECTED, FAILED)
#: States the agent still has work to do for (``failed`` only once its retry time has come).
ACTIVE = (FOUND, HASHED, UPLOADING, UPLOADED, RECEIPTED, FAILED)

_ALLOWED: dict[str, frozenset[str]] = {
    FOUND: frozenset({HASHED, FAILED, REJECTED}),
    HASHED: frozenset({UPLOADING, UPLOADED, FAILED, REJECTED}),
    UPLOADING: frozenset({UPLOADING, UPLOADED, FAILED, REJECTED}),
    UPLOADED: frozenset({UPLOADING, UPLOADED, RECEIPTED, FAILED, REJECTED}),
    RECEIPTED: frozenset({WIPED, FAILED}),
    FAILED: frozenset({FOUND, HASHED, UPLOADING, UPLOADED, FAILED, REJECTED}),
    REJECTED: frozenset({FOUND, HASHED}),
    WIPED: frozenset(),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    bay         TEXT    NOT NULL,
    camera      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    sha256      TEXT,
    state       TEXT    NOT NULL,
    upload_url  TEXT,
    bytes_sent  INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    receipt     TEXT,
    evidence_id TEXT,
    retry_after REAL    NOT NULL DEFAULT 0,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS clips_identity ON clips (path, size, mtime_ns)
    WHERE state != 'wiped';
CREATE INDEX IF NOT EXISTS clips_state ON clips (state);
"""


class QueueError(BwvError):
    """The queue refused a transition, or its database is unusable."""


def _now() -> str:
    return system_clock().isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Clip:
    """One queue row."""

    id: int
    bay: str
    camera: str
    path: Path
    size: int
    mtime_ns: int
    sha256: str | None
    state: str
    upload_url: str | None
    bytes_sent: int
    attempts: int
    last_error: str | None
    receipt: dict[str, Any] | None
    evidence_id: str | None
    retry_after: float
    created_at: str
    updated_at: str

    @property
    def progress(self) -> float:
        """Percent of the clip's bytes the service has acknowledged (100 once receipted)."""
        if self.state in (UPLOADED, RECEIPTED, WIPED):
            return 100.0
        if self.size == 0:
            return 0.0
        return round(100.0 * min(self.bytes_sent, self.size) / self.size, 1)

    def status(self) -> dict[str, Any]:
        """The row as ``bwv dock status`` shows it."""
        return {
            "id": self.id,
            "bay": self.bay,
            "camera": self.camera,
            "file": self.path.name,
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "state": self.state,
            "progress": self.progress,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "evidence_id": self.evidence_id,
            "updated_at": self.updated_at,
        }

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Clip:
        data = dict(row)
        data["path"] = Path(data["path"])
        data["receipt"] = json.loads(data["receipt"]) if data["receipt"] else None
        return cls(**data)


class ClipQueue:
    """The SQLite queue. Thread-safe: one connection, one lock, one transaction per change."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            with self._transaction() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise QueueError(f"dock queue {self.path} is unusable: {exc}") from None

    @classmethod
    def open(cls, state_dir: Path) -> ClipQueue:
        return cls(Path(state_dir) / "queue.sqlite3")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ClipQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- reading -------------------------------------------------------------------------------

    def get(self, clip_id: int) -> Clip:
        with self._lock:
            row = self._db.execute("SELECT * FROM clips WHERE id = ?", (clip_id,)).fetchone()
        if row is None:
            raise QueueError(f"no clip {clip_id} in the dock queue")
        return Clip._from_row(row)

    def find(self, path: Path, size: int, mtime_ns: int) -> Clip | None:
        """The live (not wiped) clip with this identity, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM clips WHERE path = ? AND size = ? AND mtime_ns = ? "
                "AND state != 'wiped'",
                (str(path), size, mtime_ns),
            ).fetchone()
        return Clip._from_row(row) if row else None

    def list(self, states: tuple[str, ...] | None = None) -> list[Clip]:
        query = "SELECT * FROM clips"
        args: tuple[str, ...] = ()
        if states is not None:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args = states
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [Clip._from_row(r) for r in rows]

    # Past this point ``list`` in the class body is the method above: the builtin is spelled out.
    def due(self, now: float | None = None) -> builtins.list[Clip]:
        """Clips with work left: every active state, ``failed`` ones once their retry is due."""
        now = system_clock().timestamp() if now is None else now
        return [c for c in self.list(ACTIVE) if c.state != FAILED or c.retry_after <= now]

    def status(self) -> builtins.list[dict[str, Any]]:
        return [c.status() for c in self.list()]

    # --- writing -------------------------------------------------------------------------------

    def add(self, *, bay: str, camera: str, path: Path, size: int, mtime_ns: int) -> Clip | None:
        """Queue a finished clip as ``found``; None if this exact file is already queued."""
        now = _now()
        with self._transaction() as db:
            try:
                cursor = db.execute(
                    "INSERT INTO clips (bay, camera, path, size, mtime_ns, state, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (bay, camera, str(path), size, mtime_ns, FOUND, now, now),
                )
            except sqlite3.IntegrityError:
                return None
            clip_id = cursor.lastrowid
        assert clip_id is not None
        return self.get(clip_id)

    def _move(
        self, clip_id: int, state: str, *, count_attempt: bool = False, **values: Any
    ) -> Clip:
        """One atomic transition; refuses any the state machine does not allow."""
        if state not in STATES:
            raise QueueError(f"unknown clip state {state!r}")
        values["state"] = state
        values["updated_at"] = _now()
        columns = ", ".join(f"{k} = ?" for k in values)
        if count_attempt:
            columns += ", attempts = attempts + 1"
        with self._transaction() as db:
            row = db.execute("SELECT state, receipt FROM clips WHERE id = ?", (clip_id,)).fetchone()
            if row is None:
                raise QueueError(f"no clip {clip_id} in the dock queue")
            if state not in _ALLOWED[row["state"]]:
                raise QueueError(f"clip {clip_id} cannot go from {row['state']} to {state}")
            if state == WIPED and not row["receipt"]:
                raise QueueError(f"clip {clip_id} has no receipt: it must not be wiped")
            db.execute(f"UPDATE clips SET {columns} WHERE id = ?", (*values.values(), clip_id))
        return self.get(clip_id)

    def mark_hashed(self, clip_id: int, sha256: str) -> Clip:
        return self._move(clip_id, HASHED, sha256=sha256, last_error=None)

    def set_upload(self, clip_id: int, upload_url: str, bytes_sent: int) -> Clip:
        """Record the tus upload URL and the offset the service acknowledged (``uploading``)."""
        return self._move(clip_id, UPLOADING, upload_url=upload_url, bytes_sent=bytes_sent)

    def mark_uploaded(self, clip_id: int) -> Clip:
        clip = self.get(clip_id)
        return self._move(clip_id, UPLOADED, bytes_sent=clip.size, last_error=None)

    def mark_receipted(self, clip_id: int, receipt: dict[str, Any]) -> Clip:
        """Store the verified receipt document; the only way to a state that allows wiping."""
        inner = receipt.get("receipt") if isinstance(receipt, dict) else None
        if not isinstance(inner, dict):
            raise QueueError(f"clip {clip_id}: refusing to record something that is no receipt")
        return self._move(
            clip_id,
            RECEIPTED,
            receipt=json.dumps(receipt, sort_keys=True),
            evidence_id=inner.get("evidence_id"),
            last_error=None,
        )

    def mark_wiped(self, clip_id: int) -> Clip:
        """The camera file is gone; allowed only from ``receipted``."""
        return self._move(clip_id, WIPED, last_error=None)

    def mark_rejected(self, clip_id: int, reason: str) -> Clip:
        return self._move(clip_id, REJECTED, last_error=reason)

    def mark_failed(self, clip_id: int, reason: str, retry_after: float = 0.0) -> Clip:
        """``failed`` with the reason; retried from ``retry_after`` (a Unix time) on."""
        return self._move(
            clip_id, FAILED, count_attempt=True, last_error=reason, retry_after=retry_after
        )

    def note_error(self, clip_id: int, error: str) -> None:
        """Count a failed attempt without changing state (the retry is already scheduled)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE clips SET attempts = attempts + 1, last_error = ?, updated_at = ? "
                "WHERE id = ?",
                (error, _now(), clip_id),
            )
