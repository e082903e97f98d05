"""Fault tests of the ingest path, with real processes: the dock agent as ``bwv dock run``
subprocesses, the ingest service as ``bwv serve`` under uvicorn over TLS, and (for the S3 store)
a real Ceph RADOS Gateway. Each test breaks something on the way and asserts that nothing is lost:

- every clip arrives exactly once: one ``clip`` row and one ``clip.ingested`` leaf per SHA-256,
  and the stored original hashes to the camera file's SHA-256;
- no camera file is deleted before its receipt exists (a verified receipt in the dock's
  ``receipts.jsonl``, a receipted row in its queue, and a clip row on the service), checked after
  every fault and continuously by a watchdog thread;
- every camera file is eventually deleted, and only after its receipt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bwv.ingest.receipts import verify_receipt
from bwv.records.tables import Clip
from bwv.store import open_store
from tests.support.cli import bwv_process
from tests.support.dockprocess import CHUNK, CameraFile, DockProcess, put_clip
from tests.support.ingestserver import IngestServer, make_server
from tests.support.ledger import leaves, pinned
from tests.support.records import clip_rows

CLIP = Clip.__table__
KIB = 1024
MIB = 1024 * KIB
CAMERA_GONE = ("receipted", "wiped")


# --- the dock agent as a process ---------------------------------------------------------------


@pytest.fixture
def dock_processes() -> Iterator[list[DockProcess]]:
    """Every dock a test makes; each is killed at the end whatever happened."""
    made: list[DockProcess] = []
    yield made
    for dock in made:
        dock.kill()


def new_dock(
    made: list[DockProcess], server: IngestServer, root: Path, name: str, **options: Any
) -> DockProcess:
    dock = DockProcess(server, root / "docks", name, **options)
    made.append(dock)
    return dock


# --- the service's side ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ServiceUpload:
    id: str
    sha256: str | None
    length: int
    offset: int
    evidence_id: str | None


def service_uploads(server: IngestServer) -> list[ServiceUpload]:
    """The service's tus uploads as its upload directory holds them (finalised ones included:
    the service keeps their small record so a retried finalisation finds its receipt)."""
    found = []
    for info in (server.data_dir / "uploads").glob("*.json"):
        if info.name.startswith("."):
            continue
        try:
            record = json.loads(info.read_text())
        except (OSError, ValueError):
            continue  # replaced while we read it
        part = info.with_suffix(".part")
        try:
            offset = part.stat().st_size
        except FileNotFoundError:
            offset = record["length"] if record.get("evidence_id") else 0
        found.append(
            ServiceUpload(
                record["id"],
                record["metadata"].get("sha256"),
                record["length"],
                offset,
                record.get("evidence_id"),
            )
        )
    return found


# --- waiting and the invariants ----------------------------------------------------------------


def wait_for(
    condition: Callable[[], Any],
    what: str,
    *,
    timeout: float,
    docks: Sequence[DockProcess] = (),
    server: IngestServer | None = None,
    interval: float = 0.1,
) -> Any:
    """Poll ``condition`` until it returns something true; fail with the logs' tails if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {what}\n{tails(docks, server)}"
            )
        time.sleep(interval)


def tails(docks: Sequence[DockProcess], server: IngestServer | None = None) -> str:
    parts = [d.log_tail() for d in docks]
    if server is not None and server.log is not None and server.log.exists():
        lines = server.log.read_text(errors="replace").splitlines()[-15:]
        parts.append(f"--- service ({server.log.name}):\n" + "\n".join(lines))
    return "\n".join(parts)


def violations(server: IngestServer, clips: list[CameraFile]) -> list[str]:
    """Camera files that are gone without a receipt (dock side) and a clip row (service side).

    Existence is checked first: the dock records the receipt before it deletes, so a file seen
    gone here must already have its receipt when we look for it next.
    """
    gone = [c for c in clips if not c.path.exists()]
    if not gone:
        return []
    stored = {row.sha256 for row in clip_rows(server.settings)}
    receipts = {c.dock.name: c.dock.receipts() for c in gone}
    found = []
    for clip in gone:
        if clip.sha256 not in receipts[clip.dock.name]:
            found.append(f"{clip.path} was deleted with no receipt in the dock's receipts.jsonl")
        if clip.sha256 not in stored:
            found.append(f"{clip.path} was deleted with no clip row on the service")
    return found


