"""The custody ledger's leaves as a test reads them back (RFC 9162 §2.1: the log's entries, in
order), and the keys a dock pins to verify receipts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bwv.custody.leaf import parse_leaf
from bwv.keys import Keyring, VerifierKey
from bwv.records.tables import LedgerLeaf
from tests.support.ingestserver import IngestServer
from tests.support.records import Source, opened

LEAF = LedgerLeaf.__table__


def leaves(
    source: Source, action: str | None = None, target: str | None = None, *, since: int = 0
) -> list[dict[str, Any]]:
    """Decoded leaves from sequence number ``since`` on, in order: of ``action`` and of
    ``target`` where given."""
    query = select(LEAF.c.body).where(LEAF.c.seq >= since).order_by(LEAF.c.seq)
    if action is not None:
        query = query.where(LEAF.c.action == action)
    with opened(source) as engine, engine.connect() as conn:
        bodies = conn.execute(query).scalars().all()
    found = [parse_leaf(bytes(b)) for b in bodies]
    return [leaf for leaf in found if target is None or leaf["target"] == target]


def pinned(server: IngestServer) -> Keyring:
    """The keyring a dock enrolled with this service pins: its receipt-signing key."""
    return Keyring([VerifierKey.parse(server.service_key)])
