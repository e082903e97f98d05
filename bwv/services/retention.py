"""Categories, legal holds and retention: the one place they change clips.

A clip is kept for its category's period, counted from when it was recorded (when it was ingested
if the camera did not say, or gave a time it cannot have been, see :func:`retention_start`):
``retain_until = start + days``. A held clip is kept whatever its date. Only an evidence officer may
move a clip's date earlier; changing a category's period never does.
Retention expiry is the only way evidence is ever deleted (invariant 1 of ARCHITECTURE.md), and
each deletion leaves a ``clip.deleted`` tombstone leaf holding the original's SHA-256.

The store of record is kept in step with the records: a lock that may be lengthened or a legal
hold that may be placed is changed in the store *before* the records say so, and a legal hold is
removed only *after* they do, so the records never promise more protection than the storage
gives. Every write here runs inside a ledger transaction, which serialises it with every other
write to the records.

A retention run deletes each due clip in three steps, so that it can be repeated or killed at any
point: (1) claim the clip (``deleted_at`` set, in the records; a hold can no longer be placed, a
copy no longer be recorded); (2) ask the store whether every object of the clip may go now, then
expire its disclosure copies' objects and its original last (already gone is fine); (3) append
the tombstone, unless one exists. A run first finishes clips claimed earlier without a
tombstone. If the store refuses to delete (its lock has not passed), nothing is deleted, the claim
is undone and a ``retention.failed`` leaf records why.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, exists, false, insert, select, true, update

from bwv.access.roles import Principal, Role
from bwv.access.text import hidden_character
from bwv.base.clock import as_utc
from bwv.base.errors import BwvError
from bwv.custody.leaf import Event, Outcome, format_time
from bwv.custody.ledger import AppendedLeaf
from bwv.records.tables import Category, Clip, Export, LedgerLeaf
from bwv.services.context import Context
from bwv.store.base import ObjectStore, StoreError

CLIP = Clip.__table__
EXPORT = Export.__table__
CATEGORY = Category.__table__
LEAF = LedgerLeaf.__table__

UNCATEGORISED = "uncategorised"
TOMBSTONE = "clip.deleted"
SYSTEM_ACTOR, SYSTEM_ROLE = "retention", "system"
MAX_DAYS = 36525  # a century
MAX_CASE_REF = 100
# A camera's clock is believed when it puts the recording at most this far before ingest (a
# camera may sit a long while before it is docked) or after it (clock skew); outside that the
# clock was reset or wrong (e.g. 2000-01-01, 2099), and retention counts from ingest instead.
RECORDED_BEFORE_INGEST = timedelta(days=366)
RECORDED_AFTER_INGEST = timedelta(days=1)
_CATEGORY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")


class PolicyError(BwvError):
    """A categorisation, hold or retention request the policy refuses; ``status`` is the HTTP
    status a route answers with."""

    status: int = 400


class ClipNotFound(PolicyError):
    status = 404


class ClipGone(PolicyError):
    """The clip was deleted by retention (or is being deleted): only its custody record is left."""

    status = 410


class PolicyConflict(PolicyError):
    """The clip is not in the state the request needs (already held; not held)."""

    status = 409


class PolicyForbidden(PolicyError):
    """The caller's role may not make this change (e.g. shorten a clip's retention)."""

    status = 403


# --- categories ------------------------------------------------------------------------------


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
    with ctx.engine.connect() as conn:
        growing = [
            (r.id, r.sha256, _export_shas(conn, r.id), new)
            for r, new in _recomputed(conn, name, days)
            if r.retain_until is None or new > as_utc(r.retain_until)
        ]
    extended = {i: _extend_locks(store, sha256, shas, new) for i, sha256, shas, new in growing}
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
            locked = extended.get(r.id) or current
            if locked is None or new > locked:  # the clip came into the category meanwhile
                _extend_locks(store, r.sha256, _export_shas(tx.conn, r.id), new)
            tx.conn.execute(update(CLIP).where(CLIP.c.id == r.id).values(retain_until=new))
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


def _recomputed(conn: Connection, category: str, days: int) -> list[tuple[Row[Any], datetime]]:
    rows = conn.execute(
        select(CLIP).where(CLIP.c.category == category, CLIP.c.deleted_at.is_(None))
    ).all()
    return [(r, retain_until_for(_start(r), days)) for r in rows]


# --- one clip --------------------------------------------------------------------------------


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
    case. A case reference with control or bidirectional characters is refused (422)."""
    case_ref = None if keep_case else _check_case(case_ref)
    with ctx.engine.connect() as conn:
        clip = _live_clip(conn, evidence_id)
        until = retain_until_for(_start(clip), _days(conn, category))
        _may_set(who, clip, until)  # refuse early, before touching the store
        _may_change_case(who, clip, clip.case_ref if keep_case else case_ref)
        shas = _export_shas(conn, clip.id)
    _guarded(ctx, evidence_id, lambda: _extend_locks(store, clip.sha256, shas, until))
    with ctx.ledger.transaction() as tx:
        clip = _live_clip(tx.conn, evidence_id)
        new = retain_until_for(_start(clip), _days(tx.conn, category))
        _may_set(who, clip, new)
        if keep_case:
            case_ref = clip.case_ref
        _may_change_case(who, clip, case_ref)  # again: an evidence officer may have set one
        now_shas = _export_shas(tx.conn, clip.id)
        if new > until:  # the category's period grew meanwhile
            _extend_locks(store, clip.sha256, now_shas, new)
        elif newer := [s for s in now_shas if s not in shas]:  # a copy was exported meanwhile
            _extend_locks(store, clip.sha256, newer, new, original_too=False)
        tx.conn.execute(
            update(CLIP)
            .where(CLIP.c.id == clip.id)
            .values(category=category, case_ref=case_ref, retain_until=new)
        )
        leaf = tx.append(
            who.event(
                "clip.categorised",
                target=evidence_id,
                sha256=clip.sha256,
                reason=reason,
                details={
                    "from": {
                        "category": clip.category,
                        "case": clip.case_ref,
                        "retain_until": _time(clip.retain_until),
                    },
                    "to": {"category": category, "case": case_ref, "retain_until": _time(new)},
                },
            )
        )
    return leaf


