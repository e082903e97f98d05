"""Key rotation statements: how docks, officers' clients and witnesses learn the service's new
signing key without being enrolled again, and without trusting the server.

A statement is a C2SP signed note (https://c2sp.org/signed-note) whose body is::

    bwv key rotation
    old <verifier key it replaces>
    new <verifier key>
    at <RFC 3339 time>

signed by the old key (the authority to hand over) and by the new one (proof that whoever
rotated holds it). The service keeps every statement, oldest first, in ``rotations.json`` beside
its keyring and serves them at ``GET /api/v1/keys``. A client that meets a signature by a key it
has not pinned follows the chain from its pinned keys (:func:`follow`): each link must be signed
by the head of the chain so far, so a statement signed by any other key adds nothing, one that
names a trusted key without that key's valid signature is a forgery, and a second successor of
a key already rotated away from is a fork; either stops everything. Old keys stay trusted for
what they signed before (historic checkpoints); a fresh receipt must be signed by the head.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bwv.base.clock import system_clock
from bwv.base.errors import BwvError, NoteError
from bwv.base.files import write_atomic
from bwv.custody.note import note_body, open_note, sign_note
from bwv.keys import (
    Keyring,
    SigningKey,
    VerifierKey,
    keys_locked,
    load_keyring,
    load_signing_key,
    save_signing_key,
    write_keyring,
)

HEADER = "bwv key rotation"
FORMAT = "bwv.key-rotations/1"
FILE_NAME = "rotations.json"
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class RotationError(NoteError):
    """A rotation statement is malformed, or claims a trusted key's authority without its
    signature: the chain cannot be followed."""

    exit_code = 2


@dataclass(frozen=True)
class Rotation:
    old: VerifierKey
    new: VerifierKey
    at: str

    def body(self) -> str:
        return f"{HEADER}\nold {self.old}\nnew {self.new}\nat {self.at}\n"

    @classmethod
    def parse(cls, body: str) -> Rotation:
        lines = body.split("\n")
        if len(lines) != 5 or lines[0] != HEADER or lines[4] != "":
            raise RotationError("not a bwv key rotation statement")
        fields = {}
        for line, label in zip(lines[1:4], ("old", "new", "at"), strict=True):
            tag, _, value = line.partition(" ")
            if tag != label or not value:
                raise RotationError(f"rotation statement has no {label!r} line")
            fields[label] = value
        try:
            old, new = VerifierKey.parse(fields["old"]), VerifierKey.parse(fields["new"])
        except BwvError as exc:
            raise RotationError(f"rotation statement: {exc.diagnosis}") from None
        return cls(old, new, fields["at"])


def rotations_path(keyring_path: Path) -> Path:
    return keyring_path.with_name(FILE_NAME)


def make_statement(old: SigningKey, new: SigningKey, at: str) -> str:
    """The signed note announcing ``new`` in place of ``old``."""
    return sign_note(Rotation(old.verifier, new.verifier, at).body(), [old, new])


def load_statements(path: Path) -> list[str]:
    """The service's statements, oldest first; none if it never rotated."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise RotationError(f"cannot read the key rotation statements {path.name}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RotationError(f"{path.name} is not a {FORMAT} file")
    statements = data.get("statements")
    if not isinstance(statements, list):
        raise RotationError(f"{path.name} is not a {FORMAT} file")
    if not all(isinstance(s, str) for s in statements):
        raise RotationError(f"{path.name} holds a statement that is not text")
    return statements


def append_statement(path: Path, statement: str) -> None:
    statements = [*load_statements(path), statement]
    text = json.dumps({"format": FORMAT, "statements": statements}, indent=2) + "\n"
    write_atomic(path, text, mode=0o600)


