"""The dock agent: bays -> queue -> tus uploads -> verified receipts -> wiped cameras.

The one rule that matters: a camera file is deleted only after a receipt signed by the current
service key (the pinned one, or the head of the rotation chain followed from it) names that
file's exact SHA-256 and size, the receipt has been recorded durably (queue row and
``receipts.jsonl``, both fsynced), and the file still has the size and mtime it had when it was
hashed. Anything else keeps the file on the camera.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import tenacity

from bwv.base.clock import system_clock
from bwv.base.errors import BwvError
from bwv.base.files import fsync_dir
from bwv.custody.rotation import follow, head
from bwv.ingest.receipts import ReceiptError, UnpinnedKey, verify_receipt
from bwv.keys import Keyring
from docks.client import (
    RetryPolicy,
    ServiceUnavailable,
    TusClient,
    UploadJob,
    UploadRejected,
    UploadStopped,
    is_retryable,
)
from docks.config import DockConfig, pin_keys
from docks.queue import (
    FAILED,
    RECEIPTED,
    REJECTED,
    WIPED,
    Clip,
    ClipQueue,
)
from docks.watcher import (
    BayWatcher,
    ClipChanged,
    ScanResult,
    check_unchanged,
    hash_file,
    marker_for,
)

log = logging.getLogger("bwv.dock")

CHANGED_AFTER_HASHING = "clip changed on the camera after hashing"
CHANGED_BEFORE_HASHING = "clip changed on the camera before it was hashed"
NEVER = float("inf")  # retry_after of a failed clip superseded by a newer version of its file


@dataclass
class RunReport:
    """What one :meth:`DockAgent.run` did: clips by final state, and non-clip files noticed."""

    wiped: list[Clip] = field(default_factory=list)
    rejected: list[Clip] = field(default_factory=list)
    failed: list[Clip] = field(default_factory=list)
    pending: list[Clip] = field(default_factory=list)
    non_clips: list[Path] = field(default_factory=list)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BwvError):
        return exc.diagnosis
    if isinstance(exc, httpx.TransportError):
        return f"network error ({type(exc).__name__}: {exc or 'no detail'})"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc} ({getattr(exc, 'filename', '')})"
    return f"{type(exc).__name__}: {exc}"


def _rfc3339(mtime_ns: int) -> str:
    moment = datetime.fromtimestamp(mtime_ns / 1e9, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _interleave_bays(clips: list[Clip]) -> list[Clip]:
    """Oldest first within each bay, bays taking turns, so parallel workers serve every bay."""
    by_bay: dict[str, list[Clip]] = {}
    for clip in clips:
        by_bay.setdefault(clip.bay, []).append(clip)
    ordered: list[Clip] = []
    queues = list(by_bay.values())
    while queues:
        ordered.extend(q.pop(0) for q in queues)
        queues = [q for q in queues if q]
    return ordered


class DockAgent:
    """Runs one dock: watches its bays, uploads finished clips, wipes what the service holds."""

    def __init__(
        self,
        config: DockConfig,
        *,
        http_client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.keyring = config.keyring()
        # Built first: a missing or unusable CA file stops the dock here, not at its first upload.
        self.client = TusClient.from_config(config, http_client=http_client)
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.queue = ClipQueue(config.queue_path)
        self.watcher = BayWatcher(config.bays, config.settle_seconds, clock=clock)
        self.retry = retry or RetryPolicy()
        self._receipts_lock = threading.Lock()
        self._keys_lock = threading.Lock()
        # A scan must not see a camera file just before its wipe and queue it again just after:
        # scanning-and-queueing and deleting-and-marking-wiped exclude each other.
        self._bay_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()
        self.queue.close()

    def __enter__(self) -> DockAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop_event: threading.Event | None = None, once: bool = False) -> RunReport:
        """Scan, queue, upload, verify, wipe.

        ``once=True``: take every clip finished now (waiting one settle interval for clips
        without a ``.done`` marker), process it and every clip left over from earlier runs, and
        return; clips that ended ``failed`` are retried by the next run. Otherwise loop every
        ``poll_interval`` until ``stop_event`` is set; in-flight uploads stop between chunks and
        resume from the service's offset next time.
        """
        stop = stop_event or threading.Event()
        report = RunReport()
        touched: set[int] = set()
        with ThreadPoolExecutor(self.config.parallel, thread_name_prefix="dock-upload") as pool:
            if once:
                self._run_once(pool, stop, report, touched)
            else:
                self._run_forever(pool, stop, report, touched)
        for clip_id in sorted(touched):
            clip = self.queue.get(clip_id)
            bucket = {WIPED: report.wiped, REJECTED: report.rejected, FAILED: report.failed}
            bucket.get(clip.state, report.pending).append(clip)
        return report

    def _run_once(
        self, pool: ThreadPoolExecutor, stop: threading.Event, report: RunReport, touched: set[int]
    ) -> None:
        result = self.scan()
        report.non_clips.extend(result.non_clips)
        if result.settling and not stop.is_set():
            stop.wait(self.config.settle_seconds + 0.05)
            result = self.scan()
            report.non_clips.extend(result.non_clips)
        while not stop.is_set():
            batch = [c for c in self.queue.due(now=sys.float_info.max) if c.id not in touched]
            if not batch:
                break
            touched.update(c.id for c in batch)
            futures = [
                pool.submit(self._process_safely, c.id, stop) for c in _interleave_bays(batch)
            ]
            wait(futures)
            report.non_clips.extend(self.scan().non_clips)  # a changed clip comes back as new

    def _run_forever(
        self, pool: ThreadPoolExecutor, stop: threading.Event, report: RunReport, touched: set[int]
    ) -> None:
        in_flight: dict[int, Future[Clip]] = {}
        while not stop.is_set():
            try:
                report.non_clips.extend(self.scan().non_clips)
                for clip in _interleave_bays(self.queue.due()):
                    if clip.id not in in_flight:
                        touched.add(clip.id)
                        in_flight[clip.id] = pool.submit(self._process_safely, clip.id, stop)
            except (BwvError, OSError, sqlite3.Error) as exc:  # keep running; say why
                log.error("dock loop: %s", _describe(exc))
            for clip_id in [i for i, f in in_flight.items() if f.done()]:
                del in_flight[clip_id]
            stop.wait(self.config.poll_interval)

    def scan(self) -> ScanResult:
        """Scan the bays once and queue the clips that are finished and new."""
        with self._bay_lock:
            return self._scan_locked()

    def _scan_locked(self) -> ScanResult:
        result = self.watcher.scan()
        for found in result.finished:
            clip = self.queue.add(
                bay=found.bay,
                camera=found.camera,
                path=found.path,
                size=found.size,
                mtime_ns=found.mtime_ns,
            )
            if clip is not None:
                log.info(
                    "found clip %d: %s (bay %s, camera %s, %d bytes%s)",
                    clip.id,
                    clip.path,
                    clip.bay,
                    clip.camera,
                    clip.size,
                    ", marked done" if found.marker else "",
                )
        return result

    # --- one clip ------------------------------------------------------------------------------

    def _process_safely(self, clip_id: int, stop: threading.Event) -> Clip:
        try:
            return self.process(clip_id, stop)
        except Exception as exc:  # a bug must not kill the worker or, worse, wipe anything
            log.exception("clip %d: unexpected error", clip_id)
            try:
                return self.queue.mark_failed(
                    clip_id, f"internal error: {_describe(exc)}", self._later(clip_id)
                )
            except BwvError:
                return self.queue.get(clip_id)

    def process(self, clip_id: int, stop: threading.Event | None = None) -> Clip:
        """Take one clip as far as it can go now: hash, upload, verify the receipt, wipe."""
        stop = stop or threading.Event()
        clip = self.queue.get(clip_id)
        if clip.state in (WIPED, REJECTED) or stop.is_set():
            return clip
        if clip.state == RECEIPTED:
            return self._wipe(clip)
        try:
            check_unchanged(clip.path, clip.size, clip.mtime_ns)
            if clip.sha256 is None:
                sha256 = hash_file(clip.path, clip.size, clip.mtime_ns)
                clip = self.queue.mark_hashed(clip.id, sha256)
                log.info("hashed clip %d: %s sha256 %s", clip.id, clip.path.name, sha256)
        except ClipChanged as exc:
            return self._changed(clip, exc)
        except OSError as exc:
            return self._fail(clip, f"cannot read the clip: {_describe(exc)}")

        try:
            document = self._upload(clip, stop)
        except UploadStopped:
            log.info("clip %d: stopped; it resumes on the next run", clip.id)
            return self.queue.get(clip.id)
        except UploadRejected as exc:
            try:
                check_unchanged(clip.path, clip.size, clip.mtime_ns)
            except ClipChanged as changed:
                return self._changed(clip, changed)
            log.error("rejected clip %d: %s: %s", clip.id, clip.path, exc.diagnosis)
            return self.queue.mark_rejected(clip.id, exc.diagnosis)
        except ClipChanged as exc:
            return self._changed(clip, exc)
        except OSError as exc:
            return self._fail(clip, f"cannot read the clip: {_describe(exc)}")
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if stop.is_set():
                log.info("clip %d: stopped while retrying (%s)", clip.id, _describe(exc))
                return self.queue.get(clip.id)
            return self._fail(clip, _describe(exc))

        clip = self.queue.mark_uploaded(clip.id)
        log.info("uploaded clip %d: %s (%d bytes)", clip.id, clip.path, clip.size)
        return self.handle_receipt(clip.id, document)

    def _upload(self, clip: Clip, stop: threading.Event) -> Any:
        def progress(url: str, offset: int) -> None:
            self.queue.set_upload(clip.id, url, offset)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            seconds = state.next_action.sleep if state.next_action else 0.0
            message = _describe(exc) if exc else "unknown error"
            self.queue.note_error(clip.id, message)
            log.warning("clip %d: %s; retrying in %.1fs", clip.id, message, seconds)

        for attempt in self.retry.retrying(stop_event=stop, before_sleep=before_sleep):
            with attempt:
                if stop.is_set():
                    raise UploadStopped("stopping")
                current = self.queue.get(clip.id)
                return self.client.upload(
                    self._job(current), on_progress=progress, should_stop=stop.is_set
                )
        raise ServiceUnavailable("retries ended without an answer")  # pragma: no cover

    def _job(self, clip: Clip) -> UploadJob:
        assert clip.sha256 is not None
        return UploadJob(
            path=clip.path,
            size=clip.size,
            sha256=clip.sha256,
            upload_url=clip.upload_url,
            metadata={
                "sha256": clip.sha256,
                "filename": clip.path.name,
                "camera": clip.camera,
                "recorded_at": _rfc3339(clip.mtime_ns),
                "bay": clip.bay,
            },
        )

    # --- receipt and wipe ----------------------------------------------------------------------

    def handle_receipt(self, clip_id: int, document: Any) -> Clip:
        """Verify the service's receipt for an uploaded clip; record it; then wipe the camera.

        A receipt that is not signed by a pinned key, or names other bytes, leaves the clip
        ``failed`` with the reason (its receipt is fetched again later) and the file in place.
        """
        clip = self.queue.get(clip_id)
        if clip.sha256 is None:
            return self._fail(clip, "no local SHA-256: the clip cannot be checked")
        try:
            try:
                fields = self._verify(document, clip)
            except UnpinnedKey as unpinned:
                if not self._follow_rotations(unpinned):
                    raise
                fields = self._verify(document, clip)
        except ReceiptError as exc:
            log.error("clip %d: receipt refused, camera file kept: %s", clip.id, exc.diagnosis)
            return self._fail(clip, f"receipt refused: {exc.diagnosis}")
        self._append_receipt(clip, document)
        clip = self.queue.mark_receipted(clip.id, document)
        log.info(
            "receipted clip %d: %s is evidence %s (ledger index %s)",
            clip.id,
            clip.path.name,
            fields.get("evidence_id"),
            fields.get("ledger_index"),
        )
        return self._wipe(clip)

    def _verify(self, document: Any, clip: Clip) -> dict[str, Any]:
        """The receipt's fields if the head of the followed key chain signed it. A receipt is
        fresh (the service signs it as it answers), so one signed by a key rotated away from is
        refused: whoever holds a leaked old key could sign one for bytes the service never
        stored."""
        assert clip.sha256 is not None
        current = head(self.keyring)
        try:
            return verify_receipt(document, Keyring([current]), sha256=clip.sha256, size=clip.size)
        except UnpinnedKey as unpinned:
            if self.keyring.find(unpinned.key.name, unpinned.key.key_id) is None:
                raise
            raise ReceiptError(
                f"receipt is signed by {unpinned.key.name}+{unpinned.key.key_id.hex()}, a service "
                f"key rotated away from (now {current.name}+{current.key_id.hex()}): a new "
                "receipt must be signed by the current key"
            ) from None

    def _follow_rotations(self, unpinned: UnpinnedKey) -> bool:
        """After a key rotation on the service: fetch its rotation statements, follow them from
        the pinned keys (each link signed by a key already trusted) and pin what they announce,
        in memory and in ``dock.json``. True if the receipt's key is now pinned; a forged or
        damaged statement raises :class:`ReceiptError`, so the camera file stays."""
        with self._keys_lock:
            if self.keyring.find(unpinned.key.name, unpinned.key.key_id) is not None:
                return True  # another worker followed them meanwhile
            try:
                served = self.client.keys()
            except (BwvError, httpx.TransportError) as exc:
                log.warning("cannot fetch the service's key rotations: %s", _describe(exc))
                return False
            statements = served.get("rotations") if isinstance(served, dict) else None
            if not isinstance(statements, list) or not statements:
                return False
            try:
                keyring = follow(self.keyring, statements)
            except BwvError as exc:
                raise ReceiptError(exc.diagnosis) from None
            added = [str(k) for k in keyring if k not in self.keyring]
            if added:
                self.keyring = keyring
                for key in added:
                    log.warning("service key rotated: now also trusting %s", key)
                try:
                    if not pin_keys(self.config.state_dir, added):
                        log.warning(
                            "no dock.json in %s: new keys kept for this run only",
                            self.config.state_dir,
                        )
                except (BwvError, OSError) as exc:
                    log.error("new service keys not saved: %s", _describe(exc))
            return keyring.find(unpinned.key.name, unpinned.key.key_id) is not None

    def _append_receipt(self, clip: Clip, document: Any) -> None:
        line = json.dumps(
            {
                "clip": clip.id,
                "bay": clip.bay,
                "camera": clip.camera,
                "path": str(clip.path),
                "size": clip.size,
                "sha256": clip.sha256,
                "recorded_at": system_clock().isoformat(timespec="milliseconds"),
                "receipt": document,
            },
            sort_keys=True,
        )
        path = self.config.receipts_path
        with self._receipts_lock:
            new = not path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                fsync_dir(path.parent)

    def _wipe(self, clip: Clip) -> Clip:
        """Delete the camera file of a receipted clip, unless it changed since it was hashed."""
        if clip.state != RECEIPTED or clip.receipt is None:
            raise BwvError(f"clip {clip.id} is not receipted: refusing to wipe it")
        try:
            check_unchanged(clip.path, clip.size, clip.mtime_ns)
        except ClipChanged:
            if clip.path.exists():
                log.error("clip %d: %s, not wiped: %s", clip.id, CHANGED_AFTER_HASHING, clip.path)
                return self.queue.mark_failed(clip.id, CHANGED_AFTER_HASHING, NEVER)
            log.info("wiped clip %d: %s was already gone from the bay", clip.id, clip.path)
            return self.queue.mark_wiped(clip.id)
        with self._bay_lock:
            try:
                clip.path.unlink()
                fsync_dir(clip.path.parent)
            except FileNotFoundError:
                pass
            except OSError as exc:
                message = f"cannot delete the camera file: {_describe(exc)}"
                log.error("clip %d: %s", clip.id, message)
                self.queue.note_error(clip.id, message)
                return self.queue.get(clip.id)
            try:
                marker_for(clip.path).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("clip %d: marker left in place: %s", clip.id, _describe(exc))
            clip = self.queue.mark_wiped(clip.id)
        log.info("wiped clip %d: %s deleted from camera %s", clip.id, clip.path, clip.camera)
        return clip

    # --- failures ------------------------------------------------------------------------------

    def _later(self, clip_id: int) -> float:
        attempts = self.queue.get(clip_id).attempts
        return system_clock().timestamp() + min(3600.0, 30.0 * 2.0 ** min(attempts, 7))

    def _fail(self, clip: Clip, reason: str) -> Clip:
        log.error("failed clip %d: %s: %s", clip.id, clip.path, reason)
        return self.queue.mark_failed(clip.id, reason, self._later(clip.id))

    def _changed(self, clip: Clip, exc: ClipChanged) -> Clip:
        """The file is not the one queued: gone (retry later) or changed (superseded)."""
        if clip.path.exists():
            # The watcher queues the file as it is now as a new clip once it has settled.
            reason = CHANGED_AFTER_HASHING if clip.sha256 else CHANGED_BEFORE_HASHING
            log.error("clip %d: %s: %s", clip.id, reason, clip.path)
            return self.queue.mark_failed(clip.id, reason, NEVER)
        return self._fail(clip, exc.diagnosis)


def status(state_dir: Path) -> list[dict[str, Any]]:
    """Every clip the dock has queued, oldest first, for ``bwv dock status``.

    Each row: id, bay, camera, file, path, size, sha256, state, progress (percent), attempts,
    last_error, evidence_id, updated_at.
    """
    path = Path(state_dir).expanduser() / "queue.sqlite3"
    if not path.exists():
        return []
    with ClipQueue(path) as queue:
        return queue.status()
