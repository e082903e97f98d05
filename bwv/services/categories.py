"""Categories: what a clip is, and so how long it is kept.

A clip is kept for its category's period, counted from when it was recorded (when it was ingested
if the camera did not say, or gave a time it cannot have been, see :func:`retention_start`):
``retain_until = start + days``. Only an evidence officer may move a clip's date earlier;
changing a category's period never does. A lock that may be lengthened is changed in the store
*before* the records say so, so the records never promise more keeping than the storage gives;
the store is called outside the ledger transaction (the append lock), and a transaction that
finds the records moved since (a copy recorded, the period lengthened) starts again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update

from bwv.access.roles import Principal, Role
from bwv.access.text import hidden_character
from bwv.base.clock import as_utc
from bwv.base.errors import BwvError
from bwv.custody.ledger import AppendedLeaf
from bwv.records import clips as records
from bwv.records.tables import Category, table_of
from bwv.services.clips import (
    CaseRefInvalid,
    Clip,
    Moved,
    PolicyError,
    PolicyForbidden,
    extend_locks,
    live_clip,
    settled,
    store_faults,
    time_of,
)
from bwv.services.context import Context
from bwv.store.base import ObjectStore

CATEGORY = table_of(Category)
UNCATEGORISED = "uncategorised"
MAX_DAYS = 36525  # a century
MAX_CASE_REF = 100
# A camera's clock is believed when it puts the recording at most this far before ingest (a
# camera may sit a long while before it is docked) or after it (clock skew); outside that the
# clock was reset or wrong (e.g. 2000-01-01, 2099), and retention counts from ingest instead.
RECORDED_BEFORE_INGEST = timedelta(days=366)
RECORDED_AFTER_INGEST = timedelta(days=1)
_CATEGORY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


def categories(engine: Engine) -> dict[str, int]:
    """Every category and its retention period in days, by name."""
    with engine.connect() as conn:
        return _categories(conn)


def _categories(conn: Connection) -> dict[str, int]:
    query = select(CATEGORY.c.name, CATEGORY.c.retention_days).order_by(CATEGORY.c.name)
    return {name: days for name, days in conn.execute(query)}


def retain_until_for(start: datetime, days: int) -> datetime:
    """When a clip whose period starts at ``start`` may be deleted, kept ``days`` days."""
    return as_utc(start) + timedelta(days=days)


def retention_start(recorded_at: datetime | None, ingested_at: datetime) -> datetime:
    """When a clip's retention period starts: when the camera says it was recorded, if that lies
    within a year before ingest to a day after; otherwise when it was ingested. The camera's
    clock is not to be trusted blindly: a reset one (2000) would make a clip due on arrival, a
    future one (2099) would lock it in the store for good."""
    ingested = as_utc(ingested_at)
    if recorded_at is not None:
        recorded = as_utc(recorded_at)
        if ingested - RECORDED_BEFORE_INGEST <= recorded <= ingested + RECORDED_AFTER_INGEST:
            return recorded
    return ingested


def start_of(clip: Clip) -> datetime:
    """When the clip's retention period started."""
    return retention_start(clip.recorded_at, clip.ingested_at)


def _days(conn: Connection, category: str) -> int:
    known = _categories(conn)
    if category not in known:
        choices = ", ".join(known) or "none defined"
        raise PolicyError(f"unknown category {category[:40]!r}: choose one of {choices}")
    return known[category]


