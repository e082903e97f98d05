"""The transport an attacker meets first: TLS suites, plain HTTP off loopback, /docs on a closed
network, connections that never finish a request head or body, the descriptor limit."""

from __future__ import annotations

import contextlib
import re
import resource
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bwv.access import add_user
from bwv.base.net import free_port
from bwv.custody.leaf import parse_leaf
from bwv.services.context import Context
from tests.support.apiserver import Api
from tests.support.cli import bwv
from tests.support.ingestserver import IngestServer, make_server, running
from tests.support.wire import send_huge_head, status_of, tls_socket

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0


def closed_within(sock: ssl.SSLSocket, seconds: float, trickle: bytes | None = None) -> float:
    """Seconds until the service closes ``sock`` (sending ``trickle`` every 0.2 s meanwhile);
    ``inf`` if it is still open after ``seconds``."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            if trickle:
                sock.sendall(trickle)
            data = sock.recv(65536)
            if not data:
                return time.monotonic() - start
        except TimeoutError:
            continue
        except (ssl.SSLError, OSError):
            return time.monotonic() - start
    return float("inf")


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IngestServer, str]]:
    """A service with one-second head and body deadlines, under a low descriptor soft limit
    (inherited from this process), and an evidence officer's token."""
    server = make_server(
        tmp_path_factory.mktemp("transport"),
        header_timeout_seconds=HEAD_TIMEOUT,
        body_idle_timeout_seconds=BODY_TIMEOUT,
    )
    ctx = Context(server.settings)
    token = add_user(ctx.engine, "eo-t", "evidence-officer", datetime.now(UTC), 30)
    ctx.close()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
    try:
        server.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield server, token
    finally:
        server.stop()


