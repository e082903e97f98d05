"""Bad input to the API: answered 4xx with one line (or FastAPI's 422 list), nothing changed,
the refusal recorded, and nothing a caller sends can grow the permanent ledger at will."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bwv.base.clock import as_utc
from tests.support.apiserver import OFFICER, Api


@pytest.fixture(scope="module")
def clip(api: Api) -> str:
    return api.ingest(OFFICER)


def _only_denial(api: Api, size: int) -> dict[str, Any]:
    (leaf,) = api.leaves_since(size)
    assert leaf["action"] == "access.denied" and leaf["outcome"] == "refused"
    return leaf


@pytest.mark.parametrize(
    "spans",
    [[[2.0, 1.0]], [[0.0, 1e308]], [[-1.0, 1.0]]],
    ids=["reversed", "past-any-clip", "negative"],
)
def test_a_bad_mute_span_is_422_and_recorded(api: Api, clip: str, spans: list[list[float]]) -> None:
    size = api.ledger_size()
    answer = api.call(
        "evidence-officer",
        "POST",
        f"/api/v1/clips/{clip}/plan",
        params={"reason": "case 9"},
        json={"options": None, "mute": spans},
    )
    assert answer.status_code == 422
    assert _only_denial(api, size)["details"]["why"].startswith("invalid request: body.mute")


def test_a_leaf_index_past_json_s_exact_integers_is_422(api: Api) -> None:
    answer = api.call("auditor", "GET", "/api/v1/ledger/leaves", params={"start": 2**60})
    assert answer.status_code == 422


def test_a_huge_unknown_evidence_id_is_recorded_cut_short(api: Api) -> None:
    size = api.ledger_size()
    answer = api.http.get(f"/api/v1/clips/{'E' * 60_000}")  # type: ignore[union-attr]
    assert answer.status_code == 401
    leaf = _only_denial(api, size)
    assert leaf["target"].endswith("(60000 characters)") and len(leaf["target"]) < 300
    assert len(leaf["details"]["path"]) < 300


def test_a_huge_search_filter_is_recorded_cut_short(api: Api) -> None:
    size = api.ledger_size()
    answer = api.call("evidence-officer", "GET", "/api/v1/clips", params={"camera": "C" * 30_000})
    assert answer.status_code == 200 and answer.json()["total"] == 0
    (leaf,) = api.leaves_since(size)
    assert leaf["action"] == "clips.searched"
    assert leaf["details"]["filters"]["camera"].endswith("(30000 characters)")


def test_a_search_window_with_an_offset_is_read_in_utc(api: Api, clip: str) -> None:
    shown = api.call("evidence-officer", "GET", f"/api/v1/clips/{clip}").json()
    recorded = as_utc(datetime.fromisoformat(shown["recorded_at"]))
    # Thirty minutes before the recording, written as Karachi time (+05:00).
    start = (recorded - timedelta(minutes=30)).astimezone(timezone(timedelta(hours=5)))
    found = api.call(
        "evidence-officer", "GET", "/api/v1/clips", params={"recorded_from": start.isoformat()}
    ).json()
    assert clip in [c["evidence_id"] for c in found["items"]]


@pytest.mark.parametrize("reason", ["case\u20281234", "case\x7f1234", "case\x851234"])
def test_a_reason_that_is_not_one_line_of_text_is_400(api: Api, clip: str, reason: str) -> None:
    size = api.ledger_size()
    answer = api.call(
        "evidence-officer", "GET", f"/api/v1/clips/{clip}/original", params={"reason": reason}
    )
    assert answer.status_code == 400 and "one line of text" in answer.json()["detail"]
    assert _only_denial(api, size)["details"]["request"] == "clip.download"