def _may_set(who: Principal, clip: Row[Any], until: datetime) -> None:
    """Refuse anyone but an evidence officer a date earlier than the clip has now."""
    current = None if clip.retain_until is None else as_utc(clip.retain_until)
    if current is not None and until < current and who.role != Role.EVIDENCE_OFFICER:
        raise PolicyForbidden(
            f"only an evidence officer may shorten a clip's retention "
            f"({current:%Y-%m-%d} → {until:%Y-%m-%d})"
        )


def place_hold(
    ctx: Context, store: ObjectStore, evidence_id: str, who: Principal, reason: str | None
) -> AppendedLeaf:
    """Hold a clip: it is kept past its date until released. The store's legal holds are placed
    first, inside the records' transaction, so a concurrent release cannot interleave."""
    with ctx.engine.connect() as conn:
        _unheld(_live_clip(conn, evidence_id))  # refuse early, before touching the store
    with ctx.ledger.transaction() as tx:
        clip = _unheld(_live_clip(tx.conn, evidence_id))
        objects = _objects(clip.sha256, _export_shas(tx.conn, clip.id))
        placed: list[tuple[str, str]] = []
        try:
            for kind, sha256 in objects:
                store.set_legal_hold(kind, sha256, True)
                placed.append((kind, sha256))
        except BwvError:
            for kind, sha256 in placed:  # the records say "not held": so should the store
                # if this fails too, the safe side: retention reports the clip until removed
                with contextlib.suppress(BwvError):
                    store.set_legal_hold(kind, sha256, False)
            raise
        tx.conn.execute(update(CLIP).where(CLIP.c.id == clip.id).values(held=True))
        leaf = tx.append(
            who.event(
                "hold.placed",
                target=evidence_id,
                sha256=clip.sha256,
                reason=reason,
                details=_policy_details(clip),
            )
        )
    return leaf


