"""Legal holds: a held clip is kept whatever its retention date, until the hold is released.

The store of record is kept in step with the records, and no store call runs inside a ledger
transaction (the append lock every other writer waits for). A legal hold is placed in the store
*before* the records say so, and removed only *after* the release has committed: a crash in
between leaves evidence held in the store, never unheld while the records say held. The changes
to one clip are serialised by :meth:`~bwv.services.context.Context.clip_lock`, so a release's
removal cannot interleave with a new placement.
"""

from __future__ import annotations

import contextlib

from bwv.access.roles import Principal
from bwv.base.errors import BwvError
from bwv.custody.ledger import AppendedLeaf
from bwv.records import clips as records
from bwv.services.clips import (
    Clip,
    ClipGone,
    Moved,
    PolicyConflict,
    clip_named,
    live_clip,
    objects,
    policy_details,
    settled,
    store_faults,
)
from bwv.services.context import Context
from bwv.store.base import ObjectStore


def _unheld(clip: Clip) -> Clip:
    if clip.held:
        raise PolicyConflict(f"{clip.evidence_id} is already held")
    return clip


def _id(clip: Clip) -> int:
    assert clip.id is not None
    return clip.id


def place_hold(
    ctx: Context, store: ObjectStore, evidence_id: str, who: Principal, reason: str | None
) -> AppendedLeaf:
    """Hold a clip: it is kept past its date until released. The store's legal holds are placed
    first, then the records say so (starting again if a copy was recorded meanwhile). The
    store's faults are :func:`~bwv.services.clips.store_faults`'."""
    with store_faults(evidence_id), ctx.clip_lock(evidence_id):
        return settled(evidence_id, lambda: _place_hold(ctx, store, evidence_id, who, reason))


def _place_hold(
    ctx: Context, store: ObjectStore, evidence_id: str, who: Principal, reason: str | None
) -> AppendedLeaf:
    with ctx.engine.connect() as conn:
        clip = _unheld(live_clip(conn, evidence_id))  # refuse early, before touching the store
        held = objects(clip.sha256, records.export_shas(conn, _id(clip)))
    placed: list[tuple[str, str]] = []
    try:
        for kind, sha256 in held:
            store.set_legal_hold(kind, sha256, True)
            placed.append((kind, sha256))
    except BwvError:
        _unhold(store, placed)
        raise
    try:
        with ctx.ledger.transaction() as tx:
            clip = _unheld(live_clip(tx.conn, evidence_id))
            if set(objects(clip.sha256, records.export_shas(tx.conn, _id(clip)))) - set(held):
                raise Moved  # a copy was recorded meanwhile: hold it too, outside the lock
            records.set_held(tx.conn, _id(clip), True)
            return tx.append(
                who.event(
                    "hold.placed",
                    target=evidence_id,
                    sha256=clip.sha256,
                    reason=reason,
                    details=policy_details(clip),
                )
            )
    except ClipGone:
        # Retention claimed the clip meanwhile (it was not held): the records say "not held", so
        # should the store. (Held by another process meanwhile, PolicyConflict: the holds stay.)
        _unhold(store, placed)
        raise


def _unhold(store: ObjectStore, placed: list[tuple[str, str]]) -> None:
    """Remove the legal holds just placed for a hold that the records do not say."""
    for kind, sha256 in placed:
        # if this fails too, the safe side: retention reports the clip until removed
        with contextlib.suppress(BwvError):
            store.set_legal_hold(kind, sha256, False)


def release_hold(
    ctx: Context, store: ObjectStore, evidence_id: str, who: Principal, reason: str | None
) -> AppendedLeaf:
    """Release a clip's hold: it is again kept until its date. The store's legal holds are
    removed after the records commit, and only while the records still say "not held"."""
    with store_faults(evidence_id), ctx.clip_lock(evidence_id):
        return _release_hold(ctx, store, evidence_id, who, reason)


def _release_hold(
    ctx: Context, store: ObjectStore, evidence_id: str, who: Principal, reason: str | None
) -> AppendedLeaf:
    with ctx.ledger.transaction() as tx:
        clip = live_clip(tx.conn, evidence_id)
        if not clip.held:
            raise PolicyConflict(f"{evidence_id} is not held")
        records.set_held(tx.conn, _id(clip), False)
        leaf = tx.append(
            who.event(
                "hold.released",
                target=evidence_id,
                sha256=clip.sha256,
                reason=reason,
                details=policy_details(clip),
            )
        )
    # Committed. Under the clip's lock no hold is placed and no copy recorded meanwhile.
    with ctx.engine.connect() as conn:
        clip = clip_named(conn, evidence_id)
        if clip.held:
            return leaf  # held again meanwhile (another process): its legal holds stay
        held = objects(clip.sha256, records.export_shas(conn, _id(clip)))
    for kind, sha256 in held:
        try:
            store.set_legal_hold(kind, sha256, False)
        except BwvError as exc:
            raise type(exc)(
                f"the hold on {evidence_id} is released in the records (leaf {leaf.seq}), "
                f"but the store kept its legal hold on {kind}/{sha256}: {exc.diagnosis}; "
                "retention cannot delete the clip until that is removed"
            ) from None
    return leaf
