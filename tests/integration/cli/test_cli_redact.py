"""The redaction commands as an officer meets them: output on success, one clear line and a
non-zero exit on bad input, and a refused request recorded in the ledger. Planning and disclosure
copies go through a real ``bwv serve`` process; ``bwv redact FILE`` works on a local file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bwv.records.tables import Clip
from bwv.services.samples import make_street_clip
from tests.support import sha256_of
from tests.support.apiserver import CAMERAS, OFFICER, Api, start_api
from tests.support.cli import as_role, assert_one_line_error, bwv, ok
from tests.support.ledger import leaves


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = make_street_clip(
        tmp_path_factory.mktemp("cli") / "street.mp4", seconds=1, width=480, height=270
    )
    return path


def test_redact_a_local_file_writes_the_copy_and_the_contact_sheet(
    street: Path, tmp_path: Path
) -> None:
    out, sheet = tmp_path / "out.mp4", tmp_path / "sheet.png"
    result = bwv(
        tmp_path / "data", "redact", str(street), "-o", str(out), "--sheet", str(sheet), check=True
    )
    assert "25 frames" in result.stdout and "frames/s" in result.stdout
    assert out.stat().st_size > 1000 and sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_redact_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = bwv(tmp_path / "data", "redact", str(tmp_path / "nope.mp4"), "-o", "x.mp4")
    assert_one_line_error(result, "nope.mp4", "no such file")


def test_redact_with_a_corrupt_plan_is_one_line(street: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{ not json")
    result = bwv(
        tmp_path / "data",
        "redact",
        str(street),
        "-o",
        str(tmp_path / "o.mp4"),
        "--plan",
        str(plan),
    )
    assert_one_line_error(result, "not JSON")
    assert not (tmp_path / "o.mp4").exists()


# --- through the service --------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(street: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str]]:
    """The service with the street clip ingested from the officer's camera."""
    api = start_api(tmp_path_factory.mktemp("cli-redact"))
    try:
        assert api.dock is not None
        sha = sha256_of(street)
        done = api.dock.upload(street, sha256=sha, camera=CAMERAS[OFFICER], filename=street.name)
        assert done.status_code == 204, done.text
        with api.ctx.engine.connect() as conn:
            evidence_id = conn.execute(
                select(Clip.__table__.c.evidence_id).where(Clip.__table__.c.sha256 == sha)
            ).scalar_one()
        yield api, evidence_id
    finally:
        api.close()


@pytest.fixture(scope="module")
def planned(service: tuple[Api, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("planner")
    plan, sheet = home / "street.plan.json", home / "street.sheet.png"
    args = ["redact", "plan", service[1], "--reason", "disclosure, case 4", "-o", str(plan)]
    result = ok(as_role(service[0], home, "evidence-officer", *args, "--sheet", str(sheet)))
    return {"plan": plan, "sheet": sheet, "stdout": result.stdout, "home": home}


def test_redact_plan_writes_the_services_plan_and_contact_sheet(
    service: tuple[Api, str], planned: dict[str, Any]
) -> None:
    plan = json.loads(planned["plan"].read_text())
    assert plan["evidence_id"] == service[1] and plan["tracks"]
    assert f"SHA-256 {sha256_of(planned['plan'])}" in planned["stdout"]
    assert planned["sheet"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leaf = [lf for lf in service[0].leaves_since(0) if lf["action"] == "redact.planned"][-1]
    assert (leaf["actor"], leaf["reason"]) == ("eo-1", "disclosure, case 4")


def test_export_of_a_reviewed_plan_downloads_the_checked_copy(
    service: tuple[Api, str], planned: dict[str, Any], tmp_path: Path
) -> None:
    plan = json.loads(planned["plan"].read_text())
    plan["tracks"][0]["keep"] = True
    edited, copy = tmp_path / "edited.plan.json", tmp_path / "copy.mp4"
    edited.write_text(json.dumps(plan))
    args = ["export", service[1], "--plan", str(edited), "--reason", "CPS, case 4", "-o", str(copy)]
    result = ok(as_role(service[0], tmp_path, "evidence-officer", *args))
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    assert f"SHA-256 {digest}" in result.stdout and f"written to {copy}" in result.stdout
    leaf = [lf for lf in service[0].leaves_since(0) if lf["action"] == "export.created"][-1]
    assert leaf["sha256"] == digest and leaf["details"]["tracks_kept"] == [plan["tracks"][0]["id"]]
    # The leaf names the reviewed file itself, byte for byte.
    assert leaf["details"]["plan_sha256"] == sha256_of(edited)


def test_exports_list_and_get_the_copy_made(service: tuple[Api, str], tmp_path: Path) -> None:
    ok(
        as_role(
            service[0], tmp_path, "evidence-officer", "export", service[1], "--reason", "case 5"
        )
    )
    listing = as_role(service[0], tmp_path, "auditor", "exports", "list", service[1], "--json")
    made = json.loads(ok(listing).stdout)["items"][0]
    table = ok(as_role(service[0], tmp_path, "auditor", "exports", "list")).stdout
    assert made["export_id"] in table and "copies" in table
    out = tmp_path / "got.mp4"
    args = ["exports", "get", made["export_id"], "-o", str(out), "--reason", "press office"]
    ok(as_role(service[0], tmp_path, "evidence-officer", *args))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == made["sha256"]
    downloaded = leaves(service[0].ctx, "export.downloaded")[-1]
    assert downloaded["details"]["export_id"] == made["export_id"]
    assert (downloaded["sha256"], downloaded["reason"]) == (made["sha256"], "press office")


def test_an_officer_may_not_make_a_disclosure_copy(
    service: tuple[Api, str], tmp_path: Path
) -> None:
    result = as_role(service[0], tmp_path, "officer", "export", service[1], "--reason", "case 1")
    assert_one_line_error(result, "refused (403)")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--classes", "faces,dogs"], "unknown class dogs"),
        (["--mode", "smudge"], "--mode"),
        (["--mute", "20-10"], "--mute"),
        # A frame count from before the schedule was in seconds: 6 s is refused, not taken.
        (["--face-every", "6"], "--face-every"),
        (["--text-every", "0"], "--text-every"),
        (["--face-full-every", "nan"], "--face-full-every"),
        (["--text-every", "1e308"], "--text-every"),
    ],
)
def test_a_bad_redaction_option_is_one_line_and_never_sent(
    service: tuple[Api, str], tmp_path: Path, args: list[str], fragment: str
) -> None:
    api, evidence_id = service
    size = api.ledger_size()
    for command in (["export", evidence_id], ["redact", "plan", evidence_id]):
        result = as_role(service[0], tmp_path, "evidence-officer", *command, *args, "--reason", "x")
        assert_one_line_error(result, fragment)
    assert api.ledger_size() == size


def test_an_export_without_a_reason_is_one_line_and_recorded_as_refused(
    service: tuple[Api, str], tmp_path: Path
) -> None:
    api, evidence_id = service
    size = api.ledger_size()
    result = as_role(
        service[0], tmp_path, "evidence-officer", "export", evidence_id, "--reason", ""
    )
    assert_one_line_error(result, "a reason is required")
    (leaf,) = api.leaves_since(size)
    assert (leaf["action"], leaf["outcome"], leaf["actor"]) == ("access.denied", "refused", "eo-1")
    assert leaf["details"]["request"] == "export.create"
