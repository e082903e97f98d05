"""A clip as the use cases meet it: found or not, live or deleted under retention, the objects
it keeps in the store, and what it lets the caller see.

The one place a clip is fetched by evidence id (:func:`clip_named`, :func:`live_clip`) and a
disclosure copy by its id (:func:`copy_named`), with the diagnoses every interface answers;
the rows are the records' typed ones (:class:`Clip`, :class:`Export`, re-exported here for
the interfaces, which do not import the database layer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from bwv.access.roles import Principal
from bwv.base.clock import as_utc
from bwv.base.errors import (
    BwvError,
    Conflict,
    Failed,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    Refused,
    Unavailable,
)
from bwv.custody.leaf import format_time
from bwv.records import clips as records
from bwv.records.clips import ClipFilter as ClipFilter
from bwv.records.tables import Clip as Clip
from bwv.records.tables import Export as Export
from bwv.services.context import Context
from bwv.services.fixity import damaged_diagnosis
from bwv.store.base import ObjectDamaged, ObjectStore, StoreError

log = logging.getLogger("bwv.services")
_T = TypeVar("_T")
SETTLE_TRIES = 5


class PolicyError(Refused):
    """A categorisation, hold or retention request the policy refuses (400 unless a kind
    below says otherwise)."""


class ClipNotFound(PolicyError, NotFound):
    """No clip has this evidence id (404)."""


class ClipGone(PolicyError, Gone):
    """The clip was deleted by retention (or is being deleted): only its custody record is
    left (410)."""


class PolicyConflict(PolicyError, Conflict):
    """The clip is not in the state the request needs (already held; not held) (409)."""


class PolicyForbidden(PolicyError, Forbidden):
    """The caller may not make this change (e.g. shorten a clip's retention) or see this clip
    (not recorded on a camera issued to them) (403)."""


class CaseRefInvalid(PolicyError, Invalid):
    """A case reference that is not one line of visible text (422)."""


class CopyNotFound(NotFound):
    """No disclosure copy has this id (404)."""


def deleted_diagnosis(evidence_id: str, deleted_at: datetime) -> str:
    """What to say of a clip retention deleted, wherever its footage is asked for."""
    return (
        f"{evidence_id} was deleted under retention (its footage deleted on "
        f"{as_utc(deleted_at):%Y-%m-%d}); only its custody record remains"
    )


def clip_named(conn: Connection, evidence_id: str) -> Clip:
    """The clip, deleted or not; :class:`ClipNotFound` for none."""
    found = records.clip(conn, evidence_id)
    if found is None:
        raise _about(ClipNotFound(f"no clip with evidence id {evidence_id[:60]!r}"), evidence_id)
    return found


def _about(exc: BwvError, evidence_id: str) -> BwvError:
    exc.target = evidence_id
    return exc


def refuse_deleted(conn: Connection, clip: Clip) -> Clip:
    """The clip, unless retention has claimed it (:class:`ClipGone`): its footage is gone, or
    going, and only its record and custody remain."""
    if clip.deleted_at is not None:
        if records.has_tombstone(conn, clip.evidence_id):
            gone = ClipGone(deleted_diagnosis(clip.evidence_id, clip.deleted_at))
        else:
            gone = ClipGone(f"{clip.evidence_id} is being deleted: its retention period has ended")
        raise _about(gone, clip.evidence_id)
    return clip


def live_clip(conn: Connection, evidence_id: str) -> Clip:
    """The clip, found and not deleted under retention."""
    return refuse_deleted(conn, clip_named(conn, evidence_id))


def copy_named(conn: Connection, export_id: str) -> Export:
    """The disclosure copy; :class:`CopyNotFound` for none."""
    found = records.export(conn, export_id)
    if found is None:
        raise CopyNotFound(f"no disclosure copy with id {export_id!r}")
    return found


def may_see(who: Principal, own_clips_only: frozenset[Any], clip: Clip) -> None:
    """:class:`PolicyForbidden` for a clip not the caller's where the rule allows only their own
    (the access policy's ``own_clips_only``)."""
    if who.role in own_clips_only and clip.officer != who.name:
        raise _about(
            PolicyForbidden(f"{clip.evidence_id} was not recorded on a camera issued to you"),
            clip.evidence_id,
        )


# --- reading clips, as a caller may ------------------------------------------------------------


def clip_for(
    ctx: Context,
    evidence_id: str,
    who: Principal,
    own_clips_only: frozenset[Any],
    *,
    live: bool = False,
) -> Clip:
    """The clip, if ``who`` may ask about it: :class:`ClipNotFound`, then
    :class:`PolicyForbidden` for another officer's clip where the rule allows only one's own,
    then (``live``: footage asked for) :class:`ClipGone` once retention has claimed it."""
    with ctx.engine.connect() as conn:
        found = clip_named(conn, evidence_id)
        may_see(who, own_clips_only, found)
        return refuse_deleted(conn, found) if live else found


def clip_page(
    ctx: Context, where: ClipFilter, *, limit: int, offset: int
) -> tuple[int, list[tuple[Clip, int]]]:
    """How many clips match, and a page of them, each with its count of disclosure copies."""
    with ctx.engine.connect() as conn:
        return records.search_clips(conn, where, limit=limit, offset=offset)


def copies_of(ctx: Context, clip: Clip) -> tuple[int, list[Export]]:
    """The clip's disclosure copies, oldest first, and how many: as :func:`clip_page` counts."""
    assert clip.id is not None
    with ctx.engine.connect() as conn:
        made = records.exports_of(conn, clip.id)
    return len(made), made


def copy_page(
    ctx: Context, evidence_id: str | None, *, limit: int, offset: int
) -> tuple[int, list[Export]]:
    """How many disclosure copies there are (of one clip, or all), and a page, newest first."""
    with ctx.engine.connect() as conn:
        return records.list_exports(conn, evidence_id, limit=limit, offset=offset)


def find_copy(ctx: Context, export_id: str) -> Export:
    """The disclosure copy (:class:`CopyNotFound` for none)."""
    with ctx.engine.connect() as conn:
        return copy_named(conn, export_id)


def copy_to_hand_out(ctx: Context, export_id: str) -> Export:
    """The disclosure copy, unless its clip was deleted under retention (its copies with it):
    :class:`CopyNotFound`, :class:`ClipGone`."""
    with ctx.engine.connect() as conn:
        copy = copy_named(conn, export_id)
        refuse_deleted(conn, clip_named(conn, copy.evidence_id))
    return copy


# --- what a clip keeps in the store ----------------------------------------------------------


def objects(original: str, exports: Sequence[str]) -> list[tuple[str, str]]:
    """The store objects of a clip: its original, then its disclosure copies."""
    return [("originals", original), *(("exports", s) for s in exports)]


def extend_locks(
    store: ObjectStore,
    original: str,
    exports: Sequence[str],
    until: datetime,
    *,
    original_too: bool = True,
) -> datetime:
    """Lengthen the store's retention lock of the clip's objects to ``until``."""
    for kind, sha256 in objects(original, exports)[0 if original_too else 1 :]:
        store.extend_retention(kind, sha256, until)
    return until


@contextmanager
def store_faults(evidence_id: str) -> Iterator[None]:
    """The store's faults while a clip's keeping changes, said as the server's: a damaged or
    missing object is :class:`Failed` (500: no retry mends it), anything else the store refuses
    :class:`Unavailable` (503, retry in 30 s); neither names a server path (the log has it)."""
    try:
        yield
    except ObjectDamaged as exc:
        why = damaged_diagnosis("object", evidence_id, exc)
        log.error("%s (%s)", why, exc.diagnosis)
        raise _about(Failed(why), evidence_id) from None
    except StoreError as exc:
        raise _about(Unavailable(exc.shown, retry_after=30), evidence_id) from None


def time_of(when: datetime | None) -> str | None:
    return None if when is None else format_time(as_utc(when))


def policy_details(clip: Clip) -> dict[str, Any]:
    """What a leaf about a clip's keeping says of it: category, case, retention date."""
    return {
        "category": clip.category,
        "case": clip.case_ref,
        "retain_until": time_of(clip.retain_until),
    }


# --- the store changed outside the append lock ---------------------------------------------


class Moved(Exception):
    """Raised inside a ledger transaction when the records moved since the store was changed
    for them (a copy recorded, a period lengthened meanwhile): the transaction rolls back and
    :func:`settled` starts the change again, its store calls again outside the append lock."""


class KeepingBusy(Unavailable):
    """A clip's keeping kept changing under a change to it."""


def settled(evidence_id: str | None, attempt: Callable[[], _T]) -> _T:
    """Run ``attempt`` (store calls, then a ledger transaction that raises :class:`Moved` if
    the records moved meanwhile) until it commits, at most :data:`SETTLE_TRIES` times."""
    for _ in range(SETTLE_TRIES):
        try:
            return attempt()
        except Moved:
            continue
    what = "the category's clips" if evidence_id is None else evidence_id
    raise KeepingBusy(
        f"{what} changed {SETTLE_TRIES} times while being changed: try again", retry_after=5
    )