def test_tls_1_2_cbc_suites_are_refused(api: Api) -> None:
    context = ssl.create_default_context(cafile=str(api.server.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(
        "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256"
    )
    with pytest.raises(ssl.SSLError):
        tls_socket(api.server, context).close()


def test_tls_1_2_with_an_aead_suite_is_accepted(api: Api) -> None:
    context = ssl.create_default_context(cafile=str(api.server.ca))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with tls_socket(api.server, context) as sock:
        assert sock.version() == "TLSv1.2"
        assert sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"


def test_serve_without_a_certificate_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    try:
        done = bwv(
            server.data_dir, "serve", "--host", "0.0.0.0", "--port", str(free_port()), timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("bwv serve listened on 0.0.0.0 over plain HTTP")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "plain HTTP" in lines[0] and "--cert" in lines[0]


def test_docs_page_loads_nothing_from_another_host(api: Api) -> None:
    page = api.http.get("/docs")
    if page.status_code == 404:  # no local Swagger UI assets: no page (openapi.json remains)
        assert api.http.get("/openapi.json").status_code == 200
        return
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        assert api.http.get(asset).status_code == 200, asset
    assert "cdn" not in page.text.lower()
    assert "openapi.json" in page.text


def test_a_slow_request_head_is_dropped_after_the_head_timeout(
    tight: tuple[IngestServer, str],
) -> None:
    server, _ = tight
    with tls_socket(server) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        took = closed_within(sock, HEAD_TIMEOUT + 4, trickle=b"X")
    assert took <= HEAD_TIMEOUT + 2


def test_a_connection_that_sends_nothing_is_dropped_after_the_head_timeout(
    tight: tuple[IngestServer, str],
) -> None:
    server, _ = tight
    with tls_socket(server) as sock:
        took = closed_within(sock, HEAD_TIMEOUT + 4)
    assert took <= HEAD_TIMEOUT + 2


def test_a_stalled_request_body_is_dropped_after_the_idle_timeout(
    tight: tuple[IngestServer, str],
) -> None:
    server, token = tight
    with tls_socket(server) as sock:
        sock.sendall(
            b"POST /api/v1/clips/BWV-X/category HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"cat'
        )
        took = closed_within(sock, BODY_TIMEOUT + 4)
    assert took <= BODY_TIMEOUT + 2


def test_a_request_that_keeps_sending_is_served(tight: tuple[IngestServer, str]) -> None:
    server, _ = tight
    answer = httpx.get(
        f"{server.url}/api/v1/health",
        verify=ssl.create_default_context(cafile=str(server.ca)),
        timeout=10,
    )
    assert answer.status_code == 200


def test_serve_raises_the_descriptor_soft_limit_to_the_hard_one(
    tight: tuple[IngestServer, str],
) -> None:
    server, _ = tight
    assert server.process is not None
    limits = Path(f"/proc/{server.process.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\S+)\s+(\S+)", limits).groups()  # type: ignore[union-attr]
    assert soft == hard


# --- one client holding every connection slot; heads too large to parse --------------------

PER_ADDRESS = 4


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IngestServer, Context]]:
    """A service that takes 16 connections in all and 4 from any one address, with a
    one-second refusal summary."""
    with running(
        tmp_path_factory.mktemp("capped"),
        max_connections=16,
        max_connections_per_address=PER_ADDRESS,
        header_timeout_seconds=30.0,
        refusal_summary_seconds=1.0,
    ) as started:
        yield started


def health_from(server: IngestServer, address: str) -> httpx.Response:
    """GET /api/v1/health from another loopback address (another client: another dock)."""
    transport = httpx.HTTPTransport(
        local_address=address, verify=ssl.create_default_context(cafile=str(server.ca))
    )
    with httpx.Client(base_url=server.url, transport=transport, timeout=10) as client:
        return client.get("/api/v1/health")


def test_one_address_cannot_hold_every_connection_slot(
    capped: tuple[IngestServer, Context],
) -> None:
    server, _ = capped
    held = []
    try:
        for _ in range(30):  # past both the per-address cap and the connection limit
            with contextlib.suppress(ssl.SSLError, OSError):  # closed during the handshake
                held.append(tls_socket(server))
        assert health_from(server, "127.0.0.2").status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_connections_past_the_per_address_cap_are_closed(
    capped: tuple[IngestServer, Context],
) -> None:
    server, _ = capped
    held = [tls_socket(server) for _ in range(PER_ADDRESS)]
    try:
        with tls_socket(server) as extra:
            assert closed_within(extra, 3) <= 3
        assert all(closed_within(sock, 0.5) == float("inf") for sock in held)
    finally:
        for sock in held:
            sock.close()


def test_connections_closed_at_the_cap_are_counted_in_the_summary(
    capped: tuple[IngestServer, Context],
) -> None:
    server, ctx = capped
    time.sleep(2.5)  # what earlier tests left is summarised first
    size = ctx.ledger.size()
    held = [tls_socket(server) for _ in range(PER_ADDRESS + 3)]
    for sock in held:
        sock.close()
    kinds: dict[str, int] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not kinds:
        time.sleep(0.5)
        for seq in range(size, ctx.ledger.size()):
            leaf = parse_leaf(ctx.ledger.leaf(seq).body)
            if leaf["action"] == "access.denied.summary":
                kinds.update(leaf["details"]["kinds"])
    assert kinds.get("connections over the per-address cap") == 3


def test_a_connection_that_never_finishes_its_tls_handshake_is_dropped(
    tight: tuple[IngestServer, str],
) -> None:
    server, _ = tight
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.settimeout(HEAD_TIMEOUT + 4)
        start = time.monotonic()
        try:
            got = raw.recv(1)  # no ClientHello is ever sent
        except OSError:
            got = b""
        took = time.monotonic() - start
    assert got == b""
    assert took <= HEAD_TIMEOUT + 2


def test_a_one_megabyte_request_head_is_431_at_the_head_limit(api: Api) -> None:
    head = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
    with tls_socket(api.server) as sock:
        start = time.monotonic()
        answer = send_huge_head(sock, head)
        took = time.monotonic() - start
    assert answer, "no answer to an oversized head"
    assert status_of(answer) == 431
    assert took < 5
    start = time.monotonic()
    assert api.http.get("/api/v1/health").status_code == 200
    assert time.monotonic() - start < 1