def set_category(ctx: Context, store: ObjectStore, name: str, days: int, who: Principal) -> int:
    """Add category ``name`` kept ``days`` days, or change its period. The clips in it (not
    deleted) whose recomputed ``retain_until`` is later get it, their locks lengthened first.
    Shortening a period never moves a clip's date earlier: the clips already in the category keep
    the date they have (the ``category.set`` leaf counts them as ``clips_kept_longer``), and only
    clips categorised from now on get the shorter period. Returns how many clips' dates changed."""
    if not _CATEGORY_NAME.fullmatch(name):
        raise PolicyError(
            f"category name {name[:40]!r} must be 1-40 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if not 1 <= days <= MAX_DAYS:
        raise PolicyError(f"a retention period is 1 to {MAX_DAYS} days, not {days}")
    extended: dict[int | None, tuple[datetime, list[str]]] = {}
    return settled(None, lambda: _set_category(ctx, store, name, days, who, extended))


def _set_category(
    ctx: Context,
    store: ObjectStore,
    name: str,
    days: int,
    who: Principal,
    extended: dict[int | None, tuple[datetime, list[str]]],
) -> int:
    """One try of :func:`set_category`: the locks lengthened outside the ledger's transaction
    (``extended``: to what date, with which copies, kept over tries), then the records, unless a
    clip's objects turn out to need a longer lock than they were given (:class:`Moved`)."""
    with ctx.engine.connect() as conn:
        growing = [
            (r.id, r.sha256, records.export_shas(conn, _id(r)), new)
            for r, new in _recomputed(conn, name, days)
            if r.retain_until is None or new > as_utc(r.retain_until)
        ]
    for i, sha256, shas, new in growing:
        done = extended.get(i)
        if done is None or new > done[0] or set(shas) - set(done[1]):
            extended[i] = (extend_locks(store, sha256, shas, new), list(shas))
    with ctx.ledger.transaction() as tx:
        previous = _categories(tx.conn).get(name)
        changed = kept_longer = 0
        for r, new in _recomputed(tx.conn, name, days):
            current = None if r.retain_until is None else as_utc(r.retain_until)
            if current is not None and new <= current:
                # An administrator cannot shorten evidence's retention wholesale: a clip someone
                # relied on keeping stays kept until the date it was given.
                if new < current:
                    kept_longer += 1
                continue
            done = extended.get(r.id)
            shas = records.export_shas(tx.conn, _id(r))
            if done is None or new > done[0] or set(shas) - set(done[1]):
                raise Moved  # came into the category, or a copy was recorded, meanwhile
            records.set_retain_until(tx.conn, _id(r), new)
            changed += 1
        if previous is None:
            tx.conn.execute(insert(CATEGORY).values(name=name, retention_days=days))
        else:
            tx.conn.execute(
                update(CATEGORY).where(CATEGORY.c.name == name).values(retention_days=days)
            )
        tx.append(
            who.event(
                "category.set",
                details={
                    "category": name,
                    "retention_days": days,
                    "previous_days": previous,
                    "clips_changed": changed,
                    "clips_kept_longer": kept_longer,
                },
            )
        )
    return changed


def _id(clip: Clip) -> int:
    assert clip.id is not None  # a row read from the records has its id
    return clip.id


def _recomputed(conn: Connection, category: str, days: int) -> list[tuple[Clip, datetime]]:
    return [
        (r, retain_until_for(start_of(r), days)) for r in records.live_in_category(conn, category)
    ]


def categorise(
    ctx: Context,
    store: ObjectStore,
    evidence_id: str,
    category: str,
    case_ref: str | None,
    who: Principal,
    reason: str | None,
    *,
    keep_case: bool = False,
) -> AppendedLeaf:
    """Put a clip in ``category`` (and case ``case_ref``; None for none; ``keep_case`` leaves
    the clip's case as it is): its retention is recomputed, its objects' locks lengthened where
    the new date is later, and a ``clip.categorised`` leaf is committed with the change. Only an
    evidence officer may move the date earlier, or change or remove a case reference once one
    is set (:class:`PolicyForbidden` for anyone else): an officer could otherwise end the
    keeping of their own evidential footage by calling it non-evidential, or hide it from the
    case. A case reference with control or bidirectional characters is refused (422). The
    store's faults are :func:`~bwv.services.clips.store_faults`'."""
    case_ref = None if keep_case else _check_case(case_ref)
    args = (ctx, store, evidence_id, category, case_ref, who, reason, keep_case)
    with store_faults(evidence_id), ctx.clip_lock(evidence_id):
        return settled(evidence_id, lambda: _categorise(*args))


def _categorise(
    ctx: Context,
    store: ObjectStore,
    evidence_id: str,
    category: str,
    case_ref: str | None,
    who: Principal,
    reason: str | None,
    keep_case: bool,
) -> AppendedLeaf:
    with ctx.engine.connect() as conn:
        clip = live_clip(conn, evidence_id)
        until = retain_until_for(start_of(clip), _days(conn, category))
        _may_set(who, clip, until)  # refuse early, before touching the store
        _may_change_case(who, clip, clip.case_ref if keep_case else case_ref)
        shas = records.export_shas(conn, _id(clip))
    _guarded(ctx, evidence_id, lambda: extend_locks(store, clip.sha256, shas, until))
    with ctx.ledger.transaction() as tx:
        clip = live_clip(tx.conn, evidence_id)
        new = retain_until_for(start_of(clip), _days(tx.conn, category))
        _may_set(who, clip, new)
        if keep_case:
            case_ref = clip.case_ref
        _may_change_case(who, clip, case_ref)  # again: an evidence officer may have set one
        if new > until or set(records.export_shas(tx.conn, _id(clip))) - set(shas):
            raise Moved  # the period grew, or a copy was recorded, meanwhile
        records.set_policy(
            tx.conn, _id(clip), category=category, case_ref=case_ref, retain_until=new
        )
        return tx.append(
            who.event(
                "clip.categorised",
                target=evidence_id,
                sha256=clip.sha256,
                reason=reason,
                details={
                    "from": {
                        "category": clip.category,
                        "case": clip.case_ref,
                        "retain_until": time_of(clip.retain_until),
                    },
                    "to": {"category": category, "case": case_ref, "retain_until": time_of(new)},
                },
            )
        )


def _may_set(who: Principal, clip: Clip, until: datetime) -> None:
    """Refuse anyone but an evidence officer a date earlier than the clip has now."""
    current = None if clip.retain_until is None else as_utc(clip.retain_until)
    if current is not None and until < current and who.role != Role.EVIDENCE_OFFICER:
        raise PolicyForbidden(
            f"only an evidence officer may shorten a clip's retention "
            f"({current:%Y-%m-%d} → {until:%Y-%m-%d})"
        )


def _guarded(ctx: Context, evidence_id: str, change: Callable[[], object]) -> None:
    """Run a store change; if it fails because retention took the clip meanwhile, say so."""
    try:
        change()
    except BwvError:
        with ctx.engine.connect() as conn:
            live_clip(conn, evidence_id)
        raise


def _check_case(case_ref: str | None) -> str | None:
    text = (case_ref or "").strip()
    if not text:
        return None
    if len(text) > MAX_CASE_REF:
        raise CaseRefInvalid(f"a case reference is at most {MAX_CASE_REF} characters")
    if hidden := hidden_character(text):
        raise CaseRefInvalid(
            f"a case reference is visible text: {hidden} (a control, bidirectional or other "
            "invisible character) is not allowed"
        )
    return text


def _may_change_case(who: Principal, clip: Clip, case_ref: str | None) -> None:
    """Once a clip has a case reference, only an evidence officer may change or remove it: an
    officer could otherwise take their own clip out of a case's search."""
    if who.role != Role.EVIDENCE_OFFICER and clip.case_ref not in (None, case_ref):
        raise PolicyForbidden(
            f"only an evidence officer may change or remove the case reference of "
            f"{clip.evidence_id} (case {clip.case_ref!r}); categorise with that case to keep it"
        )