def assert_nothing_wiped_without_receipt(server: IngestServer, clips: list[CameraFile]) -> None:
    """The check after each fault: every camera file that is gone has a verified receipt in the
    dock's receipts.jsonl, a receipted (or wiped) queue row, and a clip row on the service."""
    assert violations(server, clips) == []
    keyring = pinned(server)
    for clip in clips:
        if clip.path.exists():
            continue
        entry = clip.dock.receipts()[clip.sha256]
        verify_receipt(entry["receipt"], keyring, sha256=clip.sha256, size=clip.size)
        row = clip.dock.row(clip)
        assert row["state"] in CAMERA_GONE and row["evidence_id"], row


class Watchdog:
    """Checks :func:`violations` every 50 ms in a thread while the faults happen.

    ``found`` holds every violation seen; ``checks`` counts the checks that ran to the end, and
    ``errors`` the ones that could not (a read that met a file being replaced, say)."""

    def __init__(self, server: IngestServer, clips: list[CameraFile]) -> None:
        self.server, self.clips = server, clips
        self.found: list[str] = []
        self.errors: list[str] = []
        self.checks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.found.extend(violations(self.server, self.clips))
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                self.checks += 1

    def assert_clean(self) -> None:
        assert self.found == []
        assert self.checks >= 10 and len(self.errors) <= self.checks // 10, self.errors[:5]

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def wait_all_wiped(
    server: IngestServer, clips: list[CameraFile], docks: list[DockProcess], timeout: float
) -> None:
    def done() -> bool:
        return all(not c.path.exists() for c in clips) and all(
            all(r["state"] == "wiped" for r in d.status()) for d in docks
        )

    wait_for(done, "every camera file wiped", timeout=timeout, docks=docks, server=server)


def assert_every_clip_arrived_once(
    server: IngestServer, clips: list[CameraFile], store_url: str | None = None
) -> None:
    """One clip row and one clip.ingested leaf per SHA-256, nothing else; the stored original
    hashes to the camera file's SHA-256; the dock holds a verified receipt for it and wiped it."""
    rows = clip_rows(server.settings)
    ingested = leaves(server.settings, "clip.ingested")
    assert sorted(r.sha256 for r in rows) == sorted(c.sha256 for c in clips)
    assert sorted(leaf["sha256"] for leaf in ingested) == sorted(c.sha256 for c in clips)
    by_sha = {r.sha256: r for r in rows}
    store = open_store(store_url or server.settings.store_url)
    keyring = pinned(server)
    for clip in clips:
        row = by_sha[clip.sha256]
        assert row.size == clip.size and row.dock == clip.dock.name
        digest = hashlib.sha256()
        for chunk in store.read_chunks("originals", clip.sha256):
            digest.update(chunk)
        assert digest.hexdigest() == clip.sha256, f"stored original of {clip.path} differs"
        receipt = clip.dock.receipts()[clip.sha256]["receipt"]
        fields = verify_receipt(receipt, keyring, sha256=clip.sha256, size=clip.size)
        assert fields["evidence_id"] == row.evidence_id
        queued = clip.dock.row(clip)
        assert (queued["state"], queued["evidence_id"]) == ("wiped", row.evidence_id)
        assert not clip.path.exists() and not clip.marker.exists()


def in_flight(server: IngestServer, at_least: int = 1) -> list[ServiceUpload]:
    """Uploads the service holds part of: at least ``at_least`` bytes, not all of them."""
    return [u for u in service_uploads(server) if at_least <= u.offset < u.length]


def assert_resumed_in_place(
    server: IngestServer, clips: list[CameraFile], interrupted: dict[str, str]
) -> None:
    """Each interrupted upload (sha256 -> upload id) was finished in place: the dock's queue
    still names that upload, it is the one that was finalised, and no other upload of the same
    clip received bytes (the clip was not sent again from byte zero)."""
    assert interrupted, "no upload was interrupted mid-way: the fault missed"
    uploads = service_uploads(server)
    for clip in clips:
        mine = [u for u in uploads if u.sha256 == clip.sha256]
        finalised = [u for u in mine if u.evidence_id]
        assert len(finalised) == 1, f"{clip.path}: {len(finalised)} finalised uploads"
        resent = [u for u in mine if u is not finalised[0] and u.offset > 0]
        assert resent == [], f"{clip.path} was sent again in another upload: {resent}"
        if clip.sha256 in interrupted:
            upload_id = interrupted[clip.sha256]
            assert finalised[0].id == upload_id, f"{clip.path} finished in another upload"
            url = clip.dock.upload_urls()[str(clip.path)]
            assert url is not None and url.endswith(f"/files/{upload_id}")


