"""Anonymous clients trying to exhaust the service: huge bodies before any token, bodies over a
route's cap, floods of refusals that would grow the ledger without bound, checkpoint storms."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bwv.api.limits import RefusalLimiter, source_key
from bwv.custody.ledger import CHECKPOINT
from bwv.records.database import WRITE
from bwv.services.context import Context
from tests.support.apiserver import Api
from tests.support.ingestserver import IngestServer, running
from tests.support.wire import read_response, status_of, tls_socket

MB = 1024 * 1024
BURST = 5
SUMMARY_SECONDS = 1.0


def rss_kb(server: IngestServer) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def post_head(path: str, length: int, token: str | None = None, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}")
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def denials(api: Api, since: int) -> list[dict]:
    return [leaf for leaf in api.leaves_since(since) if leaf["action"] == "access.denied"]


def test_a_50_mb_body_without_a_token_is_refused_unread(api: Api) -> None:
    before = rss_kb(api.server)
    body = b'{"reason": "' + b"x" * (50 * MB) + b'"}'
    with tls_socket(api.server) as sock:
        start = time.monotonic()
        sock.sendall(post_head("/api/v1/clips/BWV-1/exports?reason=r", len(body)))
        sent = 0
        sock.settimeout(5)
        try:
            for at in range(0, len(body), MB):  # the service may stop listening half way
                sock.sendall(body[at : at + MB])
                sent += MB
        except (ssl.SSLError, OSError):
            pass
        answer = read_response(sock, 10)
        took = time.monotonic() - start
    assert status_of(answer) == 401
    assert took < 15
    assert rss_kb(api.server) - before < 10 * 1024


def test_a_10_gb_content_length_without_a_token_is_answered_at_once(api: Api) -> None:
    with tls_socket(api.server) as sock:
        start = time.monotonic()
        sock.sendall(post_head("/api/v1/clips/BWV-1/category", 10 * 1024**3))
        answer = read_response(sock, 5)
        took = time.monotonic() - start
    assert answer, "no answer while the body was awaited"
    assert status_of(answer) == 401
    assert took < 3


def test_a_refused_unread_body_closes_the_connection(api: Api) -> None:
    with tls_socket(api.server) as sock:
        sock.sendall(post_head("/api/v1/clips/BWV-1/category", 10 * 1024**3))
        answer = read_response(sock, 5)
    assert b"connection: close" in answer.lower()


def test_a_declared_body_over_the_cap_with_a_token_is_413_before_it_is_read(api: Api) -> None:
    size = api.ledger_size()
    with tls_socket(api.server) as sock:
        start = time.monotonic()
        sock.sendall(post_head("/api/v1/clips/BWV-1/category", MB, api.tokens["evidence-officer"]))
        answer = read_response(sock, 5)
        took = time.monotonic() - start
    assert answer and status_of(answer) == 413
    assert took < 3
    [leaf] = denials(api, size)
    assert leaf["actor"] == api.names["evidence-officer"]
    assert "limit" in leaf["details"]["why"]


def test_a_chunked_body_over_the_cap_is_cut_at_the_cap_with_413(api: Api) -> None:
    size = api.ledger_size()

    def chunks() -> Iterator[bytes]:
        yield b'{"category": "'
        for _ in range(64):
            yield b"x" * 16384  # 1 MiB in all, past the 64 KiB cap
        yield b'"}'

    answer = api.http.post(
        "/api/v1/clips/BWV-1/category",
        content=chunks(),
        headers={
            "Authorization": f"Bearer {api.tokens['evidence-officer']}",
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 413
    assert len(denials(api, size)) == 1


def test_a_body_that_is_not_utf8_json_is_a_recorded_refusal(api: Api) -> None:
    size = api.ledger_size()
    assert api.http is not None
    answer = api.http.post(
        "/api/v1/clips/BWV-1/category",
        content=b'{"category": "\xff\xfe"}',
        headers={
            "Authorization": f"Bearer {api.tokens['evidence-officer']}",
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code in (400, 422)
    [leaf] = denials(api, size)
    assert "invalid request" in leaf["details"]["why"]


def test_300_checkpoint_requests_sign_at_most_a_couple_of_checkpoints(api: Api) -> None:
    def checkpoints() -> int:
        with api.ctx.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(CHECKPOINT)).scalar_one()

    api.call("auditor", "GET", "/api/v1/ledger/checkpoint")
    before = checkpoints()
    for _ in range(300):  # the log grows between calls (each read of leaves is a leaf)
        assert api.call("auditor", "GET", "/api/v1/ledger/leaves?end=1").status_code == 200
        assert api.call("auditor", "GET", "/api/v1/ledger/checkpoint").status_code == 200
    assert checkpoints() - before <= 2


# --- a flood of refusals, against a service with a small refusal budget --------------------


@pytest.fixture(scope="module")
def budget(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IngestServer, Context]]:
    with running(
        tmp_path_factory.mktemp("flood"),
        refusal_burst=BURST,
        refusal_rate=0.5,
        refusal_summary_seconds=SUMMARY_SECONDS,
    ) as started:
        yield started


def flood(server: IngestServer, n: int) -> list[httpx.Response]:
    with httpx.Client(
        base_url=server.url, verify=ssl.create_default_context(cafile=str(server.ca)), timeout=30
    ) as anonymous:
        return [anonymous.get("/api/v1/clips") for _ in range(n)]


def leaves_since(ctx: Context, size: int) -> list[dict]:
    from bwv.custody.leaf import parse_leaf

    return [parse_leaf(ctx.ledger.leaf(seq).body) for seq in range(size, ctx.ledger.size())]


def test_a_flood_of_unauthenticated_requests_adds_a_bounded_number_of_leaves(
    budget: tuple[IngestServer, Context],
) -> None:
    server, ctx = budget
    size = ctx.ledger.size()
    start = time.monotonic()
    answers = flood(server, 300)
    took = time.monotonic() - start
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= BURST + 0.5 * took + 1
    added = [leaf for leaf in leaves_since(ctx, size) if leaf["action"] == "access.denied"]
    assert len(added) == statuses.count(401)


def test_past_the_budget_a_refusal_is_429_with_retry_after(
    budget: tuple[IngestServer, Context],
) -> None:
    server, _ = budget
    answer = flood(server, BURST + 5)[-1]
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) >= 1
    assert "too many refused requests" in answer.json()["detail"]


def test_refusals_past_the_budget_are_counted_in_a_summary_leaf(
    budget: tuple[IngestServer, Context],
) -> None:
    server, ctx = budget
    time.sleep(SUMMARY_SECONDS * 2.5)  # what earlier floods left is summarised first
    size = ctx.ledger.size()
    refused = [a.status_code for a in flood(server, 100)].count(429)
    assert refused > 0
    deadline = time.monotonic() + 10
    counted = 0
    while time.monotonic() < deadline and counted < refused:
        time.sleep(0.5)
        summaries = [
            leaf for leaf in leaves_since(ctx, size) if leaf["action"] == "access.denied.summary"
        ]
        counted = sum(leaf["details"]["refused"] for leaf in summaries)
    assert counted == refused
    assert {s["client"] for leaf in summaries for s in leaf["details"]["sources"]} == {"127.0.0.1"}


def summaries_since(ctx: Context, size: int, want: int = 1, wait: float = 10) -> list[dict]:
    """The summary leaves appended since ``size``, once at least ``want`` are there."""
    deadline = time.monotonic() + wait
    while True:
        found = [
            leaf for leaf in leaves_since(ctx, size) if leaf["action"] == "access.denied.summary"
        ]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_dock_s_refusals_keep_their_status_and_a_bounded_number_of_leaves(
    budget: tuple[IngestServer, Context],
) -> None:
    server, ctx = budget
    token = server.enroll("dock-flood")
    size = ctx.ledger.size()
    start = time.monotonic()
    with httpx.Client(
        base_url=server.url,
        verify=ssl.create_default_context(cafile=str(server.ca)),
        timeout=30,
        headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"},
    ) as dock:
        statuses = [dock.head(f"/files/{uuid.uuid4().hex}").status_code for _ in range(500)]
    took = time.monotonic() - start
    assert set(statuses) == {404}
    added = [
        leaf
        for leaf in leaves_since(ctx, size)
        if leaf["action"] == "access.denied" and leaf["actor"] == "dock-flood"
    ]
    assert 1 <= len(added) <= BURST + 0.5 * took + 1
    summaries = summaries_since(ctx, size)
    callers = {c["caller"]: c["refused"] for leaf in summaries for c in leaf["details"]["callers"]}
    assert callers.get("dock:dock-flood", 0) > 0


def test_one_summary_leaf_per_window_names_every_flooding_address(
    budget: tuple[IngestServer, Context],
) -> None:
    server, ctx = budget
    time.sleep(SUMMARY_SECONDS * 2.5)  # what earlier floods left is summarised first
    size = ctx.ledger.size()
    clients = [
        httpx.Client(
            base_url=server.url,
            transport=httpx.HTTPTransport(
                local_address=address, verify=ssl.create_default_context(cafile=str(server.ca))
            ),
            timeout=30,
        )
        for address in ("127.0.0.2", "127.0.0.3")
    ]
    try:  # both addresses in turn, so both are counted in the same window
        statuses = [c.get("/api/v1/clips").status_code for _ in range(BURST + 20) for c in clients]
    finally:
        for c in clients:
            c.close()
    assert 429 in statuses
    [summary] = summaries_since(ctx, size)[:1]
    clients = {s["client"] for s in summary["details"]["sources"]}
    assert {"127.0.0.2", "127.0.0.3"} <= clients
    assert summary["details"]["refused"] == sum(
        s["refused"] for s in summary["details"]["sources"]
    ) + summary["details"]["sources_others"] + sum(
        c["refused"] for c in summary["details"].get("callers", [])
    ) + summary["details"].get("callers_others", 0)


def test_a_malformed_request_is_counted_in_the_summary(
    budget: tuple[IngestServer, Context],
) -> None:
    server, ctx = budget
    time.sleep(SUMMARY_SECONDS * 2.5)
    size = ctx.ledger.size()
    with tls_socket(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\x00\x01\r\n\r\n")
        answer = read_response(sock, 5)
    assert status_of(answer) == 400
    kinds: dict[str, int] = {}
    for leaf in summaries_since(ctx, size):
        kinds.update(leaf["details"]["kinds"])
    assert kinds.get("malformed requests (400)") == 1


def test_a_checkpoint_is_answered_while_a_writer_holds_the_ledger(api: Api) -> None:
    assert api.call("auditor", "GET", "/api/v1/ledger/leaves?end=1").status_code == 200  # a leaf
    assert api.call("auditor", "GET", "/api/v1/ledger/checkpoint").status_code == 200
    with api.ctx.engine.connect().execution_options(**WRITE) as writer:
        writer.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: the append lock is held
        start = time.monotonic()
        answer = api.call("auditor", "GET", "/api/v1/ledger/checkpoint", timeout=10)
        took = time.monotonic() - start
        writer.rollback()
    assert answer.status_code == 200
    assert answer.text.startswith(api.ctx.settings.ledger_origin)
    assert took < 2


# --- the refusal limiter itself ------------------------------------------------------------


def test_ipv6_sources_are_limited_by_their_64_prefix() -> None:
    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9")
    assert source_key("2001:db8:1:2::1") != source_key("2001:db8:1:3::1")
    assert source_key("192.0.2.7") == "192.0.2.7"
    limiter = RefusalLimiter(0.0, 2)
    admitted = [limiter.admit(source_key(f"2001:db8:1:2::{n:x}")) for n in range(1, 10)]
    assert admitted == [True, True] + [False] * 7


def test_the_global_bucket_bounds_refusal_leaves_across_many_sources() -> None:
    limiter = RefusalLimiter(0.0, 5, global_rate=0.0, global_burst=50, clock=lambda: 0.0)
    admitted = sum(limiter.admit(f"198.51.100.{n}") for n in range(200))
    assert admitted == 50
    drained = limiter.drain()
    assert drained is not None and drained.refused == 150


def test_the_least_recently_seen_source_is_forgotten_first_and_its_count_kept() -> None:
    limiter = RefusalLimiter(0.0, 0, max_sources=3, clock=lambda: 0.0)
    for key in ("a", "b", "c", "a", "d"):  # "b" is the least recently seen when "d" comes
        limiter.admit(key)
    assert list(limiter._sources) == ["c", "a", "d"]
    drained = limiter.drain()
    assert drained is not None
    assert drained.refused == 5
    assert dict(drained.top) == {"a": 2, "c": 1, "d": 1}
    assert drained.others == 1
