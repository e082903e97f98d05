"""The ``bwv`` command as an operator and an auditor use it, run as a real process: exit codes,
one-line errors without tracebacks, and nothing written when the input is bad."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from bwv.base.settings import Settings
from bwv.custody.leaf import Outcome
from bwv.keys import SigningKey
from bwv.services.context import Context
from tests.support.cli import assert_one_line_error, bwv

SHA_OF_CLIP = None  # set per data dir by _populate


def _populate(data_dir: Path, clips: int = 3, events_per_clip: int = 4) -> Path:
    """Record custody events for a few clips; returns the first clip's file."""
    ctx = Context(Settings(data_dir=data_dir))
    clip = data_dir / "EV-1.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    import hashlib

    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    for c in range(clips):
        ctx.record(
            "dock",
            "clip.ingested",
            target=f"EV-{c + 1}",
            sha256=sha if c == 0 else hashlib.sha256(f"clip {c}".encode()).hexdigest(),
        )
        for n in range(events_per_clip - 1):
            ctx.record(
                "evidence-officer",
                "clip.viewed",
                target=f"EV-{c + 1}",
                reason=f"case {n}",
                outcome=Outcome.OK,
            )
    ctx.close()
    return clip


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "data"
    bwv(d, "init", check=True)
    yield d


def test_init_creates_schema_and_private_key(data_dir: Path) -> None:
    assert (data_dir / "bwv.sqlite3").exists()
    assert (data_dir / "keys" / "signing.key").stat().st_mode & 0o777 == 0o600
    assert "already initialised" in bwv(data_dir, "init", check=True).stdout


def test_keys_rotate_keeps_verification_working(data_dir: Path) -> None:
    _populate(data_dir)
    before = bwv(data_dir, "keys", "list", check=True).stdout.split()
    new_key = bwv(data_dir, "keys", "rotate", check=True).stdout.strip()
    listed = bwv(data_dir, "keys", "list", check=True).stdout.splitlines()
    assert len(listed) == 2 and listed[1] == f"* {new_key}"
    assert before[-1] in listed[0]
    assert bwv(data_dir, "audit", "verify", check=True).returncode == 0


def test_audit_verify_passes_on_an_intact_ledger(data_dir: Path) -> None:
    _populate(data_dir)
    result = bwv(data_dir, "audit", "verify", check=True)
    assert result.stdout.startswith("OK ledger of ")


def test_audit_verify_names_the_first_bad_index(data_dir: Path) -> None:
    _populate(data_dir)
    ctx = Context(Settings(data_dir=data_dir))
    with ctx.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER ledger_leaf_no_update"))
        conn.execute(
            text(
                "UPDATE ledger_leaf SET body = "
                "replace(body, 'clip.viewed', 'clip.deleted') WHERE seq = 6"
            )
        )
    ctx.close()
    result = bwv(data_dir, "audit", "verify")
    assert result.returncode == 2
    assert_one_line_error(result, "first bad index 6", "leaf 6")


def test_bundle_verifies_offline_with_pinned_key_and_clip(data_dir: Path, tmp_path: Path) -> None:
    clip = _populate(data_dir)
    bundle = tmp_path / "EV-1.json"
    bwv(data_dir, "audit", "bundle", "EV-1", "-o", str(bundle), check=True)
    key = bwv(data_dir, "keys", "list", check=True).stdout.split()[-1]
    offline = tmp_path / "elsewhere"  # no database, no keys: only the bundle
    result = bwv(
        offline,
        "audit",
        "verify-bundle",
        str(bundle),
        "--key",
        key,
        "--file",
        str(clip),
        check=True,
    )
    assert "OK 5 leaves for EV-1" in result.stdout  # 4 events + the bundle's own access leaf
    assert f"{clip} is the original" in result.stdout
    assert not offline.exists()


def test_bundle_records_its_own_issue(data_dir: Path, tmp_path: Path) -> None:
    _populate(data_dir)
    bwv(data_dir, "audit", "bundle", "EV-2", "-o", str(tmp_path / "b.json"), check=True)
    actions = [
        json.loads(e["leaf"])["action"]
        for e in json.loads((tmp_path / "b.json").read_text())["leaves"]
    ]
    assert actions[-1] == "audit.bundle"


