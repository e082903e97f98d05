"""The officer's and auditor's ``bwv`` as a thin client of a real ``bwv serve`` process: login and
credentials, search, view with custody verified offline, checked downloads, category and legal
hold, and one clear line for every bad input. None of these commands opens a database: each runs
with the database URL pointing at nothing and a data directory that does not exist."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from bwv.access import add_user, revoke_user
from bwv.base.tls import make_ca
from bwv.custody.bundle import load_bundle, verify_bundle
from bwv.keys import Keyring, SigningKey, VerifierKey
from bwv.records.tables import Clip
from tests.support.apiserver import OFFICER, OTHER_OFFICER, Api, start_api
from tests.support.cli import as_role, assert_one_line_error, client_env, login, ok, run_bwv

CLIP = Clip.__table__


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, dict[str, str]]]:
    """The service, with four clips from the officer's camera and one from another officer's."""
    api = start_api(tmp_path_factory.mktemp("cli-api"))
    try:
        ids = {
            "mine": api.ingest(OFFICER),
            "tampered": api.ingest(OFFICER),
            "deleted": api.ingest(OFFICER),
            "policy": api.ingest(OFFICER),
            "theirs": api.ingest(OTHER_OFFICER),
        }
        yield api, ids
    finally:
        api.close()


@pytest.fixture(scope="module")
def api(service: tuple[Api, dict[str, str]]) -> Api:
    return service[0]


@pytest.fixture(scope="module")
def ids(service: tuple[Api, dict[str, str]]) -> dict[str, str]:
    """Evidence ids by what the tests do with them."""
    return service[1]


def clip_sha256(api: Api, evidence_id: str) -> str:
    with api.ctx.engine.connect() as conn:
        return conn.execute(
            select(CLIP.c.sha256).where(CLIP.c.evidence_id == evidence_id)
        ).scalar_one()


def listed(api: Api, tmp_path: Path, role: str, *filters: str) -> dict[str, Any]:
    return json.loads(ok(as_role(api, tmp_path, role, "clips", "list", "--json", *filters)).stdout)


# --- login and credentials -------------------------------------------------------------------


def test_login_saves_credentials_readable_only_by_the_user(api: Api, tmp_path: Path) -> None:
    result = ok(login(api, tmp_path, "evidence-officer", "--service-key", api.server.service_key))
    assert "as eo-1 (evidence-officer)" in result.stdout and "token expires 20" in result.stdout
    saved = tmp_path / "credentials.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text()) == {
        "url": api.server.url,
        "token": api.tokens["evidence-officer"],
        "ca": str(api.server.ca.resolve()),
        "service_key": api.server.service_key,
    }


def test_whoami_uses_the_saved_credentials(api: Api, tmp_path: Path) -> None:
    ok(login(api, tmp_path, "auditor"))
    env = client_env(api, tmp_path, BWV_URL=None, BWV_CA=None)
    result = ok(run_bwv(env, "whoami"))
    assert result.stdout.startswith(f"au-1 (auditor) at {api.server.url}")
    assert "service key:   none" in result.stdout


def test_a_saved_token_is_never_sent_to_another_service(api: Api, tmp_path: Path) -> None:
    ok(login(api, tmp_path, "auditor"))
    elsewhere = "https://127.0.0.1:9"  # not the service the token was saved for
    result = run_bwv(client_env(api, tmp_path, BWV_URL=elsewhere), "whoami")
    assert_one_line_error(result, "not logged in (a token is missing)")


def test_login_with_an_unknown_token_saves_nothing(api: Api, tmp_path: Path) -> None:
    env = client_env(api, tmp_path, BWV_URL=None)
    result = run_bwv(env, "login", "--url", api.server.url, "--token-stdin", stdin="bwvu_nope\n")
    assert_one_line_error(result, "401", "unknown token")
    assert not (tmp_path / "credentials.json").exists()


def test_a_group_readable_credentials_file_is_refused(api: Api, tmp_path: Path) -> None:
    ok(login(api, tmp_path, "officer"))
    saved = tmp_path / "credentials.json"
    saved.chmod(0o640)
    result = run_bwv(client_env(api, tmp_path, BWV_URL=None), "whoami")
    assert_one_line_error(result, "readable by others", f"chmod 600 {saved}")


def test_logout_forgets_the_credentials(api: Api, tmp_path: Path) -> None:
    ok(login(api, tmp_path, "officer"))
    ok(run_bwv(client_env(api, tmp_path), "logout"))
    assert not (tmp_path / "credentials.json").exists()
    result = run_bwv(client_env(api, tmp_path, BWV_URL=None), "whoami")
    assert_one_line_error(result, "not logged in", "bwv login")


def test_the_environment_overrides_the_saved_token(api: Api, tmp_path: Path) -> None:
    ok(login(api, tmp_path, "officer"))
    result = ok(run_bwv(client_env(api, tmp_path, "auditor", BWV_URL=None), "whoami"))
    assert result.stdout.startswith("au-1 (auditor)")


def test_thin_client_commands_never_open_the_database(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    evidence_id = ids["mine"]
    for args in (
        ["clips", "list"],
        ["clips", "show", evidence_id],
        ["clips", "get", evidence_id, "-o", str(tmp_path / "c.mp4"), "--reason", "case 1"],
        ["audit", "checkpoint"],
    ):
        ok(as_role(api, tmp_path, "officer", *args))
    assert not (tmp_path / "no-data-dir").exists() and not (tmp_path / "no-such-dir").exists()


def test_a_service_certificate_from_another_ca_is_one_line(api: Api, tmp_path: Path) -> None:
    stranger, _, _ = make_ca(tmp_path / "other-ca")
    env = client_env(api, tmp_path, "officer", BWV_CA=str(stranger))
    result = run_bwv(env, "whoami")
    assert_one_line_error(result, "does not verify against CA file", "--ca")


def test_a_service_that_is_not_there_is_one_line(api: Api, tmp_path: Path) -> None:
    env = client_env(api, tmp_path, "officer", BWV_URL="https://127.0.0.1:9")
    assert_one_line_error(run_bwv(env, "whoami"), "cannot reach the service at")


# --- search ----------------------------------------------------------------------------------


def test_list_filters_by_officer_and_camera(api: Api, ids: dict[str, str], tmp_path: Path) -> None:
    everyone = listed(api, tmp_path, "evidence-officer")
    assert everyone["total"] == 5
    mine = listed(api, tmp_path, "evidence-officer", "--officer", OFFICER)
    assert mine["total"] == 4 and {c["officer"] for c in mine["items"]} == {OFFICER}
    theirs = listed(api, tmp_path, "evidence-officer", "--camera", "CAM-B")
    assert [c["evidence_id"] for c in theirs["items"]] == [ids["theirs"]]


def test_list_filters_by_recording_date(api: Api, tmp_path: Path) -> None:
    assert listed(api, tmp_path, "auditor", "--recorded-to", "2001-01-01")["total"] == 0
    assert listed(api, tmp_path, "auditor", "--recorded-from", "2001-01-01")["total"] == 5


def test_list_pages(api: Api, tmp_path: Path) -> None:
    first = listed(api, tmp_path, "auditor", "--per-page", "2")
    third = listed(api, tmp_path, "auditor", "--per-page", "2", "--page", "3")
    assert len(first["items"]) == 2 and len(third["items"]) == 1 and third["offset"] == 4
    table = ok(as_role(api, tmp_path, "auditor", "clips", "list", "--per-page", "2")).stdout
    assert "page 1 of 3, 5 clips" in table and first["items"][0]["evidence_id"] in table


def test_an_officer_sees_only_their_own_clips(api: Api, tmp_path: Path) -> None:
    found = listed(api, tmp_path, "officer")
    assert found["total"] == 4 and {c["officer"] for c in found["items"]} == {OFFICER}


def test_an_officer_asking_for_another_officers_clips_is_one_line(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    result = as_role(api, tmp_path, "officer", "clips", "list", "--officer", OTHER_OFFICER)
    assert_one_line_error(result, "refused (403)", "only their own")
    result = as_role(api, tmp_path, "officer", "clips", "show", ids["theirs"])
    assert_one_line_error(result, "refused (403)", "not recorded on a camera issued to you")


# --- view and custody ------------------------------------------------------------------------


def test_show_verifies_the_custody_history_against_the_pinned_key(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    ok(login(api, tmp_path, "officer", "--service-key", api.server.service_key))
    env = client_env(api, tmp_path, BWV_URL=None, BWV_CA=None)
    result = ok(run_bwv(env, "clips", "show", ids["mine"], "--reason", "case 7"))
    assert f"custody verified against service key {api.server.service_key}" in result.stdout
    assert "clip.ingested" in result.stdout and "clip.viewed" in result.stdout
    assert clip_sha256(api, ids["mine"]) in result.stdout


def test_show_without_a_pinned_key_says_custody_is_not_verified(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    result = ok(as_role(api, tmp_path, "auditor", "clips", "show", ids["mine"]))
    assert "custody NOT verified: no service key pinned" in result.stdout
    assert "--service-key" in result.stdout


def test_show_against_another_pinned_key_fails_verification(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    origin = api.server.settings.ledger_origin
    stranger = str(SigningKey(origin, Ed25519PrivateKey.generate()).verifier)
    ok(login(api, tmp_path, "auditor", "--service-key", stranger))
    env = client_env(api, tmp_path, BWV_URL=None, BWV_CA=None)
    result = run_bwv(env, "clips", "show", ids["mine"])
    assert result.returncode == 2
    assert_one_line_error(result, "bundle checkpoint")
    assert "custody" not in result.stdout


def test_an_auditor_recomputes_the_whole_ledger_from_afar(api: Api, tmp_path: Path) -> None:
    ok(login(api, tmp_path, "auditor", "--service-key", api.server.service_key))
    # The service answers its latest scheduled checkpoint (not one signed for the request).
    latest = api.ctx.ledger.checkpoints()[-1]
    result = ok(run_bwv(client_env(api, tmp_path, BWV_URL=None, BWV_CA=None), "audit", "verify"))
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("OK ledger of ")]
    verified = int(line.split()[3])
    assert latest.size <= verified < api.ledger_size()  # all up to the checkpoint it fetched
    assert "recomputed here from their bytes" in line


def test_a_remote_ledger_check_against_another_key_fails(api: Api, tmp_path: Path) -> None:
    origin = api.server.settings.ledger_origin
    stranger = str(SigningKey(origin, Ed25519PrivateKey.generate()).verifier)
    ok(login(api, tmp_path, "auditor", "--service-key", stranger))
    result = run_bwv(client_env(api, tmp_path, BWV_URL=None, BWV_CA=None), "audit", "verify")
    assert result.returncode == 2
    assert "OK ledger" not in result.stdout


def test_a_remote_ledger_check_needs_a_pinned_key(api: Api, tmp_path: Path) -> None:
    result = as_role(api, tmp_path, "auditor", "audit", "verify")
    assert_one_line_error(result, "no service key pinned")


def test_an_unknown_evidence_id_is_one_line(api: Api, tmp_path: Path) -> None:
    result = as_role(api, tmp_path, "auditor", "clips", "show", "EV-20990101-NOTHING0")
    assert_one_line_error(result, "refused (404)", "no clip with evidence id")


def test_audit_bundle_through_the_service_verifies_offline(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "bundle.json"
    ok(as_role(api, tmp_path, "auditor", "audit", "bundle", ids["mine"], "-o", str(out)))
    pinned = Keyring([VerifierKey.parse(api.server.service_key)])
    report = verify_bundle(load_bundle(out), pinned, evidence_id=ids["mine"])
    assert report.clip_sha256 == clip_sha256(api, ids["mine"])


def test_audit_checkpoint_through_the_service_is_a_signed_note(api: Api, tmp_path: Path) -> None:
    note = ok(as_role(api, tmp_path, "auditor", "audit", "checkpoint")).stdout
    assert note.startswith(api.server.settings.ledger_origin + "\n") and "\n\u2014 " in note


# --- download --------------------------------------------------------------------------------


def test_get_writes_the_exact_original_and_records_it(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    evidence_id, out = ids["mine"], tmp_path / "copy.mp4"
    size = api.ledger_size()
    args = ["clips", "get", evidence_id, "-o", str(out), "--reason", "case 12 review"]
    result = ok(as_role(api, tmp_path, "officer", *args))
    sha = clip_sha256(api, evidence_id)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha and sha in result.stdout
    downloads = [leaf for leaf in api.leaves_since(size) if leaf["action"] == "clip.downloaded"]
    assert [(d["target"], d["reason"]) for d in downloads] == [(evidence_id, "case 12 review")]


@pytest.fixture(params=["one byte changed", "cut short"])
def tampered(api: Api, ids: dict[str, str], request: pytest.FixtureRequest) -> Iterator[str]:
    """The "tampered" clip's stored original changed behind the service's back (a changed byte:
    a wrong hash; cut short: the connection breaks off), put back afterwards."""
    evidence_id = ids["tampered"]
    sha = clip_sha256(api, evidence_id)
    store = Path(api.server.settings.store_url.removeprefix("file://")) / "originals"
    (stored,) = (p for p in store.rglob("*") if p.is_file() and sha in p.name)
    original, mode = stored.read_bytes(), stored.stat().st_mode
    stored.chmod(0o644)
    if request.param == "cut short":
        stored.write_bytes(original[:-100])
    else:
        stored.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        yield evidence_id
    finally:
        stored.write_bytes(original)
        stored.chmod(mode)


def test_a_download_of_a_damaged_original_says_so_and_leaves_no_file(
    api: Api, tampered: str, tmp_path: Path
) -> None:
    out = tmp_path / "copy.mp4"
    args = ["clips", "get", tampered, "-o", str(out), "--reason", "x"]
    result = as_role(api, tmp_path, "officer", *args)
    # The service checks the whole object before the first byte (fixity), so it is a 500.
    assert_one_line_error(result, "refused (500)", f"stored original of {tampered} is damaged")
    assert result.returncode == 1
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


# --- category and legal hold -----------------------------------------------------------------


def test_categorize_sets_the_category_case_and_retention(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    evidence_id = ids["policy"]
    args = ["clips", "categorize", evidence_id, "evidential", "--case", "CASE-77"]
    result = ok(as_role(api, tmp_path, "evidence-officer", *args, "--reason", "charging"))
    assert f"{evidence_id}: evidential, case CASE-77, kept until 20" in result.stdout
    found = listed(api, tmp_path, "auditor", "--category", "evidential", "--case", "CASE-77")
    assert [c["evidence_id"] for c in found["items"]] == [evidence_id]


def test_an_unknown_category_is_one_line(api: Api, ids: dict[str, str], tmp_path: Path) -> None:
    args = ["clips", "categorize", ids["policy"], "interesting", "--reason", "x"]
    assert_one_line_error(as_role(api, tmp_path, "officer", *args), "refused (400)", "interesting")


def test_hold_place_and_release(api: Api, ids: dict[str, str], tmp_path: Path) -> None:
    evidence_id = ids["policy"]
    placed = ok(
        as_role(
            api, tmp_path, "evidence-officer", "hold", "place", evidence_id, "--reason", "appeal"
        )
    )
    assert "on legal hold" in placed.stdout
    again = as_role(
        api, tmp_path, "evidence-officer", "hold", "place", evidence_id, "--reason", "appeal"
    )
    assert_one_line_error(again, "refused (409)")
    released = ok(
        as_role(
            api,
            tmp_path,
            "evidence-officer",
            "hold",
            "release",
            evidence_id,
            "--reason",
            "appeal over",
        )
    )
    assert "on legal hold" not in released.stdout and evidence_id in released.stdout


def test_an_officer_may_not_place_a_hold(api: Api, ids: dict[str, str], tmp_path: Path) -> None:
    result = as_role(api, tmp_path, "officer", "hold", "place", ids["mine"], "--reason", "x")
    assert_one_line_error(result, "refused (403)")


def test_a_hold_on_a_deleted_clip_is_one_line(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    from bwv.services.retention import run_retention
    from bwv.store import open_store

    evidence_id = ids["deleted"]
    now = api.ctx.clock()
    with api.ctx.engine.begin() as conn:  # only this clip is past its date
        conn.execute(
            update(CLIP)
            .where(CLIP.c.evidence_id == evidence_id)
            .values(retain_until=now - timedelta(days=1))
        )
    report = run_retention(
        api.ctx, open_store(api.server.settings.store_url), operator="test", dry_run=False
    )
    assert [c.evidence_id for c in report.deleted] == [evidence_id]
    result = as_role(
        api, tmp_path, "evidence-officer", "hold", "place", evidence_id, "--reason", "x"
    )
    assert_one_line_error(result, "refused (410)", "deleted")


# --- bad input: one line, exit 1 -------------------------------------------------------------


def _token(api: Api, name: str, *, expired: bool = False, revoked: bool = False) -> str:
    now = api.ctx.clock()
    when = now - timedelta(days=10) if expired else now
    token = add_user(api.ctx.engine, name, "evidence-officer", when, 1)
    if revoked:
        revoke_user(api.ctx.engine, name, now)
    return token


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [("expired", "token expired at"), ("revoked", "token revoked"), ("malformed", "malformed")],
)
def test_a_bad_token_is_one_line(api: Api, tmp_path: Path, kind: str, fragment: str) -> None:
    name = f"bad-{kind}"
    token = {
        "expired": lambda: _token(api, name, expired=True),
        "revoked": lambda: _token(api, name, revoked=True),
        "malformed": lambda: "not-a-token",
    }[kind]()
    result = run_bwv(client_env(api, tmp_path, BWV_TOKEN=token), "clips", "list")
    assert_one_line_error(result, "refused (401)", fragment, "bwv login")
    assert result.returncode == 1


def test_a_download_to_a_missing_directory_asks_the_service_nothing(
    api: Api, ids: dict[str, str], tmp_path: Path
) -> None:
    size = api.ledger_size()
    out = tmp_path / "no-such-dir" / "c.mp4"
    result = as_role(
        api, tmp_path, "officer", "clips", "get", ids["mine"], "-o", str(out), "--reason", "r"
    )
    assert_one_line_error(result, "no such directory")
    assert api.ledger_size() == size  # nothing viewed, nothing downloaded


@pytest.mark.parametrize(
    ("reason", "fragment"),
    [("", "a reason is required"), ("x" * 100_000, "the reason is 100000 characters")],
)
def test_an_empty_or_huge_reason_is_one_line(
    api: Api, ids: dict[str, str], tmp_path: Path, reason: str, fragment: str
) -> None:
    out = tmp_path / "c.mp4"
    args = ["clips", "get", ids["mine"], "-o", str(out), "--reason", reason]
    result = as_role(api, tmp_path, "officer", *args)
    assert_one_line_error(result, fragment)
    assert result.returncode == 1 and not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--recorded-from", "2026-13-45"], "--recorded-from '2026-13-45' is not a date"),
        (["--ingested-to", "yesterday"], "--ingested-to 'yesterday' is not a date"),
        (
            ["--recorded-from", "2026-03-02", "--recorded-to", "2026-03-01"],
            "recorded_from is after recorded_to",
        ),
    ],
)
def test_impossible_dates_are_one_line(
    api: Api, tmp_path: Path, args: list[str], fragment: str
) -> None:
    result = as_role(api, tmp_path, "auditor", "clips", "list", *args)
    assert_one_line_error(result, fragment)
    assert result.returncode == 1


def test_an_unknown_status_is_one_line(api: Api, tmp_path: Path) -> None:
    result = as_role(api, tmp_path, "auditor", "clips", "list", "--status", "lost")
    assert_one_line_error(result, "refused (422)", "status")


def test_the_service_refuses_and_records_a_60_kb_reason_from_any_client(
    api: Api, ids: dict[str, str]
) -> None:
    """The CLI refuses a reason too long for a URL itself (httpx will not send one over 64 KB,
    nor uvicorn's parser take one); any reason that reaches the service past its 2000
    characters is answered 400 and recorded, the reason cut short."""
    import http.client
    import ssl

    size = api.ledger_size()
    connection = http.client.HTTPSConnection(
        "127.0.0.1",
        api.server.port,
        context=ssl.create_default_context(cafile=str(api.server.ca)),
        timeout=30,
    )
    connection.request(
        "GET",
        f"/api/v1/clips/{ids['mine']}/original?reason={'x' * 60_000}",
        headers={"Authorization": f"Bearer {api.tokens['evidence-officer']}"},
    )
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    assert response.status == 400, raw[:200]
    body = json.loads(raw)
    assert response.status == 400
    assert body["detail"] == "the reason is 60000 characters; at most 2000"
    (denied,) = api.leaves_since(size)
    assert denied["action"] == "access.denied" and denied["target"] == ids["mine"]
    assert denied["details"]["request"] == "clip.download"
    assert denied["reason"].endswith("... (60000 characters)") and len(denied["reason"]) < 300
