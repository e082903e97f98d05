"""The API against its own OpenAPI document: schemathesis generates requests for every operation
(except the tus upload endpoints under ``/files``, which the official tus client tests) as each
role in turn, and the live service must answer none of them with a 5xx, and every answer within
the schema it publishes (status body and content type).

The run is bounded and reproducible: a fixed number of examples per operation, derandomised."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.support.apiserver import OFFICER, OTHER_OFFICER, ROLES, Api, start_api

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = 15  # per operation and role


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The service with a clip from each officer's camera and one disclosure copy, so that
    generated requests reach real records as well as unknown ids."""
    live = start_api(tmp_path_factory.mktemp("api-schema"))
    try:
        clips = [live.ingest(OFFICER), live.ingest(OTHER_OFFICER)]
        made = live.call(
            "evidence-officer",
            "POST",
            f"/api/v1/clips/{clips[0]}/exports",
            params={"reason": "a copy for the schema run"},
            json={"options": None, "plan": None, "mute": []},
        )
        assert made.status_code == 201, made.text
        yield {"live": live, "clips": clips, "exports": [made.json()["export_id"]]}
    finally:
        live.close()


def config_for(api: dict[str, Any], role: str) -> schemathesis.Config:
    live: Api = api["live"]
    return schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {live.tokens[role]}"},
            "tls-verify": str(live.server.ca),
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "dictionaries": {
                "clips": {"values": api["clips"]},
                "exports": {"values": api["exports"]},
                "unknown": {"values": ["BWV-NO-SUCH-CLIP"]},
            },
            # Half the generated ids name a real clip or copy, the rest are unknown (404).
            "parameters": {
                "path.evidence_id": {"dictionary": "clips", "probability": 0.5},
                "path.export_id": {"dictionary": "exports", "probability": 0.5},
            },
            # Planning and exporting run detection and render video (seconds each): there the
            # evidence id is drawn at random, so it names no clip and the request ends at 404
            # (after authentication, the policy and validation of the body) with no work done.
            "operations": [
                {
                    "include-path-regex": r"^/api/v1/clips/\{evidence_id\}/(plan|exports)$",
                    "parameters": {
                        "path.evidence_id": {"dictionary": "unknown", "probability": 0.2}
                    },
                }
            ],
        }
    )


@pytest.fixture(params=ROLES)
def api_schema(request: pytest.FixtureRequest, api: dict[str, Any]) -> schemathesis.BaseSchema:
    live: Api = api["live"]
    return schemathesis.openapi.from_url(
        f"{live.server.url}/openapi.json", config=config_for(api, request.param)
    )


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"^/files")


@schema.parametrize()
def test_every_answer_is_within_the_published_schema_and_none_is_a_server_error(
    case: schemathesis.Case,
) -> None:
    case.call_and_validate(checks=CHECKS)
