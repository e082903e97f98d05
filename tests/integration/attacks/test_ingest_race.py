"""Finalisation racing a PATCH (issue 9, finding 1): a dock finalises an upload while its final
``PATCH`` is still open, then makes that PATCH fail on purpose (a byte past ``Upload-Length``,
or a wrong ``Upload-Checksum``), whose error path cut the part file back -- which had become the
store's original. And six finalise calls at once gave one ingest and five false duplicates.

Every attack runs against the live service (``bwv serve`` under uvicorn over TLS)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bwv.base.errors import BwvError
from bwv.base.net import free_port
from bwv.ingest.finalise import finalise
from bwv.ingest.uploads import Uploads
from bwv.records.tables import LedgerLeaf
from bwv.store import ObjectDamaged, StoreUnavailable, open_store
from bwv.store.local import LocalStore
from tests.support.apiserver import Api
from tests.support.services import make_services
from tests.support.tus import receipt_from

MIB = 1 << 20
SIZE = MIB  # one service write block: written out as its last byte arrives, body open
PAUSE = 3.0  # how long the open PATCH waits for finalise calls to come back


def _create(api: Api, size: int) -> str:
    assert api.dock is not None
    created = api.dock.create(size, filename="race.mp4")
    assert created.status_code == 201, created.text
    return created.headers["Location"]


def _offset(api: Api, location: str) -> int:
    assert api.dock is not None
    return int(api.dock.http.head(location).headers["Upload-Offset"])


def _held_body(data: bytes, tail: bytes, release: threading.Event) -> Iterator[bytes]:
    """The clip's bytes, then a wait (the PATCH stays open), then ``tail`` (maybe nothing)."""
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]
    release.wait(PAUSE)
    if tail:
        yield tail


def _race(
    api: Api, location: str, data: bytes, tail: bytes, finalisers: int, **headers: str
) -> tuple[httpx.Response | BaseException, list[httpx.Response]]:
    """An open PATCH of ``data`` (then ``tail``) and ``finalisers`` finalise calls sent once the
    bytes are all on the service's disk; (the PATCH's answer, the finalise answers)."""
    assert api.dock is not None
    upload_id = location.rsplit("/", 1)[1]
    release = threading.Event()
    patched: list[httpx.Response | BaseException] = []

    def patch() -> None:
        assert api.dock is not None
        try:
            patched.append(
                api.dock.http.patch(
                    location,
                    content=_held_body(data, tail, release),
                    headers={
                        "Upload-Offset": "0",
                        "Content-Type": "application/offset+octet-stream",
                        **headers,
                    },
                )
            )
        except BaseException as exc:  # the service may cut the connection: that is an answer
            patched.append(exc)

    writer = threading.Thread(target=patch)
    writer.start()
    deadline = time.monotonic() + 30
    while _offset(api, location) < len(data):
        assert time.monotonic() < deadline, "the PATCH's bytes never reached the service"
        time.sleep(0.02)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def finalise() -> None:
        assert api.dock is not None
        with httpx.Client(
            base_url=api.server.url,
            verify=ssl.create_default_context(cafile=str(api.server.ca)),
            headers={"Authorization": f"Bearer {api.tokens['dock']}"},
            timeout=60,
        ) as client:
            answer = client.post(f"/api/v1/uploads/{upload_id}/finalise")
        with lock:
            answers.append(answer)

    callers = [threading.Thread(target=finalise) for _ in range(finalisers)]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + PAUSE
    for caller in callers:  # back while the PATCH is open (no lock), or blocked on it (lock)
        caller.join(max(0.0, deadline - time.monotonic()))
    release.set()
    writer.join(60)
    for caller in callers:
        caller.join(60)
    return patched[0], answers


def _stored_original(api: Api, sha256: str) -> bytes:
    store = open_store(api.server.settings.store_url)
    with store.open("originals", sha256) as f:
        return f.read()


def _receipts(answers: list[httpx.Response]) -> list[dict[str, Any]]:
    return [a.json()["receipt"] for a in answers if a.status_code == 200]


def _assert_every_receipt_is_stored_whole(api: Api, receipts: list[dict[str, Any]]) -> None:
    for receipt in receipts:
        stored = _stored_original(api, receipt["sha256"])
        assert (len(stored), hashlib.sha256(stored).hexdigest()) == (
            receipt["size"],
            receipt["sha256"],
        ), f"{receipt['evidence_id']}'s original no longer matches its receipt"


def test_patch_one_byte_past_length_racing_finalise_cannot_cut_the_stored_original(
    api: Api,
) -> None:
    data = secrets.token_bytes(SIZE)
    location = _create(api, SIZE)
    patched, answers = _race(api, location, data, b"!", finalisers=3)
    _assert_every_receipt_is_stored_whole(api, _receipts(answers))
    # Nothing finalised the upload beside the PATCH: it was cut back, and is incomplete.
    assert [a.status_code for a in answers] == [409] * 3
    assert isinstance(patched, httpx.Response) and patched.status_code == 400
    assert _offset(api, location) == 0


