"""In-flight tus uploads: the only state the service keeps of its own.

Each upload is two files in the upload directory: ``<id>.part`` (the bytes so far) and
``<id>.json`` (length, owning dock, metadata; rewritten atomically). The part file is fsynced
when it is complete, before it is finalised; an offset reported earlier survives a crash of the
process (the page cache does) but maybe not a power cut, and then the dock simply sends those
bytes again from the offset HEAD reports -- it keeps the clip until it has a receipt.
The whole-file SHA-256 is computed as bytes arrive; the running hash lives in memory and, after a
restart, is rebuilt once from the part file.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bwv.errors import BwvError
from bwv.fsio import write_atomic

_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_WRITE_BLOCK = 1 << 20
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}


class UploadError(BwvError):
    """A request about an upload that the client must change before retrying (HTTP 4xx)."""

    def __init__(self, status: int, diagnosis: str) -> None:
        super().__init__(diagnosis)
        self.status = status


@dataclass
class Upload:
    id: str
    length: int
    dock: str
    metadata: dict[str, str]
    created_at: float
    evidence_id: str | None = None  # set once finalised
    extra: dict[str, Any] = field(default_factory=dict)


class _Running:
    """The running whole-file hash and how many bytes it has seen."""

    __slots__ = ("hasher", "offset")

    def __init__(self, hasher: Any, offset: int) -> None:
        self.hasher, self.offset = hasher, offset


class Uploads:
    def __init__(self, root: Path, max_size: int, expiry_seconds: float) -> None:
        self.root = root
        self.max_size = max_size
        self.expiry_seconds = expiry_seconds
        self._running: dict[str, _Running] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        root.mkdir(parents=True, exist_ok=True)
        self._recover()

    def _guard(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.guard"

    def _recover(self) -> None:
        """After a crash, cut every part file back to before the chunk that was being written
        under a checksum: those bytes were never verified."""
        for guard in self.root.glob("*.guard"):
            part = self._part(guard.stem)
            try:
                offset = int(guard.read_text(encoding="ascii"))
                if part.exists() and part.stat().st_size > offset:
                    with open(part, "r+b") as f:
                        f.truncate(offset)
                        os.fsync(f.fileno())
            except (OSError, ValueError):
                pass  # an unreadable guard: leave the part, the whole-file hash still decides
            guard.unlink(missing_ok=True)

    # --- files -----------------------------------------------------------------------------

    def _part(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.part"

    def _info(self, upload_id: str) -> Path:
        return self.root / f"{upload_id}.json"

    def part_path(self, upload: Upload) -> Path:
        return self._part(upload.id)

    def _save(self, upload: Upload) -> None:
        tmp = self.root / f".{upload.id}.{secrets.token_hex(4)}.json"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(asdict(upload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._info(upload.id))

    def create(self, dock: str, length: int, metadata: dict[str, str]) -> Upload:
        if length > self.max_size:
            raise UploadError(413, f"Upload-Length {length} exceeds Tus-Max-Size {self.max_size}")
        upload = Upload(secrets.token_urlsafe(16), length, dock, metadata, time.time())
        fd = os.open(self._part(upload.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        self._save(upload)
        self._running[upload.id] = _Running(hashlib.sha256(), 0)
        return upload

    def get(self, upload_id: str) -> Upload | None:
        """The upload, or None if unknown or expired (an expired one is removed on sight)."""
        if not _ID.fullmatch(upload_id):
            return None
        try:
            upload = Upload(**json.loads(self._info(upload_id).read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        if self.expires_at(upload) < time.time():
            self.discard(upload)
            return None
        return upload

    def offset(self, upload: Upload) -> int:
        try:
            return self._part(upload.id).stat().st_size
        except FileNotFoundError:
            return upload.length if upload.evidence_id else 0

    def expires_at(self, upload: Upload) -> float:
        try:
            last = self._part(upload.id).stat().st_mtime
        except FileNotFoundError:
            last = upload.created_at
        return max(last, upload.created_at) + self.expiry_seconds

    def lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def discard(self, upload: Upload) -> None:
        """Remove an upload's files (termination, expiry, rejection, or after finalising)."""
        for path in (self._part(upload.id), self._info(upload.id), self._guard(upload.id)):
            path.unlink(missing_ok=True)
        self._running.pop(upload.id, None)
        self._locks.pop(upload.id, None)

    def mark_finalised(self, upload: Upload, evidence_id: str) -> None:
        """Keep a small record so a retried finalisation finds its receipt; drop the bytes."""
        upload.evidence_id = evidence_id
        self._save(upload)
        self._part(upload.id).unlink(missing_ok=True)
        self._running.pop(upload.id, None)

    def sweep(self) -> int:
        """Remove expired uploads; returns how many."""
        removed = 0
        for info in self.root.glob("*.json"):
            upload_id = info.stem
            if _ID.fullmatch(upload_id) and self.get(upload_id) is None:
                removed += 1
        for stray in self.root.glob(".*.json"):  # an interrupted _save
            if stray.stat().st_mtime + 60 < time.time():
                stray.unlink(missing_ok=True)
        return removed

    # --- bytes -----------------------------------------------------------------------------

    def _running_hash(self, upload: Upload, offset: int) -> _Running:
        running = self._running.get(upload.id)
        if running is None or running.offset != offset:
            # After a restart (or a lost in-memory state) rebuild the hash from the bytes on disk.
            hasher = hashlib.sha256()
            with open(self._part(upload.id), "rb") as f:
                while chunk := f.read(_WRITE_BLOCK):
                    hasher.update(chunk)
            running = self._running[upload.id] = _Running(hasher, offset)
        return running

    async def write(
        self,
        upload: Upload,
        offset: int,
        body: AsyncIterator[bytes],
        checksum: tuple[str, bytes] | None,
    ) -> int:
        """Append a PATCH body at ``offset``; return the new offset.

        A chunk whose checksum fails, that overruns Upload-Length, or that breaks off while a
        checksum was promised is cut back off: the offset stays where it was.
        """
        running = await asyncio.to_thread(self._running_hash, upload, offset)
        saved = running.hasher.copy()
        chunk_hash = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        written = 0
        pending: list[bytes] = []
        pending_size = 0
        path = self._part(upload.id)
        guard = self._guard(upload.id)
        if chunk_hash is not None:
            # Durable before the bytes it guards: a crash mid-chunk is cut back on restart.
            await asyncio.to_thread(write_atomic, guard, str(offset))
        with open(path, "r+b") as f:
            f.seek(offset)

            def flush(data: bytes) -> None:
                running.hasher.update(data)
                if chunk_hash is not None:
                    chunk_hash.update(data)
                f.write(data)

            # One block is hashed and written in a worker thread while the next is received
            # (hashlib and file writes release the GIL); blocks stay in order.
            in_flight: asyncio.Future[None] | None = None

            async def settle() -> None:
                nonlocal in_flight
                if in_flight is not None:
                    block, in_flight = in_flight, None
                    await block

            try:
                async for piece in body:
                    if not piece:
                        continue
                    written += len(piece)
                    if offset + written > upload.length:
                        raise UploadError(400, "request body runs past Upload-Length")
                    pending.append(piece)
                    pending_size += len(piece)
                    if pending_size >= _WRITE_BLOCK:
                        await settle()
                        in_flight = asyncio.ensure_future(
                            asyncio.to_thread(flush, b"".join(pending))
                        )
                        pending, pending_size = [], 0
                await settle()
                if pending:
                    await asyncio.to_thread(flush, b"".join(pending))
                if chunk_hash is not None and chunk_hash.digest() != checksum[1]:  # type: ignore[index]
                    raise UploadError(
                        460,
                        f"Upload-Checksum mismatch: the chunk's "
                        f"{checksum[0]} differs; chunk discarded",
                    )  # type: ignore[index]
                if offset + written == upload.length or chunk_hash is not None:
                    await asyncio.to_thread(_sync, f)  # complete, or about to drop the guard
                guard.unlink(missing_ok=True)
            except BaseException:
                if in_flight is not None:  # let the block in the worker finish before cutting
                    await asyncio.wait([in_flight])
                # Back to the last good offset: keep what arrived only when nothing was promised
                # about it (tus lets a server keep a broken-off PATCH's bytes).
                if chunk_hash is not None or offset + written > upload.length or written == 0:
                    f.truncate(offset)
                    running.hasher, running.offset = saved, offset
                    guard.unlink(missing_ok=True)
                else:
                    f.flush()
                    os.fsync(f.fileno())
                    running.offset = f.tell()
                raise
        running.offset = offset + written
        return running.offset

    def sha256(self, upload: Upload) -> str:
        """The whole-file SHA-256 of a complete upload."""
        return self._running_hash(upload, upload.length).hasher.hexdigest()


