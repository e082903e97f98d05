"""Event ids in the ledger (SQLite and PostgreSQL): one leaf per event however often it is
appended, a reused id for another event refused, and leaves from before ids still verify."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, insert, select

from bwv.custody import merkle
from bwv.custody.leaf import Event
from bwv.custody.ledger import EventIdReused, Ledger
from bwv.custody.verify import verify_ledger
from bwv.keys import Keyring, SigningKey
from bwv.records import database as db
from bwv.records.tables import LedgerLeaf, MerkleNode, table_of
from tests.support import ORIGIN

LEAF, NODE = table_of(LedgerLeaf), table_of(MerkleNode)


def _event(n: int, event_id: str | None = None) -> Event:
    extra = {} if event_id is None else {"id": event_id}
    return Event(actor=f"pc-{n}", role="officer", action="clip.viewed", target="EV-1", **extra)


def _event_ids(engine: Engine) -> list[str | None]:
    with engine.connect() as conn:
        return list(conn.execute(select(LEAF.c.event_id).order_by(LEAF.c.seq)).scalars())


def test_each_leaf_keeps_its_event_id(ledger: Ledger) -> None:
    events = [_event(n) for n in range(3)]
    ledger.append(events[0])
    ledger.append_many(events[1:])
    assert _event_ids(ledger.engine) == [e.id for e in events]


def test_appending_an_event_again_returns_its_leaf_and_adds_none(ledger: Ledger) -> None:
    event = _event(1)
    first = ledger.append(event)
    ledger.append(_event(2))
    again = ledger.append(event)
    assert again == first
    assert ledger.size() == 2


def test_an_event_already_in_the_ledger_is_not_appended_again_in_a_transaction(
    ledger: Ledger,
) -> None:
    event = _event(1)
    with ledger.transaction() as tx:
        first = tx.append(event)
    with ledger.transaction() as tx:  # as a service's transaction with records of its own
        assert tx.append(event) == first
        assert tx.append(_event(2)).seq == 1
    assert ledger.size() == 2


def test_an_event_already_in_the_ledger_is_skipped_within_a_batch(ledger: Ledger) -> None:
    old = ledger.append(_event(1))
    new = _event(2)
    leaves = ledger.append_many([_event(1, event_id=_event_ids(ledger.engine)[0]), new, new])
    assert leaves[0] == old
    assert leaves[1] == leaves[2] and leaves[1].seq == 1
    assert ledger.size() == 2


def test_an_id_reused_for_another_event_is_refused_naming_it(ledger: Ledger) -> None:
    ledger.append(_event(1, event_id="ev-42"))
    with pytest.raises(EventIdReused, match=r"ev-42.*leaf 0"):
        ledger.append(_event(2, event_id="ev-42"))
    assert ledger.size() == 1


def test_leaves_from_before_event_ids_still_verify(
    database_url: str, signer: SigningKey, keyring: Keyring
) -> None:
    engine = db.make_engine(database_url)
    try:
        cfg = db._alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0005")
        _append_as_before_0006(engine, [_event(n) for n in range(5)])
        db.upgrade(engine)
        ledger = Ledger(engine, ORIGIN, signer)
        ledger.append_many([_event(n) for n in range(5, 8)])
        ledger.checkpoint()
        assert _event_ids(engine)[:5] == [None] * 5
        assert None not in _event_ids(engine)[5:]
        report = verify_ledger(engine, keyring, ORIGIN)
        assert report.ok, report.findings
        assert report.size == 8
    finally:
        engine.dispose()


def _append_as_before_0006(engine: Engine, events: list[Event]) -> None:
    """Leaves and nodes as a bwv without event ids wrote them (no ``event_id`` column)."""
    now = datetime.now(UTC)
    bodies = [e.leaf(i, now) for i, e in enumerate(events)]
    hashes = [merkle.leaf_hash(b) for b in bodies]
    nodes = merkle.append_nodes(0, hashes, {})
    with engine.begin() as conn:
        for i, (e, body, h) in enumerate(zip(events, bodies, hashes, strict=True)):
            row = {"seq": i, "leaf_hash": h, "body": body, "action": e.action, "target": e.target}
            conn.execute(insert(LEAF).values(**row))
        for (level, idx), h in nodes.items():
            conn.execute(insert(NODE).values(level=level, idx=idx, hash=h))
