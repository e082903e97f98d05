"""Who can see what (issue 9, finding 5; and case references with U+202E, finding 8).

Another local account reading the data folder; an officer reading who else looked at their clip
and why; a client writing its own address into the ledger; a dock asking which evidence exists;
an officer taking their clip out of the evidence officer's case. Each against the live service.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bwv.base.errors import ConfigError
from bwv.base.settings import Settings
from bwv.base.tls import make_ca
from bwv.custody.bundle import verify_bundle
from bwv.custody.leaf import parse_leaf
from bwv.keys import Keyring, VerifierKey
from bwv.records.tables import Clip
from bwv.services.samples import make_sample_clip
from tests.support import sha256_of
from tests.support.apiserver import CLIENT, OFFICER, Api, start_api
from tests.support.cli import bwv as support_bwv
from tests.support.ingestserver import IngestServer
from tests.support.tus import Dock, receipt_from

CLIP = Clip.__table__
OPEN = stat.S_IRWXG | stat.S_IRWXO
FORGED = "203.0.113.66"


def bwv(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``bwv --data-dir DATA ARGS`` as its own process, under the umask a shell gives (022)."""
    return support_bwv(
        data_dir, *args, env={**os.environ, "BWV_DATA_DIR": str(data_dir)}, umask=0o022
    )


