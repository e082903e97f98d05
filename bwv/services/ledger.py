"""What auditors read of the custody ledger over the API: the signed checkpoint, and leaves by
range as their exact bytes, so that every leaf hash and the tree can be recomputed offline
(RFC 9162 §2.1.1)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import col

from bwv.base.errors import BwvError, NotFound, Refused
from bwv.records.tables import LedgerLeaf
from bwv.services.context import Context

MAX_LEAVES = 1000


@dataclass(frozen=True)
class LeafRange:
    tree_size: int
    start: int
    stop: int  # exclusive
    bodies: list[bytes]


def leaf_range(ctx: Context, start: int, end: int | None) -> LeafRange:
    """Leaves ``start`` to ``end`` (exclusive; the log's end when None), at most
    :data:`MAX_LEAVES` and never past the log's size; :class:`Refused` for an end before the
    start."""
    size = ctx.ledger.size()
    stop = min(size, end if end is not None else size, start + MAX_LEAVES)
    if end is not None and end < start:
        raise Refused(f"end {end} is before start {start}")
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(col(LedgerLeaf.body))
            .where(col(LedgerLeaf.seq) >= start, col(LedgerLeaf.seq) < stop)
            .order_by(col(LedgerLeaf.seq))
        ).all()
    return LeafRange(size, start, stop, [bytes(r.body) for r in rows])


def checkpoint_note(ctx: Context) -> str:
    """The latest signed checkpoint (a C2SP signed note); :class:`NotFound` for an empty
    ledger, which has none."""
    try:
        return ctx.ledger.current_checkpoint().note
    except BwvError as exc:
        raise NotFound(exc.diagnosis) from None
