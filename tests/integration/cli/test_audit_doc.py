"""docs/AUDIT.md holds against the real bwv.

The doc's ``verify-bundle.sh`` (bash, openssl and python3's standard library; no bwv) is extracted
and run against a bundle made by the real CLI, genuine and tampered with; the doc's worked example
is regenerated with the library and must match it byte for byte; the doc's consistency-proof
checker is run against real RFC 9162 proofs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bwv.custody import merkle
from bwv.custody.bundle import make_bundle, verify_bundle
from bwv.custody.leaf import Event
from bwv.custody.ledger import Ledger
from bwv.custody.note import sign_note
from bwv.keys import Keyring, SigningKey, VerifierKey
from bwv.records.database import make_engine, upgrade
from tests.support import REPO
from tests.support.cli import bwv, without_bwv_settings

DOC = REPO / "docs" / "AUDIT.md"

# The worked example of docs/AUDIT.md section 11: RFC 8032 section 7.1 TEST 1's private key.
EXAMPLE_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
EXAMPLE_ORIGIN = "bwv.local/custody"
EXAMPLE_ID = "EV-2025-000123"
EXAMPLE_CLIP = b"example clip\n"

Run = subprocess.CompletedProcess[str]
# The real CLI of this checkout with no BWV_* settings from the caller, and lines wide enough
# that the doc's examples are not wrapped.
ENV = without_bwv_settings(COLUMNS="500")


def doc_block(info: str) -> str:
    """The text of the one fenced block in docs/AUDIT.md whose info string is ``info``."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```" + re.escape(info) + r"\n(.*?)^```$", text, re.M | re.S)
    assert len(blocks) == 1, f"docs/AUDIT.md needs exactly one ```{info} block"
    return blocks[0]


# --- the script, against a bundle made by the real CLI ----------------------------------------


@dataclass(frozen=True)
class Demo:
    bundle: dict[str, Any]
    bundle_file: Path
    clip: Path
    key: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """``bwv demo`` in a fresh data directory: a real bundle, its clip and the verifier key."""
    data_dir = tmp_path_factory.mktemp("bwv-data")
    made = bwv(data_dir, "demo", env=ENV)
    assert made.returncode == 0, made.stderr
    listed = bwv(data_dir, "keys", "list", env=ENV)
    assert listed.returncode == 0, listed.stderr
    current = [line[2:] for line in listed.stdout.splitlines() if line.startswith("* ")]
    assert len(current) == 1, listed.stdout
    assert f"verifier key: {current[0]}" in made.stdout
    (bundle_file,) = (data_dir / "demo").rglob("*.bundle.json")
    bundle = json.loads(bundle_file.read_text(encoding="utf-8"))
    ingested = [json.loads(e["leaf"]) for e in bundle["leaves"]]
    (sha,) = [leaf["sha256"] for leaf in ingested if leaf["action"] == "clip.ingested"]
    clip = data_dir / "store" / "originals" / sha[:2] / sha[2:4] / sha  # the camera was wiped
    return Demo(bundle, bundle_file, clip, current[0])


