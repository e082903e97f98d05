"""Ledger leaves: one event each, encoded as RFC 8785 canonical JSON.

The leaf bytes are what RFC 9162 §2.1.1 hashes: ``leaf_hash = SHA-256(0x00 || leaf)``. Canonical
JSON makes the bytes reproducible by anyone from the same fields, in any language.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import rfc8785

from bwv.base.errors import BwvError

LEAF_VERSION = 1
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def new_event_id() -> str:
    """A fresh event id: 128 random bits, as a UUID."""
    return str(uuid.uuid4())


class Outcome(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``: one spelling per instant."""
    if when.tzinfo is None:
        raise ValueError("leaf times must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Event:
    """What happened, before the ledger gives it a sequence number and a time.

    ``target`` is the evidence id the event concerns (None for events about the system itself);
    ``sha256`` is the hex SHA-256 of the object involved, where there is one.

    ``id`` names this event for the ledger's writers (made here when the caller gives none): an
    append of an event whose id is already in the ledger returns the leaf it has, so an append
    retried after a lost COMMIT or a failover is not a second leaf. It is kept beside the leaf
    (``ledger_leaf.event_id``), **not in the leaf body**: it says nothing about what happened,
    only which write delivered it, and it means something only to the server that made it (an
    auditor cannot tell a retry from a second event by an id the server chose either: one leaf
    per event is the writer's promise, kept by a unique column). Left out, the leaf format of
    docs/AUDIT.md, every verifier and every leaf written before ids existed stay as they are.
    """

    actor: str
    role: str
    action: str
    target: str | None = None
    sha256: str | None = None
    outcome: Outcome = Outcome.OK
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_event_id)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _EVENT_ID.fullmatch(self.id):
            raise BwvError(
                f"an event id is 1-100 letters, digits, '.', '_', ':' or '-', not {self.id!r:.60}"
            )
        for name in ("actor", "role", "action"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise BwvError(f"a ledger event needs a non-empty {name}")
        if self.sha256 is not None and not _SHA256_HEX.fullmatch(self.sha256):
            raise BwvError(f"not a lowercase hex SHA-256: {self.sha256!r}")
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        try:
            rfc8785.dumps(self.details)
        except (rfc8785.CanonicalizationError, TypeError) as exc:
            raise BwvError(f"event details cannot be put in canonical JSON: {exc}") from exc

    def leaf(self, sequence: int, when: datetime) -> bytes:
        """The leaf bytes for this event at ``sequence``."""
        return rfc8785.dumps(
            {
                "v": LEAF_VERSION,
                "sequence": sequence,
                "time": format_time(when),
                "actor": self.actor,
                "role": self.role,
                "action": self.action,
                "target": self.target,
                "sha256": self.sha256,
                "outcome": str(self.outcome),
                "reason": self.reason,
                "details": self.details,
            }
        )


def parse_leaf(leaf: bytes) -> dict[str, Any]:
    """Decode leaf bytes, insisting they are the canonical form of what they hold."""
    try:
        fields = json.loads(leaf)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BwvError(f"leaf is not JSON: {exc}") from exc
    try:
        canonical = rfc8785.dumps(fields)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise BwvError(f"leaf cannot be canonical JSON: {exc}") from None
    if not isinstance(fields, dict) or canonical != leaf:
        raise BwvError("leaf is not RFC 8785 canonical JSON")
    return fields


def sequence_marker(sequence: int) -> bytes:
    """The bytes a canonical leaf at ``sequence`` must contain (keys are sorted, no spaces)."""
    return b'"sequence":%d,' % sequence
