"""Ingest that never blocks and never lies (issue 9, finding 6, and the ingest part of 8): a dock
cannot reserve more than the disk or its caps allow, a camera's impossible clock cannot stop a
clip becoming evidence, bytes retention deleted become evidence again, what a dock names a clip
cannot take over a terminal, and every refused upload request is a leaf.

Every attack runs against the live service (``bwv serve`` under uvicorn over TLS)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bwv.ingest.uploads import Limits, Uploads
from bwv.records.tables import Clip
from bwv.services.context import Context
from bwv.services.retention import run_retention
from bwv.store import open_store
from bwv.store.local import LocalStore
from tests.support.apiserver import Api, start_api
from tests.support.cli import client_env, ok, run_bwv
from tests.support.ingestserver import IngestServer, make_server
from tests.support.tus import Dock, receipt_from

CLIP = Clip.__table__
GIB = 1024**3
IMPOSSIBLE = "9999-12-31T23:59:59-12:00"  # later than any UTC datetime can be


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _upload(api: Api, data: bytes, **metadata: str) -> dict[str, Any]:
    assert api.dock is not None
    created = api.dock.create(len(data), **metadata)
    assert created.status_code == 201, created.text
    done = api.dock.patch(created.headers["Location"], 0, data)
    assert done.status_code == 204, done.text
    return receipt_from(done)


def _clip(api: Api, evidence_id: str) -> Any:
    with api.ctx.engine.connect() as conn:
        return conn.execute(select(CLIP).where(CLIP.c.evidence_id == evidence_id)).one()


def _ingested(api: Api, before: int, sha256: str) -> dict[str, Any]:
    (leaf,) = [
        leaf
        for leaf in api.leaves_since(before)
        if leaf["action"] == "clip.ingested" and leaf["sha256"] == sha256
    ]
    return leaf


def _denials(api: Api, before: int) -> list[dict[str, Any]]:
    return [leaf for leaf in api.leaves_since(before) if leaf["action"] == "access.denied"]


# --- quotas ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IngestServer, Dock]]:
    """A service whose docks may hold 3 uploads and 10,000 bytes in flight."""
    server = make_server(
        tmp_path_factory.mktemp("capped"), dock_max_uploads=3, dock_max_reserved_bytes=10_000
    )
    server.start()
    dock = Dock(server, "dock-capped")
    try:
        yield server, dock
    finally:
        dock.http.close()
        Dock.opened.remove(dock)
        server.stop()


def _terminate(dock: Dock, locations: list[str]) -> None:
    for location in locations:
        assert dock.http.delete(location).status_code == 204


def test_a_dock_past_its_uploads_in_flight_is_told_to_retry_later_429(
    capped: tuple[IngestServer, Dock],
) -> None:
    _, dock = capped
    held = [dock.create(100) for _ in range(3)]
    assert [r.status_code for r in held] == [201] * 3
    refused = dock.create(100)
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert "uploads in flight" in refused.json()["detail"]
    _terminate(dock, [r.headers["Location"] for r in held])
    again = dock.create(100)  # terminated uploads no longer count
    assert again.status_code == 201
    _terminate(dock, [again.headers["Location"]])


def test_a_dock_past_its_reserved_bytes_is_told_to_retry_later_429(
    capped: tuple[IngestServer, Dock],
) -> None:
    _, dock = capped
    first = dock.create(6_000)
    assert first.status_code == 201
    refused = dock.create(6_000)
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert "reserve" in refused.json()["detail"]
    _terminate(dock, [first.headers["Location"]])


def test_an_upload_larger_than_a_dock_may_reserve_is_refused_413(
    capped: tuple[IngestServer, Dock],
) -> None:
    _, dock = capped
    refused = dock.create(10_001)
    assert refused.status_code == 413
    assert "reserve" in refused.json()["detail"]


def test_uploads_past_the_free_space_are_refused_507_and_recorded(tmp_path: Path) -> None:
    # About 8 GiB left for uploads, so a 32 GiB clip cannot fit (and no dock's share decides).
    keep = max(shutil.disk_usage(tmp_path).free - 8 * GIB, 0)
    server = make_server(tmp_path, upload_min_free_bytes=keep)
    server.start()
    api = Api(server, Context(server.settings), tmp_path)
    dock = Dock(server, "dock-tight")
    try:
        length = 32 * GIB
        before = api.ledger_size()
        answer = dock.create(length)
        assert answer.status_code == 507, answer.text
        assert "insufficient storage" in answer.json()["detail"]
        assert any("507" in leaf["details"]["why"] for leaf in _denials(api, before))
    finally:
        dock.http.close()
        Dock.opened.remove(dock)
        server.stop()
        api.ctx.close()


def test_more_than_32_metadata_keys_are_refused_400(api: Api) -> None:
    assert api.dock is not None
    metadata = {f"k{i}": "v" for i in range(33)}
    refused = api.dock.create(100, **metadata)
    assert refused.status_code == 400
    assert "at most 32" in refused.json()["detail"]


# --- camera time -------------------------------------------------------------------------------


def test_an_impossible_camera_time_is_ingested_kept_as_given_and_not_used(api: Api) -> None:
    data = secrets.token_bytes(4096)
    before = api.ledger_size()
    receipt = _upload(api, data, recorded_at=IMPOSSIBLE)["receipt"]
    leaf = _ingested(api, before, receipt["sha256"])
    assert leaf["details"]["recorded_at"] == IMPOSSIBLE
    row = _clip(api, receipt["evidence_id"])
    assert row.recorded_at is None
    shown = api.call("evidence-officer", "GET", f"/api/v1/clips/{receipt['evidence_id']}")
    assert shown.status_code == 200 and shown.json()["recorded_at"] is None


@pytest.mark.parametrize("name", ["recorded_from", "recorded_to", "ingested_from", "ingested_to"])
def test_a_search_filter_with_an_impossible_date_is_422(api: Api, name: str) -> None:
    before = api.ledger_size()
    answer = api.call("auditor", "GET", "/api/v1/clips", params={name: IMPOSSIBLE})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and name in detail
    assert _denials(api, before)


# --- bytes retention deleted -------------------------------------------------------------------


def test_same_bytes_after_retention_deleted_them_are_new_evidence_linked_to_the_tombstone(
    tmp_path: Path,
) -> None:
    api = start_api(tmp_path)
    try:
        data = secrets.token_bytes(8192)
        sha = hashlib.sha256(data).hexdigest()
        first = _upload(api, data)["receipt"]
        store = open_store(api.server.settings.store_url)
        later = api.ctx.clock() + timedelta(days=400)
        report = run_retention(api.ctx, store, operator="test", dry_run=False, now=later)
        assert [c.evidence_id for c in report.deleted] == [first["evidence_id"]]
        assert not store.exists("originals", sha)
        before = api.ledger_size()
        assert api.dock is not None
        assert api.dock.http.get(f"/api/v1/receipts/{sha}").status_code == 404
        again = _upload(api, data)["receipt"]
        assert again["evidence_id"] != first["evidence_id"]
        assert store.exists("originals", sha)
        stored = store.open("originals", sha).read()
        assert hashlib.sha256(stored).hexdigest() == sha
        leaf = _ingested(api, before, sha)
        assert leaf["target"] == again["evidence_id"]
        assert leaf["details"]["previous_evidence_id"] == first["evidence_id"]
        assert _clip(api, first["evidence_id"]).deleted_at is not None
        assert _clip(api, again["evidence_id"]).deleted_at is None
    finally:
        api.close()


# --- what a dock names things ------------------------------------------------------------------


@pytest.mark.parametrize(
    "camera", ["CAM\x1b]0;pwned\x07", "CAM 1", "CAM\u202e1", "C" * 65, "-CAM"], ids=repr
)
def test_a_camera_serial_that_is_not_a_plain_token_is_refused_400(api: Api, camera: str) -> None:
    assert api.dock is not None
    refused = api.dock.create(100, camera=camera)
    assert refused.status_code == 400
    assert "camera" in refused.json()["detail"]


@pytest.mark.parametrize(
    "filename",
    ["clip\x7f.mp4", "clip\x9b2J.mp4", "clip\u202e4pm.exe", "clip\u2066.mp4", "x" * 256 + ".mp4"],
    ids=repr,
)
def test_a_file_name_with_control_or_bidi_characters_is_refused_400(
    api: Api, filename: str
) -> None:
    assert api.dock is not None
    refused = api.dock.create(100, filename=filename)
    assert refused.status_code == 400
    assert "filename" in refused.json()["detail"]


@pytest.mark.parametrize("command", ["list", "show"])
def test_clips_list_and_show_escape_control_characters_from_the_records(
    api: Api, tmp_path: Path, command: str
) -> None:
    evidence_id = api.ingest("pc-a")
    hostile = "\x1b]0;owned\x07\x1b[2J\u202ename.mp4"
    with api.ctx.engine.begin() as conn:  # as an older service might have indexed it
        conn.execute(
            update(CLIP)
            .where(CLIP.c.evidence_id == evidence_id)
            .values(original_name=hostile, camera_serial="CAM-A\x1b[2J")
        )
    env = client_env(api, tmp_path, "evidence-officer")
    args = ["clips", "list"] if command == "list" else ["clips", "show", evidence_id]
    shown = ok(run_bwv(env, *args)).stdout
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b[2J" in shown


# --- tus refusals ------------------------------------------------------------------------------


def test_two_upload_length_headers_are_refused_400(api: Api) -> None:
    assert api.dock is not None
    refused = api.dock.http.post(
        "/files/", headers=[("Upload-Length", "100"), ("Upload-Length", "5")]
    )
    assert refused.status_code == 400
    assert "Upload-Length" in refused.json()["detail"]


def _refusal(api: Api, case: str) -> int:
    """Send one refused tus request; its status."""
    assert api.dock is not None
    http = api.dock.http
    if case == "412":
        return http.post(
            "/files/", headers={"Tus-Resumable": "0.2", "Upload-Length": "9"}
        ).status_code
    if case == "400":
        return http.post("/files/", headers={"Upload-Length": "-9"}).status_code
    if case == "413":
        return api.dock.create(api.server.settings.tus_max_size + 1).status_code
    if case == "404":
        return http.head("/files/AAAAAAAAAAAAAAAAAAAAAA").status_code
    location = api.dock.create(10).headers["Location"]
    if case == "409":
        return api.dock.patch(location, 5, b"12345").status_code
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    return api.dock.patch(
        location, 0, b"0123456789", **{"Upload-Checksum": f"sha256 {wrong}"}
    ).status_code


@pytest.mark.parametrize("case", ["400", "412", "404", "409", "413", "460"])
def test_every_refused_tus_request_is_recorded_as_a_leaf(api: Api, case: str) -> None:
    before = api.ledger_size()
    assert _refusal(api, case) == int(case)
    denied = _denials(api, before)
    assert [leaf["actor"] for leaf in denied] == ["dock-a"]
    assert denied[0]["details"]["why"].startswith(f"{case}: ")
    assert denied[0]["details"]["request"] == "upload"


def test_clip_ingested_keeps_metadata_values_cut_to_200_characters(api: Api) -> None:
    data = secrets.token_bytes(2048)
    before = api.ledger_size()
    receipt = _upload(api, data, bay="b" * 1000, filename="f" * 250)["receipt"]
    details = _ingested(api, before, receipt["sha256"])["details"]
    assert (details["bay"], details["filename"]) == ("b" * 200, "f" * 200)


def test_probe_error_names_no_server_path(api: Api) -> None:
    data = secrets.token_bytes(3000)  # no container FFmpeg knows
    before = api.ledger_size()
    receipt = _upload(api, data)["receipt"]
    row = _clip(api, receipt["evidence_id"])
    leaf = _ingested(api, before, receipt["sha256"])
    assert row.status == "unplayable" and row.probe_error
    for error in (row.probe_error, leaf["details"]["probe_error"]):
        assert str(api.server.data_dir) not in error and "/" not in error, error


# --- round 2: expiry under the lock, the caps under load, scratch files, early answers ---------


def test_the_expiry_sweep_leaves_an_upload_whose_lock_is_held(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=0.05)
    upload = uploads.create("dock-a", 10, {})

    async def sweep_while_held() -> int:
        async with uploads.lock(upload.id):  # a finalisation of it is under way
            time.sleep(0.1)  # long idle: by the clock, expired
            return await asyncio.to_thread(uploads.sweep)

    try:
        assert asyncio.run(sweep_while_held()) == 0
        assert uploads.part_path(upload).exists()
    finally:
        uploads.close()


def test_discarding_an_upload_keeps_a_lock_someone_holds(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    upload = uploads.create("dock-a", 10, {})

    async def discard_while_held() -> bool:
        lock = uploads.lock(upload.id)
        async with lock:
            uploads.discard(upload)
            return uploads.lock(upload.id) is lock  # a new request waits for the holder

    try:
        assert asyncio.run(discard_while_held())
    finally:
        uploads.close()


def test_an_upload_moved_into_the_store_expires_from_when_it_was_stored(tmp_path: Path) -> None:
    """Its part file is gone (the store took it), so its mtime no longer tells of activity."""
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=600)
    upload = uploads.create("dock-a", 10, {})
    upload.created_at -= 3600  # created long ago, sent slowly, stored just now
    uploads.mark_stored(upload, "0" * 64)
    uploads.part_path(upload).unlink()
    try:
        assert uploads.get(upload.id) is not None
        assert uploads.sweep() == 0
    finally:
        uploads.close()


def test_creating_uploads_while_others_finish_never_fails_on_the_caps_count(
    tmp_path: Path,
) -> None:
    """The free-space check iterated the uploads in flight while other threads removed them."""
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    uploads.limits = Limits(max_uploads_per_dock=100_000, min_free_bytes=0)
    failures: list[BaseException] = []
    done = threading.Event()
    made = [uploads.create(f"dock-{n % 7}", 10, {}) for n in range(400)]

    def finish() -> None:
        try:
            while made and not done.is_set():
                uploads.discard(made.pop())
        except BaseException as exc:
            failures.append(exc)

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        for n in range(400):
            made.append(uploads.create(f"dock-{n % 7}", 10, {}))
    except RuntimeError as exc:
        failures.append(exc)
    finally:
        done.set()
        finisher.join()
        uploads.close()
    assert failures == []


def test_the_sweep_removes_stale_restore_scratch_files(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    stale = tmp_path / ".AAAAAAAAAAAAAAAAAAAAAA.0123abcd.restore"
    fresh = tmp_path / ".BBBBBBBBBBBBBBBBBBBBBB.0123abcd.restore"
    for path in (stale, fresh):
        path.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    try:
        uploads.sweep()
        assert (stale.exists(), fresh.exists()) == (False, True)  # a live restore is kept
    finally:
        uploads.close()


def test_a_put_of_the_same_bytes_removes_a_stale_store_tmp_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    data = secrets.token_bytes(1000)
    sha = hashlib.sha256(data).hexdigest()
    folder = tmp_path / "store" / "originals" / sha[:2] / sha[2:4]
    folder.mkdir(parents=True)
    stale = folder / f".{sha}.0123abcd.tmp"
    stale.write_bytes(data[:10])
    old = time.time() - 3600
    os.utime(stale, (old, old))
    source = tmp_path / "clip"
    source.write_bytes(data)
    store.put("originals", sha, source)
    assert not stale.exists()


@pytest.mark.parametrize("case", ["404", "409", "415"])
def test_an_early_tus_refusal_of_a_patch_with_a_body_closes_the_connection(
    api: Api, case: str
) -> None:
    """Answered before the body is read: uvicorn must not wait to drain a large one."""
    assert api.dock is not None
    location = "/files/AAAAAAAAAAAAAAAAAAAAAA"
    offset, kind = 0, "application/offset+octet-stream"
    if case != "404":
        location = api.dock.create(10).headers["Location"]
        offset = 5 if case == "409" else 0
        kind = "text/plain" if case == "415" else kind
    answer = api.dock.http.patch(
        location,
        content=b"0123456789",
        headers={"Upload-Offset": str(offset), "Content-Type": kind},
    )
    assert answer.status_code == int(case)
    assert answer.headers.get("connection") == "close"


def test_one_dock_may_not_reserve_more_than_its_share_of_the_free_space_429(api: Api) -> None:
    assert api.dock is not None and api.server.settings.upload_dir is not None
    room = shutil.disk_usage(api.server.settings.upload_dir).free
    room -= api.server.settings.upload_min_free_bytes
    length = int(room * 0.4)  # fits the disk, but is more than a quarter of it
    if length > api.server.settings.tus_max_size:
        pytest.skip("the disk is larger than this test can ask a share of")
    before = api.ledger_size()
    answer = api.dock.create(length)
    if answer.status_code == 201:
        _terminate(api.dock, [answer.headers["Location"]])
    assert answer.status_code == 429, answer.text
    assert "share" in answer.json()["detail"]
    assert any("429" in leaf["details"]["why"] for leaf in _denials(api, before))