Script = Callable[..., Run]


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Script:
    """Runs docs/AUDIT.md's verify-bundle.sh with a ``python3`` that cannot import bwv or any
    third-party package (isolated mode, no site-packages)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not on PATH; the documented script needs it")
    text = doc_block("bash verify-bundle.sh")
    assert text.startswith("#!/usr/bin/env bash\n")
    work = tmp_path_factory.mktemp("verify-bundle")
    path = work / "verify-bundle.sh"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    shims = work / "bin"
    shims.mkdir()
    python3 = shims / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n', encoding="utf-8")
    python3.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"

    def run(*args: object, cwd: Path | None = None) -> Run:
        return subprocess.run(
            ["bash", str(path), *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def write_bundle(path: Path, bundle: dict[str, Any]) -> Path:
    path.write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
    return path


def assert_rejected(run: Run, *fragments: str) -> None:
    assert run.returncode != 0, run.stdout
    assert "ALL OK" not in run.stdout
    assert run.stderr.startswith("FAIL: "), run.stderr
    for fragment in fragments:
        assert fragment in run.stderr


def test_script_accepts_the_genuine_bundle_and_clip(demo: Demo, script: Script) -> None:
    run = script(demo.bundle_file, demo.key, demo.clip)
    assert run.returncode == 0, run.stderr
    name, key_id, _ = demo.key.split("+", 2)
    assert f"OK checkpoint signature by {name}+{key_id} verified by openssl" in run.stdout
    leaf_lines = [line for line in run.stdout.splitlines() if line.startswith("OK leaf ")]
    assert len(leaf_lines) == len(demo.bundle["leaves"]) > 0
    sha = json.loads(demo.bundle["leaves"][0]["leaf"])["sha256"]
    assert f"OK clip {demo.clip} has SHA-256 {sha}" in run.stdout
    assert run.stdout.endswith("ALL OK\n")


@pytest.mark.parametrize("which", ["first element of the first leaf", "last of the last"])
def test_script_rejects_one_flipped_bit_in_an_inclusion_proof(
    demo: Demo, script: Script, tmp_path: Path, which: str
) -> None:
    bundle = json.loads(json.dumps(demo.bundle))
    entry = bundle["leaves"][0 if which.startswith("first") else -1]
    n = 0 if which.startswith("first") else -1
    node = bytearray(base64.b64decode(entry["inclusion_proof"][n]))
    node[5] ^= 0x10
    entry["inclusion_proof"][n] = base64.b64encode(bytes(node)).decode()
    run = script(write_bundle(tmp_path / "b.json", bundle), demo.key)
    assert_rejected(run, f"leaf {entry['index']}: inclusion proof does not lead to the signed root")


def test_script_rejects_a_different_verifier_key(demo: Demo, script: Script) -> None:
    other = SigningKey(demo.key.split("+")[0], Ed25519PrivateKey.generate()).verifier
    run = script(demo.bundle_file, str(other))
    assert_rejected(run, "not signed by the trusted verifier key")


def test_script_trusts_the_given_key_not_the_keys_in_the_bundle(
    demo: Demo, script: Script, tmp_path: Path
) -> None:
    """A bundle re-signed by an impostor, carrying the impostor's key, is complete and valid for
    the impostor's key and rejected under the genuine one."""
    impostor = SigningKey(demo.key.split("+")[0], Ed25519PrivateKey.generate())
    body = demo.bundle["checkpoint"].rpartition("\n\n")[0] + "\n"
    forged = dict(demo.bundle, checkpoint=sign_note(body, [impostor]))
    forged["verifier_keys"] = [str(impostor.verifier)]
    path = write_bundle(tmp_path / "forged.json", forged)
    assert script(path, str(impostor.verifier)).returncode == 0
    assert_rejected(script(path, demo.key), "not signed by the trusted verifier key")