def release_hold(
    ctx: Context, store: ObjectStore, evidence_id: str, who: Principal, reason: str | None
) -> AppendedLeaf:
    """Release a clip's hold: it is again kept until its date. The store's legal holds are
    removed after the records commit, and only while the records still say "not held"."""
    with ctx.ledger.transaction() as tx:
        clip = _live_clip(tx.conn, evidence_id)
        if not clip.held:
            raise PolicyConflict(f"{evidence_id} is not held")
        tx.conn.execute(update(CLIP).where(CLIP.c.id == clip.id).values(held=False))
        leaf = tx.append(
            who.event(
                "hold.released",
                target=evidence_id,
                sha256=clip.sha256,
                reason=reason,
                details=_policy_details(clip),
            )
        )
    with ctx.ledger.transaction() as tx:
        clip = _clip(tx.conn, evidence_id)
        if clip.held:
            return leaf  # held again meanwhile: its legal holds stay
        for kind, sha256 in _objects(clip.sha256, _export_shas(tx.conn, clip.id)):
            try:
                store.set_legal_hold(kind, sha256, False)
            except BwvError as exc:
                raise type(exc)(
                    f"the hold on {evidence_id} is released in the records (leaf {leaf.seq}), "
                    f"but the store kept its legal hold on {kind}/{sha256}: {exc.diagnosis}; "
                    "retention cannot delete the clip until that is removed"
                ) from None
    return leaf


# --- retention runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSummary:
    evidence_id: str
    sha256: str
    category: str
    case_ref: str | None
    recorded_at: datetime | None
    retain_until: datetime | None
    size: int


@dataclass(frozen=True)
class RetentionFailure:
    evidence_id: str
    diagnosis: str


@dataclass
class RetentionReport:
    """``due``: clips past their date with no hold (a dry run would delete them); ``deleted``:
    those deleted (tombstoned) by this run; ``held_past_due``: held clips past their date."""

    dry_run: bool
    as_of: datetime
    due: list[ClipSummary] = field(default_factory=list)
    deleted: list[ClipSummary] = field(default_factory=list)
    held_past_due: list[ClipSummary] = field(default_factory=list)
    failures: list[RetentionFailure] = field(default_factory=list)


