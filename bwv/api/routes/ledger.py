"""The custody ledger for auditors: signed checkpoints, leaves and consistency proofs, all
checkable offline (RFC 9162 §2.1, C2SP signed notes)."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from bwv.api.deps import Access, authorise
from bwv.api.schemas import PROBLEMS, LeavesOut
from bwv.services.ledger import MAX_LEAVES, checkpoint_note, leaf_range

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
__all__ = ["MAX_LEAVES", "router"]


@router.get(
    "/checkpoint",
    responses={
        **PROBLEMS,
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
    return PlainTextResponse(checkpoint_note(access.services.ctx))  # none yet: 404


@router.get("/leaves", response_model=LeavesOut, responses=PROBLEMS)
def leaves(
    access: Annotated[Access, authorise("ledger.read")],
    # Leaf sequence numbers are JSON numbers: exact up to 2**53 - 1 (RFC 8785 §3.2.2.3).
    start: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0,
    end: Annotated[int | None, Query(ge=0, le=2**53 - 1)] = None,
) -> LeavesOut:
    """Leaves ``start`` to ``end`` (exclusive; at most 1000), as their exact bytes, so an
    auditor can recompute every leaf hash and the tree (RFC 9162 §2.1.1)."""
    found = leaf_range(access.services.ctx, start, end)
    access.record(start=start, end=found.stop, tree_size=found.tree_size)
    return LeavesOut(
        tree_size=found.tree_size,
        start=start,
        leaves=[base64.b64encode(body).decode() for body in found.bodies],
    )