# --- 1. the dock is killed mid-upload -----------------------------------------------------------


def test_dock_killed_mid_upload_three_times_loses_nothing_and_resumes(
    ingest: IngestServer, dock_processes: list[DockProcess], tmp_path: Path
) -> None:
    dock = new_dock(dock_processes, ingest, tmp_path, "dock-kill9", max_rate=2.0)
    clips = [put_clip(dock, dock.bays[i % 2], i, size=4 * MIB + 123 * i) for i in range(3)]
    interrupted: dict[str, str] = {}
    with Watchdog(ingest, clips) as watchdog:
        dock.start()
        received = 0
        for kill in range(3):
            # Kill only once this run has moved the uploads on by another chunk or two.
            before = received

            def moved_on(before: int = before) -> list[ServiceUpload]:
                uploads = service_uploads(ingest)
                partial = [u for u in uploads if 0 < u.offset < u.length]
                total = sum(u.offset for u in uploads)
                return partial if total >= before + 2 * CHUNK else []

            partial = wait_for(
                moved_on,
                f"upload progress before kill {kill + 1}",
                timeout=30,
                docks=[dock],
                server=ingest,
            )
            dock.kill()
            for upload in partial:
                interrupted[upload.sha256 or "?"] = upload.id
            received = sum(u.offset for u in service_uploads(ingest))
            assert_nothing_wiped_without_receipt(ingest, clips)
            assert any(c.path.exists() for c in clips), "the kill came after every upload"
            dock.start()
        wait_all_wiped(ingest, clips, [dock], timeout=60)
    assert dock.exit_codes == [-signal.SIGKILL] * 3
    watchdog.assert_clean()
    assert_every_clip_arrived_once(ingest, clips)
    assert_resumed_in_place(ingest, clips, interrupted)


# --- 2. the service is killed mid-upload --------------------------------------------------------


def test_service_killed_mid_upload_dock_resumes_from_the_service_offset(
    ingest: IngestServer, dock_processes: list[DockProcess], tmp_path: Path
) -> None:
    dock = new_dock(dock_processes, ingest, tmp_path, "dock-a", max_rate=1.5)
    clips = [put_clip(dock, dock.bays[i % 2], i, size=3 * MIB + 77 * i) for i in range(2)]
    with Watchdog(ingest, clips) as watchdog:
        dock.start()
        partial = wait_for(
            lambda: in_flight(ingest, at_least=2 * CHUNK),
            "an upload half-way",
            timeout=30,
            docks=[dock],
            server=ingest,
        )
        ingest.kill()
        held = {u.id: u.offset for u in service_uploads(ingest)}
        assert_nothing_wiped_without_receipt(ingest, clips)
        ingest.start()
        wait_all_wiped(ingest, clips, [dock], timeout=60)
        assert dock.running, f"the dock exited when the service died\n{dock.log_tail()}"
    watchdog.assert_clean()
    assert_every_clip_arrived_once(ingest, clips)
    assert_resumed_in_place(ingest, clips, {u.sha256 or "?": u.id for u in partial})
    assert all(held[u.id] >= 2 * CHUNK for u in partial)  # kept across the crash, not zeroed


# --- 3. the store of record is unavailable at finalisation ---------------------------------------


def wait_refused_by_store(
    server: IngestServer, dock: DockProcess, clips: list[CameraFile], timeout: float = 40
) -> None:
    """Every clip fully uploaded, and its finalisation answered 503 at least once."""

    def refused() -> bool:
        rows = dock.status()
        complete = {u.sha256 for u in service_uploads(server) if u.offset == u.length}
        return len(rows) == len(clips) and all(
            r["attempts"] >= 1
            and "store unavailable" in (r["last_error"] or "")
            and r["sha256"] in complete
            for r in rows
        )

    wait_for(
        refused,
        "finalisation refused by the store",
        timeout=timeout,
        docks=[dock],
        server=server,
    )


