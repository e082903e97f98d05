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
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bwv.base.clock import system_clock
from bwv.base.errors import BwvError
from bwv.base.files import fsync_dir, write_atomic

log = logging.getLogger("bwv.ingest")
_ID = re.compile(r"[A-Za-z0-9_-]{22}")
_WRITE_BLOCK = 1 << 20
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
# A dock may owe at most this share of the space left for uploads, so one cannot starve the rest.
DOCK_SHARE_OF_FREE = 4
# Scratch files a killed process left (an interrupted _save or restore) are removed after this.
STALE_SCRATCH_SECONDS = 300


def _now() -> float:
    """The time now, in seconds since the epoch (as upload records and file times keep it)."""
    return system_clock().timestamp()


class UploadError(BwvError):
    """A request about an upload that the client must change before retrying (HTTP 4xx, the
    status given: tus answers many). ``recorded`` says a leaf already tells of it (e.g.
    ``clip.rejected``); ``headers`` go with the answer (e.g. ``Tus-Version``)."""

    def __init__(
        self,
        status: int,
        diagnosis: str,
        *,
        recorded: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnosis)
        self.status = status
        self.recorded = recorded
        self.headers = headers or {}

    @property
    def why(self) -> str:
        """A refused upload's leaf names the status the dock was answered (tus answers carry no
        body a dock keeps)."""
        return f"{self.status}: {self.diagnosis}"

    @property
    def refusal(self) -> bool:
        """Always: a dock told 507 (no space for its upload) is refused until there is."""
        return True


