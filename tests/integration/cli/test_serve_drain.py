"""`bwv serve` on SIGTERM, as systemd stops it (deploy/systemd/bwv-serve.service): a tus PATCH
whose body is still arriving finishes (204, the clip stored and receipted), no new connection
is accepted meanwhile, and the process then exits. One that outlasts the drain is cut, and the
bytes that had reached the service are kept for the dock to resume."""

from __future__ import annotations

import hashlib
import signal
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bwv.records.tables import Clip
from bwv.services.samples import make_sample_clip
from tests.support import sha256_of
from tests.support.ingestserver import IngestServer, running
from tests.support.tus import Dock, receipt_from
from tests.support.wire import read_response, status_of, tls_socket

pytestmark = pytest.mark.slow


def patch_head(location: str, token: str, length: int) -> bytes:
    return (
        f"PATCH {location} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def refused_within(server: IngestServer, seconds: float) -> bool:
    """Whether a new TCP connection to the service is refused within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def exited_within(server: IngestServer, seconds: float) -> bool:
    assert server.process is not None
    try:
        server.process.wait(timeout=seconds)
    except Exception:
        return False
    return True


def test_a_patch_in_flight_at_sigterm_finishes_and_new_connections_are_refused(
    tmp_path: Path,
) -> None:
    with running(tmp_path, shutdown_grace_seconds=20) as (server, ctx):
        dock = Dock(server)
        clip = make_sample_clip(tmp_path / "CAM-A_0001.mp4", seconds=1.0, width=160, height=120)
        data, sha = clip.read_bytes(), sha256_of(clip)
        created = dock.create(len(data), sha256=sha, filename=clip.name)
        assert created.status_code == 201
        half = len(data) // 2
        with tls_socket(server) as sock:
            sock.sendall(patch_head(created.headers["Location"], dock.token, len(data)))
            sock.sendall(data[:half])
            time.sleep(0.5)  # the request is in the app, its body half read
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            assert refused_within(server, 3), "a new connection was accepted while draining"
            assert server.process.poll() is None  # still draining
            sock.sendall(data[half:])
            answer = read_response(sock, 10)
        dock.http.close()
        Dock.opened.remove(dock)
        assert status_of(answer) == 204, answer[:500]
        assert f"Upload-Offset: {len(data)}".lower().encode() in answer.lower()
        assert b"bwv-receipt" in answer.lower()
        assert exited_within(server, 10)
        with ctx.engine.connect() as conn:
            stored = conn.execute(
                select(Clip.__table__.c.size).where(Clip.__table__.c.sha256 == sha)
            ).scalar_one()
        assert stored == len(data)
        assert ctx.store.exists("originals", sha)


def test_a_patch_that_outlasts_the_drain_is_cut_and_its_bytes_are_kept(tmp_path: Path) -> None:
    with running(tmp_path, shutdown_grace_seconds=2) as (server, _ctx):
        dock = Dock(server)
        data = bytes(range(256)) * 4096 * 4  # 4 MiB: half is two whole write blocks and more
        created = dock.create(len(data), filename="clip.mp4")
        location = created.headers["Location"]
        half = len(data) // 2 + 300_000  # not a multiple of the 1 MiB write block
        with tls_socket(server) as sock:
            sock.sendall(patch_head(location, dock.token, len(data)))
            sock.sendall(data[:half])
            time.sleep(0.5)
            assert server.process is not None
            start = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert exited_within(server, 10)  # the body never completes
            took = time.monotonic() - start
        assert 2 <= took < 8, took
        server.start()  # the same data dir, again
        head = dock.http.head(location)
        assert head.status_code == 200
        kept = int(head.headers["Upload-Offset"])
        # What had reached the service is kept (what was still in the sockets' buffers at the
        # cut is not, and is sent again): the dock resumes from there and the clip is whole.
        assert 0 < kept <= half
        rest = dock.patch(location, kept, data[kept:])
        dock.http.close()
        Dock.opened.remove(dock)
        assert rest.status_code == 204, rest.text
        assert receipt_from(rest)["receipt"]["sha256"] == hashlib.sha256(data).hexdigest()
