"""The access policy: which roles may ask for what, over whose clips, and whether a reason is
required. The service enforces it in one place (``bwv.ingest.deps.authorise``); this table is
also what README's role table and the role-matrix test are read against."""

from __future__ import annotations

from dataclasses import dataclass

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
}


def rule_for(action: str) -> Rule:
    return POLICY[action]
