"""The ingest service as docks meet it: a real ``bwv serve`` process under uvicorn, over TLS,
spoken to with the official tus client (tuspy) and with raw tus requests."""

from __future__ import annotations

import base64
import hashlib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import ffmpeg
import httpx
import pytest

from bwv.access.docks import assign_device, revoke_dock
from bwv.ingest.receipts import verify_receipt
from bwv.records.tables import Clip
from bwv.services.context import Context
from bwv.services.samples import make_sample_clip
from bwv.store import open_store
from tests.support import sha256_of
from tests.support.fixtures import fixture
from tests.support.ingestserver import IngestServer
from tests.support.ledger import leaves, pinned
from tests.support.records import clip_row
from tests.support.tus import Dock, receipt_from

CLIP = Clip.__table__


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_sample_clip(tmp_path / "CAM0001_0001.mp4", seconds=2, seed=1)


@pytest.fixture
def dock(ingest: IngestServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dock]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ingest.ca))  # tuspy (requests) trusts our CA
    yield Dock(ingest)
    while Dock.opened:  # idle keep-alive connections would hold up the server's shutdown
        Dock.opened.pop().http.close()


# --- interop with the official client -----------------------------------------------------------


def test_tuspy_upload_becomes_evidence_with_a_signed_receipt(
    ingest: IngestServer, dock: Dock, clip: Path
) -> None:
    sha = sha256_of(clip)
    assign_device(Context(ingest.settings).engine, "CAM0001", "PC 4521")
    uploader = dock.tuspy().uploader(
        file_path=str(clip),
        chunk_size=16 * 1024,
        metadata={
            "sha256": sha,
            "filename": clip.name,
            "camera": "CAM0001",
            "recorded_at": "2026-11-25T09:00:00Z",
            "bay": "3",
        },
    )
    uploader.upload()
    receipt = dock.http.get(f"/api/v1/receipts/{sha}").json()
    fields = verify_receipt(receipt, pinned(ingest), sha256=sha, size=clip.stat().st_size)
    row = clip_row(ingest, sha256=sha)
    assert row.evidence_id == fields["evidence_id"] and row.status == "playable"
    assert (row.officer, row.camera_serial, row.dock, row.bay) == (
        "PC 4521",
        "CAM0001",
        "dock-a",
        "3",
    )
    assert (row.video_codec, row.audio_codec, row.width, row.height) == ("h264", "aac", 320, 240)
    assert row.frame_rate == 25.0 and abs(row.duration_s - 2.0) < 0.05
    assert row.location == "+51.5072-000.1276/" and row.creation_time is not None
    ingested = leaves(ingest, "clip.ingested")
    assert [(x["sequence"], x["target"], x["sha256"]) for x in ingested] == [
        (fields["ledger_index"], fields["evidence_id"], sha)
    ]


def test_tuspy_resumes_an_interrupted_upload(
    ingest: IngestServer, dock: Dock, tmp_path: Path
) -> None:
    clip = make_sample_clip(tmp_path / "long.mp4", seconds=4, width=640, height=360, seed=2)
    sha = sha256_of(clip)
    first = dock.tuspy().uploader(
        file_path=str(clip), chunk_size=32 * 1024, metadata={"sha256": sha}
    )
    first.upload_chunk()
    first.upload_chunk()
    assert first.offset == 64 * 1024  # the "connection" drops here
    head = dock.http.head(first.url)
    assert int(head.headers["Upload-Offset"]) == 64 * 1024
    resumed = dock.tuspy().uploader(file_path=str(clip), url=first.url, chunk_size=32 * 1024)
    assert resumed.get_offset() == 64 * 1024
    resumed.upload()
    assert clip_row(ingest, sha256=sha) is not None


def test_stored_original_is_byte_identical_and_ffmpeg_reads_it(
    ingest: IngestServer, dock: Dock, clip: Path
) -> None:
    sha = sha256_of(clip)
    assert dock.upload(clip, sha256=sha).status_code == 204
    store = open_store(ingest.settings.store_url)
    stored = b"".join(store.read_chunks("originals", sha))
    assert hashlib.sha256(stored).hexdigest() == sha
    path = Path(store.open("originals", sha).name)
    info = ffmpeg.probe(str(path))
    codecs = sorted(s["codec_name"] for s in info["streams"])
    assert codecs == ["aac", "h264"] and abs(float(info["format"]["duration"]) - 2.0) < 0.05
    assert path.stat().st_mode & 0o222 == 0  # read-only


# --- receipts ---------------------------------------------------------------------------------


def test_final_patch_carries_the_receipt(ingest: IngestServer, dock: Dock, clip: Path) -> None:
    sha = sha256_of(clip)
    response = dock.upload(clip, sha256=sha)
    assert response.status_code == 204
    verify_receipt(receipt_from(response), pinned(ingest), sha256=sha)


def test_retried_finalisation_returns_the_same_receipt(
    ingest: IngestServer, dock: Dock, clip: Path
) -> None:
    data = clip.read_bytes()
    location = dock.create(len(data), sha256=sha256_of(clip)).headers["Location"]
    receipt = receipt_from(dock.patch(location, 0, data))
    upload_id = location.rsplit("/", 1)[1]
    for _ in range(2):
        again = dock.http.post(f"/api/v1/uploads/{upload_id}/finalise")
        assert again.status_code == 200 and again.json() == receipt
    assert len(leaves(ingest, "clip.ingested")) == 1