def rotate_keys(
    key_path: Path, keyring_path: Path, name: str, *, at: str | None = None
) -> tuple[SigningKey, SigningKey]:
    """Replace the signing key; its public key stays in the keyring. Returns (old, new).

    The new key is announced in a rotation statement signed by the old key and the new one
    (:func:`make_statement`), which docks, clients and witnesses follow from the key they
    pinned. The keyring and the statement are written before the new private key is moved into
    place, so a crash between them leaves at worst an announced but unused key, never a signing
    key nobody can verify or follow to.
    """
    with keys_locked(key_path.parent):
        keyring = load_keyring(keyring_path)
        old = load_signing_key(key_path, name, keyring)
        new = SigningKey(old.name, Ed25519PrivateKey.generate())
        when = at or system_clock().isoformat(timespec="seconds").replace("+00:00", "Z")
        statement = make_statement(old, new, when)
        keys = list(keyring)
        if old.verifier not in keys:
            keys.append(old.verifier)
        keys.append(new.verifier)
        write_keyring(keyring_path, keys)
        append_statement(rotations_path(keyring_path), statement)
        save_signing_key(key_path, new)
    return old, new


def _moment(text: str) -> datetime:
    """An ``at`` line as an aware datetime: RFC 3339 section 5.6 ``date-time``, offset required."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(text)
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00").replace(" ", "T"))
    except (ValueError, OverflowError):
        raise ValueError(text) from None


def _short(key: VerifierKey) -> str:
    return f"{key.name}+{key.key_id.hex()}"


def follow(trusted: Keyring, statements: list[str]) -> Keyring:
    """The keys to trust after following the chain of rotation statements from ``trusted``.

    ``trusted`` is taken oldest first (as keyrings, ``dock.json`` and saved credentials list
    keys): its last key is the head of the chain, each earlier one already succeeded by the
    next. The chain is linear: a statement is followed only when its ``old`` is the head, its
    ``new`` has the same name and its ``at`` (RFC 3339) is not earlier than the link before it;
    the new key becomes the head, and is last in the keyring returned. A statement from a key
    not trusted proves nothing and is passed over; one naming a trusted key without valid
    signatures by it and by ``new``, a second successor of a key already rotated away from (a
    fork: whoever holds a leaked old key could announce their own), or any malformed link raises
    :class:`RotationError` and nothing is added.
    """
    keys = list(trusted)
    successor = dict(pairwise(keys))
    since: dict[VerifierKey, datetime] = {}  # when each followed key took over
    for n, statement in enumerate(statements, 1):
        if not isinstance(statement, str):
            raise RotationError(f"key rotation statement {n} is not text")
        try:
            rotation = Rotation.parse(note_body(statement))
        except NoteError as exc:
            raise RotationError(f"key rotation statement {n}: {exc.diagnosis}") from None
        old, new = rotation.old, rotation.new
        if old not in keys:
            continue
        try:
            _, signed = open_note(statement, Keyring([old, new]))
        except NoteError:
            signed = []
        if old not in signed or new not in signed:
            raise RotationError(
                f"key rotation statement {n} announces {_short(new)} but is not signed by both "
                f"it and {_short(old)}, the trusted key it claims to replace: refused as forged "
                "or damaged"
            )
        if new.name != old.name:
            raise RotationError(
                f"key rotation statement {n} hands {_short(old)} over to a key of another name, "
                f"{_short(new)}: refused"
            )
        try:
            at = _moment(rotation.at)
        except ValueError:
            raise RotationError(
                f"key rotation statement {n} is dated {rotation.at[:40]!r}, not an RFC 3339 time"
            ) from None
        if successor.get(old) == new:
            since.setdefault(new, at)
            continue  # a link already followed
        if old in successor:
            raise RotationError(
                f"key rotation statement {n} forks the chain: {_short(old)} was already rotated "
                f"to {_short(successor[old])}, and now to {_short(new)}; refused (was the old "
                "key leaked?)"
            )
        if new in keys:
            raise RotationError(
                f"key rotation statement {n} hands {_short(old)} back to {_short(new)}, a key "
                "already in the chain: refused"
            )
        if old in since and at < since[old]:
            raise RotationError(
                f"key rotation statement {n} is dated {rotation.at}, before {_short(old)} took "
                "over: refused"
            )
        keys.append(new)
        successor[old] = new
        since[new] = at
    return Keyring(keys)


def head(keyring: Keyring) -> VerifierKey:
    """The key at the head of a followed chain (see :func:`follow`): the one fresh signatures
    must be made with."""
    return keyring.keys[-1]


def knows(keyring: Keyring, signers: list[tuple[str, bytes]]) -> bool:
    """Whether ``keyring`` holds any of the (name, key id) a note or receipt claims."""
    return any(keyring.find(name, kid) is not None for name, kid in signers)
