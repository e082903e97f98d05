"""The tus 1.0.0 protocol as the ingest service speaks it (docs/INGEST.md), and the clear 4xx it
answers every malformed or hostile request with, never a 500. These tests only talk protocol and
need no fresh records, so one ``bwv serve`` (under uvicorn, over TLS) serves the whole module;
what a test asserts about the upload folder is what its own request changed."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest

from tests.support.ingestserver import IngestServer, make_server
from tests.support.tus import Dock, b64


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestServer]:
    server = make_server(tmp_path_factory.mktemp("tus"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dock(ingest: IngestServer) -> Iterator[Dock]:
    dock = Dock(ingest)
    yield dock
    dock.http.close()  # an idle keep-alive connection would hold up the server's shutdown
    Dock.opened.remove(dock)


def test_receipt_for_unknown_hash_is_404(dock: Dock) -> None:
    assert dock.http.get(f"/api/v1/receipts/{'a' * 64}").status_code == 404


def test_options_advertises_extensions_and_max_size(dock: Dock) -> None:
    response = dock.http.options("/files/")
    assert response.status_code == 204
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "checksum",
        "termination",
        "expiration",
    }
    assert int(response.headers["Tus-Max-Size"]) == 64 * 1024**3
    assert "sha256" in response.headers["Tus-Checksum-Algorithm"]


def test_offset_mismatch_is_409(dock: Dock) -> None:
    location = dock.create(100).headers["Location"]
    assert dock.patch(location, 0, b"x" * 10).status_code == 204
    response = dock.patch(location, 5, b"y" * 10)
    assert response.status_code == 409
    assert dock.http.head(location).headers["Upload-Offset"] == "10"


def test_checksum_mismatch_is_460_and_the_chunk_is_discarded(dock: Dock) -> None:
    location = dock.create(100).headers["Location"]
    good = base64.b64encode(hashlib.sha256(b"a" * 10).digest()).decode()
    assert (
        dock.patch(location, 0, b"a" * 10, **{"Upload-Checksum": f"sha256 {good}"}).status_code
        == 204
    )
    response = dock.patch(location, 10, b"b" * 10, **{"Upload-Checksum": f"sha256 {good}"})
    assert response.status_code == 460
    assert dock.http.head(location).headers["Upload-Offset"] == "10"


def test_length_over_max_size_is_413(dock: Dock) -> None:
    assert dock.create(64 * 1024**3 + 1).status_code == 413


def test_zero_byte_clip_is_refused(dock: Dock) -> None:
    response = dock.create(0)
    assert response.status_code == 400 and "zero-byte" in response.json()["detail"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Upload-Length": "-5"}, 400),
        ({"Upload-Length": "1e9"}, 400),
        ({"Upload-Length": "9" * 30}, 400),
        ({"Upload-Length": str(2**70)}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": "filename !!notbase64!!"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": f"filename {b64('../../etc/passwd')}"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": f"filename {b64('..')}"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": f"camera {b64('x' * 5000)}"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": f"sha256 {b64('XYZ')}"}, 400),
        ({"Upload-Length": "10", "Upload-Metadata": "a b c d"}, 400),
        ({"Upload-Length": "10", "Tus-Resumable": "0.2.2"}, 412),
        ({"Upload-Defer-Length": "1"}, 400),
        ({}, 400),
    ],
)
def test_hostile_creation_headers_get_a_clear_4xx(
    ingest: IngestServer, dock: Dock, headers: dict[str, str], status: int
) -> None:
    before = set((ingest.data_dir / "uploads").glob("*.part"))
    response = dock.http.post("/files/", headers=headers)
    assert response.status_code == status
    assert response.json()["detail"]
    assert set((ingest.data_dir / "uploads").glob("*.part")) == before  # no upload was begun


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Upload-Offset": "-1"}, 400),
        ({"Upload-Offset": "abc"}, 400),
        ({"Upload-Offset": "0", "Content-Type": "text/plain"}, 415),
        ({"Upload-Offset": "0", "Upload-Checksum": "md5 AAAA"}, 400),
        ({"Upload-Offset": "0", "Upload-Checksum": "sha256 ***"}, 400),
    ],
)
def test_hostile_patch_headers_get_a_clear_4xx(
    dock: Dock, headers: dict[str, str], status: int
) -> None:
    location = dock.create(100).headers["Location"]
    response = dock.http.patch(
        location,
        content=b"x" * 10,
        headers={"Content-Type": "application/offset+octet-stream", **headers},
    )
    assert response.status_code == status
    assert dock.http.head(location).headers["Upload-Offset"] == "0"


def test_body_past_upload_length_is_refused_and_cut_back(dock: Dock) -> None:
    location = dock.create(10).headers["Location"]
    assert dock.patch(location, 0, b"x" * 25).status_code == 400
    assert dock.http.head(location).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("upload_id", ["../../etc/passwd", "..%2F..%2Fbwv.sqlite3", "x" * 500])
def test_path_traversal_upload_ids_are_404(dock: Dock, upload_id: str) -> None:
    response = dock.http.head(f"/files/{upload_id}")
    assert response.status_code == 404