def test_same_bytes_twice_make_one_clip_and_one_object(
    ingest: IngestServer, dock: Dock, clip: Path
) -> None:
    sha = sha256_of(clip)
    first = receipt_from(dock.upload(clip, sha256=sha))
    second = receipt_from(Dock(ingest, "dock-b").upload(clip, sha256=sha))
    assert first == second
    objects = list((ingest.data_dir / "store" / "originals").rglob("*"))
    assert [p.name for p in objects if p.is_file()] == [sha]
    assert len(leaves(ingest, "clip.ingested")) == 1
    assert [x["actor"] for x in leaves(ingest, "clip.duplicate")] == ["dock-b"]


def test_wrong_claimed_hash_is_rejected_discarded_and_recorded(
    ingest: IngestServer, dock: Dock, clip: Path
) -> None:
    response = dock.upload(clip, sha256="0" * 64)
    assert response.status_code == 422
    assert "not the claimed" in response.json()["detail"]
    assert clip_row(ingest, sha256=sha256_of(clip)) is None
    assert list((ingest.data_dir / "uploads").glob("*.part")) == []
    rejected = leaves(ingest, "clip.rejected")
    assert len(rejected) == 1 and rejected[0]["sha256"] == sha256_of(clip)
    assert rejected[0]["details"]["claimed_sha256"] == "0" * 64


# --- tus protocol -----------------------------------------------------------------------------


def test_creation_with_upload(ingest: IngestServer, dock: Dock, clip: Path) -> None:
    data = clip.read_bytes()
    response = dock.http.post(
        "/files/",
        content=data[:1000],
        headers={
            "Upload-Length": str(len(data)),
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert response.status_code == 201 and response.headers["Upload-Offset"] == "1000"
    assert "Upload-Expires" in response.headers
    done = dock.patch(response.headers["Location"], 1000, data[1000:])
    assert done.status_code == 204 and int(done.headers["Upload-Offset"]) == len(data)


def test_whole_file_hash_survives_a_discarded_chunk(
    ingest: IngestServer, dock: Dock, clip: Path
) -> None:
    data = clip.read_bytes()
    location = dock.create(len(data), sha256=sha256_of(clip)).headers["Location"]
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    assert (
        dock.patch(location, 0, data[:500], **{"Upload-Checksum": f"sha256 {wrong}"}).status_code
        == 460
    )
    assert dock.patch(location, 0, data).status_code == 204


def test_termination_removes_the_upload(ingest: IngestServer, dock: Dock) -> None:
    location = dock.create(100).headers["Location"]
    dock.patch(location, 0, b"z" * 40)
    assert dock.http.delete(location).status_code == 204
    assert dock.http.head(location).status_code == 404
    left = [p.name for p in (ingest.data_dir / "uploads").iterdir()]
    assert left == [".lock"]  # only the service's hold on the folder


def test_stale_partial_uploads_expire_and_are_removed(tmp_path: Path) -> None:
    from tests.support.ingestserver import make_server

    server = make_server(tmp_path)
    server.env["BWV_UPLOAD_EXPIRY_SECONDS"] = "2"
    server.start()
    try:
        dock = Dock(server)
        location = dock.create(100).headers["Location"]
        dock.patch(location, 0, b"q" * 10)
        deadline = time.monotonic() + 20
        while list((server.data_dir / "uploads").glob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list((server.data_dir / "uploads").glob("*.part")) == []
        assert dock.http.head(location).status_code == 404
    finally:
        server.stop()


# --- authentication and ownership ----------------------------------------------------------------


def test_unknown_token_is_401_and_recorded(ingest: IngestServer, dock: Dock) -> None:
    response = dock.http.post(
        "/files/", headers={"Upload-Length": "10", "Authorization": "Bearer bwvdock_nope"}
    )
    assert response.status_code == 401
    denied = leaves(ingest, "access.denied")
    assert denied[-1]["details"]["why"] == "unknown token"
    assert denied[-1]["outcome"] == "refused"


def test_revoked_dock_is_401(ingest: IngestServer, dock: Dock) -> None:
    revoke_dock(Context(ingest.settings).engine, "dock-a")
    assert dock.create(10).status_code == 401
    assert leaves(ingest, "access.denied")[-1]["actor"] == "dock-a"


def test_patch_to_another_docks_upload_is_refused(ingest: IngestServer, dock: Dock) -> None:
    location = dock.create(100).headers["Location"]
    intruder = Dock(ingest, "dock-b")
    assert intruder.patch(location, 0, b"x" * 10).status_code == 403
    assert intruder.http.head(location).status_code == 403
    assert dock.http.head(location).headers["Upload-Offset"] == "0"
    assert leaves(ingest, "access.denied")[-1]["actor"] == "dock-b"


def test_tls_with_another_ca_is_refused(ingest: IngestServer, tmp_path: Path) -> None:
    from bwv.base.tls import make_ca

    other_ca, _, _ = make_ca(tmp_path / "other")
    with pytest.raises(httpx.ConnectError):
        httpx.get(
            f"{ingest.url}/api/v1/health", verify=ssl.create_default_context(cafile=str(other_ca))
        )


# --- clips that will not play are still evidence ----------------------------------------------


@pytest.mark.parametrize("kind", ["truncated", "no-moov", "not-video"])
def test_unplayable_clip_is_stored_and_flagged(ingest: IngestServer, dock: Dock, kind: str) -> None:
    path = fixture(f"{kind}.mp4")  # cut short; power lost before the index; not video at all
    sha = sha256_of(path)
    response = dock.upload(path, sha256=sha)
    assert response.status_code == 204
    row = clip_row(ingest, sha256=sha)
    assert row.status == "unplayable" and row.probe_error
    assert open_store(ingest.settings.store_url).exists("originals", sha)
