"""The custody ledger for auditors: signed checkpoints, leaves and consistency proofs, all
checkable offline (RFC 9162 §2.1, C2SP signed notes)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from bwv.api.deps import Access, authorise
from bwv.api.routes.clips import ERRORS
from bwv.api.schemas import LeavesOut
from bwv.base.errors import BwvError
from bwv.custody.ledger import LEAF

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
MAX_LEAVES = 1000


@router.get(
    "/checkpoint",
    responses={
        **ERRORS,
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "The signed note.",
        },
    },
)
def checkpoint(access: Annotated[Access, authorise("ledger.checkpoint")]) -> PlainTextResponse:
    """The latest signed checkpoint (a C2SP signed note). Checkpoints are issued on their
    schedule (every ``checkpoint_every_leaves`` leaves or ``checkpoint_every_seconds``), not
    per request: it may cover fewer leaves than the log holds; a newer one follows within
    ``checkpoint_every_seconds``. Read without the ledger's append lock unless one is due."""
    try:
        note = access.services.ctx.ledger.current_checkpoint().note
    except BwvError as exc:  # an empty ledger has no checkpoint
        raise access.deny(404, exc.diagnosis) from None
    return PlainTextResponse(note)


@router.get("/leaves", response_model=LeavesOut, responses=ERRORS)
def leaves(
    access: Annotated[Access, authorise("ledger.read")],
    # Leaf sequence numbers are JSON numbers: exact up to 2**53 - 1 (RFC 8785 §3.2.2.3).
    start: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
    end: Annotated[int | None, Query(ge=0, le=2**53 - 1)] = None,
) -> LeavesOut:
    """Leaves ``start`` to ``end`` (exclusive; at most 1000), as their exact bytes, so an
    auditor can recompute every leaf hash and the tree (RFC 9162 §2.1.1)."""
    ledger = access.services.ctx.ledger
    size = ledger.size()
    stop = min(size, end if end is not None else size, start + MAX_LEAVES)
    if end is not None and end < start:
        raise access.deny(400, f"end {end} is before start {start}")
    access.record(start=start, end=stop, tree_size=size)
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            select(LEAF.c.body).where(LEAF.c.seq >= start, LEAF.c.seq < stop).order_by(LEAF.c.seq)
        ).all()
    return LeavesOut(
        tree_size=size, start=start, leaves=[base64.b64encode(r.body).decode() for r in rows]
    )
