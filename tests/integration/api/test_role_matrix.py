"""The role matrix, walked against the live service: every endpoint of docs/API.md, as every
role, about the caller's own clip or another officer's. What is allowed is read from the policy
table (``bwv.access.POLICY``), not restated here; a few spot checks state the rules plainly.

An allowed request answers 2xx and, when it touches evidence, leaves the rule's leaf naming the
caller and their reason; a refused one answers 403 and leaves exactly one ``access.denied`` leaf
naming the caller, their role, what they asked and where from."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from bwv.access import POLICY
from bwv.records.tables import Clip
from tests.support import REPO
from tests.support.apiserver import CLIENT, OFFICER, OTHER_OFFICER, ROLES, Api, start_api

OWN, OTHERS, NO_CLIP = "own-clip", "others-clip", "no-clip"
NOT_IN_MATRIX = {  # not the people's API: the health probe and the docks' upload endpoints
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/health/live"),
    ("GET", "/api/v1/health/ready"),
    ("GET", "/api/v1/keys"),  # the service's keys and rotation statements, public and signed
    ("GET", "/api/v1/receipts/{sha256}"),
    ("POST", "/api/v1/uploads/{upload_id}/finalise"),
}


@dataclass(frozen=True)
class Endpoint:
    """One row of docs/API.md. ``about`` is what the request names: a clip (in the path), an
    officer (the search filter), a disclosure copy, or nothing."""

    action: str
    method: str
    path: str
    about: str = "nothing"
    body: dict[str, Any] | None = None
    mutates: bool = False  # every case gets a fresh clip, so the order of cases cannot matter

    @property
    def clips(self) -> tuple[str, ...]:
        return {"clip": (OWN, OTHERS), "officer": (OWN, OTHERS), "export": (OWN,)}.get(
            self.about, (NO_CLIP,)
        )


CLIP_PATH = "/api/v1/clips/{evidence_id}"
ENDPOINTS = (
    Endpoint("me", "GET", "/api/v1/me"),
    Endpoint("categories.list", "GET", "/api/v1/categories"),
    Endpoint("clips.search", "GET", "/api/v1/clips", about="officer"),
    Endpoint("clip.view", "GET", CLIP_PATH, about="clip"),
    Endpoint("clip.custody", "GET", CLIP_PATH + "/custody", about="clip"),
    Endpoint("clip.download", "GET", CLIP_PATH + "/original", about="clip"),
    Endpoint("clip.categorise", "POST", CLIP_PATH + "/category", about="clip", mutates=True),
    Endpoint("hold.place", "PUT", CLIP_PATH + "/hold", about="clip", mutates=True),
    Endpoint("hold.release", "DELETE", CLIP_PATH + "/hold", about="clip", mutates=True),
    Endpoint(
        "redact.plan",
        "POST",
        CLIP_PATH + "/plan",
        about="clip",
        body={"options": None, "mute": []},
    ),
    Endpoint(
        "export.create",
        "POST",
        CLIP_PATH + "/exports",
        about="clip",
        body={"options": None, "plan": None, "mute": []},
    ),
    Endpoint("exports.list", "GET", "/api/v1/exports"),
    Endpoint("export.download", "GET", "/api/v1/exports/{export_id}/content", about="export"),
    Endpoint("ledger.checkpoint", "GET", "/api/v1/ledger/checkpoint"),
    Endpoint("ledger.read", "GET", "/api/v1/ledger/leaves"),
    Endpoint("metrics.read", "GET", "/api/v1/metrics"),  # the scrape credential only
)


def allowed(action: str, role: str, clip: str) -> bool:
    """What POLICY says: the role may ask, and if only about its own clips, this is one."""
    rule = POLICY[action]
    if role not in rule.roles:
        return False
    return not (role in rule.own_clips_only and clip == OTHERS)


def matrix() -> Iterator[Any]:
    for endpoint in ENDPOINTS:
        for role in ROLES:
            for clip in endpoint.clips:
                yield pytest.param(
                    endpoint, role, clip, id=f"{endpoint.method} {endpoint.path}|{role}|{clip}"
                )


@dataclass
class World:
    api: Api
    clips: dict[str, str]  # OWN / OTHERS -> evidence id
    categories: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    api = start_api(tmp_path_factory.mktemp("role-matrix"))
    try:
        clips = {OWN: api.ingest(OFFICER), OTHERS: api.ingest(OTHER_OFFICER)}
        listed = api.call("admin", "GET", "/api/v1/categories")
        assert listed.status_code == 200, listed.text
        yield World(api, clips, [c["name"] for c in listed.json()])
    finally:
        api.close()


@pytest.fixture(scope="module")
def export_id(world: World) -> str:
    """A disclosure copy of the officer's own clip, made through the API."""
    made = world.api.call(
        "evidence-officer",
        "POST",
        f"/api/v1/clips/{world.clips[OWN]}/exports",
        params={"reason": "disclosure for the role matrix"},
        json={"options": None, "plan": None, "mute": []},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["export_id"])