def open_to_others(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every path under ``root`` (``root`` too) that group or others may use: path -> mode."""
    found = {}
    for path in [root, *root.rglob("*")]:
        if path.name.startswith(skip) or path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & OPEN:
            found[str(path.relative_to(root.parent))] = f"{mode:04o}"
    return found


# --- 1. the data folder is the service user's alone --------------------------------------------


def test_nothing_under_the_data_dir_is_open_to_group_or_others_after_init_and_an_ingest(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "service"
    done = bwv(data_dir, "init")
    assert done.returncode == 0, done.stderr
    ca, cert, key = make_ca(tmp_path / "tls")
    server = IngestServer(data_dir, Settings(data_dir=data_dir), ca, cert, key)
    server.start()
    dock = Dock(server, "dock-p")
    try:
        clip = make_sample_clip(tmp_path / "CAM-P_0001.mp4", seconds=0.5, width=160, height=120)
        sent = dock.upload(clip, sha256=sha256_of(clip), camera="CAM-P", filename=clip.name)
        assert sent.status_code == 204, sent.text
    finally:
        dock.http.close()
        Dock.opened.remove(dock)
        server.stop()
    stored = list((data_dir / "store").rglob(sha256_of(clip)))
    assert stored, "the clip was not stored"
    # serve-*.log is the test harness's own capture of the service's output, not the service's.
    assert open_to_others(data_dir, skip=("serve-",)) == {}


def test_a_stored_original_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    from bwv.store.local import LocalStore

    source = tmp_path / "clip.bin"
    source.write_bytes(b"footage")
    store = LocalStore(tmp_path / "store")
    stored = store.put("originals", hashlib.sha256(b"footage").hexdigest(), source)
    assert stat.S_IMODE(os.stat(stored.location).st_mode) == 0o400
    assert open_to_others(tmp_path / "store") == {}


def test_init_makes_an_existing_loose_data_dir_owner_only_and_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "loose"
    (data_dir / "store" / "originals").mkdir(parents=True)
    for folder in (data_dir, data_dir / "store", data_dir / "store" / "originals"):
        folder.chmod(0o755)
    (data_dir / "store" / "originals" / "old-object").write_bytes(b"x")
    (data_dir / "store" / "originals" / "old-object").chmod(0o444)
    done = bwv(data_dir, "init")
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stdout.splitlines() if "owner-only" in line]
    assert len(said) == 1, done.stdout
    assert str(data_dir) in said[0]
    assert open_to_others(data_dir) == {}
    assert stat.S_IMODE((data_dir / "store" / "originals" / "old-object").stat().st_mode) == 0o400


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_init_refuses_a_loose_data_dir_that_belongs_to_someone_else(tmp_path: Path) -> None:
    data_dir = tmp_path / "theirs"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    os.chown(data_dir, 54321, 54321)
    done = bwv(data_dir, "init")
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bwv: error: "), done.stderr
    assert "uid 54321" in lines[0]
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755  # refused: nothing changed
    assert not (data_dir / "bwv.sqlite3").exists()


def loosened(tmp_path: Path) -> Path:
    """An initialised data folder, then opened up as an older bwv or a careless copy leaves
    it: folders 0755, the database 0644."""
    data_dir = tmp_path / "old"
    done = bwv(data_dir, "init")
    assert done.returncode == 0, done.stderr
    (data_dir / "store" / "originals").mkdir(parents=True, exist_ok=True)
    for folder in (data_dir, data_dir / "store", data_dir / "store" / "originals"):
        folder.chmod(0o755)
    (data_dir / "bwv.sqlite3").chmod(0o644)
    return data_dir


def serve_until_listening(data_dir: Path, stderr: Path) -> subprocess.Popen[bytes]:
    """``bwv serve`` on a free loopback port (plain HTTP), once it listens."""
    from bwv.base.net import free_port

    port = free_port()
    with stderr.open("wb") as sink:
        served = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cli",
                "--data-dir",
                str(data_dir),
                "serve",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, "BWV_DATA_DIR": str(data_dir)},
            preexec_fn=lambda: os.umask(0o022),
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and served.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 500:
                return served
        except httpx.TransportError:
            time.sleep(0.2)
    served.kill()
    raise AssertionError(f"bwv serve never listened: {stderr.read_text()}")


def test_serve_makes_an_existing_loose_install_owner_only_and_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    data_dir = loosened(tmp_path)
    served = serve_until_listening(data_dir, tmp_path / "serve.err")
    try:
        assert open_to_others(data_dir) == {}
        assert stat.S_IMODE((data_dir / "bwv.sqlite3").stat().st_mode) == 0o600
    finally:
        served.terminate()
        served.wait(30)
    said = [ln for ln in (tmp_path / "serve.err").read_text().splitlines() if "owner-only" in ln]
    assert len(said) == 1 and str(data_dir) in said[0], said


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_serve_refuses_to_start_on_a_loose_database_that_belongs_to_someone_else(
    tmp_path: Path,
) -> None:
    data_dir = loosened(tmp_path)
    os.chown(data_dir / "bwv.sqlite3", 54321, 54321)
    from bwv.base.net import free_port

    port = str(free_port())
    try:  # refused before it listens; a service that starts would never return
        done = subprocess.run(
            [sys.executable, "-m", "cli", "--data-dir", str(data_dir), "serve", "--port", port],
            capture_output=True,
            text=True,
            env={**os.environ, "BWV_DATA_DIR": str(data_dir)},
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("bwv serve started on a database another user owns")
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bwv: error: "), done.stderr
    assert "uid 54321" in lines[0]
    assert stat.S_IMODE((data_dir / "bwv.sqlite3").stat().st_mode) == 0o644  # nothing changed


# --- 2. an officer's view of their clip's custody --------------------------------------------


def custody(api: Api, role: str, evidence_id: str) -> dict[str, Any]:
    answer = api.call(role, "GET", f"/api/v1/clips/{evidence_id}/custody")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def leaves_of(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [parse_leaf(e["leaf"].encode("utf-8")) for e in bundle["leaves"]]


@pytest.fixture(scope="module")
def looked_at(api: Api) -> str:
    """An officer's clip that Professional Standards downloaded, that an evidence officer held
    and an auditor viewed."""
    evidence_id = api.ingest(OFFICER)
    for role, method, path, reason in (
        ("evidence-officer", "GET", "/original", "complaint 77 against pc-a"),
        ("evidence-officer", "PUT", "/hold", "kept for review"),
        ("auditor", "GET", "", "sampling officers' clips"),
    ):
        done = api.call(
            role, method, f"/api/v1/clips/{evidence_id}{path}", params={"reason": reason}
        )
        assert done.status_code == 200, done.text
    return evidence_id


def test_an_officer_does_not_see_who_else_accessed_their_clip_or_why(
    api: Api, looked_at: str
) -> None:
    bundle = custody(api, "officer", looked_at)
    seen = leaves_of(bundle)
    assert "complaint 77" not in str(bundle)
    assert "sampling officers" not in str(bundle)
    assert not [f for f in seen if f["actor"] != OFFICER and f["action"] == "clip.downloaded"]
    assert {f["actor"] for f in seen if f["action"] not in ("clip.ingested", "hold.placed")} == {
        OFFICER
    }


def test_an_officer_sees_their_clips_lifecycle_and_their_own_requests(
    api: Api, looked_at: str
) -> None:
    own = api.call("officer", "GET", f"/api/v1/clips/{looked_at}", params={"reason": "my report"})
    assert own.status_code == 200, own.text
    seen = leaves_of(custody(api, "officer", looked_at))
    actions = [f["action"] for f in seen]
    assert actions[0] == "clip.ingested"
    mine = [(f["action"], f["reason"]) for f in seen if f["actor"] == OFFICER]
    assert ("clip.viewed", "my report") in mine
    assert mine[-1][0] == "clip.custody.read"  # the bundle proves its own issue


PSD = "Professional Standards: complaint 77 against pc-a"


@pytest.fixture(scope="module")
def under_complaint(api: Api) -> str:
    """An officer's clip that Professional Standards held, categorised and copied, each with a
    reason naming the complaint."""
    evidence_id = api.ingest(OFFICER)
    for method, path, body in (
        ("PUT", "/hold", None),
        ("POST", "/category", {"category": "evidential"}),
        ("POST", "/exports", {"options": None, "plan": None, "mute": []}),
    ):
        done = api.call(
            "evidence-officer",
            method,
            f"/api/v1/clips/{evidence_id}{path}",
            params={"reason": PSD},
            json=body,
        )
        assert done.status_code in (200, 201), done.text
    return evidence_id


def test_an_officer_sees_no_hold_category_or_copy_someone_else_made_of_their_clip(
    api: Api, under_complaint: str
) -> None:
    bundle = custody(api, "officer", under_complaint)
    assert "complaint 77" not in str(bundle)
    actions = {f["action"] for f in leaves_of(bundle)}
    assert not actions & {"hold.placed", "clip.categorised", "export.created"}
    assert "clip.ingested" in actions


def test_an_officer_sees_only_dock_system_and_own_leaves_of_their_clip(
    api: Api, under_complaint: str
) -> None:
    seen = leaves_of(custody(api, "officer", under_complaint))
    assert {(f["role"], f["actor"]) for f in seen if f["role"] not in ("dock", "system")} == {
        ("officer", OFFICER)
    }


def test_an_officer_viewing_their_clip_is_not_told_who_made_a_copy_or_why(
    api: Api, under_complaint: str
) -> None:
    shown = api.call("officer", "GET", f"/api/v1/clips/{under_complaint}")
    assert shown.status_code == 200, shown.text
    [copy] = shown.json()["export_list"]
    assert "complaint 77" not in shown.text
    assert copy["officer"] == copy["reason"] == ""
    whole = api.call("evidence-officer", "GET", f"/api/v1/clips/{under_complaint}")
    assert whole.json()["export_list"][0]["reason"] == PSD


@pytest.mark.parametrize("role", ["evidence-officer", "auditor"])
def test_evidence_officers_and_auditors_see_the_whole_custody_history(
    api: Api, looked_at: str, role: str
) -> None:
    bundle = custody(api, role, looked_at)
    size = int(bundle["checkpoint"].splitlines()[1])
    every = [f for f in api.leaves_since(0) if f["target"] == looked_at and f["sequence"] < size]
    assert leaves_of(bundle) == every
    assert "complaint 77 against pc-a" in str(bundle)


def test_an_officers_partial_custody_history_verifies_against_the_service_key(
    api: Api, looked_at: str
) -> None:
    bundle = custody(api, "officer", looked_at)
    report = verify_bundle(
        bundle, Keyring([VerifierKey.parse(api.server.service_key)]), evidence_id=looked_at
    )
    assert report.leaves == len(bundle["leaves"]) >= 3
    with api.ctx.engine.connect() as conn:
        sha = conn.execute(select(CLIP.c.sha256).where(CLIP.c.evidence_id == looked_at)).scalar()
    assert report.clip_sha256 == sha


def test_bwv_clips_show_verifies_an_officers_custody_history(
    api: Api, looked_at: str, tmp_path: Path
) -> None:
    from tests.support.cli import client_env, login, ok, run_bwv

    ok(login(api, tmp_path, "officer", "--service-key", api.server.service_key))
    env = client_env(api, tmp_path, BWV_URL=None, BWV_CA=None)
    shown = ok(run_bwv(env, "clips", "show", looked_at, "--reason", "my report"))
    assert f"custody verified against service key {api.server.service_key}" in shown.stdout
    assert "complaint 77" not in shown.stdout


# --- 3. the client address in a leaf ------------------------------------------------------------


def viewed_from(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    """The ``clip.viewed`` leaf of the officer viewing their clip with ``headers`` added."""
    evidence_id = api.ingest(OFFICER)
    before = api.ledger_size()
    assert api.http is not None
    answer = api.http.get(
        f"/api/v1/clips/{evidence_id}",
        headers={"Authorization": f"Bearer {api.tokens['officer']}", **headers},
    )
    assert answer.status_code == 200, answer.text
    [leaf] = [f for f in api.leaves_since(before) if f["action"] == "clip.viewed"]
    return leaf


def test_a_forged_x_forwarded_for_from_loopback_is_not_the_recorded_client(api: Api) -> None:
    leaf = viewed_from(api, {"X-Forwarded-For": FORGED})
    assert leaf["details"]["client"] == CLIENT


def test_a_60_kb_x_forwarded_for_is_not_recorded(api: Api) -> None:
    # Just under the 64 KiB head limit (a larger head is 431: test_transport).
    leaf = viewed_from(api, {"X-Forwarded-For": "1" * 60_000})
    assert leaf["details"]["client"] == CLIENT


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A service behind a proxy the operator named: loopback."""
    root = tmp_path_factory.mktemp("proxied")
    os.environ["BWV_TRUSTED_PROXIES"] = "127.0.0.1"
    try:
        running = start_api(root)
    finally:
        del os.environ["BWV_TRUSTED_PROXIES"]
    try:
        yield running
    finally:
        running.close()


def test_a_named_proxys_x_forwarded_for_is_the_recorded_client(proxied: Api) -> None:
    leaf = viewed_from(proxied, {"X-Forwarded-For": FORGED})
    assert leaf["details"]["client"] == FORGED


def test_a_named_proxy_forwarding_something_not_an_address_records_no_text(proxied: Api) -> None:
    from bwv.access.clients import UNPARSABLE

    leaf = viewed_from(proxied, {"X-Forwarded-For": "x" * 5000})
    assert leaf["details"]["client"] == UNPARSABLE


def test_a_recorded_address_is_a_parsed_ip_address() -> None:
    from bwv.access.clients import UNPARSABLE, recorded_address

    assert recorded_address("::ffff:127.0.0.1") == "::ffff:7f00:1"
    assert recorded_address("2001:DB8::1") == "2001:db8::1"
    assert recorded_address("1" * 2_000_000) == UNPARSABLE
    assert recorded_address("203.0.113.66\u202e") == UNPARSABLE


@pytest.mark.parametrize("setting", ["*", "proxy.example", "10.0.0.1,nonsense"])
def test_trusted_proxies_must_be_addresses_or_networks(setting: str) -> None:
    from bwv.access.clients import trusted_proxies

    with pytest.raises(ConfigError, match="BWV_TRUSTED_PROXIES"):
        trusted_proxies(setting)


def test_no_proxy_is_trusted_by_default() -> None:
    from bwv.access.clients import trusted_proxies

    assert trusted_proxies(Settings().trusted_proxies) == []
    assert trusted_proxies(" 10.0.0.5, 192.0.2.0/28 ") == ["10.0.0.5", "192.0.2.0/28"]


# --- 4. receipts: only for the dock's own clips, and recorded --------------------------------


def dock_http(api: Api, name: str) -> httpx.Client:
    token = api.server.enroll(name)
    return httpx.Client(
        base_url=api.server.url,
        timeout=30,
        verify=ssl.create_default_context(cafile=str(api.server.ca)),
        headers={"Authorization": f"Bearer {token}"},
    )


def clip_sha(api: Api, evidence_id: str) -> str:
    with api.ctx.engine.connect() as conn:
        return str(
            conn.execute(select(CLIP.c.sha256).where(CLIP.c.evidence_id == evidence_id)).scalar()
        )


@pytest.fixture(scope="module")
def other_dock(api: Api) -> Iterator[httpx.Client]:
    with dock_http(api, "dock-z") as http:
        yield http


def test_a_dock_gets_no_receipt_for_a_clip_another_dock_uploaded(
    api: Api, other_dock: httpx.Client
) -> None:
    sha = clip_sha(api, api.ingest(OFFICER))  # uploaded by dock-a
    theirs = other_dock.get(f"/api/v1/receipts/{sha}")
    unknown = other_dock.get(f"/api/v1/receipts/{hashlib.sha256(b'never docked').hexdigest()}")
    assert (theirs.status_code, theirs.json()) == (unknown.status_code, unknown.json())
    assert theirs.status_code == 404


def test_a_refused_receipt_request_is_recorded(api: Api, other_dock: httpx.Client) -> None:
    evidence_id = api.ingest(OFFICER)
    before = api.ledger_size()
    assert other_dock.get(f"/api/v1/receipts/{clip_sha(api, evidence_id)}").status_code == 404
    [leaf] = [f for f in api.leaves_since(before) if f["actor"] == "dock-z"]
    assert (leaf["action"], leaf["actor"], leaf["role"], leaf["outcome"]) == (
        "access.denied",
        "dock-z",
        "dock",
        "refused",
    )
    assert leaf["target"] == evidence_id
    assert leaf["details"]["request"] == "receipt"
    assert leaf["details"]["client"] == CLIENT


def test_a_dock_gets_its_own_clips_receipt_and_the_request_is_recorded(api: Api) -> None:
    evidence_id = api.ingest(OFFICER)
    sha = clip_sha(api, evidence_id)
    before = api.ledger_size()
    answer = api.call("dock", "GET", f"/api/v1/receipts/{sha}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["receipt"]["evidence_id"] == evidence_id
    [leaf] = [f for f in api.leaves_since(before) if f["actor"] == "dock-a"]
    assert (leaf["action"], leaf["actor"], leaf["target"], leaf["sha256"]) == (
        "receipt.read",
        "dock-a",
        evidence_id,
        sha,
    )


def test_a_dock_holding_a_clip_another_dock_stored_gets_the_receipt_by_uploading_it(
    api: Api,
) -> None:
    """What the dock agent does after a 404 (docks/client.py): upload, and the service answers
    the stored clip's receipt (a ``clip.duplicate`` leaf); so a camera moved between docks
    before its wipe still gets wiped, and no dock learns of a clip it cannot show it holds."""
    evidence_id = api.ingest(OFFICER)
    with api.ctx.engine.connect() as conn:
        name = conn.execute(
            select(CLIP.c.original_name).where(CLIP.c.evidence_id == evidence_id)
        ).scalar_one()
    clip = api.clips_dir / name
    other = Dock(api.server, "dock-y")
    try:
        sent = other.upload(clip, sha256=sha256_of(clip), camera="CAM-A", filename=name)
    finally:
        other.http.close()
        Dock.opened.remove(other)
    assert sent.status_code == 204, sent.text
    assert receipt_from(sent)["receipt"]["evidence_id"] == evidence_id


# --- 5. the case reference is the evidence officer's ------------------------------------------


def categorise(api: Api, role: str, evidence_id: str, body: dict[str, Any]) -> httpx.Response:
    return api.call(
        role,
        "POST",
        f"/api/v1/clips/{evidence_id}/category",
        params={"reason": f"categorised by {role}"},
        json=body,
    )


def case_of(api: Api, evidence_id: str) -> str | None:
    with api.ctx.engine.connect() as conn:
        return conn.execute(
            select(CLIP.c.case_ref).where(CLIP.c.evidence_id == evidence_id)
        ).scalar()


@pytest.fixture
def in_a_case(api: Api) -> str:
    """An officer's clip the evidence officer has put in case CASE-9."""
    evidence_id = api.ingest(OFFICER)
    done = categorise(
        api, "evidence-officer", evidence_id, {"category": "evidential", "case": "CASE-9"}
    )
    assert done.status_code == 200, done.text
    return evidence_id


@pytest.mark.parametrize("case", [None, "CASE-1"], ids=["removed", "rewritten"])
def test_an_officer_cannot_remove_or_rewrite_the_case_reference_of_their_own_clip(
    api: Api, in_a_case: str, case: str | None
) -> None:
    before = api.ledger_size()
    answer = categorise(api, "officer", in_a_case, {"category": "evidential", "case": case})
    assert answer.status_code == 403, answer.text
    assert "only an evidence officer" in answer.json()["detail"]
    assert case_of(api, in_a_case) == "CASE-9"
    assert [(f["action"], f["actor"]) for f in api.leaves_since(before) if f["target"]] == [
        ("access.denied", OFFICER)
    ]
    found = api.call("evidence-officer", "GET", "/api/v1/clips", params={"case": "CASE-9"})
    assert in_a_case in {c["evidence_id"] for c in found.json()["items"]}


def test_an_officer_may_categorise_their_clip_without_touching_its_case(
    api: Api, in_a_case: str
) -> None:
    answer = categorise(api, "officer", in_a_case, {"category": "evidential"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["case"] == "CASE-9"
    assert case_of(api, in_a_case) == "CASE-9"


def test_an_officer_may_give_a_case_reference_to_a_clip_that_has_none(api: Api) -> None:
    evidence_id = api.ingest(OFFICER)
    answer = categorise(api, "officer", evidence_id, {"category": "evidential", "case": "CASE-3"})
    assert answer.status_code == 200, answer.text
    assert case_of(api, evidence_id) == "CASE-3"


def test_an_evidence_officer_may_change_or_remove_a_case_reference(
    api: Api, in_a_case: str
) -> None:
    changed = categorise(
        api, "evidence-officer", in_a_case, {"category": "evidential", "case": "CASE-10"}
    )
    assert changed.status_code == 200, changed.text
    assert case_of(api, in_a_case) == "CASE-10"
    removed = categorise(
        api, "evidence-officer", in_a_case, {"category": "evidential", "case": None}
    )
    assert removed.status_code == 200, removed.text
    assert case_of(api, in_a_case) is None


@pytest.mark.parametrize(
    "char",
    ["\u202e", "\u202a", "\u2066", "\u2069", "\x07", "\x1b", "\x7f", "\x85", "\x9b"],
    ids=["RLO", "LRE", "LRI", "PDI", "BEL", "ESC", "DEL", "NEL", "CSI"],
)
def test_a_case_reference_with_a_control_or_bidi_character_is_refused_with_422(
    api: Api, char: str
) -> None:
    evidence_id = api.ingest(OFFICER)
    before = api.ledger_size()
    answer = categorise(
        api, "evidence-officer", evidence_id, {"category": "evidential", "case": f"CASE-{char}7"}
    )
    assert answer.status_code == 422, answer.text
    assert f"U+{ord(char):04X}" in answer.json()["detail"]
    assert case_of(api, evidence_id) is None
    assert [f["action"] for f in api.leaves_since(before) if f["target"]] == ["access.denied"]