def run_retention(
    ctx: Context,
    store: ObjectStore,
    *,
    operator: str,
    dry_run: bool,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RetentionReport:
    """Delete every clip whose retention ended by ``now`` (default: the policy clock) and that
    is not held, leaving one tombstone each; or, with ``dry_run``, only list them. Safe to
    repeat and to kill at any point (see the module docstring). Either run appends one
    ``retention.run`` leaf."""
    now = as_utc(now or ctx.clock.now())
    report = RetentionReport(dry_run, now)
    with ctx.engine.connect() as conn:
        unfinished = conn.execute(
            select(CLIP).where(CLIP.c.deleted_at.is_not(None), ~_tombstoned()).order_by(CLIP.c.id)
        ).all()
        due = conn.execute(
            select(CLIP)
            .where(_due(now), CLIP.c.held == false())
            .order_by(CLIP.c.retain_until, CLIP.c.id)
        ).all()
        held = conn.execute(
            select(CLIP).where(_due(now), CLIP.c.held == true()).order_by(CLIP.c.retain_until)
        ).all()
    report.due = [_summary(r) for r in (*unfinished, *due)]
    report.held_past_due = [_summary(r) for r in held]
    if not dry_run:
        total = len(unfinished) + len(due)
        for n, clip in enumerate((*unfinished, *due), start=1):
            if clip.deleted_at is not None or _claim(ctx, clip, now):
                _delete(ctx, store, clip, operator, now, report)
            if progress:
                progress(n, total)
    ctx.ledger.append(
        Event(
            SYSTEM_ACTOR,
            SYSTEM_ROLE,
            "retention.run",
            outcome=Outcome.FAILED if report.failures else Outcome.OK,
            details={
                "run_by": operator,
                "dry_run": dry_run,
                "as_of": format_time(now),
                "due": len(report.due),
                "deleted": len(report.deleted),
                "held_past_due": len(report.held_past_due),
                "failed": len(report.failures),
            },
        )
    )
    return report


def _due(now: datetime) -> Any:
    return (CLIP.c.deleted_at.is_(None)) & (CLIP.c.retain_until <= now)


def _tombstoned() -> Any:
    return exists().where(LEAF.c.action == TOMBSTONE, LEAF.c.target == CLIP.c.evidence_id)


def _has_tombstone(conn: Connection, evidence_id: str) -> bool:
    found = conn.execute(
        select(LEAF.c.seq).where(LEAF.c.action == TOMBSTONE, LEAF.c.target == evidence_id).limit(1)
    ).first()
    return found is not None


def _claim(ctx: Context, clip: Row[Any], now: datetime) -> bool:
    """Mark the clip as being deleted, if it is still due and not held."""
    with ctx.ledger.transaction() as tx:
        claimed = tx.conn.execute(
            update(CLIP)
            .where(CLIP.c.id == clip.id, CLIP.c.held == false(), _due(now))
            .values(deleted_at=now)
        )
    return claimed.rowcount == 1


def _delete(
    ctx: Context,
    store: ObjectStore,
    clip: Row[Any],
    operator: str,
    now: datetime,
    report: RetentionReport,
) -> None:
    with ctx.engine.connect() as conn:
        exports = conn.execute(
            select(EXPORT.c.export_id, EXPORT.c.sha256)
            .where(EXPORT.c.clip_id == clip.id)
            .order_by(EXPORT.c.id)
        ).all()
    objects = [*(("exports", s) for s in dict.fromkeys(e.sha256 for e in exports))]
    objects.append(("originals", clip.sha256))
    expired: list[str] = []
    try:
        # Ask about every object before deleting any: a lock on the original that outlasts its
        # copies' must not cost the copies of a clip that stays.
        for kind, sha256 in objects:
            if (refusal := store.expirable(kind, sha256)) is not None:
                raise StoreError(refusal)
        # Copies first, the original last: should the store refuse after all, the original
        # (the evidence) is what is left untouched.
        for kind, sha256 in objects:
            store.expire(kind, sha256)
            if kind == "exports":
                expired.append(sha256)
    except BwvError as exc:
        _undo_claim(ctx, clip, operator, exc.diagnosis, expired)
        report.failures.append(RetentionFailure(clip.evidence_id, exc.diagnosis))
        return
    with ctx.ledger.transaction() as tx:
        if _has_tombstone(tx.conn, clip.evidence_id):
            return  # another run finished it
        # A claim undone by a concurrent run that was refused: the objects are gone regardless.
        tx.conn.execute(
            update(CLIP)
            .where(CLIP.c.id == clip.id, CLIP.c.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        tx.append(
            Event(
                SYSTEM_ACTOR,
                SYSTEM_ROLE,
                TOMBSTONE,
                target=clip.evidence_id,
                sha256=clip.sha256,
                reason="retention period ended with no hold",
                details={
                    "run_by": operator,
                    **_policy_details(clip),
                    "recorded_at": _time(clip.recorded_at),
                    "ingested_at": _time(clip.ingested_at),
                    "size": clip.size,
                    "exports_deleted": [
                        {"export_id": e.export_id, "sha256": e.sha256} for e in exports
                    ],
                    "store": store.describe(),
                },
            )
        )
    report.deleted.append(_summary(clip))


def _undo_claim(
    ctx: Context, clip: Row[Any], operator: str, diagnosis: str, expired: Sequence[str]
) -> None:
    with ctx.ledger.transaction() as tx:
        if _has_tombstone(tx.conn, clip.evidence_id):
            return
        tx.conn.execute(update(CLIP).where(CLIP.c.id == clip.id).values(deleted_at=None))
        tx.append(
            Event(
                SYSTEM_ACTOR,
                SYSTEM_ROLE,
                "retention.failed",
                target=clip.evidence_id,
                sha256=clip.sha256,
                outcome=Outcome.FAILED,
                reason=diagnosis,
                details={
                    "run_by": operator,
                    **_policy_details(clip),
                    "exports_deleted": list(expired),
                },
            )
        )


def discard_copy(ctx: Context, store: ObjectStore, sha256: str) -> str | None:
    """Delete a disclosure copy's object that was stored but never recorded, because its clip
    was deleted under retention while the copy was being made: no record names it, so no run
    would ever delete it, and a copy of evidence that is gone must not outlive it. A copy that
    an export row does name is left alone (it goes with its clip). Returns None once the object
    is gone, else why it is still there (e.g. S3's minimum lock has not passed), for the record
    of the refused export."""
    with ctx.engine.connect() as conn:
        recorded = conn.execute(select(EXPORT.c.id).where(EXPORT.c.sha256 == sha256)).first()
    if recorded is not None:
        return "the same bytes are recorded as another disclosure copy"
    try:
        store.expire("exports", sha256)
    except BwvError as exc:
        return exc.diagnosis
    return None


# --- inside ----------------------------------------------------------------------------------


def _clip(conn: Connection, evidence_id: str) -> Row[Any]:
    row = conn.execute(select(CLIP).where(CLIP.c.evidence_id == evidence_id)).first()
    if row is None:
        raise ClipNotFound(f"no clip with evidence id {evidence_id[:60]!r}")
    return row


def deleted_diagnosis(evidence_id: str, deleted_at: datetime) -> str:
    """What to say of a clip retention deleted, wherever its footage is asked for."""
    return (
        f"{evidence_id} was deleted under retention (its footage deleted on "
        f"{as_utc(deleted_at):%Y-%m-%d}); only its custody record remains"
    )


def _live_clip(conn: Connection, evidence_id: str) -> Row[Any]:
    """The clip's row; :class:`ClipGone` once retention has claimed it."""
    row = _clip(conn, evidence_id)
    if row.deleted_at is not None:
        if _has_tombstone(conn, evidence_id):
            raise ClipGone(deleted_diagnosis(evidence_id, row.deleted_at))
        raise ClipGone(f"{evidence_id} is being deleted: its retention period has ended")
    return row


def _unheld(clip: Row[Any]) -> Row[Any]:
    if clip.held:
        raise PolicyConflict(f"{clip.evidence_id} is already held")
    return clip


def _guarded(ctx: Context, evidence_id: str, change: Callable[[], object]) -> None:
    """Run a store change; if it fails because retention took the clip meanwhile, say so."""
    try:
        change()
    except BwvError:
        with ctx.engine.connect() as conn:
            _live_clip(conn, evidence_id)
        raise


def _export_shas(conn: Connection, clip_id: int) -> list[str]:
    query = select(EXPORT.c.sha256).where(EXPORT.c.clip_id == clip_id).distinct()
    return list(conn.execute(query.order_by(EXPORT.c.sha256)).scalars())


def _objects(original: str, exports: Sequence[str]) -> list[tuple[str, str]]:
    return [("originals", original), *(("exports", s) for s in exports)]


def _extend_locks(
    store: ObjectStore,
    original: str,
    exports: Sequence[str],
    until: datetime,
    *,
    original_too: bool = True,
) -> datetime:
    for kind, sha256 in _objects(original, exports)[0 if original_too else 1 :]:
        store.extend_retention(kind, sha256, until)
    return until


def _start(clip: Row[Any]) -> datetime:
    return retention_start(clip.recorded_at, clip.ingested_at)


class CaseRefInvalid(PolicyError):
    """A case reference that is not one line of visible text."""

    status = 422


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


def _may_change_case(who: Principal, clip: Row[Any], case_ref: str | None) -> None:
    """Once a clip has a case reference, only an evidence officer may change or remove it: an
    officer could otherwise take their own clip out of a case's search."""
    if who.role != Role.EVIDENCE_OFFICER and clip.case_ref not in (None, case_ref):
        raise PolicyForbidden(
            f"only an evidence officer may change or remove the case reference of "
            f"{clip.evidence_id} (case {clip.case_ref!r}); categorise with that case to keep it"
        )


def _time(when: datetime | None) -> str | None:
    return None if when is None else format_time(as_utc(when))


def _policy_details(clip: Row[Any]) -> dict[str, Any]:
    return {
        "category": clip.category,
        "case": clip.case_ref,
        "retain_until": _time(clip.retain_until),
    }


def _summary(clip: Row[Any]) -> ClipSummary:
    return ClipSummary(
        clip.evidence_id,
        clip.sha256,
        clip.category,
        clip.case_ref,
        None if clip.recorded_at is None else as_utc(clip.recorded_at),
        None if clip.retain_until is None else as_utc(clip.retain_until),
        clip.size,
    )