def assert_refused_and_kept(
    server: IngestServer, dock: DockProcess, clips: list[CameraFile]
) -> None:
    """No receipt, no clip row, no clip.ingested leaf; camera copies and complete uploads kept."""
    assert clip_rows(server.settings) == []
    assert leaves(server.settings, "clip.ingested") == []
    assert dock.receipts() == {}
    for clip in clips:
        assert clip.path.exists() and clip.marker.exists()
        assert hashlib.sha256(clip.path.read_bytes()).hexdigest() == clip.sha256
        assert dock.row(clip)["state"] not in (*CAMERA_GONE, "rejected")
    complete = {u.sha256: u for u in service_uploads(server) if u.offset == u.length}
    assert {c.sha256 for c in clips} <= set(complete)
    assert all(u.evidence_id is None for u in complete.values())


@contextlib.contextmanager
def immutable(directory: Path) -> Iterator[None]:
    """Make ``directory`` refuse new entries, for root too (``chattr +i``; mode bits do not
    stop root, which is who the tests run as in CI)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i", str(directory)], capture_output=True)
    if not done or done.returncode != 0:
        pytest.skip("cannot make a directory immutable here (chattr +i refused)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_local_store_read_only_at_finalisation_keeps_everything_until_it_is_writable(
    ingest: IngestServer, dock_processes: list[DockProcess], tmp_path: Path
) -> None:
    store = ingest.data_dir / "store"
    assert store.is_dir() and not any(store.iterdir())  # the service checked it at start-up
    dock = new_dock(dock_processes, ingest, tmp_path, "dock-a")
    clips = [put_clip(dock, bay, i, size=600 * KIB + i) for i, bay in enumerate(dock.bays)]
    with Watchdog(ingest, clips) as watchdog:
        with immutable(store):
            probe = store / "probe"
            with pytest.raises(OSError):
                probe.write_bytes(b"")  # really unwritable, as root too
            dock.start()
            wait_refused_by_store(ingest, dock, clips)
            assert_refused_and_kept(ingest, dock, clips)
            assert not any(store.iterdir())
        wait_all_wiped(ingest, clips, [dock], timeout=60)
    watchdog.assert_clean()
    assert_every_clip_arrived_once(ingest, clips)


def test_s3_store_down_at_finalisation_keeps_everything_until_it_is_back(
    rgw: Any, dock_processes: list[DockProcess], tmp_path: Path
) -> None:
    store_url = rgw.url(f"faults-{secrets.token_hex(4)}")
    server = make_server(tmp_path, store_url=store_url)
    server.env["BWV_STORE_URL"] = store_url
    server.start()  # creates the bucket with object lock while the gateway is up
    gateway_down = False
    try:
        dock = new_dock(dock_processes, server, tmp_path, "dock-s3")
        clips = [put_clip(dock, bay, i, size=600 * KIB + i) for i, bay in enumerate(dock.bays)]
        with Watchdog(server, clips) as watchdog:
            rgw.stop()
            gateway_down = True
            dock.start()
            wait_refused_by_store(server, dock, clips)
            assert_refused_and_kept(server, dock, clips)
            rgw.start()
            gateway_down = False
            wait_all_wiped(server, clips, [dock], timeout=60)
        watchdog.assert_clean()
        assert_every_clip_arrived_once(server, clips, store_url)
    finally:
        if gateway_down:
            rgw.start()
        for dock in dock_processes:
            dock.kill()
        server.stop()


# --- 4. the service is unreachable for 30 s ------------------------------------------------------


@pytest.mark.slow
def test_service_unreachable_for_30s_dock_waits_and_resumes(
    ingest: IngestServer, dock_processes: list[DockProcess], tmp_path: Path
) -> None:
    dock = new_dock(dock_processes, ingest, tmp_path, "dock-a", max_rate=1.0)
    clips = [put_clip(dock, dock.bays[i % 2], i, size=2 * MIB + 55 * i) for i in range(3)]
    with Watchdog(ingest, clips) as watchdog:
        dock.start()
        partial = wait_for(
            lambda: in_flight(ingest, at_least=CHUNK),
            "an upload under way",
            timeout=30,
            docks=[dock],
            server=ingest,
        )
        ingest.stop()
        down_since = time.monotonic()
        attempts: list[int] = []
        while time.monotonic() - down_since < 30:
            time.sleep(1)
            assert dock.running, f"the dock gave up while the service was down\n{dock.log_tail()}"
            assert_nothing_wiped_without_receipt(ingest, clips)
            rows = dock.status()
            assert not [r for r in rows if r["state"] in ("rejected", "failed")], rows
            attempts.append(sum(r["attempts"] for r in rows))
        waiting = [r for r in dock.status() if r["state"] not in CAMERA_GONE]
        assert waiting, "every clip was done before the outage: the fault missed"
        tried = [r for r in waiting if r["attempts"]]  # the rest wait for a free upload worker
        assert tried and all("network error" in (r["last_error"] or "") for r in tried), waiting
        assert attempts[-1] > attempts[0] >= 1, f"no retries during the outage: {attempts}"
        assert all(c.path.exists() for c in clips if dock.row(c)["state"] not in CAMERA_GONE)
        ingest.start()
        # Backoff is capped at 30 s, so the next retry comes within that after the service is up.
        wait_all_wiped(ingest, clips, [dock], timeout=90)
    watchdog.assert_clean()
    assert_every_clip_arrived_once(ingest, clips)
    assert_resumed_in_place(ingest, clips, {u.sha256 or "?": u.id for u in partial})


# --- 5. the dock claims the wrong hash -----------------------------------------------------------


def test_wrong_claimed_hash_is_rejected_and_the_camera_copy_kept(
    ingest: IngestServer, dock_processes: list[DockProcess], tmp_path: Path
) -> None:
    from docks.queue import ClipQueue

    dock = new_dock(dock_processes, ingest, tmp_path, "dock-a", bays=1)
    clip = put_clip(dock, dock.bays[0], 1, size=300 * KIB)
    # The dock queued and hashed the clip, then its queue row's hash got corrupted on disk.
    st = clip.path.stat()
    with ClipQueue.open(dock.state) as queue:
        queued = queue.add(
            bay=dock.bays[0].name,
            camera=f"CAM-{dock.name}-{dock.bays[0].name}",
            path=clip.path,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
        )
        assert queued is not None
        queue.mark_hashed(queued.id, clip.sha256)
    wrong = clip.sha256[:-1] + ("0" if clip.sha256[-1] != "0" else "1")
    with contextlib.closing(sqlite3.connect(dock.state / "queue.sqlite3")) as conn, conn:
        conn.execute("UPDATE clips SET sha256 = ? WHERE id = ?", (wrong, queued.id))

    dock.start()
    row = wait_for(
        lambda: [r for r in dock.status() if r["state"] == "rejected"],
        "the clip rejected",
        timeout=30,
        docks=[dock],
        server=ingest,
    )[0]
    assert "422" in row["last_error"] and "not the claimed" in row["last_error"]
    time.sleep(1.0)  # several more polls: a rejected clip is not sent again
    rejected = leaves(ingest.settings, "clip.rejected")
    assert [(x["sha256"], x["details"]["claimed_sha256"]) for x in rejected] == [
        (clip.sha256, wrong)
    ]
    assert clip_rows(ingest.settings) == [] and leaves(ingest.settings, "clip.ingested") == []
    assert clip.path.exists() and clip.marker.exists()
    assert hashlib.sha256(clip.path.read_bytes()).hexdigest() == clip.sha256
    assert dock.receipts() == {}
    assert list((ingest.data_dir / "uploads").glob("*.part")) == []  # the bytes were discarded
    assert dock.stop() == 3  # the report counts it as kept on the camera
    report = dock.logs[-1].read_text()
    assert "rejected 1" in report and f"kept on camera: {clip.path}" in report
    shown = json.loads(
        bwv_process(
            "dock", "status", "--state", str(dock.state), "--json", check=True, timeout=60
        ).stdout
    )
    assert [(r["file"], r["state"]) for r in shown] == [(clip.path.name, "rejected")]


# --- 6. many docks at once ----------------------------------------------------------------------


def test_four_docks_five_clips_each_all_stored_exactly_once(
    ingest: IngestServer, dock_processes: list[DockProcess], tmp_path: Path
) -> None:
    fleet = [new_dock(dock_processes, ingest, tmp_path, f"dock-{n}") for n in range(4)]
    clips = []
    for n, dock in enumerate(fleet):
        clips.append(put_clip(dock, dock.bays[0], 0, playable=True, seed=n))
        clips += [put_clip(dock, dock.bays[i % 2], i, size=400 * KIB + i) for i in range(1, 5)]
    assert len({c.sha256 for c in clips}) == 20
    with Watchdog(ingest, clips) as watchdog:
        for dock in fleet:
            dock.start()
        wait_all_wiped(ingest, clips, fleet, timeout=90)
    watchdog.assert_clean()
    assert_every_clip_arrived_once(ingest, clips)
    statuses = {r.sha256: r.status for r in clip_rows(ingest.settings)}
    assert sorted(statuses.values()).count("playable") == 4