def test_bundle_for_unknown_clip_writes_nothing(data_dir: Path, tmp_path: Path) -> None:
    _populate(data_dir)
    out = tmp_path / "none.json"
    result = bwv(data_dir, "audit", "bundle", "EV-404", "-o", str(out))
    assert_one_line_error(result, "no custody record for evidence id 'EV-404'")
    assert not out.exists()


@pytest.fixture
def bundle(data_dir: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    clip = _populate(data_dir)
    path = tmp_path / "EV-1.json"
    bwv(data_dir, "audit", "bundle", "EV-1", "-o", str(path), check=True)
    return path, clip, bwv(data_dir, "keys", "list", check=True).stdout.split()[-1]


def test_verify_bundle_refuses_malformed_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "bwv.custody-bundle/1", "leaves": [')
    result = bwv(tmp_path, "audit", "verify-bundle", str(bad))
    assert_one_line_error(result, "is not a JSON bundle")


def test_verify_bundle_refuses_a_wrong_key(bundle: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, _, key = bundle
    stranger = SigningKey(key.split("+")[0], Ed25519PrivateKey.generate()).verifier
    result = bwv(tmp_path, "audit", "verify-bundle", str(path), "--key", str(stranger))
    assert_one_line_error(result, "not signed by any trusted key")


def test_verify_bundle_refuses_a_bundle_for_another_clip(
    bundle: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, _, key = bundle
    result = bwv(
        tmp_path,
        "audit",
        "verify-bundle",
        str(path),
        "--key",
        key,
        "--evidence-id",
        "EV-2",
    )
    assert_one_line_error(result, "bundle is for evidence id 'EV-1', not 'EV-2'")


def test_verify_bundle_refuses_another_clip_file(
    bundle: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, _, key = bundle
    other = tmp_path / "other.mp4"
    other.write_bytes(b"some other recording")
    result = bwv(
        tmp_path,
        "audit",
        "verify-bundle",
        str(path),
        "--key",
        key,
        "--file",
        str(other),
    )
    assert_one_line_error(result, "not the original")


def test_verify_bundle_names_the_leaf_with_a_flipped_proof_bit(
    bundle: tuple[Path, Path, str], tmp_path: Path
) -> None:
    path, _, key = bundle
    data = json.loads(path.read_text())
    entry = data["leaves"][1]
    raw = bytearray(base64.b64decode(entry["inclusion_proof"][0]))
    raw[0] ^= 1
    entry["inclusion_proof"][0] = base64.b64encode(bytes(raw)).decode()
    path.write_text(json.dumps(data))
    result = bwv(tmp_path, "audit", "verify-bundle", str(path), "--key", key)
    assert_one_line_error(result, f"leaf {entry['index']}: inclusion proof")


def test_missing_key_file_is_one_line(bundle: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, _, _ = bundle
    result = bwv(
        tmp_path,
        "audit",
        "verify-bundle",
        str(path),
        "--key",
        str(tmp_path / "absent.pub"),
    )
    assert_one_line_error(result, "cannot read key file")


def test_missing_signing_key_is_one_line(data_dir: Path) -> None:
    (data_dir / "keys" / "signing.key").unlink()
    result = bwv(data_dir, "audit", "checkpoint")
    assert_one_line_error(result, "no signing key at", "bwv keys init")


def test_database_from_a_newer_schema_is_one_line(data_dir: Path) -> None:
    ctx = Context(Settings(data_dir=data_dir))
    with ctx.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    ctx.close()
    result = bwv(data_dir, "audit", "verify")
    assert_one_line_error(result, "newer than this bwv")
    debug = bwv(data_dir, "--debug", "audit", "verify")
    assert "Traceback" in debug.stderr


def test_uninitialised_data_dir_says_run_init(tmp_path: Path) -> None:
    result = bwv(tmp_path / "fresh", "audit", "verify")
    assert_one_line_error(result, "run `bwv init`")


# --- the witness ------------------------------------------------------------------------------


def test_witness_accepts_a_growing_log(data_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    _populate(data_dir, clips=1)
    assert (
        "first use" in bwv(data_dir, "audit", "witness", "--state", str(state), check=True).stdout
    )
    _populate(data_dir, clips=2)
    result = bwv(data_dir, "audit", "witness", "--state", str(state), check=True)
    assert "accepted checkpoint of size 13 (previously verified: 5)" in result.stdout


def test_witness_catches_a_database_restored_from_an_older_copy(
    data_dir: Path, tmp_path: Path
) -> None:
    state = tmp_path / "witness.json"
    _populate(data_dir, clips=1)
    old_copy = tmp_path / "old.sqlite3"
    Context(Settings(data_dir=data_dir)).ledger.checkpoint()
    shutil.copy(data_dir / "bwv.sqlite3", old_copy)
    _populate(data_dir, clips=2)
    bwv(data_dir, "audit", "witness", "--state", str(state), check=True)
    before = state.read_bytes()
    shutil.copy(old_copy, data_dir / "bwv.sqlite3")
    for suffix in ("-wal", "-shm"):
        (data_dir / f"bwv.sqlite3{suffix}").unlink(missing_ok=True)
    result = bwv(data_dir, "audit", "witness", "--state", str(state))
    assert_one_line_error(result, "rollback or truncation", "already verified 13")
    assert result.returncode == 2
    assert state.read_bytes() == before


def test_witness_catches_a_fork(data_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    _populate(data_dir, clips=1)
    old_copy = tmp_path / "old.sqlite3"
    Context(Settings(data_dir=data_dir)).ledger.checkpoint()
    shutil.copy(data_dir / "bwv.sqlite3", old_copy)
    _populate(data_dir, clips=1)
    bwv(data_dir, "audit", "witness", "--state", str(state), check=True)
    shutil.copy(old_copy, data_dir / "bwv.sqlite3")
    for suffix in ("-wal", "-shm"):
        (data_dir / f"bwv.sqlite3{suffix}").unlink(missing_ok=True)
    _populate(data_dir, clips=3)  # a different history, longer than the one witnessed
    result = bwv(data_dir, "audit", "witness", "--state", str(state))
    assert_one_line_error(result, "not an extension")


def test_witness_with_files_from_the_log(data_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    _populate(data_dir, clips=1)
    key = bwv(data_dir, "keys", "list", check=True).stdout.split()[-1]
    cp1 = tmp_path / "cp1.txt"
    bwv(data_dir, "audit", "checkpoint", "-o", str(cp1), check=True)
    offline = tmp_path / "witness-host"
    bwv(
        offline,
        "audit",
        "witness",
        "--state",
        str(state),
        "--checkpoint",
        str(cp1),
        "--key",
        key,
        check=True,
    )
    _populate(data_dir, clips=1)
    cp2, proof = tmp_path / "cp2.txt", tmp_path / "proof.json"
    bwv(data_dir, "audit", "checkpoint", "-o", str(cp2), check=True)
    size1, size2 = (int(cp.read_text().splitlines()[1]) for cp in (cp1, cp2))
    bwv(data_dir, "audit", "consistency", str(size1), "-o", str(proof), check=True)
    result = bwv(
        offline,
        "audit",
        "witness",
        "--state",
        str(state),
        "--checkpoint",
        str(cp2),
        "--proof",
        str(proof),
        check=True,
    )
    assert f"accepted checkpoint of size {size2} (previously verified: {size1})" in result.stdout
    again = bwv(offline, "audit", "witness", "--state", str(state), "--checkpoint", str(cp1))
    assert_one_line_error(again, "rollback or truncation")


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = bwv(tmp_path / "demo", "demo", check=True)
    assert "receipts verified for 3 of 3 clips" in result.stdout
    assert "clips left on cameras: none" in result.stdout
    assert result.stdout.count(" playable ") == 6  # the indexed clips, then the officer's search
    assert "signed checkpoint" in result.stdout
    assert "the stored original matches the ledger's SHA-256" in result.stdout
    assert "page 1 of 1, 3 clips" in result.stdout
    assert "evidential, case DEMO-" in result.stdout and ", on legal hold" in result.stdout
    assert "(SHA-256 checked)" in result.stdout
    # 40 days on, the one uncategorised clip without a hold would go; the held one stays.
    assert "would delete: 1" in result.stdout and "held past its date: 1" in result.stdout
    assert "OK ledger of" in result.stdout
    assert result.stderr == ""