def test_patch_with_a_wrong_checksum_racing_finalise_cannot_cut_the_stored_original(
    api: Api,
) -> None:
    data = secrets.token_bytes(SIZE)
    location = _create(api, SIZE)
    wrong = base64.b64encode(hashlib.sha256(b"not these bytes").digest()).decode()
    patched, answers = _race(
        api, location, data, b"", finalisers=3, **{"Upload-Checksum": f"sha256 {wrong}"}
    )
    _assert_every_receipt_is_stored_whole(api, _receipts(answers))
    assert [a.status_code for a in answers] == [409] * 3
    assert isinstance(patched, httpx.Response) and patched.status_code == 460
    assert _offset(api, location) == 0


def test_six_concurrent_finalise_calls_answer_one_receipt_with_one_ingest_leaf(api: Api) -> None:
    data = secrets.token_bytes(SIZE)
    sha = hashlib.sha256(data).hexdigest()
    location = _create(api, SIZE)
    before = api.ledger_size()
    patched, answers = _race(api, location, data, b"", finalisers=6)
    assert isinstance(patched, httpx.Response) and patched.status_code == 204, patched
    receipt = receipt_from(patched)
    assert [a.status_code for a in answers] == [200] * 6
    assert all(a.json() == receipt for a in answers)
    leaves = [leaf for leaf in api.leaves_since(before) if leaf["sha256"] == sha]
    assert [leaf["action"] for leaf in leaves] == ["clip.ingested"]
    _assert_every_receipt_is_stored_whole(api, [receipt["receipt"]])


