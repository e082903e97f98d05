"""The reason a person gives for an access, as CJIS-style audit asks for one."""

from __future__ import annotations

from bwv.base.errors import BwvError

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
    if not all(c.isprintable() or c == "\t" for c in text):  # controls, DEL, C1, U+2028
        raise ReasonError("the reason must be one line of text (no control characters)")
    return text


def shown_reason(reason: str | None) -> str | None:
    """What a leaf keeps of text a caller sent that may itself be the problem (a 100 KB reason,
    a 60 KB evidence id): the ledger is permanent, so nobody may grow it at will."""
    if reason is None or len(reason) <= _SHOWN:
        return reason
    return f"{reason[:_SHOWN]}... ({len(reason)} characters)"
