"""The service's verifier keys and the chain of rotation statements between them, as anyone
pinning a key follows it (C2SP signed notes; docs/AUDIT.md)."""

from __future__ import annotations

from dataclasses import dataclass

from bwv.base.errors import BwvError, Unavailable
from bwv.custody.rotation import load_statements, rotations_path
from bwv.services.context import Context


@dataclass(frozen=True)
class VerifierKeys:
    origin: str  # the log's origin, the name every key signs under
    current: str  # the verifier key signing now
    keys: list[str]  # every verifier key ever used, oldest first
    rotations: list[str]  # the rotation statements, oldest first


def verifier_keys(ctx: Context) -> VerifierKeys:
    """The keys and statements; :class:`Unavailable` when they cannot be read (503)."""
    assert ctx.settings.keyring_path is not None
    try:
        statements = load_statements(rotations_path(ctx.settings.keyring_path))
        current, keyring = ctx.signer, ctx.keyring
    except BwvError as exc:
        raise Unavailable(f"the service's keys are unreadable: {exc.diagnosis}") from None
    return VerifierKeys(
        ctx.settings.ledger_origin,
        str(current.verifier),
        [str(k) for k in keyring],
        statements,
    )
