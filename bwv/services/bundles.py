"""Issuing a custody bundle: a clip's leaves, each with its RFC 9162 inclusion proof (§2.1.3)
against a fresh signed checkpoint, and the keys to check them (docs/AUDIT.md).

The issue is recorded first, so the bundle proves its own issue too.
"""

from __future__ import annotations

from typing import Any

from bwv.access import custody_shown
from bwv.access.roles import Principal
from bwv.base.errors import NotFound
from bwv.custody.bundle import make_bundle
from bwv.custody.leaf import parse_leaf
from bwv.services.context import Context

LOCAL_ACTION = "audit.bundle"


def issue_bundle(
    ctx: Context,
    evidence_id: str,
    *,
    who: Principal | None = None,
    action: str = LOCAL_ACTION,
    sha256: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Record the bundle's issue as an ``action`` leaf naming ``evidence_id``, then make the
    bundle, holding the leaves ``who`` may see of it (``custody_shown``).

    With no ``who``, it is the local operator (``settings.actor``) acting as an auditor, on the
    server host: every leaf. :class:`NotFound` if nothing names the evidence id."""
    if not ctx.ledger.leaves_for(evidence_id):
        raise NotFound(f"no custody record for evidence id {evidence_id!r}")
    if who is None:
        ctx.record("auditor", action, target=evidence_id, sha256=sha256, reason=reason)
    else:
        ctx.ledger.append(who.event(action, target=evidence_id, sha256=sha256, reason=reason))
    bundle = make_bundle(ctx.ledger, evidence_id, ctx.keyring, ctx.rotations)
    if who is not None:
        bundle["leaves"] = [
            entry
            for entry in bundle["leaves"]
            if custody_shown(who.role, who.name, parse_leaf(entry["leaf"].encode("utf-8")))
        ]
    return bundle
