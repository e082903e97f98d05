"""C2SP signed notes and tlog checkpoints.

Formats: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint. A checkpoint body is
``origin\\nsize\\nbase64(root)\\n``; the note appends a blank line and one signature line per
signer: ``— <key name> base64(key id || Ed25519 signature)``, the signature being over the body.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from bwv.base.errors import NoteError
from bwv.custody.merkle import HASH_SIZE
from bwv.keys import Keyring, SigningKey, VerifierKey

_SIG_PREFIX = "\u2014 "
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)


@dataclass(frozen=True)
class Checkpoint:
    """A commitment to the first ``size`` leaves of the log named ``origin``."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        lines = body.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint body must be origin, size and root hash lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not origin:
            raise NoteError("checkpoint has an empty origin line")
        if not _DECIMAL.fullmatch(size_text):
            raise NoteError(f"checkpoint tree size {size_text!r} is not a decimal number")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"checkpoint root hash is not base64: {root_text!r}") from exc
        if len(root) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash is {len(root)} bytes, not {HASH_SIZE}")
        return cls(origin, int(size_text), root)

    @classmethod
    def from_note(cls, note: str) -> Checkpoint:
        """The checkpoint a signed note carries, WITHOUT checking its signatures: only for notes
        this log stored or a witness already verified (use :func:`open_checkpoint` otherwise)."""
        return cls.parse(_split(note)[0])


def sign_note(body: str, signers: list[SigningKey]) -> str:
    """A signed note: ``body``, a blank line, and a signature line from each signer."""
    if not body.endswith("\n"):
        raise NoteError("a note body must end with a newline")
    lines = []
    for key in signers:
        sig = key.sign(body.encode())
        lines.append(f"{_SIG_PREFIX}{key.name} {base64.b64encode(key.key_id + sig).decode()}\n")
    return body + "\n" + "".join(lines)


def _split(note: str) -> tuple[str, str]:
    """(body, signature lines) of a signed note; the body keeps its final newline."""
    body, sep, sigs = note.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signature lines")
    return body + "\n", sigs


def open_note(note: str, keyring: Keyring) -> tuple[str, list[VerifierKey]]:
    """Verify a signed note against ``keyring``; return its body and the keys that signed it.

    Fails unless at least one known key signed it. A signature line that names a known key but
    does not verify fails the whole note: it is a forgery or a corruption, never ignorable.
    """
    body, sigs = _split(note)
    verified: list[VerifierKey] = []
    unknown: list[str] = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"malformed signature line in note: {line[:60]!r}")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature by {name!r} is not base64") from exc
        if len(blob) < 5:
            raise NoteError(f"signature by {name!r} is too short")
        key = keyring.find(name, blob[:4])
        if key is None:
            unknown.append(f"{name}+{blob[:4].hex()}")
            continue
        if not key.verify(body.encode(), blob[4:]):
            raise NoteError(f"signature by key {key.name}+{key.key_id.hex()} does not verify")
        verified.append(key)
    if not verified:
        who = ", ".join(unknown) or "nobody"
        raise NoteError(f"note is not signed by any trusted key (signed by {who})")
    return body, verified


def open_checkpoint(note: str, keyring: Keyring, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body; optionally insist on its origin."""
    body, _ = open_note(note, keyring)
    checkpoint = Checkpoint.parse(body)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def note_body(note: str) -> str:
    """The body of a signed note, WITHOUT checking its signatures (to learn which keys a note
    such as a key rotation statement should be verified against, before verifying it)."""
    return _split(note)[0]


def note_signers(note: str) -> list[tuple[str, bytes]]:
    """(key name, key id) of each signature line, unverified: which keys a note claims to be
    signed by, so a client can tell it needs a key it has not pinned yet."""
    found = []
    for line in _split(note)[1][:-1].split("\n"):
        name, _, b64 = line.removeprefix(_SIG_PREFIX).partition(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error:
            continue
        if len(blob) >= 5:
            found.append((name, blob[:4]))
    return found