def clip_category(api: Api, evidence_id: str) -> str:
    table = Clip.__table__
    with api.ctx.engine.connect() as conn:
        return str(
            conn.execute(
                select(table.c.category).where(table.c.evidence_id == evidence_id)
            ).scalar_one()
        )


def prepare(
    world: World, endpoint: Endpoint, clip: str, request: pytest.FixtureRequest
) -> tuple[str, dict[str, Any], dict[str, Any] | None, str | None]:
    """The path, extra query parameters and body of the request, and the evidence id it is
    about (set up as the case needs: a fresh clip, a hold to release)."""
    api = world.api
    evidence_id = None
    params: dict[str, Any] = {}
    body = endpoint.body
    path = endpoint.path
    if endpoint.about == "officer":
        params["officer"] = OFFICER if clip == OWN else OTHER_OFFICER
    elif endpoint.about == "clip":
        if endpoint.mutates:
            evidence_id = api.ingest(OFFICER if clip == OWN else OTHER_OFFICER)
        else:
            evidence_id = world.clips[clip]
        path = path.format(evidence_id=evidence_id)
    elif endpoint.about == "export":
        evidence_id = world.clips[OWN]
        path = path.format(export_id=request.getfixturevalue("export_id"))
    if endpoint.action == "clip.categorise":
        assert evidence_id is not None
        current = clip_category(api, evidence_id)
        body = {"category": next(c for c in world.categories if c != current), "case": "CASE-1"}
    if endpoint.action == "hold.release":
        placed = api.call(
            "evidence-officer",
            "PUT",
            endpoint.path.format(evidence_id=evidence_id),
            params={"reason": "held so that its release can be asked for"},
        )
        assert placed.status_code == 200, placed.text
    return path, params, body, evidence_id


@pytest.mark.parametrize(("endpoint", "role", "clip"), list(matrix()))
def test_the_role_matrix(
    world: World, endpoint: Endpoint, role: str, clip: str, request: pytest.FixtureRequest
) -> None:
    api = world.api
    path, params, body, evidence_id = prepare(world, endpoint, clip, request)
    reason = f"role matrix: {endpoint.action} as {role}"
    before = api.ledger_size()
    response = api.call(role, endpoint.method, path, params={**params, "reason": reason}, json=body)
    new = api.leaves_since(before)
    who = api.names[role]
    rule = POLICY[endpoint.action]
    if allowed(endpoint.action, role, clip):
        assert 200 <= response.status_code < 300, response.text
        assert not [leaf for leaf in new if leaf["action"] == "access.denied"], new
        if rule.leaf is None:
            return
        done = [leaf for leaf in new if leaf["action"] == rule.leaf]
        assert len(done) == 1, new
        assert {k: done[0][k] for k in ("actor", "role", "reason", "outcome")} == {
            "actor": who,
            "role": role,
            "reason": reason,
            "outcome": "ok",
        }
        assert done[0]["details"]["client"] == CLIENT
        if evidence_id is not None:
            assert done[0]["target"] == evidence_id
    else:
        assert response.status_code == 403, response.text
        assert [leaf["action"] for leaf in new] == ["access.denied"], new
        denied = new[0]
        assert (denied["actor"], denied["role"], denied["outcome"]) == (who, role, "refused")
        assert denied["details"]["request"] == endpoint.action
        assert denied["details"]["client"] == CLIENT