def test_script_rejects_a_bad_signature_under_the_trusted_key_id(
    demo: Demo, script: Script, tmp_path: Path
) -> None:
    body, _, sigs = demo.bundle["checkpoint"].rpartition("\n\n")
    prefix, _, b64 = sigs.rstrip("\n").rpartition(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[40] ^= 0x01  # in the signature, not the key id
    note = f"{body}\n\n{prefix} {base64.b64encode(bytes(blob)).decode()}\n"
    run = script(write_bundle(tmp_path / "b.json", dict(demo.bundle, checkpoint=note)), demo.key)
    assert_rejected(run, "does NOT verify")


def test_script_rejects_a_verifier_key_with_the_wrong_key_id(demo: Demo, script: Script) -> None:
    name, key_id, blob = demo.key.split("+", 2)
    wrong = f"{name}+{(int(key_id, 16) ^ 1):08x}+{blob}"
    assert_rejected(script(demo.bundle_file, wrong), "claims key id")


def test_script_rejects_a_clip_that_is_not_the_original(
    demo: Demo, script: Script, tmp_path: Path
) -> None:
    data = bytearray(demo.clip.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy = tmp_path / demo.clip.name
    copy.write_bytes(bytes(data))
    run = script(demo.bundle_file, demo.key, copy)
    assert "OK leaf " in run.stdout  # the bundle itself checked out: the clip is what failed
    assert_rejected(run, f"clip {copy} has SHA-256", "but the ledger recorded")


def test_script_rejects_a_bundle_relabelled_for_another_clip(
    demo: Demo, script: Script, tmp_path: Path
) -> None:
    bundle = dict(demo.bundle, evidence_id="EV-SOMETHING-ELSE")
    run = script(write_bundle(tmp_path / "b.json", bundle), demo.key)
    assert_rejected(run, f"concerns {demo.bundle['evidence_id']!r}, not 'EV-SOMETHING-ELSE'")


@pytest.mark.parametrize("alteration", ["recorded SHA-256", "actor"])
def test_script_rejects_an_altered_leaf(
    demo: Demo, script: Script, tmp_path: Path, alteration: str
) -> None:
    bundle = json.loads(json.dumps(demo.bundle))
    substitute = tmp_path / "substitute.mp4"
    substitute.write_bytes(b"not the original footage")
    if alteration == "actor":
        entry = bundle["leaves"][-1]
        altered = re.sub(r'"actor":"[^"]*"', '"actor":"nobody"', entry["leaf"])
    else:  # the ingest record made to name the substitute's SHA-256
        entry = bundle["leaves"][0]
        fields = json.loads(entry["leaf"])
        assert fields["action"] == "clip.ingested"
        fake = hashlib.sha256(substitute.read_bytes()).hexdigest()
        altered = entry["leaf"].replace(fields["sha256"], fake)
    assert altered != entry["leaf"]
    entry["leaf"] = altered
    run = script(write_bundle(tmp_path / "b.json", bundle), demo.key, substitute)
    assert_rejected(run, f"leaf {entry['index']}: inclusion proof does not lead to the signed root")


# --- the worked example and the consistency checker -------------------------------------------


def example_bundle(tmp_path: Path) -> tuple[SigningKey, dict[str, Any], Ledger]:
    """Section 11's log, made with the library: three leaves at fixed times, RFC 8032's key."""
    key = SigningKey(EXAMPLE_ORIGIN, Ed25519PrivateKey.from_private_bytes(EXAMPLE_SEED))
    start = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
    times = iter([start + timedelta(seconds=7 * i) for i in range(10)])
    engine = make_engine(f"sqlite:///{tmp_path / 'example.sqlite3'}")
    upgrade(engine)
    ledger = Ledger(engine, EXAMPLE_ORIGIN, key, clock=lambda: next(times))
    sha = hashlib.sha256(EXAMPLE_CLIP).hexdigest()
    verifier = str(key.verifier)
    ledger.append(Event("ops", "admin", "key.created", details={"verifier_key": verifier}))
    ledger.append(
        Event(
            "dock-07",
            "dock",
            "clip.ingested",
            target=EXAMPLE_ID,
            sha256=sha,
            details={"bay": 3, "dock": "station-2"},
        )
    )
    ledger.append(
        Event("pc-4521", "officer", "clip.viewed", target=EXAMPLE_ID, reason="own footage review")
    )
    return key, make_bundle(ledger, EXAMPLE_ID, Keyring([key.verifier])), ledger


def test_worked_example_is_what_bwv_produces(tmp_path: Path) -> None:
    key, bundle, ledger = example_bundle(tmp_path)
    try:
        assert doc_block("text example-verifier-key") == f"{key.verifier}\n"
        assert doc_block("text example-leaf") == ledger.leaf(1).body.decode() + "\n"
        assert doc_block("text example-checkpoint") == bundle["checkpoint"]
        assert doc_block("json example-bundle") == json.dumps(bundle, indent=2) + "\n"
    finally:
        ledger.engine.dispose()
    documented = json.loads(doc_block("json example-bundle"))
    trusted = Keyring([VerifierKey.parse(doc_block("text example-verifier-key"))])
    clip = tmp_path / "EV-2025-000123.mp4"
    clip.write_bytes(EXAMPLE_CLIP)
    assert verify_bundle(documented, trusted, clip=clip).tree_size == 3


def test_script_output_on_the_worked_example_is_as_documented(
    script: Script, tmp_path: Path
) -> None:
    (tmp_path / "EV-2025-000123.bundle.json").write_text(doc_block("json example-bundle"))
    (tmp_path / "EV-2025-000123.mp4").write_bytes(EXAMPLE_CLIP)
    key = doc_block("text example-verifier-key").strip()
    run = script("EV-2025-000123.bundle.json", key, "EV-2025-000123.mp4", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout == doc_block("text example-output")


def test_documented_consistency_check_agrees_with_rfc9162_proofs() -> None:
    namespace: dict[str, Any] = {}
    exec(doc_block("python verify-consistency.py"), namespace)
    check = namespace["verify_consistency"]
    hashes = [merkle.leaf_hash(b"leaf %d" % i) for i in range(13)]
    get = merkle.levels_lookup(merkle.tree_levels(hashes))
    for size2 in range(1, 14):
        root2 = merkle.root_hash(get, size2)
        for size1 in range(1, size2 + 1):
            root1 = merkle.root_hash(get, size1)
            proof = merkle.consistency_path(get, size1, size2)
            assert check(size1, size2, proof, root1, root2), (size1, size2)
            if size1 < size2:
                other = merkle.root_hash(get, size1 - 1) if size1 > 1 else bytes(32)
                assert not check(size1, size2, proof, other, root2), (size1, size2)
                assert not check(size1, size2, proof, root1, root1), (size1, size2)
                assert not check(size1, size2, proof[:-1], root1, root2), (size1, size2)
            for i in range(len(proof)):
                bad = [*proof]
                bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
                assert not check(size1, size2, bad, root1, root2), (size1, size2, i)
