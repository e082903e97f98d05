"""A witness: remembers the last checkpoint it verified and accepts a new one only if the log
it describes is an extension of the old (RFC 9162 §2.1.4 consistency), so a rollback, a fork or
a truncation of the log cannot go unnoticed.

State is a small JSON file the witness owns: the trusted verifier keys and the last accepted
signed checkpoint. It is rewritten atomically, and only on acceptance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bwv.base.errors import BwvError, ConfigError, WitnessRefusal
from bwv.base.files import write_atomic
from bwv.custody import merkle
from bwv.custody.note import Checkpoint, open_checkpoint
from bwv.custody.rotation import follow
from bwv.keys import Keyring, VerifierKey

STATE_FORMAT = "bwv.witness-state/1"


@dataclass(frozen=True)
class WitnessState:
    keyring: Keyring
    checkpoint_note: str | None

    @classmethod
    def load(cls, path: Path) -> WitnessState | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != STATE_FORMAT:
                raise ValueError("wrong format")
            keyring = Keyring([VerifierKey.parse(k) for k in data["verifier_keys"]])
            note = data.get("checkpoint")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"witness state {path} is not a {STATE_FORMAT} file") from None
        return cls(keyring, note)

    def save(self, path: Path) -> None:
        data = {
            "format": STATE_FORMAT,
            "verifier_keys": [str(k) for k in self.keyring],
            "checkpoint": self.checkpoint_note,
        }
        write_atomic(path, json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class WitnessResult:
    previous: Checkpoint | None
    accepted: Checkpoint


def witness(
    state_path: Path,
    note: str,
    proof: list[bytes],
    extra_keys: list[VerifierKey] | None = None,
    rotations: list[str] | None = None,
) -> WitnessResult:
    """Verify ``note`` against the witness's keys and last checkpoint; record it if it extends.

    ``extra_keys`` are added to the witness's trusted keys (on first use they are the only ones).
    ``rotations`` are the log's key rotation statements: the witness follows them from the keys
    it trusts (each link signed by a trusted key, :func:`bwv.custody.rotation.follow`) and keeps
    what they lead to. Raises :class:`WitnessRefusal` and leaves the state untouched when the
    checkpoint (or a rotation statement) is refused.
    """
    state = WitnessState.load(state_path)
    keys = list(state.keyring) if state else []
    keys += [k for k in extra_keys or [] if k not in keys]
    if not keys:
        raise ConfigError("the witness trusts no key yet: give the log's verifier key with --key")
    keyring = Keyring(keys)
    if rotations:
        try:
            keyring = follow(keyring, rotations)
        except BwvError as exc:
            raise WitnessRefusal(f"refused: {exc.diagnosis}") from None

    previous = None
    if state and state.checkpoint_note:
        previous = open_checkpoint(state.checkpoint_note, keyring)
    try:
        new = open_checkpoint(note, keyring, previous.origin if previous else None)
    except BwvError as exc:
        raise WitnessRefusal(f"refused: {exc.diagnosis}") from None

    if previous is not None:
        if new.size < previous.size:
            raise WitnessRefusal(
                f"refused: rollback or truncation: the log now claims {new.size} leaves, but "
                f"this witness already verified {previous.size}"
            )
        if new.size == previous.size and new.root != previous.root:
            raise WitnessRefusal(
                f"refused: fork: two different signed roots for tree size {new.size}"
            )
        if previous.size and new.size > previous.size:
            try:
                merkle.verify_consistency(previous.size, new.size, proof, previous.root, new.root)
            except BwvError as exc:
                raise WitnessRefusal(
                    f"refused: the log of size {new.size} is not an extension of the one of size "
                    f"{previous.size} this witness verified (fork or rewritten history): "
                    f"{exc.diagnosis}"
                ) from None
    WitnessState(keyring, note).save(state_path)
    return WitnessResult(previous, new)
