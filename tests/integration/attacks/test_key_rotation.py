"""Issue 9, finding 7: rotating the service's signing key must not stop the force.

`bwv keys rotate` under a running service, a running dock (`bwv dock run`, a real process) and an
officer's logged-in client: the service signs with the new key at once, the dock and the client
follow the rotation statement the old key signed (GET /api/v1/keys) and keep working without
being enrolled again; a witness follows the same chain. A statement that is not signed by the key
it claims to replace is refused: the camera file stays, the officer's client says the custody
does not verify."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bwv.access.docks import assign_device
from bwv.base.errors import WitnessRefusal
from bwv.custody.note import sign_note
from bwv.custody.rotation import rotate_keys
from bwv.custody.witness import witness
from bwv.ingest.receipts import verify_receipt
from bwv.keys import (
    Keyring,
    SigningKey,
    VerifierKey,
    _write_private,
    init_keys,
    load_keyring,
)
from bwv.services.context import Context
from docks import DockConfig
from docks.queue import QueueError
from tests.support.apiserver import OFFICER, Api, start_api
from tests.support.cli import bwv, client_env, run_bwv
from tests.support.dockprocess import DockProcess, put_clip
from tests.support.ingestserver import init_data_dir

NAME = "rotation.example/custody"
# The rotation code is imported inside the tests that use it, so that on the code before it
# existed each live test still runs and fails on what the service and dock do.


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Api]:
    """A service of its own: these tests change its signing key."""
    running = start_api(tmp_path / "svc")
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def dock(service: Api, tmp_path: Path) -> Iterator[DockProcess]:
    """A dock enrolled with the service's key of today, its cameras issued to the officer."""
    made = DockProcess(service.server, tmp_path / "docks", "dock-r", bays=1)
    for bay in made.bays:
        camera = (bay / "CAMERA").read_text().strip()
        assign_device(service.ctx.engine, camera, OFFICER)
    try:
        yield made
    finally:
        made.kill()


def officer_login(service: Api, home: Path) -> dict[str, str | None]:
    """The officer logs in once, pinning the key the service signs with today."""
    env = client_env(service, home, BWV_TOKEN=None)
    key = service.server.service_key
    ran = run_bwv(
        {**env, "BWV_URL": None},
        *("login", "--url", service.server.url, "--ca", str(service.server.ca)),
        *("--service-key", key, "--token-stdin"),
        stdin=service.tokens["officer"] + "\n",
    )
    assert ran.returncode == 0, ran.stderr
    return {**env, "BWV_URL": None, "BWV_CA": None}


