"""Dock agent, without the real ingest service: queue, watcher, rate cap, tus client, and the
rule that a camera file is wiped only after a verified receipt for its exact bytes.

Protocol tests run against a small in-process fake of the service (httpx.MockTransport) that
follows docs/INGEST.md; end-to-end tests against the real service live elsewhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import os
import signal
import sqlite3
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tenacity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from bwv.base.errors import ConfigError
from bwv.ingest.receipts import sign_receipt
from bwv.keys import SigningKey
from docks import DockAgent, DockConfig, RetryPolicy, status, write_enrollment
from docks.agent import CHANGED_AFTER_HASHING
from docks.client import (
    RateLimiter,
    ServiceUnavailable,
    TusClient,
    UploadRejected,
    decode_receipt_header,
    encode_metadata,
)
from docks.queue import ClipQueue, QueueError
from docks.watcher import BayWatcher, ClipChanged, hash_file
from tests.support import REPO

SERVICE = "http://127.0.0.1:8443"
TOKEN = "dock-token-123"
FAST = RetryPolicy(multiplier=0.001, max_wait=0.01, max_attempts=50)  # a bug fails, not hangs


# --- helpers ----------------------------------------------------------------------------------


def _config(tmp_path: Path, signer: SigningKey, bays: list[Path], **extra: Any) -> DockConfig:
    return DockConfig(
        service_url=SERVICE,
        dock_name="dock-1",
        token=TOKEN,
        verifier_keys=[str(signer.verifier)],
        state_dir=tmp_path / "state",
        bays=bays,
        settle_seconds=0.0,
        **extra,
    )


def _clip(bay: Path, name: str = "VID0001.MP4", size: int = 3000, done: bool = True) -> Path:
    bay.mkdir(parents=True, exist_ok=True)
    path = bay / name
    path.write_bytes(os.urandom(size))
    if done:
        path.with_name(name + ".done").write_text("")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _receipt(signer: SigningKey, sha256: str, size: int) -> dict[str, Any]:
    return sign_receipt(
        signer,
        evidence_id="EV-1",
        sha256=sha256,
        size=size,
        ledger_index=7,
        received_at="2025-01-01T00:00:00Z",
    )


def _uploaded_clip(agent: DockAgent, path: Path) -> int:
    """Queue ``path`` and take it to ``uploaded``, as the worker does before the receipt."""
    st = path.stat()
    clip = agent.queue.add(
        bay=path.parent.name, camera="CAM", path=path, size=st.st_size, mtime_ns=st.st_mtime_ns
    )
    assert clip is not None
    agent.queue.mark_hashed(clip.id, _sha(path))
    agent.queue.mark_uploaded(clip.id)
    return clip.id


class FakeService:
    """The ingest service's dock-facing protocol, in memory (docs/INGEST.md)."""

    def __init__(self, signer: SigningKey, *, receipt_header: bool = True) -> None:
        self.checksummed: list[bool] = []
        self.signer = signer
        self.receipt_header = receipt_header
        self.uploads: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        # Status codes to answer the next PATCH requests with, in order; "lost" applies the chunk
        # and then answers 503, as if the response were lost.
        self.patch_faults: list[int | str] = []
        self.error_bodies: dict[int, str] = {}
        self.transport_failures = 0

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def patches(self) -> list[int]:
        return [int(h["upload-offset"]) for m, _, h in self.requests if m == "PATCH"]

    def methods(self) -> list[str]:
        return [m for m, _, _ in self.requests]

    def _finish(self, upload: dict[str, Any]) -> httpx.Response | dict[str, Any]:
        data = bytes(upload["data"])
        sha = hashlib.sha256(data).hexdigest()
        if sha != upload["meta"].get("sha256"):
            return httpx.Response(422, json={"detail": "SHA-256 does not match the claimed one"})
        if sha not in self.stored:
            self.stored[sha] = sign_receipt(
                self.signer,
                evidence_id=f"EV-{len(self.stored) + 1}",
                sha256=sha,
                size=len(data),
                ledger_index=len(self.stored),
                received_at="2025-01-01T00:00:00Z",
            )
        return self.stored[sha]

    def handle(self, request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        path = request.url.path
        self.requests.append((request.method, path, headers))
        if self.transport_failures:
            self.transport_failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401, json={"detail": "unknown dock token"})
        if path.startswith("/files") and headers.get("tus-resumable") != "1.0.0":
            return httpx.Response(412)
        if request.method == "POST" and path == "/files/":
            meta = {}
            for pair in headers.get("upload-metadata", "").split(","):
                key, value = pair.split(" ")
                meta[key] = base64.b64decode(value).decode()
            upload_id = f"u{len(self.uploads) + 1}"
            length = int(headers["upload-length"])
            self.uploads[upload_id] = {"length": length, "data": bytearray(), "meta": meta}
            return httpx.Response(201, headers={"Location": f"/files/{upload_id}"})
        if path.startswith("/files/"):
            upload = self.uploads.get(path.rsplit("/", 1)[-1])
            if upload is None:
                return httpx.Response(404, json={"detail": "no such upload"})
            if request.method == "HEAD":
                offset = str(len(upload["data"]))
                return httpx.Response(
                    200, headers={"Upload-Offset": offset, "Upload-Length": str(upload["length"])}
                )
            if request.method == "PATCH":
                return self._patch(upload, headers, request.content)
        if request.method == "POST" and path.endswith("/finalise"):
            upload = self.uploads.get(path.split("/")[-2])
            if upload is None or len(upload["data"]) != upload["length"]:
                return httpx.Response(404, json={"detail": "no complete upload"})
            result = self._finish(upload)
            if isinstance(result, httpx.Response):
                return result
            return httpx.Response(200, json=result)
        if request.method == "GET" and path.startswith("/api/v1/receipts/"):
            document = self.stored.get(path.rsplit("/", 1)[-1])
            if document is None:
                return httpx.Response(404, json={"detail": "no such clip"})
            return httpx.Response(200, json=document)
        return httpx.Response(404, json={"detail": "not found"})

    def _patch(
        self, upload: dict[str, Any], headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        fault = self.patch_faults.pop(0) if self.patch_faults else None
        if isinstance(fault, int):
            detail = self.error_bodies.get(fault, "injected")
            return httpx.Response(fault, json={"detail": detail})
        if headers.get("content-type") != "application/offset+octet-stream":
            return httpx.Response(415, json={"detail": "wrong content type"})
        if int(headers["upload-offset"]) != len(upload["data"]):
            return httpx.Response(409, json={"detail": "offset mismatch"})
        self.checksummed.append("upload-checksum" in headers)
        if "upload-checksum" in headers:
            algorithm, digest = headers["upload-checksum"].split(" ")
            if algorithm != "sha256" or base64.b64decode(digest) != hashlib.sha256(body).digest():
                return httpx.Response(460, json={"detail": "checksum mismatch"})
        upload["data"].extend(body)
        answer = {"Upload-Offset": str(len(upload["data"]))}
        if len(upload["data"]) == upload["length"]:
            result = self._finish(upload)
            if isinstance(result, httpx.Response):
                return result
            if self.receipt_header:
                raw = base64.urlsafe_b64encode(json.dumps(result).encode()).decode()
                answer["Bwv-Receipt"] = raw.rstrip("=")
        if fault == "lost":
            return httpx.Response(503, json={"detail": "response lost"})
        return httpx.Response(204, headers=answer)


@pytest.fixture
def service(signer: SigningKey) -> FakeService:
    return FakeService(signer)


def _agent(
    tmp_path: Path, signer: SigningKey, service: FakeService, bays: list[Path], **extra: Any
) -> DockAgent:
    config = _config(tmp_path, signer, bays, chunk_size=1024, **extra)
    return DockAgent(config, http_client=service.client(), retry=FAST)


# --- queue --------------------------------------------------------------------------------------


def _queued(queue: ClipQueue, path: Path = Path("/bay/A.MP4"), size: int = 100) -> int:
    clip = queue.add(bay="bay", camera="CAM", path=path, size=size, mtime_ns=1)
    assert clip is not None
    return clip.id


def test_queue_state_survives_reopen(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.set_upload(clip_id, "https://svc/files/u1", 40)
    with ClipQueue.open(tmp_path) as queue:
        clip = queue.get(clip_id)
    assert (clip.state, clip.upload_url, clip.bytes_sent, clip.sha256) == (
        "uploading",
        "https://svc/files/u1",
        40,
        "ab" * 32,
    )


def test_queue_transition_survives_kill_9(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from docks.queue import ClipQueue\n"
        "q = ClipQueue.open(Path(sys.argv[1]))\n"
        "c = q.add(bay='b', camera='c', path=Path('/b/A.MP4'), size=5, mtime_ns=1)\n"
        "q.mark_hashed(c.id, 'cd' * 32)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, check=False)
    assert done.returncode == -signal.SIGKILL
    with ClipQueue.open(tmp_path) as queue:
        assert [(c.state, c.sha256) for c in queue.list()] == [("hashed", "cd" * 32)]


def test_queue_runs_wal_with_full_sync(tmp_path: Path) -> None:
    ClipQueue.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "queue.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    queue = ClipQueue.open(tmp_path)
    assert queue._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    queue.close()


def test_queue_takes_the_same_file_once(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        _queued(queue)
        again = queue.add(bay="bay", camera="CAM", path=Path("/bay/A.MP4"), size=100, mtime_ns=1)
        assert again is None
        assert len(queue.list()) == 1


def test_queue_same_path_with_other_size_or_mtime_is_a_new_clip(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        first = _queued(queue)
        resized = queue.add(bay="b", camera="C", path=Path("/bay/A.MP4"), size=101, mtime_ns=1)
        touched = queue.add(bay="b", camera="C", path=Path("/bay/A.MP4"), size=100, mtime_ns=2)
    assert resized is not None and touched is not None
    assert len({first, resized.id, touched.id}) == 3


def test_queue_refuses_to_mark_wiped_without_a_receipt(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        with pytest.raises(QueueError, match="cannot go from uploaded to wiped"):
            queue.mark_wiped(clip_id)
        assert queue.get(clip_id).state == "uploaded"


def test_queue_refuses_to_record_a_non_receipt(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        with pytest.raises(QueueError, match="no receipt"):
            queue.mark_receipted(clip_id, {"detail": "oops"})


def test_queue_wiped_clip_is_final_and_not_due(tmp_path: Path, signer: SigningKey) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        queue.mark_receipted(clip_id, _receipt(signer, "ab" * 32, 100))
        queue.mark_wiped(clip_id)
        with pytest.raises(QueueError, match="cannot go from wiped"):
            queue.set_upload(clip_id, "https://svc/files/u2", 0)
        assert queue.due() == []


def test_queue_path_reused_after_wipe_is_a_new_clip(tmp_path: Path, signer: SigningKey) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_uploaded(clip_id)
        queue.mark_receipted(clip_id, _receipt(signer, "ab" * 32, 100))
        queue.mark_wiped(clip_id)
        again = queue.add(bay="bay", camera="CAM", path=Path("/bay/A.MP4"), size=100, mtime_ns=1)
    assert again is not None and again.id != clip_id


def test_queue_failed_clip_is_due_only_from_its_retry_time(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_failed(clip_id, "network down", retry_after=1000.0)
        assert queue.due(now=999.0) == []
        assert [c.id for c in queue.due(now=1000.0)] == [clip_id]


def test_queue_rejected_clip_is_not_due_until_requeued(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.mark_rejected(clip_id, "401 unknown dock token")
        assert queue.due() == []
        queue.requeue(clip_id)
        assert [(c.id, c.state, c.last_error) for c in queue.due()] == [(clip_id, "hashed", None)]


def test_queue_status_reports_progress_percent(tmp_path: Path) -> None:
    with ClipQueue.open(tmp_path) as queue:
        clip_id = _queued(queue, size=200)
        queue.mark_hashed(clip_id, "ab" * 32)
        queue.set_upload(clip_id, "https://svc/files/u1", 50)
    rows = status(tmp_path)
    assert [(r["id"], r["state"], r["progress"]) for r in rows] == [(clip_id, "uploading", 25.0)]


def test_status_of_a_dock_that_never_ran_is_empty(tmp_path: Path) -> None:
    assert status(tmp_path / "nothing-here") == []


# --- watcher ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_watcher_takes_a_clip_with_a_done_marker_at_once(tmp_path: Path) -> None:
    path = _clip(tmp_path / "bay1", done=True)
    result = BayWatcher([tmp_path / "bay1"], settle_seconds=60).scan()
    assert [(c.path, c.marker) for c in result.finished] == [(path, path.with_suffix(".MP4.done"))]


def test_watcher_takes_a_clip_once_its_size_has_settled(tmp_path: Path) -> None:
    path = _clip(tmp_path / "bay1", done=False)
    clock = Clock()
    watcher = BayWatcher([tmp_path / "bay1"], settle_seconds=2.0, clock=clock)
    assert watcher.scan().finished == []
    clock.now += 1.0
    assert watcher.scan().finished == []
    clock.now += 1.0
    assert [c.path for c in watcher.scan().finished] == [path]


def test_watcher_does_not_take_a_growing_clip(tmp_path: Path) -> None:
    path = _clip(tmp_path / "bay1", done=False)
    clock = Clock()
    watcher = BayWatcher([tmp_path / "bay1"], settle_seconds=2.0, clock=clock)
    watcher.scan()
    for _ in range(3):
        clock.now += 5.0
        with open(path, "ab") as f:
            f.write(b"more")
        result = watcher.scan()
        assert result.finished == []
        assert result.settling == [path]


def test_watcher_reports_a_non_clip_once_and_leaves_it(tmp_path: Path) -> None:
    bay = tmp_path / "bay1"
    bay.mkdir()
    notes = bay / "notes.txt"
    notes.write_text("officer notes")
    watcher = BayWatcher([bay], settle_seconds=0)
    assert watcher.scan().non_clips == [notes]
    assert watcher.scan().non_clips == []
    assert notes.read_text() == "officer notes"


def test_watcher_does_not_report_markers_or_the_camera_file(tmp_path: Path) -> None:
    bay = tmp_path / "bay1"
    _clip(bay, done=True)
    (bay / "CAMERA").write_text("SN-1\n")
    assert BayWatcher([bay]).scan().non_clips == []


def test_watcher_reads_the_camera_serial_else_uses_the_bay_name(tmp_path: Path) -> None:
    _clip(tmp_path / "bay1")
    _clip(tmp_path / "bay2")
    (tmp_path / "bay1" / "CAMERA").write_text("SN-7781\nmodel X\n")
    found = BayWatcher([tmp_path / "bay1", tmp_path / "bay2"]).scan().finished
    assert [(c.bay, c.camera) for c in found] == [("bay1", "SN-7781"), ("bay2", "bay2")]


def test_watcher_finds_clips_in_camera_subfolders(tmp_path: Path) -> None:
    path = _clip(tmp_path / "bay1" / "DCIM" / "100MEDIA")
    found = BayWatcher([tmp_path / "bay1"]).scan().finished
    assert [(c.path, c.bay) for c in found] == [(path, "bay1")]


@pytest.mark.parametrize("name", ["a.mp4", "B.MOV", "c.M4V", "d.avi", "e.MKV", "f.mts"])
def test_watcher_clip_extensions_ignore_case(tmp_path: Path, name: str) -> None:
    _clip(tmp_path / "bay", name=name)
    assert [c.path.name for c in BayWatcher([tmp_path / "bay"]).scan().finished] == [name]


def test_hash_file_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = _clip(tmp_path, size=3 * 1024 * 1024 + 17)
    st = path.stat()
    assert hash_file(path, st.st_size, st.st_mtime_ns) == _sha(path)


def test_hash_file_refuses_a_file_that_is_not_the_one_seen(tmp_path: Path) -> None:
    path = _clip(tmp_path)
    st = path.stat()
    with pytest.raises(ClipChanged):
        hash_file(path, st.st_size + 1, st.st_mtime_ns)


# --- rate cap -----------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_rate_cap_keeps_the_average_at_or_below_the_cap() -> None:
    t = FakeTime()
    limiter = RateLimiter(200_000, clock=t.clock, sleep=t.sleep)
    sent = 0
    for _ in range(10):
        limiter.acquire(100_000)  # the piece goes out now, at the time the cap allows
        assert sent <= 200_000 * t.now  # bytes already out fit under the cap by now
        sent += 100_000
    assert t.now == pytest.approx(4.5)  # 1 MB at 0.2 MB/s: the 10th piece starts at 4.5 s


def test_rate_cap_idle_time_earns_no_burst() -> None:
    t = FakeTime()
    limiter = RateLimiter(100_000, clock=t.clock, sleep=t.sleep)
    limiter.acquire(100_000)
    t.now += 100.0  # idle
    start = t.now
    for _ in range(3):
        limiter.acquire(100_000)
    assert t.now - start == pytest.approx(2.0)


def test_rate_cap_is_given_in_megabytes_per_second() -> None:
    limiter = RateLimiter.from_mb_s(2.5)
    assert limiter is not None and limiter.bytes_per_second == 2_500_000
    assert RateLimiter.from_mb_s(None) is None


def test_chunks_are_streamed_through_the_cap_in_small_pieces(
    tmp_path: Path, service: FakeService
) -> None:
    pieces: list[int] = []

    class Spy(RateLimiter):
        def acquire(self, size: int) -> None:
            pieces.append(size)

    client = TusClient(
        SERVICE, TOKEN, http_client=service.client(), chunk_size=200_000, limiter=Spy(1)
    )
    url = client.create(400_000, {"sha256": "00" * 32})
    assert client.patch(url, 0, os.urandom(200_000), final=False) == (200_000, None)
    assert sum(pieces) == 200_000
    assert max(pieces) <= 64 * 1024 and len(pieces) > 1


# --- configuration ------------------------------------------------------------------------------


def _certificate(
    subject: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    ip: str | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA certificate (no issuer) or a server certificate for ``ip`` signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if ip is not None:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(tmp_path: Path) -> Path:
    return _pem(tmp_path / "ca.pem", _certificate("bwv test CA")[0])


@pytest.fixture
def tls_service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback whose certificate chains to a test CA: (url, CA file)."""
    ca_cert, ca_key = _certificate("bwv test CA")
    cert, key = _certificate("bwv service", (ca_cert.subject, ca_key), ip="127.0.0.1")
    _pem(tmp_path / "server.pem", cert)
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"detail": "no such clip"}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", _pem(tmp_path / "ca.pem", ca_cert)
    server.shutdown()
    server.server_close()


def _https_config(tmp_path: Path, signer: SigningKey, url: str, ca: Path) -> DockConfig:
    return DockConfig(url, "d", TOKEN, [str(signer.verifier)], tmp_path / "state", ca_file=ca)


def test_tls_service_signed_by_the_pinned_ca_is_reached(
    tmp_path: Path, signer: SigningKey, tls_service: tuple[str, Path]
) -> None:
    url, ca = tls_service
    client = TusClient.from_config(_https_config(tmp_path, signer, url, ca))
    assert client.receipt("ab" * 32) is None  # a 404 answer: the TLS handshake succeeded
    client.close()


def test_tls_service_signed_by_another_ca_is_refused(
    tmp_path: Path, signer: SigningKey, tls_service: tuple[str, Path]
) -> None:
    url, _ = tls_service
    (tmp_path / "other").mkdir()
    other_ca = _ca(tmp_path / "other")
    client = TusClient.from_config(_https_config(tmp_path, signer, url, other_ca))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.receipt("ab" * 32)
    client.close()


def test_config_file_is_private_and_round_trips(tmp_path: Path, signer: SigningKey) -> None:
    config = _config(tmp_path, signer, [tmp_path / "bay1"], max_rate_mb_s=5.0)
    path = config.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DockConfig.load(config.state_dir) == config


def test_config_load_refuses_a_file_others_can_read(tmp_path: Path, signer: SigningKey) -> None:
    path = _config(tmp_path, signer, []).save()
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        DockConfig.load(path)


def test_config_refuses_plain_http_to_another_host(tmp_path: Path, signer: SigningKey) -> None:
    with pytest.raises(ConfigError, match="plain http"):
        DockConfig(
            service_url="http://evidence.example:8000",
            dock_name="d",
            token=TOKEN,
            verifier_keys=[str(signer.verifier)],
            state_dir=tmp_path,
        )


def test_config_refuses_https_without_a_ca_file(tmp_path: Path, signer: SigningKey) -> None:
    with pytest.raises(ConfigError, match="CA file"):
        DockConfig(
            service_url="https://evidence.example",
            dock_name="d",
            token=TOKEN,
            verifier_keys=[str(signer.verifier)],
            state_dir=tmp_path,
        )


def test_config_refuses_a_malformed_pinned_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pinned service key"):
        DockConfig(SERVICE, "d", TOKEN, ["not-a-key"], tmp_path)


def test_tls_trusts_the_configured_ca_and_nothing_else(tmp_path: Path, signer: SigningKey) -> None:
    config = write_enrollment(
        tmp_path / "state", "https://evidence.example", "d", TOKEN, str(signer.verifier),
        _ca(tmp_path),
    )  # fmt: skip
    context = config.ssl_context()
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "bwv test CA"),),)]
    assert context.check_hostname


def test_agent_refuses_to_start_without_its_ca_file(tmp_path: Path, signer: SigningKey) -> None:
    config = _https_config(tmp_path, signer, "https://evidence.example", tmp_path / "gone.pem")
    with pytest.raises(ConfigError, match="does not exist"):
        DockAgent(config)


def test_enrollment_writes_a_loadable_config_with_the_pinned_ca(
    tmp_path: Path, signer: SigningKey
) -> None:
    ca = _ca(tmp_path)
    written = write_enrollment(
        tmp_path / "state", "https://evidence.example", "d", TOKEN, str(signer.verifier), ca
    )
    loaded = DockConfig.load(tmp_path / "state")
    assert loaded == written
    assert loaded.verifier_keys == [str(signer.verifier)]
    assert loaded.ca_file is not None and loaded.ca_file.read_bytes() == ca.read_bytes()


# --- receipt and wipe: the decision ------------------------------------------------------------


def test_verified_receipt_wipes_the_clip_and_its_marker(tmp_path: Path, signer: SigningKey) -> None:
    path = _clip(tmp_path / "bay1")
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = _uploaded_clip(agent, path)
        clip = agent.handle_receipt(clip_id, _receipt(signer, _sha(path), 3000))
    assert clip.state == "wiped"
    assert not path.exists()
    assert not path.with_name(path.name + ".done").exists()


def test_a_scan_racing_a_wipe_does_not_queue_the_clip_again(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = _clip(tmp_path / "bay1")
    receipt = _receipt(signer, _sha(path), 3000)
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = _uploaded_clip(agent, path)
        wipe = threading.Thread(target=agent.handle_receipt, args=(clip_id, receipt))
        real_scan = agent.watcher.scan

        def scan_then_let_the_wipe_run() -> Any:
            seen = real_scan()  # the camera file is seen here, just before its wipe
            wipe.start()
            wipe.join(timeout=0.5)  # without exclusion the wipe would finish right now
            return seen

        agent.watcher.scan = scan_then_let_the_wipe_run  # type: ignore[method-assign]
        agent.scan()
        wipe.join()
        assert [c.state for c in agent.queue.list()] == ["wiped"]
    assert not path.exists()


def test_receipt_is_recorded_durably_with_the_clip(tmp_path: Path, signer: SigningKey) -> None:
    path = _clip(tmp_path / "bay1")
    sha = _sha(path)
    document = _receipt(signer, sha, 3000)
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = _uploaded_clip(agent, path)
        agent.handle_receipt(clip_id, document)
        assert agent.queue.get(clip_id).receipt == document
        assert agent.queue.get(clip_id).evidence_id == "EV-1"
    lines = (tmp_path / "state" / "receipts.jsonl").read_text().splitlines()
    assert [(json.loads(x)["sha256"], json.loads(x)["receipt"]) for x in lines] == [(sha, document)]


def test_receipt_signed_by_an_unpinned_key_keeps_the_camera_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = _clip(tmp_path / "bay1")
    stranger = SigningKey(signer.name, Ed25519PrivateKey.generate())
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = _uploaded_clip(agent, path)
        clip = agent.handle_receipt(clip_id, _receipt(stranger, _sha(path), 3000))
    assert path.exists()
    assert clip.state == "failed"
    assert clip.last_error is not None and "not the pinned service key" in clip.last_error


def test_receipt_carrying_the_pinned_key_but_signed_by_another_keeps_the_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = _clip(tmp_path / "bay1")
    forged = _receipt(SigningKey(signer.name, Ed25519PrivateKey.generate()), _sha(path), 3000)
    forged["key"] = str(signer.verifier)
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(_uploaded_clip(agent, path), forged)
    assert path.exists()
    assert clip.state == "failed" and "does not verify" in (clip.last_error or "")


def test_receipt_naming_another_sha256_keeps_the_camera_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = _clip(tmp_path / "bay1")
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(_uploaded_clip(agent, path), _receipt(signer, "0" * 64, 3000))
    assert path.exists()
    assert clip.state == "failed" and "names SHA-256" in (clip.last_error or "")


def test_receipt_naming_another_size_keeps_the_camera_file(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = _clip(tmp_path / "bay1")
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(_uploaded_clip(agent, path), _receipt(signer, _sha(path), 1))
    assert path.exists()
    assert clip.state == "failed"


def test_refused_receipt_leaves_no_local_record(tmp_path: Path, signer: SigningKey) -> None:
    path = _clip(tmp_path / "bay1")
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip = agent.handle_receipt(_uploaded_clip(agent, path), _receipt(signer, "0" * 64, 3000))
    assert clip.receipt is None
    assert not (tmp_path / "state" / "receipts.jsonl").exists()


def test_clip_changed_after_hashing_is_not_wiped(tmp_path: Path, signer: SigningKey) -> None:
    path = _clip(tmp_path / "bay1")
    sha = _sha(path)
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        clip_id = _uploaded_clip(agent, path)
        with open(path, "ab") as f:
            f.write(b"appended by the camera")
        clip = agent.handle_receipt(clip_id, _receipt(signer, sha, 3000))
    assert path.exists()
    assert (clip.state, clip.last_error) == ("failed", CHANGED_AFTER_HASHING)


def test_clip_changed_after_hashing_is_queued_again_as_a_new_clip(
    tmp_path: Path, signer: SigningKey
) -> None:
    path = _clip(tmp_path / "bay1")
    with DockAgent(_config(tmp_path, signer, [tmp_path / "bay1"])) as agent:
        first = _uploaded_clip(agent, path)
        with open(path, "ab") as f:
            f.write(b"appended")
        agent.handle_receipt(first, _receipt(signer, _sha(path), 3000))
        agent.scan()
        rows = agent.queue.list()
    assert [(c.id == first, c.state, c.size) for c in rows] == [
        (True, "failed", 3000),
        (False, "found", 3000 + len(b"appended")),
    ]


# --- protocol, against the fake service ---------------------------------------------------------


def test_once_uploads_verifies_and_wipes_every_bay(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    a = _clip(tmp_path / "bay1", "A.MP4", 5000)
    b = _clip(tmp_path / "bay2", "B.mov", 2500)
    sha_a, sha_b = _sha(a), _sha(b)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1", tmp_path / "bay2"]) as agent:
        report = agent.run(once=True)
    assert sorted(c.sha256 for c in report.wiped) == sorted([sha_a, sha_b])
    assert set(service.stored) == {sha_a, sha_b}
    assert not a.exists() and not b.exists()


def test_upload_metadata_names_the_clip(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay3", "VID9.MP4")
    (tmp_path / "bay3" / "CAMERA").write_text("SN-42\n")
    os.utime(path, ns=(0, 1_700_000_000_000_000_000))
    sha = _sha(path)
    with _agent(tmp_path, signer, service, [tmp_path / "bay3"]) as agent:
        agent.run(once=True)
    assert service.uploads["u1"]["meta"] == {
        "sha256": sha,
        "filename": "VID9.MP4",
        "camera": "SN-42",
        "recorded_at": "2023-11-14T22:13:20Z",
        "bay": "bay3",
    }


def test_non_clip_files_are_reported_and_kept(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    _clip(tmp_path / "bay1")
    other = tmp_path / "bay1" / "GPS.LOG"
    other.write_text("track")
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert report.non_clips == [other]
    assert other.read_text() == "track"


def test_requests_speak_tus_with_the_dock_token(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    _clip(tmp_path / "bay1")
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.run(once=True)
    tus = [h for _, p, h in service.requests if p.startswith("/files")]
    assert tus and all(h["tus-resumable"] == "1.0.0" for h in tus)
    assert all(h["authorization"] == f"Bearer {TOKEN}" for _, _, h in service.requests)


def test_upload_resumes_from_the_service_offset(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=4096)
    data = path.read_bytes()
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, _sha(path))
        url = f"{SERVICE}/files/u1"
        service.uploads["u1"] = {"length": 4096, "data": bytearray(data[:2048]), "meta": {}}
        service.uploads["u1"]["meta"]["sha256"] = _sha(path)
        agent.queue.set_upload(clip_id, url, 1024)  # the dock knew less than the service holds
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.patches() == [2048, 3072]
    assert "POST" not in service.methods()


def test_chunks_carry_no_checksum_unless_configured(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    _clip(tmp_path / "bay1", size=2048)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.run(once=True)
    assert service.checksummed == [False, False]


def test_checksum_failure_resends_the_chunk(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=2048)
    service.patch_faults = [460]
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"], chunk_checksums=True) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert service.patches() == [0, 0, 1024]
    assert service.checksummed == [True, True]


def test_offset_conflict_continues_from_the_service_offset(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=3072)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, _sha(path))
        service.uploads["u1"] = {
            "length": 3072,
            "data": bytearray(path.read_bytes()[:1024]),
            "meta": {"sha256": _sha(path)},
        }
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/u1", 0)
        service.patch_faults = [409]  # the first PATCH meets another idea of the offset
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.patches() == [1024, 1024, 2048]


def test_expired_upload_is_started_again(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=2048)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, _sha(path))
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/expired", 1024)
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.methods()[:3] == ["HEAD", "GET", "POST"]
    assert service.patches() == [0, 1024]


def test_expired_upload_of_a_stored_clip_takes_the_existing_receipt(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=2048)
    sha = _sha(path)
    service.stored[sha] = _receipt(signer, sha, 2048)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, sha)
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/expired", 1024)
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.methods() == ["HEAD", "GET"]


def test_lost_final_response_is_recovered_by_finalise(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    service.patch_faults = ["lost"]
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert [p for m, p, _ in service.requests if m != "GET"][-2:] == [
        "/files/u1",
        "/api/v1/uploads/u1/finalise",
    ]
    assert service.patches() == [0]  # the bytes were not sent twice


def test_receipt_in_the_final_response_needs_no_further_request(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    _clip(tmp_path / "bay1", size=2048)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert len(report.wiped) == 1
    # create, 2 chunks: a clip never sent is not asked about first (that would be a refusal leaf)
    assert service.methods() == ["POST", "PATCH", "PATCH"]


def test_missing_receipt_header_is_fetched_by_finalise(tmp_path: Path, signer: SigningKey) -> None:
    service = FakeService(signer, receipt_header=False)
    path = _clip(tmp_path / "bay1", size=1024)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert service.requests[-1][1] == "/api/v1/uploads/u1/finalise"


def test_permanent_refusal_rejects_the_clip_and_keeps_the_file(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    service.patch_faults = [413]
    service.error_bodies[413] = "clip is larger than Tus-Max-Size"
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert path.exists()
    assert [(c.state, c.last_error) for c in report.rejected] == [
        ("rejected", "sending bytes from offset 0: 413 clip is larger than Tus-Max-Size")
    ]
    assert service.patches() == [0]  # not retried


def test_hash_mismatch_at_the_service_rejects_the_clip(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, "f" * 64)  # the service will compute another hash
        clip = agent.process(clip_id)
    assert path.exists()
    assert clip.state == "rejected" and "422" in (clip.last_error or "")


def test_server_errors_are_retried_not_rejected(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    service.patch_faults = [503, 500, 502]
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [(c.path, c.attempts) for c in report.wiped] == [(path, 3)]


def test_network_errors_are_retried(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    service.transport_failures = 4
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]


def test_retries_end_when_the_agent_is_stopped(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    service.transport_failures = 10**9  # the service never answers
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    config = _config(tmp_path, signer, [tmp_path / "bay1"])
    never_give_up = RetryPolicy(multiplier=0.001, max_wait=0.01)
    with DockAgent(config, http_client=service.client(), retry=never_give_up) as agent:
        report = agent.run(stop_event=stop, once=True)
    timer.cancel()
    assert path.exists()
    assert [c.state for c in report.pending] == ["hashed"]


def test_run_until_stopped_processes_new_clips(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    bay = tmp_path / "bay1"
    bay.mkdir()
    stop = threading.Event()
    with _agent(tmp_path, signer, service, [bay], poll_interval=0.05) as agent:
        worker = threading.Thread(target=agent.run, kwargs={"stop_event": stop})
        worker.start()
        path = _clip(bay, size=1024)
        for _ in range(200):
            if not path.exists():
                break
            threading.Event().wait(0.05)
        stop.set()
        worker.join(10)
    assert not path.exists() and not worker.is_alive()


def test_default_retry_policy_never_gives_up_on_retryable_errors() -> None:
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 300:
            if calls % 2:
                raise ServiceUnavailable("503 store unavailable")
            raise httpx.ReadTimeout("timed out")
        return "receipt"

    policy = RetryPolicy(multiplier=0.0, max_wait=0.0)  # no waiting, otherwise the defaults
    assert policy.retrying()(flaky) == "receipt"
    assert calls == 300


def test_retry_policy_does_not_retry_a_permanent_refusal() -> None:
    calls = 0

    def refused() -> None:
        nonlocal calls
        calls += 1
        raise UploadRejected("401 unknown dock token", 401)

    with pytest.raises(UploadRejected):
        RetryPolicy(multiplier=0.0, max_wait=0.0).retrying()(refused)
    assert calls == 1


def test_retry_waits_grow_but_stay_under_the_maximum() -> None:
    policy = RetryPolicy(multiplier=0.5, max_wait=30.0)
    retrying = policy.retrying()
    waits = []
    for attempt in range(1, 40):
        state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        state.set_exception((ServiceUnavailable, ServiceUnavailable("x"), None))
        waits.append(policy.wait_seconds(state))
    assert all(0 <= w <= 30.0 for w in waits)
    assert max(waits[20:]) > 1.0  # jittered, but no longer tiny


def test_crash_after_upload_before_receipt_recovers_the_receipt(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        agent.scan()
        clip_id = agent.queue.list()[0].id
        agent.queue.mark_hashed(clip_id, _sha(path))
        service.uploads["u1"] = {
            "length": 1024,
            "data": bytearray(path.read_bytes()),
            "meta": {"sha256": _sha(path)},
        }
        agent.queue.set_upload(clip_id, f"{SERVICE}/files/u1", 1024)
        agent.queue.mark_uploaded(clip_id)  # ... and the dock died here
        clip = agent.process(clip_id)
    assert clip.state == "wiped"
    assert service.methods() == ["HEAD", "POST"]  # the offset, then finalise: no bytes again


def test_receipted_clip_is_wiped_without_uploading_again(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1")
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        clip_id = _uploaded_clip(agent, path)
        agent.queue.mark_receipted(clip_id, _receipt(signer, _sha(path), 3000))
        report = agent.run(once=True)
    assert [c.id for c in report.wiped] == [clip_id]
    assert service.requests == []


def test_wrong_receipt_from_the_service_keeps_the_file_and_is_retried_later(
    tmp_path: Path, signer: SigningKey, service: FakeService
) -> None:
    path = _clip(tmp_path / "bay1", size=1024)
    service.signer = SigningKey("impostor.example/custody", Ed25519PrivateKey.generate())
    with _agent(tmp_path, signer, service, [tmp_path / "bay1"]) as agent:
        report = agent.run(once=True)
        assert [c.state for c in report.failed] == ["failed"]
        assert path.exists()
        service.signer, service.stored = signer, {}  # the service is fixed
        report = agent.run(once=True)
    assert [c.path for c in report.wiped] == [path]
    assert [(m, p) for m, p, _ in service.requests].count(("POST", "/files/")) == 1


# --- wire formats -------------------------------------------------------------------------------


def test_upload_metadata_is_tus_key_base64_pairs() -> None:
    encoded = encode_metadata({"filename": "A B.MP4", "bay": "bay1"})
    assert encoded == "filename QSBCLk1QNA==,bay YmF5MQ=="


def test_receipt_header_is_read_with_or_without_padding(signer: SigningKey) -> None:
    document = _receipt(signer, "ab" * 32, 1)
    raw = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    assert decode_receipt_header(raw) == document
    assert decode_receipt_header(raw.rstrip("=")) == document
    assert decode_receipt_header("%%%") is None
