"""Retention runs: the only way evidence is ever deleted (invariant 1 of ARCHITECTURE.md).

A clip is due once its retention date (``bwv.services.categories``) has passed and it is not
held (``bwv.services.holds``); each deletion leaves a ``clip.deleted`` tombstone leaf holding
the original's SHA-256.

A retention run deletes each due clip in three steps, so that it can be repeated or killed at any
point: (1) claim the clip (``deleted_at`` set, in the records; a hold can no longer be placed, a
copy no longer be recorded); (2) ask the store whether every object of the clip may go now, then
expire its disclosure copies' objects and its original last (already gone is fine); (3) append
the tombstone, unless one exists. A run first finishes clips claimed earlier without a
tombstone. If the store refuses to delete (its lock has not passed), nothing is deleted, the claim
is undone and a ``retention.failed`` leaf records why.

Categories and holds were once in this module; their names are still importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bwv.base.clock import as_utc
from bwv.base.errors import BwvError
from bwv.custody.leaf import Event, Outcome, format_time
from bwv.records import clips as records
from bwv.records.clips import TOMBSTONE
from bwv.services.categories import (
    MAX_CASE_REF,
    MAX_DAYS,
    RECORDED_AFTER_INGEST,
    RECORDED_BEFORE_INGEST,
    UNCATEGORISED,
    categories,
    categorise,
    retain_until_for,
    retention_start,
    set_category,
)
from bwv.services.clips import (
    CaseRefInvalid,
    Clip,
    ClipGone,
    ClipNotFound,
    PolicyConflict,
    PolicyError,
    PolicyForbidden,
    deleted_diagnosis,
    policy_details,
    time_of,
)
from bwv.services.context import Context
from bwv.services.holds import place_hold, release_hold
from bwv.store.base import ObjectStore, StoreError

__all__ = [
    "MAX_CASE_REF",
    "MAX_DAYS",
    "RECORDED_AFTER_INGEST",
    "RECORDED_BEFORE_INGEST",
    "SYSTEM_ACTOR",
    "SYSTEM_ROLE",
    "TOMBSTONE",
    "UNCATEGORISED",
    "CaseRefInvalid",
    "ClipGone",
    "ClipNotFound",
    "ClipSummary",
    "PolicyConflict",
    "PolicyError",
    "PolicyForbidden",
    "RetentionFailure",
    "RetentionReport",
    "categories",
    "categorise",
    "deleted_diagnosis",
    "discard_copy",
    "place_hold",
    "release_hold",
    "retain_until_for",
    "retention_start",
    "run_retention",
    "set_category",
]

SYSTEM_ACTOR, SYSTEM_ROLE = "retention", "system"


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
    now = as_utc(now or ctx.clock())
    report = RetentionReport(dry_run, now)
    with ctx.engine.connect() as conn:
        unfinished = records.unfinished_deletions(conn)
        due = records.due(conn, now, held=False)
        held = records.due(conn, now, held=True)
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


def _claim(ctx: Context, clip: Clip, now: datetime) -> bool:
    """Mark the clip as being deleted, if it is still due and not held."""
    with ctx.ledger.transaction() as tx:
        return records.claim_deletion(tx.conn, _id(clip), now)


def _delete(
    ctx: Context,
    store: ObjectStore,
    clip: Clip,
    operator: str,
    now: datetime,
    report: RetentionReport,
) -> None:
    with ctx.engine.connect() as conn:
        exports = records.exports_of(conn, _id(clip))
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
        if records.has_tombstone(tx.conn, clip.evidence_id):
            return  # another run finished it
        # A claim undone by a concurrent run that was refused: the objects are gone regardless.
        records.mark_deleted(tx.conn, _id(clip), now)
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
                    **policy_details(clip),
                    "recorded_at": time_of(clip.recorded_at),
                    "ingested_at": time_of(clip.ingested_at),
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
    ctx: Context, clip: Clip, operator: str, diagnosis: str, expired: Sequence[str]
) -> None:
    with ctx.ledger.transaction() as tx:
        if records.has_tombstone(tx.conn, clip.evidence_id):
            return
        records.undo_claim(tx.conn, _id(clip))
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
                    **policy_details(clip),
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
        recorded = records.export_with_sha(conn, sha256)
    if recorded:
        return "the same bytes are recorded as another disclosure copy"
    try:
        store.expire("exports", sha256)
    except BwvError as exc:
        return exc.diagnosis
    return None


def _id(clip: Clip) -> int:
    assert clip.id is not None
    return clip.id


def _summary(clip: Clip) -> ClipSummary:
    return ClipSummary(
        clip.evidence_id,
        clip.sha256,
        clip.category,
        clip.case_ref,
        None if clip.recorded_at is None else as_utc(clip.recorded_at),
        None if clip.retain_until is None else as_utc(clip.retain_until),
        clip.size,
    )