@dataclass(frozen=True)
class Limits:
    """What one dock may hold in flight, and the space kept free on the upload filesystem."""

    max_uploads_per_dock: int = 200
    max_reserved_bytes_per_dock: int = 2 * 1024**4
    min_free_bytes: int = 1024**3


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
    def __init__(
        self, root: Path, max_size: int, expiry_seconds: float, limits: Limits | None = None
    ) -> None:
        self.root = root
        self.max_size = max_size
        self.expiry_seconds = expiry_seconds
        self.limits = limits or Limits()
        self._running: dict[str, _Running] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # Uploads not yet finalised: id -> (dock, Upload-Length), for the per-dock caps.
        self._reserved: dict[str, tuple[str, int]] = {}
        self._reserving = threading.Lock()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)  # clips in flight: owner only
        # One service per upload folder: a second one's _recover would cut the first one's live
        # part files back to their guards. Held (by the open descriptor) for the process's life.
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._lock_file = os.fdopen(fd, "r+b")  # held until close()
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise BwvError(
                "another bwv serve is using the upload folder (BWV_UPLOAD_DIR): stop it, or give "
                "each service its own upload folder"
            ) from None
        self._recover()
        for info in root.glob("*.json"):
            upload = self.get(info.stem) if _ID.fullmatch(info.stem) else None
            if upload is not None and upload.evidence_id is None:
                self._reserved[upload.id] = (upload.dock, upload.length)

    def close(self) -> None:
        """Let another service use the upload folder (the lock also goes with the process)."""
        self._lock_file.close()

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
        fsync_dir(self.root)

    def create(self, dock: str, length: int, metadata: dict[str, str]) -> Upload:
        if length > self.max_size:
            raise UploadError(413, f"Upload-Length {length} exceeds Tus-Max-Size {self.max_size}")
        with self._reserving:  # the caps are checked and the upload counted at once
            self._check_room(dock, length)
            upload = Upload(secrets.token_urlsafe(16), length, dock, metadata, _now())
            fd = os.open(self._part(upload.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            self._save(upload)
            self._reserved[upload.id] = (dock, length)
        self._running[upload.id] = _Running(hashlib.sha256(), 0)
        return upload

    def _check_room(self, dock: str, length: int) -> None:
        """Refuse an upload the dock's caps or the free space cannot take: 429 (retry once
        uploads in flight finish), 413 (it can never fit), 507 (the disk is short)."""
        mine = [size for owner, size in self._reserved.values() if owner == dock]
        limits = self.limits
        later = {"Retry-After": "60"}
        if length > limits.max_reserved_bytes_per_dock:
            raise UploadError(
                413,
                f"Upload-Length {length} exceeds the {limits.max_reserved_bytes_per_dock} bytes "
                "a dock may reserve in flight",
            )
        if len(mine) >= limits.max_uploads_per_dock:
            raise UploadError(
                429,
                f"dock {dock} already has {len(mine)} uploads in flight (the limit is "
                f"{limits.max_uploads_per_dock}): finish or terminate some first",
                headers=later,
            )
        if sum(mine) + length > limits.max_reserved_bytes_per_dock:
            raise UploadError(
                429,
                f"dock {dock} would reserve {sum(mine) + length} bytes in flight (the limit is "
                f"{limits.max_reserved_bytes_per_dock}): finish or terminate some uploads first",
                headers=later,
            )
        # Every upload in flight will need its remaining bytes; count them as taken already.
        # (A snapshot: the pops in discard/mark_finalised hold the same lock, but stat is slow.)
        owing = {i: max(0, size - self._size(i)) for i, (_, size) in list(self._reserved.items())}
        owed = sum(owing.values())
        room = shutil.disk_usage(self.root).free - limits.min_free_bytes  # for all uploads
        free = room - owed
        mine_owed = sum(n for i, n in owing.items() if self._reserved.get(i, ("",))[0] == dock)
        share = max(room, 0) // DOCK_SHARE_OF_FREE
        if length <= free and mine_owed + length > share:
            raise UploadError(
                429,
                f"dock {dock} would owe {mine_owed + length} bytes in flight, more than its "
                f"share ({share} bytes, 1/{DOCK_SHARE_OF_FREE} of the space free for uploads): "
                "finish some uploads first",
                headers=later,
            )
        if length > free:
            raise UploadError(
                507,
                f"insufficient storage: {max(free, 0)} bytes free for uploads, "
                f"{length} asked; retry later",
                headers={"Retry-After": "300"},
            )

    def _size(self, upload_id: str) -> int:
        try:
            return self._part(upload_id).stat().st_size
        except FileNotFoundError:
            return 0

    def get(self, upload_id: str) -> Upload | None:
        """The upload, or None if unknown or expired (an expired one is removed on sight)."""
        if not _ID.fullmatch(upload_id):
            return None
        try:
            upload = Upload(**json.loads(self._info(upload_id).read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError, TypeError):
            return None
        if self.expires_at(upload) < _now():
            if self._busy(upload_id):
                return upload  # a request or finalisation has it: not idle, whatever the clock
            self.discard(upload)
            return None
        return upload

    def _busy(self, upload_id: str) -> bool:
        lock = self._locks.get(upload_id)
        return lock is not None and lock.locked()

    def offset(self, upload: Upload) -> int:
        try:
            return self._part(upload.id).stat().st_size
        except FileNotFoundError:
            return upload.length if upload.evidence_id or self.stored(upload) else 0

    @staticmethod
    def stored(upload: Upload) -> str | None:
        """The SHA-256 under which the store took this upload's bytes, if it began to."""
        return upload.extra.get("stored")

    def expires_at(self, upload: Upload) -> float:
        """From the latest activity: a byte written, the bytes stored, the upload finalised."""
        try:
            last = self._part(upload.id).stat().st_mtime
        except FileNotFoundError:
            last = upload.created_at
        marks = (upload.extra.get(k) for k in ("stored_at", "finalised_at"))
        times = [t for t in marks if isinstance(t, int | float)]
        return max(last, upload.created_at, *times) + self.expiry_seconds

    def lock(self, upload_id: str) -> asyncio.Lock:
        return self._locks.setdefault(upload_id, asyncio.Lock())

    def discard(self, upload: Upload) -> None:
        """Remove an upload's files (termination, expiry, rejection, or after finalising)."""
        for path in (self._part(upload.id), self._info(upload.id), self._guard(upload.id)):
            path.unlink(missing_ok=True)
        fsync_dir(self.root)
        self._running.pop(upload.id, None)
        self._forget_lock(upload.id)
        with self._reserving:  # _check_room reads it under this lock
            self._reserved.pop(upload.id, None)

    def _forget_lock(self, upload_id: str) -> None:
        """Drop an upload's lock unless someone holds it (or waits for it): a new request must
        never get a fresh lock while a finalisation still holds the old one."""
        lock = self._locks.get(upload_id)
        if lock is not None and not lock.locked():
            self._locks.pop(upload_id, None)

    def mark_stored(self, upload: Upload, sha256: str | None) -> None:
        """Say, before the store takes the part file away, under which SHA-256 it will be: a
        retry after a failure past that point finds the bytes in the store (see restore).
        None: they never got there."""
        if sha256 is None:
            upload.extra.pop("stored", None)
        else:
            upload.extra["stored"] = sha256
            upload.extra["stored_at"] = _now()  # the part file's mtime is gone with it
        self._save(upload)

    def restore(self, upload: Upload, source: Any) -> None:
        """Copy the stored bytes back as the part file (a copy, never a link) for a retried
        finalisation whose first attempt moved them into the store and then failed."""
        tmp = self.root / f".{upload.id}.{secrets.token_hex(4)}.restore"
        try:
            with open(tmp, "xb") as dst:
                shutil.copyfileobj(source, dst, _WRITE_BLOCK)
                _sync(dst)
            os.replace(tmp, self._part(upload.id))
        finally:
            tmp.unlink(missing_ok=True)
        self._running.pop(upload.id, None)

    def mark_finalised(self, upload: Upload, evidence_id: str) -> None:
        """Keep a small record so a retried finalisation finds its receipt; drop the bytes."""
        upload.evidence_id = evidence_id
        upload.extra["finalised_at"] = _now()  # a retry finds the receipt for a while yet
        self._save(upload)
        self._part(upload.id).unlink(missing_ok=True)
        fsync_dir(self.root)
        self._running.pop(upload.id, None)
        with self._reserving:  # _check_room reads it under this lock
            self._reserved.pop(upload.id, None)

    def sweep(self) -> int:
        """Remove expired uploads; returns how many."""
        removed = 0
        for info in self.root.glob("*.json"):
            upload_id = info.stem
            # One a request or finalisation holds is not touched (get() leaves it too).
            if _ID.fullmatch(upload_id) and self.get(upload_id) is None:
                removed += 1
        # An interrupted _save or restore (a killed process runs no cleanup).
        for pattern, age in ((".*.json", 60), (".*.restore", STALE_SCRATCH_SECONDS)):
            for stray in self.root.glob(pattern):
                with contextlib.suppress(OSError):
                    if stray.stat().st_mtime + age < _now():
                        stray.unlink()
        for upload_id, lock in list(self._locks.items()):  # those of uploads now gone
            if not lock.locked() and not self._info(upload_id).exists():
                self._forget_lock(upload_id)
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
        checksum was promised is cut back off: the offset stays where it was. The caller holds
        :meth:`lock`, as finalisation does, so no upload is written once it is finalised (or
        being finalised); a complete one is never opened for writing at all.
        """
        if upload.evidence_id is not None or self.stored(upload):
            raise UploadError(409, "upload is already complete")
        if offset >= upload.length:
            async for piece in body:
                if piece:
                    raise UploadError(400, "request body runs past Upload-Length")
            return offset
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
                    await in_flight  # cleared only once it ended: a cancel here leaves it set
                    in_flight = None

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
                if pending:  # the tail, as in_flight: a cancel here still lets it finish first
                    in_flight = asyncio.ensure_future(asyncio.to_thread(flush, b"".join(pending)))
                    pending, pending_size = [], 0
                    await settle()
                if chunk_hash is not None and checksum and chunk_hash.digest() != checksum[1]:
                    raise UploadError(
                        460,
                        f"Upload-Checksum mismatch: the chunk's "
                        f"{checksum[0]} differs; chunk discarded",
                    )
                if offset + written == upload.length or chunk_hash is not None:
                    await asyncio.to_thread(_sync, f)  # complete, or about to drop the guard
                guard.unlink(missing_ok=True)
            except BaseException:
                # Let the block in the worker finish before cutting (even through a cancel).
                cancelled = in_flight is not None and await _until_done(in_flight)
                # Back to the last good offset: keep what arrived only when nothing was promised
                # about it (tus lets a server keep a broken-off PATCH's bytes).
                cut = chunk_hash is not None or offset + written > upload.length or written == 0

                def cut_back() -> None:  # disk work: in a worker, not on the event loop
                    if cut:
                        f.truncate(offset)
                        _sync(f)
                        running.hasher, running.offset = saved, offset
                        guard.unlink(missing_ok=True)
                    else:  # what arrived is kept, with the block not yet handed to a write
                        if pending:
                            flush(b"".join(pending))
                        _sync(f)
                        running.offset = f.tell()

                work = asyncio.ensure_future(asyncio.to_thread(cut_back))
                cancelled = await _until_done(work) or cancelled
                if not work.cancelled() and work.exception() is not None:
                    log.error("could not cut upload %s back: %s", upload.id, work.exception())
                if cancelled:
                    raise asyncio.CancelledError from None  # after the file is consistent
                raise
        running.offset = offset + written
        return running.offset

    def sha256(self, upload: Upload) -> str:
        """The whole-file SHA-256 of a complete upload."""
        return str(self._running_hash(upload, upload.length).hasher.hexdigest())


def _sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


async def _until_done(work: asyncio.Future[Any]) -> bool:
    """Wait for work in a worker thread to end, through any cancel (the file it works on must
    not be cut or closed under it); True if a cancel came meanwhile (re-raise it after)."""
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait([work])
        except asyncio.CancelledError:
            cancelled = True
    if not work.cancelled():
        work.exception()  # retrieved: the error that matters is the one being raised
    return cancelled


# --- tus header parsing (tus 1.0.0 §3) ---------------------------------------------------------

_META_KEY = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
MAX_METADATA_VALUE = 1024
MAX_METADATA_KEYS = 32


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional)."""
    metadata: dict[str, str] = {}
    if not header or not header.strip():
        return metadata
    pairs = header.split(",")
    if len(pairs) > MAX_METADATA_KEYS:
        raise UploadError(
            400, f"Upload-Metadata has {len(pairs)} keys; at most {MAX_METADATA_KEYS} are kept"
        )
    for pair in pairs:
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
