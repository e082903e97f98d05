"""The five roles, and the authenticated caller of a request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bwv.custody.leaf import Event, Outcome


class Role(StrEnum):
    OFFICER = "officer"  # sees their own clips
    EVIDENCE_OFFICER = "evidence-officer"  # searches all clips, views, holds, exports
    AUDITOR = "auditor"  # reads the ledger and clip records; never footage
    ADMIN = "admin"  # users, docks, devices, keys, categories; never evidence
    DOCK = "dock"  # uploads only


USER_ROLES = (Role.OFFICER, Role.EVIDENCE_OFFICER, Role.AUDITOR, Role.ADMIN)


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user or a dock, by name, with the address the request came from."""

    name: str
    role: str  # a Role, or "unauthenticated" for a refusal before anyone was identified
    client: str | None = None
    token_expires_at: datetime | None = None  # users' tokens expire; docks' are revoked

    def event(
        self,
        action: str,
        *,
        target: str | None = None,
        sha256: str | None = None,
        outcome: Outcome = Outcome.OK,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Event:
        """A ledger event done by this caller (invariant 3: who, role, where from)."""
        return Event(
            actor=self.name,
            role=str(self.role),
            action=action,
            target=target,
            sha256=sha256,
            outcome=outcome,
            reason=reason,
            details={"client": self.client, **(details or {})},
        )
