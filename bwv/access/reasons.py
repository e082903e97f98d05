"""The reason a person gives for an access, as CJIS-style audit asks for one."""

from __future__ import annotations

from bwv.errors import BwvError

MAX_REASON = 2000
_SHOWN = 200


class ReasonError(BwvError):
    """A stated reason is missing, empty or unreasonable."""


def check_reason(reason: str | None, *, required: bool) -> str | None:
    """The reason, stripped; ``None`` when none was given and none is needed."""
    text = (reason or "").strip()
    if not text:
        if required:
            raise ReasonError("a reason is required (e.g. --reason 'case 1234')")
        return None
    if len(text) > MAX_REASON:
        raise ReasonError(f"the reason is {len(text)} characters; at most {MAX_REASON}")
    if any(ord(c) < 32 and c not in "\t" for c in text):
        raise ReasonError("the reason must be one line of text (no control characters)")
    return text


def shown_reason(reason: str | None) -> str | None:
    """What a refusal leaf keeps of a reason that may itself be the problem (e.g. 100 KB)."""
    if reason is None or len(reason) <= _SHOWN:
        return reason
    return f"{reason[:_SHOWN]}... ({len(reason)} characters)"
