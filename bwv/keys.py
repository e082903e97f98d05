"""Ed25519 signing keys, key ids, the keyring and rotation.

Key names, ids and the verifier-key text form follow C2SP signed-note
(https://c2sp.org/signed-note): key id = first 4 bytes of
``SHA-256(name || 0x0A || 0x01 || public key)``; verifier key = ``name+hex(key id)+base64(0x01 ||
public key)``. The private key lives in one PEM file of mode 0600 and is never printed; the
keyring file lists every public key ever used, so whatever an old key signed still verifies.
Rotation, which also writes a signed statement, is :func:`bwv.custody.rotation.rotate_keys`.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bwv.base.errors import BwvError, KeyError_
from bwv.base.files import write_atomic

ED25519_ALG = b"\x01"


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise KeyError_(f"key name {name!r} must be non-empty, without '+' or whitespace")


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_ALG + public).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """A public key with the name and id it signs under."""

    name: str
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __str__(self) -> str:
        blob = base64.b64encode(ED25519_ALG + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise KeyError_(f"not a verifier key (name+keyid+base64): {text.strip()[:80]!r}")
        name, id_hex, blob_b64 = parts
        try:
            blob = base64.b64decode(blob_b64, validate=True)
            claimed_id = bytes.fromhex(id_hex)
        except (binascii.Error, ValueError) as exc:
            raise KeyError_(f"verifier key {name!r} is not valid hex/base64") from exc
        if len(blob) != 33 or blob[:1] != ED25519_ALG:
            raise KeyError_(f"verifier key {name!r} is not an Ed25519 key")
        key = cls(name, blob[1:])
        if key.key_id != claimed_id:
            raise KeyError_(
                f"verifier key {name!r} has key id {id_hex}, expected {key.key_id.hex()}"
            )
        return key


class SigningKey:
    """The private half; signs notes, checkpoints and receipts."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private = private
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = VerifierKey(name, public)

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey({self.verifier})"


class Keyring:
    """Trusted verifier keys, looked up by (name, key id)."""

    def __init__(self, keys: list[VerifierKey]) -> None:
        self.keys = list(keys)

    def find(self, name: str, kid: bytes) -> VerifierKey | None:
        for key in self.keys:
            if key.name == name and key.key_id == kid:
                return key
        return None

    def __iter__(self) -> Iterator[VerifierKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        return cls([VerifierKey.parse(line) for line in text.splitlines() if line.strip()])


def _write_private(path: Path, private: Ed25519PrivateKey) -> None:
    """Write the key to a fresh 0600 file, fsync it, then move it into place atomically."""
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, pem, mode=0o600)


def save_signing_key(path: Path, key: SigningKey) -> None:
    """Put ``key``'s private half in place at ``path`` (0600, all or nothing)."""
    _write_private(path, key._private)


def _write_text_atomic(path: Path, text: str) -> None:
    """The keyring and its like: public keys, but 0600 like everything in the keys folder."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, text, mode=0o600)


def write_keyring(path: Path, keys: Iterable[VerifierKey]) -> None:
    """The keyring file, one verifier key a line, replaced all or nothing."""
    _write_text_atomic(path, "".join(f"{key}\n" for key in keys))


LOCK_NAME = "keys.lock"


@contextmanager
def keys_locked(folder: Path) -> Iterator[None]:
    """An exclusive flock(2) on the keys folder's lock file, held while keys change: two
    rotations at once would each extend the keyring and the statements they read, and one's
    entries would be lost."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_private_key(
    path: Path, what: str, error: type[BwvError]
) -> tuple[bytes, Ed25519PrivateKey]:
    """An Ed25519 private key file (PEM) and its key; ``error`` (saying ``what`` it is) for a
    file others may read, or one that is not such a key. OSError as it comes."""
    mode = path.stat().st_mode
    data = path.read_bytes()
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise error(f"{what} {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        raise error(f"{what} {path} is not a PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise error(f"{what} {path} is not an Ed25519 key")
    return data, private


def load_signing_key(path: Path, name: str, keyring: Keyring | None = None) -> SigningKey:
    """Load the private key; refuse a missing, unreadable or group/world-readable file.

    The key signs under the name its public key has in ``keyring`` (the name it was created
    with), so a later change of the configured name cannot silently change its key id.
    """
    try:
        _, private = read_private_key(path, "signing key", KeyError_)
    except FileNotFoundError:
        raise KeyError_(f"no signing key at {path}: run `bwv keys init` first") from None
    except OSError as exc:
        raise KeyError_(f"cannot read signing key {path}: {exc.strerror}") from None
    key = SigningKey(name, private)
    for known in keyring or []:
        if known.public == key.verifier.public:
            return SigningKey(known.name, private)
    return key


def load_keyring(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError_(f"no keyring at {path}: run `bwv keys init` first") from None
    keyring = Keyring.parse(text)
    if not len(keyring):
        raise KeyError_(f"keyring {path} holds no keys")
    return keyring


def init_keys(key_path: Path, keyring_path: Path, name: str) -> SigningKey:
    """Make the first signing key; refuse to replace one that exists."""
    _check_name(name)
    with keys_locked(key_path.parent):
        if key_path.exists():
            raise KeyError_(f"a signing key already exists at {key_path}; use `bwv keys rotate`")
        key = SigningKey(name, Ed25519PrivateKey.generate())
        existing = keyring_path.read_text(encoding="utf-8") if keyring_path.exists() else ""
        _write_text_atomic(keyring_path, existing + f"{key.verifier}\n")
        save_signing_key(key_path, key)
    return key
