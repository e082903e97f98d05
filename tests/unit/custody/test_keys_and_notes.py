"""Keys (C2SP signed-note key ids and verifier keys), signed notes and checkpoints."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bwv.base.errors import KeyError_, NoteError
from bwv.custody.note import Checkpoint, open_checkpoint, open_note, sign_note
from bwv.custody.rotation import rotate_keys
from bwv.keys import (
    Keyring,
    SigningKey,
    VerifierKey,
    init_keys,
    load_keyring,
    load_signing_key,
)

NAME = "test.bwv.example/custody"


def _paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "keys" / "signing.key", tmp_path / "keys" / "keyring.txt"


def test_signing_key_file_is_private(tmp_path: Path) -> None:
    key_path, keyring_path = _paths(tmp_path)
    init_keys(key_path, keyring_path, NAME)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_verifier_key_is_c2sp_name_keyid_base64(tmp_path: Path) -> None:
    key = init_keys(*_paths(tmp_path), NAME)
    name, kid, blob = str(key.verifier).split("+", 2)
    raw = base64.b64decode(blob)
    assert name == NAME
    assert raw[0] == 1 and len(raw) == 33  # Ed25519 algorithm byte, then the public key
    assert bytes.fromhex(kid) == hashlib.sha256(NAME.encode() + b"\n" + raw).digest()[:4]


def test_verifier_key_text_round_trips(signer: SigningKey) -> None:
    assert VerifierKey.parse(str(signer.verifier)) == signer.verifier


def test_verifier_key_with_wrong_key_id_is_refused(signer: SigningKey) -> None:
    name, _, blob = str(signer.verifier).split("+", 2)
    with pytest.raises(KeyError_, match="key id"):
        VerifierKey.parse(f"{name}+00000000+{blob}")


def test_init_refuses_to_replace_an_existing_key(tmp_path: Path) -> None:
    init_keys(*_paths(tmp_path), NAME)
    with pytest.raises(KeyError_, match="already exists"):
        init_keys(*_paths(tmp_path), NAME)


def test_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match=r"no signing key at .* run `bwv keys init`"):
        load_signing_key(tmp_path / "nope.key", NAME)


def test_world_readable_key_is_refused(tmp_path: Path) -> None:
    key_path, keyring_path = _paths(tmp_path)
    init_keys(key_path, keyring_path, NAME)
    key_path.chmod(0o644)
    with pytest.raises(KeyError_, match="readable by others"):
        load_signing_key(key_path, NAME)


def test_rotation_keeps_old_signatures_verifiable(tmp_path: Path) -> None:
    key_path, keyring_path = _paths(tmp_path)
    first = init_keys(key_path, keyring_path, NAME)
    old_note = sign_note(Checkpoint(NAME, 1, bytes(32)).body(), [first])
    old, new = rotate_keys(key_path, keyring_path, NAME)
    assert old.verifier == first.verifier
    assert load_signing_key(key_path, NAME).verifier == new.verifier
    keyring = load_keyring(keyring_path)
    assert [k for k in keyring] == [first.verifier, new.verifier]
    open_note(old_note, keyring)
    open_note(sign_note(Checkpoint(NAME, 2, bytes(32)).body(), [new]), keyring)


def test_checkpoint_note_is_byte_exact(signer: SigningKey) -> None:
    root = hashlib.sha256(b"root").digest()
    note = sign_note(Checkpoint(NAME, 42, root).body(), [signer])
    body, sig_line = note.split("\n\n")
    assert body == f"{NAME}\n42\n{base64.b64encode(root).decode()}"
    prefix = f"\u2014 {NAME} "
    assert sig_line.startswith(prefix) and sig_line.endswith("\n")
    blob = base64.b64decode(sig_line[len(prefix) : -1])
    assert blob[:4] == signer.key_id
    assert signer.verifier.verify((body + "\n").encode(), blob[4:])


def test_checkpoint_parses_back(signer: SigningKey, keyring: Keyring) -> None:
    cp = Checkpoint(NAME, 7, hashlib.sha256(b"x").digest())
    assert open_checkpoint(sign_note(cp.body(), [signer]), keyring, NAME) == cp


def test_note_signed_by_another_key_is_refused(keyring: Keyring) -> None:
    forger = SigningKey(NAME, Ed25519PrivateKey.generate())
    note = sign_note(Checkpoint(NAME, 7, bytes(32)).body(), [forger])
    with pytest.raises(NoteError, match="not signed by any trusted key"):
        open_note(note, keyring)


def test_note_with_edited_body_is_refused(signer: SigningKey, keyring: Keyring) -> None:
    note = sign_note(Checkpoint(NAME, 7, bytes(32)).body(), [signer])
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("\n7\n", "\n8\n"), keyring)


def test_checkpoint_for_another_log_is_refused(signer: SigningKey, keyring: Keyring) -> None:
    note = sign_note(Checkpoint(NAME, 7, bytes(32)).body(), [signer])
    with pytest.raises(NoteError, match=r"not 'other\.log'"):
        open_checkpoint(note, keyring, "other.log")


@pytest.mark.parametrize(
    "body", ["origin\n007\nAAAA\n", "origin\n1\nnot base64!\n", "origin\n1\n", "origin\n1\nAAAA\n"]
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


@pytest.mark.parametrize("size", ["\u0663", "\u00b2", "-1", " 1"])
def test_checkpoint_size_must_be_ascii_decimal(size: str) -> None:
    with pytest.raises(NoteError, match="not a decimal number"):
        Checkpoint.parse(f"origin\n{size}\n{base64.b64encode(bytes(32)).decode()}\n")


def test_signing_key_keeps_the_name_it_was_created_with(tmp_path: Path) -> None:
    key_path, keyring_path = _paths(tmp_path)
    created = init_keys(key_path, keyring_path, NAME)
    loaded = load_signing_key(key_path, "renamed.example/log", load_keyring(keyring_path))
    assert loaded.verifier == created.verifier