def wait_for_state(dock: DockProcess, path: Path, states: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rows = [r for r in dock.status() if r["path"] == str(path)]
        except QueueError:  # the running dock holds its queue's write lock just now
            rows = []
        if rows and rows[0]["state"] in states:
            return rows[0]
        time.sleep(0.2)
    pytest.fail(f"{path.name} never reached {states}: {dock.status()}\n{dock.log_tail()}")


def receipt_key(dock: DockProcess, sha256: str) -> str:
    return dock.receipts()[sha256]["receipt"]["key"]


def rotate(service: Api) -> str:
    """`bwv keys rotate` on the server host while the service runs; the new verifier key."""
    return bwv(service.server.data_dir, "keys", "rotate", check=True, timeout=60).stdout.strip()


def test_keys_rotate_says_what_happens_next(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_data_dir(data)
    ran = bwv(data, "keys", "rotate", check=True, timeout=60)
    VerifierKey.parse(ran.stdout.strip())  # stdout is the new key alone, for scripts
    assert "no restart" in ran.stderr
    assert "nobody enrols again" in ran.stderr
    assert len(ran.stderr.strip().splitlines()) <= 2


# --- the service, a running dock and an officer through a rotation ------------------------------


def test_running_service_signs_with_the_rotated_key_without_a_restart(
    service: Api, dock: DockProcess
) -> None:
    old = service.server.service_key
    dock.start()
    first = put_clip(dock, dock.bays[0], 1, size=40_000)
    wait_for_state(dock, first.path, {"wiped"})
    new = rotate(service)
    second = put_clip(dock, dock.bays[0], 2, size=40_000)
    wait_for_state(dock, second.path, {"wiped", "failed"})
    assert receipt_key(dock, first.sha256) == old
    assert receipt_key(dock, second.sha256) == new != old


def restart(service: Api) -> None:
    """As the issue found it: the operator rotates, then restarts the service."""
    service.server.stop()
    service.server.start()


def test_a_dock_enrolled_before_a_rotation_follows_it_and_keeps_wiping(
    service: Api, dock: DockProcess
) -> None:
    old = service.server.service_key
    dock.start()
    new = rotate(service)
    restart(service)
    clip = put_clip(dock, dock.bays[0], 1, size=40_000)
    row = wait_for_state(dock, clip.path, {"wiped", "failed"})
    assert row["state"] == "wiped", row["last_error"]
    assert not clip.path.exists()
    assert DockConfig.load(dock.state).verifier_keys == [old, new]  # pinned for the next run
    assert dock.stop() == 0


def test_an_officer_logged_in_before_a_rotation_still_verifies_custody(
    service: Api, tmp_path: Path
) -> None:
    env = officer_login(service, tmp_path / "officer")
    evidence_id = service.ingest(OFFICER)
    assert run_bwv(env, "clips", "show", evidence_id).returncode == 0
    new = rotate(service)
    restart(service)
    later = service.ingest(OFFICER)  # signed, with its checkpoint, by the new key
    shown = run_bwv(env, "clips", "show", later)
    assert shown.returncode == 0, shown.stderr
    assert "custody verified against service key" in shown.stdout
    saved = json.loads((tmp_path / "officer" / "credentials.json").read_text())
    assert saved["followed_keys"] == [new]
    assert run_bwv(env, "clips", "show", evidence_id).returncode == 0


def test_keys_and_rotations_are_served_to_docks_and_users(service: Api) -> None:
    rotate(service)
    for role in ("dock", "officer", "auditor"):
        assert service.call(role, "GET", "/api/v1/keys").status_code == 200
    served = service.call("dock", "GET", "/api/v1/keys")
    body = served.json()
    assert body["current"] == service.server.service_key
    assert len(body["rotations"]) == 1
    from bwv.custody.note import note_body
    from bwv.custody.rotation import Rotation

    announced = Rotation.parse(note_body(body["rotations"][0])).new
    assert announced == VerifierKey.parse(body["current"])


def test_a_custody_bundle_after_a_rotation_verifies_offline_from_the_old_key(
    service: Api,
) -> None:
    from bwv.custody.bundle import verify_bundle

    old = Keyring([VerifierKey.parse(service.server.service_key)])
    rotate(service)
    restart(service)
    evidence_id = service.ingest(OFFICER)
    answer = service.call("auditor", "GET", f"/api/v1/clips/{evidence_id}/custody")
    assert answer.status_code == 200, answer.text
    report = verify_bundle(answer.json(), old, evidence_id=evidence_id)
    assert report.leaves >= 1


def test_login_warns_when_the_pinned_key_does_not_lead_to_the_service_key(
    api: Api, tmp_path: Path
) -> None:
    stranger = str(SigningKey(NAME, Ed25519PrivateKey.generate()).verifier)
    env = client_env(api, tmp_path, BWV_TOKEN=None, BWV_URL=None)
    ran = run_bwv(
        env,
        *("login", "--url", api.server.url, "--service-key", stranger, "--token-stdin"),
        stdin=api.tokens["officer"] + "\n",
    )
    assert ran.returncode == 0, ran.stderr
    assert "does not lead to" in ran.stderr


# --- a forged rotation statement --------------------------------------------------------------


def forge_rotation(service: Api) -> SigningKey:
    """What someone who can write the service's key files, but does not hold its key, can do:
    put their own key in place and announce it, signing the statement with their key alone."""
    s = service.server.settings
    assert s.signing_key_path and s.keyring_path
    current = Context(s).signer
    impostor = SigningKey(current.name, Ed25519PrivateKey.generate())
    body = (
        f"bwv key rotation\nold {current.verifier}\nnew {impostor.verifier}\n"
        "at 2026-01-01T00:00:00Z\n"
    )
    statements = {"format": "bwv.key-rotations/1", "statements": [sign_note(body, [impostor])]}
    (s.keyring_path.parent / "rotations.json").write_text(json.dumps(statements))
    s.keyring_path.write_text(s.keyring_path.read_text() + f"{impostor.verifier}\n")
    _write_private(s.signing_key_path, impostor._private)
    return impostor


def test_a_dock_refuses_a_forged_rotation_and_keeps_the_camera_file(
    service: Api, dock: DockProcess
) -> None:
    old = service.server.service_key
    dock.start()
    impostor = forge_rotation(service)
    clip = put_clip(dock, dock.bays[0], 1, size=40_000)
    row = wait_for_state(dock, clip.path, {"wiped", "failed"})
    assert row["state"] == "failed"
    assert "forged" in row["last_error"]
    assert clip.path.exists()
    assert DockConfig.load(dock.state).verifier_keys == [old]
    assert str(impostor.verifier) not in DockConfig.load(dock.state).verifier_keys


def test_an_officer_refuses_custody_signed_after_a_forged_rotation(
    service: Api, tmp_path: Path
) -> None:
    env = officer_login(service, tmp_path / "officer")
    forge_rotation(service)
    evidence_id = service.ingest(OFFICER)
    shown = run_bwv(env, "clips", "show", evidence_id)
    assert shown.returncode == 2
    assert "key rotation does not verify" in shown.stderr
    saved = json.loads((tmp_path / "officer" / "credentials.json").read_text())
    assert not saved.get("followed_keys")


# --- the chain, link by link ---------------------------------------------------------------------


def keys_dir(tmp_path: Path) -> tuple[Path, Path]:
    init_keys(tmp_path / "signing.key", tmp_path / "keyring.txt", NAME)
    return tmp_path / "signing.key", tmp_path / "keyring.txt"


def test_a_chain_of_rotations_is_followed_from_the_first_key(tmp_path: Path) -> None:
    from bwv.custody.rotation import follow, load_statements, rotations_path

    key_path, keyring_path = keys_dir(tmp_path)
    first = load_keyring(keyring_path).keys[0]
    _, second = rotate_keys(key_path, keyring_path, NAME)
    _, third = rotate_keys(key_path, keyring_path, NAME)
    statements = load_statements(rotations_path(keyring_path))
    assert list(follow(Keyring([first]), statements)) == [first, second.verifier, third.verifier]
    assert list(follow(Keyring([second.verifier]), statements)) == [
        second.verifier,
        third.verifier,
    ]


def test_a_statement_from_a_key_not_in_the_chain_adds_nothing(tmp_path: Path) -> None:
    from bwv.custody.rotation import follow, make_statement

    _, keyring_path = keys_dir(tmp_path)
    first = load_keyring(keyring_path).keys[0]
    stranger, other = (SigningKey(NAME, Ed25519PrivateKey.generate()) for _ in range(2))
    statement = make_statement(stranger, other, "2026-01-01T00:00:00Z")
    assert list(follow(Keyring([first]), [statement])) == [first]


def test_a_statement_naming_the_pinned_key_without_its_signature_is_refused(
    tmp_path: Path,
) -> None:
    from bwv.custody.rotation import Rotation, RotationError, follow

    _, keyring_path = keys_dir(tmp_path)
    first = load_keyring(keyring_path).keys[0]
    impostor = SigningKey(NAME, Ed25519PrivateKey.generate())
    forged = sign_note(Rotation(first, impostor.verifier, "2026-01-01").body(), [impostor])
    with pytest.raises(RotationError, match="forged"):
        follow(Keyring([first]), [forged])


def test_a_witness_follows_the_rotation_chain(tmp_path: Path) -> None:
    from bwv.custody.rotation import load_statements, rotations_path

    settings = init_data_dir(tmp_path / "data", ledger_origin=NAME)
    ctx = Context(settings)
    try:
        state = tmp_path / "witness.json"
        ctx.record("admin", "test.event", target="EV-1")
        before = ctx.ledger.checkpoint()
        pinned = ctx.signer.verifier
        witness(state, before.note, [], [pinned])
        assert settings.signing_key_path and settings.keyring_path
        rotate_keys(settings.signing_key_path, settings.keyring_path, NAME)
        ctx.record("admin", "test.event", target="EV-2")
        after = ctx.ledger.checkpoint()  # this process's ledger signs with the new key at once
        proof = ctx.ledger.consistency_proof(before.size, after.size)
        with pytest.raises(WitnessRefusal):
            witness(state, after.note, proof)
        statements = load_statements(rotations_path(settings.keyring_path))
        result = witness(state, after.note, proof, rotations=statements)
    finally:
        ctx.close()
    assert result.accepted.size == after.size
    saved = json.loads(state.read_text())["verifier_keys"]
    assert saved == [str(pinned), str(ctx.signer.verifier)]


# --- round 2: the chain is linear, and only its head signs what is new --------------------------


def statement_by(old: SigningKey, new: SigningKey, at: str = "2026-06-01T00:00:00Z") -> str:
    from bwv.custody.rotation import make_statement

    return make_statement(old, new, at)


def new_key(name: str = NAME) -> SigningKey:
    return SigningKey(name, Ed25519PrivateKey.generate())


def test_a_second_successor_of_the_pinned_key_is_refused_as_a_fork() -> None:
    from bwv.custody.rotation import RotationError, follow

    k0, k1, k2 = new_key(), new_key(), new_key()
    statements = [statement_by(k0, k1), statement_by(k0, k2)]  # each signed by both its keys
    with pytest.raises(RotationError, match="fork") as refused:
        follow(Keyring([k0.verifier]), statements)
    assert k1.verifier.key_id.hex() in refused.value.diagnosis
    assert k2.verifier.key_id.hex() in refused.value.diagnosis
    assert "\n" not in refused.value.diagnosis


def test_a_statement_from_a_key_already_rotated_away_from_is_refused(tmp_path: Path) -> None:
    from bwv.custody.rotation import (
        RotationError,
        append_statement,
        follow,
        load_statements,
        rotations_path,
    )

    key_path, keyring_path = keys_dir(tmp_path)
    k0, k1 = rotate_keys(key_path, keyring_path, NAME)
    rotate_keys(key_path, keyring_path, NAME)  # k1 -> k2
    evil = new_key()  # whoever holds the leaked k0 announces their own key
    append_statement(rotations_path(keyring_path), statement_by(k0, evil, "2027-01-01T00:00:00Z"))
    statements = load_statements(rotations_path(keyring_path))
    for pinned in ([k0.verifier], [k0.verifier, k1.verifier]):
        with pytest.raises(RotationError, match="fork"):
            follow(Keyring(pinned), statements)


def test_a_statement_from_a_retired_key_is_refused_even_after_the_head_moved_on() -> None:
    from bwv.custody.rotation import RotationError, follow

    k0, k1, k2, evil = new_key(), new_key(), new_key(), new_key()
    saved = Keyring([k0.verifier, k1.verifier, k2.verifier])  # as a dock saves what it followed
    with pytest.raises(RotationError, match="fork"):
        follow(saved, [statement_by(k1, evil)])


def test_a_rotation_to_a_key_of_another_name_is_refused() -> None:
    from bwv.custody.rotation import RotationError, follow

    k0, other = new_key(), new_key("elsewhere.example/custody")
    with pytest.raises(RotationError, match="another name"):
        follow(Keyring([k0.verifier]), [statement_by(k0, other)])


def test_a_rotation_dated_with_no_rfc3339_time_is_refused() -> None:
    from bwv.custody.rotation import RotationError, follow

    k0, k1 = new_key(), new_key()
    with pytest.raises(RotationError, match="RFC 3339"):
        follow(Keyring([k0.verifier]), [statement_by(k0, k1, "last tuesday")])


def test_a_rotation_dated_before_the_link_it_follows_is_refused() -> None:
    from bwv.custody.rotation import RotationError, follow

    k0, k1, k2 = new_key(), new_key(), new_key()
    statements = [
        statement_by(k0, k1, "2026-06-01T12:00:00Z"),
        statement_by(k1, k2, "2026-06-01T11:00:00Z"),
    ]
    with pytest.raises(RotationError, match="before"):
        follow(Keyring([k0.verifier]), statements)


def test_a_chain_followed_again_with_what_was_saved_adds_nothing_twice(tmp_path: Path) -> None:
    from bwv.custody.rotation import follow, head, load_statements, rotations_path

    key_path, keyring_path = keys_dir(tmp_path)
    k0, k1 = rotate_keys(key_path, keyring_path, NAME)
    statements = load_statements(rotations_path(keyring_path))
    followed = follow(Keyring([k0.verifier]), statements)
    assert list(follow(followed, statements)) == [k0.verifier, k1.verifier]
    assert head(followed) == k1.verifier


def test_a_dock_that_followed_a_rotation_refuses_a_new_receipt_by_the_old_key(
    service: Api, dock: DockProcess
) -> None:
    s = service.server.settings
    assert s.signing_key_path and s.keyring_path
    dock.start()
    old, new = rotate_keys(s.signing_key_path, s.keyring_path, NAME)
    first = put_clip(dock, dock.bays[0], 1, size=40_000)
    assert wait_for_state(dock, first.path, {"wiped", "failed"})["state"] == "wiped"
    assert DockConfig.load(dock.state).verifier_keys[-1] == str(new.verifier)
    _write_private(s.signing_key_path, old._private)  # the leaked old key signs again
    second = put_clip(dock, dock.bays[0], 2, size=40_000)
    row = wait_for_state(dock, second.path, {"wiped", "failed"})
    assert row["state"] == "failed"
    assert "rotated away from" in row["last_error"]
    assert second.path.exists()


def test_two_rotations_at_once_leave_one_linear_chain(tmp_path: Path) -> None:
    import threading

    from bwv.custody.rotation import follow, head, load_statements, rotations_path
    from bwv.keys import load_signing_key

    key_path, keyring_path = keys_dir(tmp_path)
    first = load_keyring(keyring_path).keys[0]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def rotate_thrice() -> None:
        start.wait()
        try:
            for _ in range(3):
                rotate_keys(key_path, keyring_path, NAME)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=rotate_thrice) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    statements = load_statements(rotations_path(keyring_path))
    assert len(statements) == 12
    assert len(load_keyring(keyring_path)) == 13
    followed = follow(Keyring([first]), statements)
    assert len(followed) == 13
    assert head(followed) == load_signing_key(key_path, NAME).verifier
    assert list(followed) == list(load_keyring(keyring_path))


def test_the_keyring_and_rotation_statements_are_written_0600(tmp_path: Path) -> None:
    from bwv.custody.rotation import rotations_path

    key_path, keyring_path = keys_dir(tmp_path)
    rotate_keys(key_path, keyring_path, NAME)
    for path in (keyring_path, rotations_path(keyring_path), key_path):
        assert path.stat().st_mode & 0o777 == 0o600, path.name


def test_a_receipt_answered_again_after_a_rotation_is_signed_by_the_current_key(
    service: Api,
) -> None:
    """A dock that followed a rotation takes receipts only from the head key: a clip receipted
    under the old key and docked again (a duplicate) is answered with its receipt signed anew."""
    from tests.support import sha256_of
    from tests.support.tus import receipt_from

    assert service.dock is not None
    path = service.clips_dir / "again.mp4"
    path.write_bytes(b"clip receipted before the rotation" * 1000)
    sha = sha256_of(path)
    first = receipt_from(service.dock.upload(path, sha256=sha, camera="CAM-A"))
    old = service.server.service_key
    assert first["key"] == old
    new = rotate(service)
    again = service.dock.upload(path, sha256=sha, camera="CAM-A")
    assert again.status_code == 204, again.text
    second = receipt_from(again)
    assert second["key"] == new != old
    assert second["receipt"] == first["receipt"]  # the same evidence, the same fields
    fields = verify_receipt(second, Keyring([VerifierKey.parse(new)]), sha256=sha)
    assert fields["evidence_id"] == first["receipt"]["evidence_id"]


def test_the_keys_endpoint_refuses_an_anonymous_client_and_records_it(service: Api) -> None:
    assert service.http is not None
    before = service.ledger_size()
    answer = service.http.get("/api/v1/keys")  # no token
    assert answer.status_code == 401
    refused = [leaf for leaf in service.leaves_since(before) if leaf["action"] == "access.denied"]
    assert [leaf["details"]["path"] for leaf in refused] == ["/api/v1/keys"]