def test_a_finalise_that_fails_after_the_store_took_the_bytes_is_retried_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local store moves the part file away; a failure after that (the database, say) must
    not cost the retry its bytes. In-process: the failure is injected."""
    services = make_services(tmp_path / "data")
    data = secrets.token_bytes(64 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    upload = services.uploads.create("dock-a", len(data), {})
    services.uploads.part_path(upload).write_bytes(data)

    def broken() -> Any:
        raise OSError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(services.ctx.ledger, "transaction", broken)
        with pytest.raises(OSError):
            finalise(services, upload)
    assert not services.uploads.part_path(upload).exists()  # moved into the store
    again = services.uploads.get(upload.id)
    assert again is not None and services.uploads.offset(again) == len(data)
    receipt = finalise(services, again)["receipt"]
    assert (receipt["sha256"], receipt["size"]) == (sha, len(data))
    with services.store.open("originals", sha) as f:
        assert hashlib.sha256(f.read()).hexdigest() == sha
    services.ctx.close()


# --- round 2: a second service, retries after a commit, the store's faults --------------------


def test_a_second_uploads_on_one_upload_folder_is_refused(tmp_path: Path) -> None:
    first = Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    try:
        with pytest.raises(BwvError, match="another bwv serve is using the upload folder"):
            Uploads(tmp_path, max_size=1000, expiry_seconds=60)
    finally:
        first.close()
    Uploads(tmp_path, max_size=1000, expiry_seconds=60).close()  # free again once closed


def test_a_second_serve_on_the_data_folder_exits_and_leaves_an_upload_in_flight_whole(
    api: Api,
) -> None:
    """A checksummed chunk is half written (its guard on disk) when a second ``bwv serve`` is
    started on the same data folder: it must not cut the live part file back to the guard."""
    assert api.dock is not None and api.server.settings.upload_dir is not None
    data = secrets.token_bytes(2 * MIB)
    head, tail = data[: MIB + 64 * 1024], data[MIB + 64 * 1024 :]
    location = _create(api, len(data))
    part = api.server.settings.upload_dir / f"{location.rsplit('/', 1)[1]}.part"
    release = threading.Event()
    patched: list[httpx.Response] = []

    def body() -> Iterator[bytes]:
        yield head
        release.wait(90)
        yield tail

    def patch() -> None:
        assert api.dock is not None
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        patched.append(
            api.dock.http.patch(
                location,
                content=body(),
                timeout=120,
                headers={
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Checksum": f"sha256 {checksum}",
                },
            )
        )

    writer = threading.Thread(target=patch)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while not part.exists() or part.stat().st_size < MIB:
            assert time.monotonic() < deadline, "the PATCH's first block never reached disk"
            time.sleep(0.02)
        server = api.server
        second = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "--data-dir",
                str(server.data_dir),
                "serve",
                "--port",
                str(free_port()),
                "--cert",
                str(server.cert),
                "--key",
                str(server.key),
            ],
            env={**os.environ, **server.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, err = second.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            second.kill()
            _, err = second.communicate()
        assert second.returncode == 1, f"a second serve ran on the same folder: {err[-500:]}"
        assert "another bwv serve is using the upload folder" in err
        assert part.stat().st_size >= MIB  # not cut back to the guard's offset
    finally:
        release.set()
        writer.join(120)
    assert patched and patched[0].status_code == 204, patched
    _assert_every_receipt_is_stored_whole(api, [receipt_from(patched[0])["receipt"]])


def _leaf_actions(services: Any, sha: str) -> list[str]:
    with services.ctx.engine.connect() as conn:
        return list(
            conn.execute(
                select(LedgerLeaf.__table__.c.action)
                .where(LedgerLeaf.__table__.c.sha256 == sha)
                .order_by(LedgerLeaf.__table__.c.seq)
            ).scalars()
        )


def test_a_finalise_retried_after_its_commit_answers_the_receipt_with_no_duplicate_leaf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (or the disk full) between the commit and mark_finalised: the retry must not copy
    the original back and record a false ``clip.duplicate``."""
    services = make_services(tmp_path / "data")
    data = secrets.token_bytes(64 * 1024)
    sha = hashlib.sha256(data).hexdigest()
    upload = services.uploads.create("dock-a", len(data), {})
    services.uploads.part_path(upload).write_bytes(data)

    def full(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(services.uploads, "mark_finalised", full)
        with pytest.raises(OSError):
            finalise(services, upload)
    again = services.uploads.get(upload.id)
    assert again is not None
    receipt = finalise(services, again)
    assert receipt["receipt"]["sha256"] == sha
    assert _leaf_actions(services, sha) == ["clip.ingested"]
    assert not list(services.uploads.root.glob(".*.restore"))
    assert not services.uploads.part_path(again).exists()  # nothing copied back
    services.ctx.close()


def test_a_store_unavailable_on_a_finalise_retry_keeps_the_stored_pointer_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transient EIO reading the stored bytes back is not "they never got there": the
    pointer stays and the dock is told to retry (503), not that the upload is incomplete (409)."""
    services = make_services(tmp_path / "data")
    data = secrets.token_bytes(64 * 1024)
    upload = services.uploads.create("dock-a", len(data), {})
    services.uploads.part_path(upload).write_bytes(data)

    def broken() -> Any:
        raise OSError("the database went away")

    def eio(*_: Any) -> Any:
        raise StoreUnavailable("cannot read originals object: Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr(services.ctx.ledger, "transaction", broken)
        with pytest.raises(OSError):
            finalise(services, upload)
    with monkeypatch.context() as patched:
        patched.setattr(services.store, "open", eio)
        again = services.uploads.get(upload.id)
        assert again is not None
        with pytest.raises(StoreUnavailable):
            finalise(services, again)
    kept = services.uploads.get(upload.id)
    assert kept is not None and services.uploads.stored(kept) == hashlib.sha256(data).hexdigest()
    assert finalise(services, kept)["receipt"]["size"] == len(data)
    services.ctx.close()


def _damage_in_place(path: Path) -> None:
    path.chmod(0o600)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    path.chmod(0o400)


def test_a_put_finding_a_same_size_damaged_object_raises_object_damaged(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    data = secrets.token_bytes(4096)
    sha = hashlib.sha256(data).hexdigest()
    source = tmp_path / "clip"
    source.write_bytes(data)
    stored = store.put("originals", sha, source)
    _damage_in_place(Path(stored.location))
    with pytest.raises(ObjectDamaged, match="does not match its SHA-256"):
        store.put("originals", sha, source)


def test_an_upload_whose_stored_object_is_damaged_is_a_recorded_500_naming_the_damage(
    api: Api,
) -> None:
    """The bytes are in the store (a first attempt stored them, no clip yet) but damaged there
    since: a new upload of them must not be receipted against the damaged object."""
    assert api.dock is not None
    data = secrets.token_bytes(8192)
    sha = hashlib.sha256(data).hexdigest()
    source = api.clips_dir / f"{sha}.bin"
    source.write_bytes(data)
    stored = open_store(api.server.settings.store_url).put("originals", sha, source)
    _damage_in_place(Path(stored.location))
    before = api.ledger_size()
    created = api.dock.create(len(data))
    answer = api.dock.patch(created.headers["Location"], 0, data)
    assert answer.status_code == 500, answer.text
    assert "the store is damaged" in answer.json()["detail"]
    assert "Bwv-Receipt" not in answer.headers
    leaves = api.leaves_since(before)
    assert [(leaf["action"], leaf["sha256"]) for leaf in leaves if leaf["sha256"] == sha] == [
        ("store.damaged", sha)
    ]
