"""The probes a load balancer calls: liveness and readiness, without a token, recording
nothing, saying no path; readiness 503 naming the database while PostgreSQL is really down,
200 again once it is back."""

from __future__ import annotations

import os
import secrets
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.apiserver import Api
from tests.support.ingestserver import running
from tests.support.pgserver import find_bindir, postgres_server
from tests.support.wire import send_huge_head, status_of, tls_socket

PROBES = ("/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready")


@pytest.mark.parametrize("path", PROBES)
def test_a_probe_answers_200_without_a_token(api: Api, path: str) -> None:
    assert api.http is not None
    assert api.http.get(path).status_code == 200


@pytest.mark.parametrize("path", PROBES)
def test_a_probe_writes_no_leaf_with_a_token_or_without(api: Api, path: str) -> None:
    assert api.http is not None
    before = api.ledger_size()
    api.http.get(path)
    api.call("officer", "GET", path)
    api.http.get(path, headers={"Authorization": "Bearer bwvu_not-a-token"})
    assert api.ledger_size() == before


def test_liveness_says_live(api: Api) -> None:
    assert api.http is not None
    assert api.http.get("/api/v1/health/live").json() == {"status": "live"}


def test_readiness_names_each_check_and_its_state(api: Api) -> None:
    assert api.http is not None
    answer = api.http.get("/api/v1/health/ready")
    body = answer.json()
    assert (body["status"], body["failed"]) == ("ready", [])
    assert {name: c["ok"] for name, c in body["checks"].items()} == {
        "database": True,
        "store": True,
        "uploads": True,
    }
    assert answer.headers["cache-control"] == "no-store"


def test_readiness_says_no_path_of_the_install(api: Api) -> None:
    assert api.http is not None
    text = api.http.get("/api/v1/health/ready").text
    assert str(api.server.data_dir) not in text
    assert "/" not in "".join(
        c["detail"] for c in api.http.get("/api/v1/health/ready").json()["checks"].values()
    )


def test_the_old_health_probe_still_says_ok(api: Api) -> None:
    assert api.http is not None
    assert api.http.get("/api/v1/health").json() == {"status": "ok"}


def test_fifty_concurrent_readiness_probes_all_answer_200(api: Api) -> None:
    assert api.http is not None
    http = api.http
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: http.get("/api/v1/health/ready").status_code, range(50)))
    assert statuses == [200] * 50


def test_a_one_megabyte_head_to_readiness_is_431_and_the_probe_still_answers(api: Api) -> None:
    assert api.http is not None
    with tls_socket(api.server) as sock:
        head = b"GET /api/v1/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
        assert status_of(send_huge_head(sock, head)) == 431
    assert api.http.get("/api/v1/health/ready").status_code == 200


def _ready(http: httpx.Client) -> tuple[int, dict[str, object]]:
    answer = http.get("/api/v1/health/ready")
    return answer.status_code, answer.json()


def _until_not_ready(http: httpx.Client) -> tuple[float, dict[str, object]]:
    """Seconds until readiness first answers 503 (an answer may be up to 1 s old), and its body."""
    start = time.monotonic()
    while time.monotonic() - start < 30:
        status, body = _ready(http)
        if status == 503:
            return time.monotonic() - start, body
        time.sleep(0.1)
    raise AssertionError("readiness never answered 503")


@pytest.mark.postgres
@pytest.mark.slow
def test_readiness_is_503_naming_the_database_while_postgresql_is_stopped_and_200_once_back(
    tmp_path: Path,
) -> None:
    if find_bindir() is None:  # as the session's pg_server fixture: this test stops its own
        if os.environ.get("BWV_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server binaries not found, and BWV_REQUIRE_POSTGRES is set")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    with postgres_server() as pg, running(tmp_path, database_url=pg.new_database()) as (server, _):
        http = httpx.Client(
            base_url=server.url,
            timeout=30,
            verify=ssl.create_default_context(cafile=str(server.ca)),
        )
        with http:
            assert _ready(http)[0] == 200
            pg.stop()
            took, body = _until_not_ready(http)
            assert body["failed"] == ["database"]
            assert took < 6  # the last answer's age (1 s) and the check's timeout (3 s)
            assert str(pg.port) not in http.get("/api/v1/health/ready").text  # no host:port
            assert http.get("/api/v1/health/live").status_code == 200  # alive all the same
            pg.start()
            deadline = time.monotonic() + 30
            while _ready(http)[0] != 200:
                assert time.monotonic() < deadline, "readiness did not recover"
                time.sleep(0.5)


@pytest.mark.slow
def test_readiness_is_503_naming_the_store_while_the_s3_gateway_is_stopped_and_200_once_back(
    rgw: Any, tmp_path: Path
) -> None:
    store_url = rgw.url(f"ready-{secrets.token_hex(4)}")
    with running(tmp_path, store_url=store_url) as (server, _):
        http = httpx.Client(
            base_url=server.url,
            timeout=30,
            verify=ssl.create_default_context(cafile=str(server.ca)),
        )
        down = False
        try:
            assert _ready(http)[0] == 200
            rgw.stop()
            down = True
            took, body = _until_not_ready(http)
            assert body["failed"] == ["store"]
            assert took < 6
            text = http.get("/api/v1/health/ready").text
            assert rgw.endpoint not in text and rgw.secret_key not in text  # no host, no key
            rgw.start()
            down = False
            deadline = time.monotonic() + 60
            while _ready(http)[0] != 200:
                assert time.monotonic() < deadline, "readiness did not recover"
                time.sleep(0.5)
        finally:
            if down:
                rgw.start()
            http.close()
