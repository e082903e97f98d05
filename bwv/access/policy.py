"""The access policy: which roles may ask for what, over whose clips, and whether a reason is
required. The service enforces it in one place (``bwv.api.deps.authorise``); this table is
also what README's role table and the role-matrix test are read against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bwv.access.roles import Role

_O, _EO, _AU, _AD, _D = (
    Role.OFFICER,
    Role.EVIDENCE_OFFICER,
    Role.AUDITOR,
    Role.ADMIN,
    Role.DOCK,
)
_PEOPLE = frozenset({_O, _EO, _AU, _AD})


@dataclass(frozen=True)
class Rule:
    """``roles`` may ask; of those, ``own_clips_only`` only about clips recorded on cameras
    issued to them; ``reason`` says whether a stated reason is required. ``leaf`` is the
    action recorded when the request is carried out (None: the request reads nothing about
    evidence, e.g. "who am I")."""

    roles: frozenset[Role]
    leaf: str | None
    own_clips_only: frozenset[Role] = frozenset()
    reason: bool = False


POLICY: dict[str, Rule] = {
    "me": Rule(_PEOPLE | {_D}, None),
    "categories.list": Rule(_PEOPLE, None),
    "clips.search": Rule(frozenset({_O, _EO, _AU}), "clips.searched", frozenset({_O})),
    "clip.view": Rule(frozenset({_O, _EO, _AU}), "clip.viewed", frozenset({_O})),
    "clip.custody": Rule(frozenset({_O, _EO, _AU}), "clip.custody.read", frozenset({_O})),
    "clip.download": Rule(frozenset({_O, _EO}), "clip.downloaded", frozenset({_O}), True),
    "clip.categorise": Rule(frozenset({_O, _EO}), "clip.categorised", frozenset({_O}), True),
    "hold.place": Rule(frozenset({_EO}), "hold.placed", reason=True),
    "hold.release": Rule(frozenset({_EO}), "hold.released", reason=True),
    "redact.plan": Rule(frozenset({_EO}), "redact.planned", reason=True),
    "export.create": Rule(frozenset({_EO}), "export.created", reason=True),
    "exports.list": Rule(frozenset({_EO, _AU}), "exports.listed"),
    "export.download": Rule(frozenset({_EO}), "export.downloaded", reason=True),
    "ledger.checkpoint": Rule(_PEOPLE, None),
    "ledger.read": Rule(frozenset({_AU}), "ledger.read"),
    # Prometheus metrics: no person's or dock's token, only the scrape credential
    # (BWV_METRICS_TOKEN_FILE, bwv.api.deps.scraper); any other caller is refused, recorded.
    "metrics.read": Rule(frozenset(), None),
}


def rule_for(action: str) -> Rule:
    return POLICY[action]


# --- a clip's custody history: who sees which leaves ---------------------------------------------

WHOLE_CUSTODY = frozenset({_EO, _AU})
"""Roles that see every leaf naming a clip: who looked at it, when, and why."""

CLIP_LIFECYCLE = frozenset(
    {
        "clip.ingested",
        "clip.duplicate",
        "clip.deleted",
        "store.verified",
        "store.damaged",
    }
)
"""Leaves that say what became of a clip (stored, sent again, deleted by retention, found
intact or damaged by the scrub), written by a dock or the service itself: they carry no
person's reason, so everyone who may read the clip's custody sees them. What people did to
the clip (a hold, a category, a disclosure copy) names who and why, and is not among them."""

LIFECYCLE_ROLES = frozenset({"system", str(_D)})
"""Who writes lifecycle leaves: the service (retention, the fixity scrub) and docks."""


def custody_shown(role: str, name: str, leaf: dict[str, Any]) -> bool:
    """Whether a caller (``role``, ``name``) who may read a clip's custody sees this leaf of it.

    Evidence officers and auditors see all of it. Anyone else (an officer, about their own
    clip) sees the lifecycle leaves a dock or the service wrote and their own requests, not
    what other people did or asked or the reasons they gave (a Professional Standards hold or
    download names its complaint). Leaves are shown whole or not at all: each carries its own
    RFC 9162 inclusion proof (section 2.1.3), which holds for any subset of them."""
    if role in WHOLE_CUSTODY:
        return True
    action = str(leaf.get("action") or "")
    if leaf.get("role") in LIFECYCLE_ROLES and (
        action in CLIP_LIFECYCLE or action.startswith("store.")
    ):
        return True
    return leaf.get("actor") == name and leaf.get("role") == role