def _sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


# --- tus header parsing (tus 1.0.0 §3) ---------------------------------------------------------

_META_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
MAX_METADATA_VALUE = 1024


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional)."""
    metadata: dict[str, str] = {}
    if not header or not header.strip():
        return metadata
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        if len(parts) > 2 or not _META_KEY.fullmatch(parts[0]):
            raise UploadError(400, f"malformed Upload-Metadata pair {pair.strip()[:40]!r}")
        key = parts[0]
        if key in metadata:
            raise UploadError(400, f"Upload-Metadata key {key!r} appears twice")
        raw = b""
        if len(parts) == 2:
            try:
                raw = base64.b64decode(parts[1], validate=True)
            except binascii.Error:
                raise UploadError(400, f"Upload-Metadata {key!r} is not valid base64") from None
        if len(raw) > MAX_METADATA_VALUE:
            raise UploadError(
                400, f"Upload-Metadata {key!r} is longer than {MAX_METADATA_VALUE} bytes"
            )
        try:
            metadata[key] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UploadError(400, f"Upload-Metadata {key!r} is not UTF-8") from None
    return metadata


def parse_offset(value: str | None, name: str) -> int:
    if value is None:
        raise UploadError(400, f"missing {name} header")
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise UploadError(400, f"{name} must be a non-negative integer, not {value[:40]!r}")
    return int(value)


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    if value is None:
        return None
    algorithm, _, digest = value.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise UploadError(
            400,
            f"unsupported checksum algorithm {algorithm[:20]!r}: use "
            f"{', '.join(CHECKSUM_ALGORITHMS)}",
        )
    try:
        raw = base64.b64decode(digest, validate=True)
    except binascii.Error:
        raise UploadError(400, "Upload-Checksum digest is not base64") from None
    if len(raw) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise UploadError(400, f"Upload-Checksum digest has the wrong length for {algorithm}")
    return algorithm, raw
