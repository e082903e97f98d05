"""GET /api/v1/metrics: Prometheus metrics for the scrape credential alone. Refused (and
recorded) without it whatever the caller's role; the counters follow real uploads and refusals;
the ledger's size is read at the scrape; absent (404) where no credential is configured."""

from __future__ import annotations

import hashlib
import os
import secrets
import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bwv.access import add_user
from tests.support.apiserver import CLIENT, ROLES, Api
from tests.support.ingestserver import running
from tests.support.wire import send_huge_head, status_of, tls_socket

METRICS = "/api/v1/metrics"


def scrape(api: Api, token: str | None = None) -> httpx.Response:
    assert api.http is not None
    headers = {"Authorization": f"Bearer {token or api.metrics_token}"}
    return api.http.get(METRICS, headers=headers)


def samples(api: Api) -> dict[str, float]:
    """Every sample of a scrape by name and labels, e.g. ``bwv_refusals_total{status="401"}``."""
    answer = scrape(api)
    assert answer.status_code == 200, answer.text
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return found


def test_the_scrape_credential_gets_the_metrics_in_prometheus_text_format(api: Api) -> None:
    answer = scrape(api)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(answer.text)}
    assert {
        "bwv_uploads_started",
        "bwv_uploads_completed",
        "bwv_uploads_failed",
        "bwv_upload_bytes_received",
        "bwv_ingest_finalise_seconds",
        "bwv_refusals",
        "bwv_ledger_leaves",
    } <= names


def test_a_scrape_writes_no_leaf(api: Api) -> None:
    before = api.ledger_size()
    scrape(api)
    assert api.ledger_size() == before


def test_the_ledger_gauge_is_the_ledger_size_at_the_scrape(api: Api) -> None:
    assert samples(api)["bwv_ledger_leaves"] == api.ledger_size()


def test_a_scrape_without_a_token_is_401_and_recorded(api: Api) -> None:
    assert api.http is not None
    before = api.ledger_size()
    answer = api.http.get(METRICS)
    assert answer.status_code == 401
    (denied,) = api.leaves_since(before)
    assert (denied["action"], denied["role"]) == ("access.denied", "unauthenticated")
    assert denied["details"]["path"] == METRICS
    assert denied["details"]["client"] == CLIENT


@pytest.mark.parametrize(
    "token",
    ["bwvu_" + secrets.token_urlsafe(32), "wrong", "x" * 64],
    ids=["user-shaped", "short", "scrape-shaped"],
)
def test_a_scrape_with_a_wrong_token_is_401_and_recorded(api: Api, token: str) -> None:
    before = api.ledger_size()
    assert scrape(api, token).status_code == 401
    assert [leaf["action"] for leaf in api.leaves_since(before)] == ["access.denied"]


def test_the_scrape_token_with_one_character_changed_is_refused(api: Api) -> None:
    near = api.metrics_token[:-1] + ("0" if api.metrics_token[-1] != "0" else "1")
    assert scrape(api, near).status_code == 401


@pytest.mark.parametrize("role", ROLES)
def test_no_role_may_scrape_with_its_own_token(api: Api, role: str) -> None:
    before = api.ledger_size()
    answer = api.call(role, "GET", METRICS)
    assert answer.status_code == 403
    (denied,) = api.leaves_since(before)
    assert denied["action"] == "access.denied"
    assert (denied["actor"], denied["role"]) == (api.names[role], role)
    assert denied["details"]["request"] == "metrics.read"


def test_the_scrape_credential_opens_nothing_else(api: Api) -> None:
    assert api.http is not None
    headers = {"Authorization": f"Bearer {api.metrics_token}"}
    assert api.http.get("/api/v1/me", headers=headers).status_code == 401
    assert api.http.get("/api/v1/ledger/checkpoint", headers=headers).status_code == 401
    assert api.http.post(METRICS, headers=headers).status_code == 401  # GET only


def test_a_one_megabyte_head_to_the_metrics_is_431(api: Api) -> None:
    head = (
        b"GET /api/v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + api.metrics_token.encode()
        + b"\r\nX-Pad: "
    )
    with tls_socket(api.server) as sock:
        assert status_of(send_huge_head(sock, head)) == 431
    assert scrape(api).status_code == 200


def test_twenty_concurrent_scrapes_all_answer_whole(api: Api) -> None:
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: scrape(api), range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    for a in answers:
        assert "bwv_ledger_leaves" in {f.name for f in text_string_to_metric_families(a.text)}


def test_an_upload_counts_started_completed_bytes_and_one_finalisation(api: Api) -> None:
    before = samples(api)
    api.ingest("pc-a")
    after = samples(api)
    assert after["bwv_uploads_started_total"] == before["bwv_uploads_started_total"] + 1
    assert after["bwv_uploads_completed_total"] == before["bwv_uploads_completed_total"] + 1
    assert after["bwv_uploads_failed_total"] == before["bwv_uploads_failed_total"]
    assert after["bwv_upload_bytes_received_total"] > before["bwv_upload_bytes_received_total"]
    count = "bwv_ingest_finalise_seconds_count"
    assert after[count] == before[count] + 1


def test_bytes_received_counts_each_byte_written(api: Api) -> None:
    assert api.dock is not None
    data = os.urandom(3000)
    before = samples(api)["bwv_upload_bytes_received_total"]
    created = api.dock.create(len(data) + 1000)  # left incomplete: no finalisation
    assert api.dock.patch(created.headers["Location"], 0, data).status_code == 204
    assert samples(api)["bwv_upload_bytes_received_total"] == before + 3000


def test_an_upload_whose_hash_differs_from_the_claim_counts_as_failed(api: Api) -> None:
    assert api.dock is not None
    data = os.urandom(2048)
    before = samples(api)
    claim = hashlib.sha256(b"something else").hexdigest()
    created = api.dock.create(len(data), sha256=claim, filename="x.mp4")
    assert api.dock.patch(created.headers["Location"], 0, data).status_code == 422
    after = samples(api)
    assert after["bwv_uploads_failed_total"] == before["bwv_uploads_failed_total"] + 1
    assert after["bwv_uploads_completed_total"] == before["bwv_uploads_completed_total"]


def test_refusals_are_counted_by_status(api: Api) -> None:
    assert api.http is not None
    key = 'bwv_refusals_total{status="403"}'
    before = samples(api).get(key, 0.0)
    api.call("officer", "GET", "/api/v1/ledger/leaves")  # an officer may not read the ledger
    api.call("officer", "GET", "/api/v1/ledger/leaves")
    assert samples(api)[key] == before + 2


def test_without_a_scrape_credential_there_is_no_metrics_endpoint(tmp_path: Path) -> None:
    with running(tmp_path) as (server, ctx):
        token = add_user(ctx.engine, "ad-1", "admin", ctx.clock(), 1)
        with httpx.Client(
            base_url=server.url, verify=ssl.create_default_context(cafile=str(server.ca))
        ) as http:
            answer = http.get(METRICS, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 404
            assert METRICS not in http.get("/openapi.json").json()["paths"]


def test_a_metrics_token_file_open_to_other_users_stops_the_service_starting(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "metrics.token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o644)
    with (
        pytest.raises(RuntimeError, match="open to other users"),
        running(tmp_path, metrics_token_file=token_file),
    ):
        pass