# --- the matrix covers the whole API ------------------------------------------------------------


def documented_rows() -> list[list[str]]:
    """The cells of docs/API.md's endpoint table, one row per endpoint."""
    rows = []
    for line in (REPO / "docs" / "API.md").read_text().splitlines():
        if re.match(r"\| (GET|POST|PUT|DELETE|PATCH)", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_the_matrix_has_every_endpoint_of_docs_api() -> None:
    documented = set()
    for cells in documented_rows():
        methods, path = re.fullmatch(r"(\S+) `([^`]+)`", cells[0]).groups()  # type: ignore[union-attr]
        for method in methods.split("|"):
            if cells[1] != "-":
                documented.add((method, path, cells[1].strip("`")))
    assert documented == {(e.method, e.path, e.action) for e in ENDPOINTS}


def test_docs_api_states_the_policy_table() -> None:
    for cells in documented_rows():
        action = cells[1].strip("`")
        if action == "-":
            continue
        rule = POLICY[action]
        names = [n.strip() for n in cells[2].split(",")]
        if names == ["all"]:
            roles = set(ROLES)
        elif names[0].startswith("none"):  # e.g. the metrics' own scrape credential
            roles = set()
        else:
            roles = {n.removesuffix(" (own)") for n in names}
        own = {n.removesuffix(" (own)") for n in names if n.endswith(" (own)")}
        assert (roles, own) == (set(rule.roles), set(rule.own_clips_only)), action
        assert (cells[3] == "required") == rule.reason, action
        assert cells[4].strip("`") == (rule.leaf or "-"), action


def test_the_matrix_has_every_operation_the_service_serves(world: World) -> None:
    schema = world.api.call("admin", "GET", "/openapi.json").json()
    served = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if not path.startswith("/files")  # tus uploads, for docks
        for method in operations
    }
    assert served - NOT_IN_MATRIX == {(e.method, e.path) for e in ENDPOINTS}


# --- spot checks: the product rules, stated plainly ---------------------------------------------


def test_an_auditor_cannot_download_an_original(world: World) -> None:
    response = world.api.call(
        "auditor",
        "GET",
        f"/api/v1/clips/{world.clips[OWN]}/original",
        params={"reason": "audit sample"},
    )
    assert response.status_code == 403


def test_an_admin_cannot_list_clips(world: World) -> None:
    assert world.api.call("admin", "GET", "/api/v1/clips").status_code == 403


def test_a_dock_cannot_search_clips(world: World) -> None:
    assert world.api.call("dock", "GET", "/api/v1/clips").status_code == 403


def test_an_officer_cannot_see_another_officers_clip(world: World) -> None:
    response = world.api.call("officer", "GET", f"/api/v1/clips/{world.clips[OTHERS]}")
    assert response.status_code == 403


def test_an_officers_search_finds_only_their_own_clips(world: World) -> None:
    found = world.api.call("officer", "GET", "/api/v1/clips").json()["items"]
    assert world.clips[OWN] in {c["evidence_id"] for c in found}
    assert {c["officer"] for c in found} == {OFFICER}


def test_an_evidence_officer_can_place_a_hold(world: World) -> None:
    evidence_id = world.api.ingest(OTHER_OFFICER)
    response = world.api.call(
        "evidence-officer",
        "PUT",
        f"/api/v1/clips/{evidence_id}/hold",
        params={"reason": "preserve for court"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["held"] is True
