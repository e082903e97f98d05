"""The ledger through a lost COMMIT and a database failover (real PostgreSQL servers): an
append whose connection is lost is retried with the same event id on a new connection, so the
caller sees one leaf; behind a libpq multi-host URL (``target_session_attrs=read-write``),
writers carry on through the promotion of a synchronous standby, and afterwards the ledger
verifies, holds every acknowledged leaf and no event twice."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select, text

from bwv.custody.leaf import Event, parse_leaf
from bwv.custody.ledger import AppendedLeaf, Ledger
from bwv.keys import SigningKey
from bwv.records.database import make_engine, upgrade
from bwv.records.tables import LedgerLeaf, table_of
from bwv.services.context import Context
from tests.support import ORIGIN
from tests.support.cli import bwv, without_bwv_settings
from tests.support.ingestserver import init_data_dir
from tests.support.pgproxy import commit_losing_proxy
from tests.support.pgreplica import Replicated, replicated_postgres
from tests.support.pgserver import PostgresServer, find_bindir

LEAF = table_of(LedgerLeaf)
pytestmark = pytest.mark.postgres


def _event(writer: int, n: int) -> Event:
    return Event(
        actor=f"pc-{writer}", role="officer", action="clip.viewed", details={"w": writer, "n": n}
    )


def _stored(engine: Engine) -> list[tuple[int, str | None, bytes]]:
    with engine.connect() as conn:
        query = select(LEAF.c.seq, LEAF.c.event_id, LEAF.c.body).order_by(LEAF.c.seq)
        return [(seq, event_id, bytes(body)) for seq, event_id, body in conn.execute(query)]


# -- a lost COMMIT ------------------------------------------------------------------------------


def test_an_append_whose_commit_answer_is_lost_is_one_leaf(
    pg_server: PostgresServer, signer: SigningKey
) -> None:
    url = pg_server.new_database()
    database = url.rsplit("/", 1)[1]
    with commit_losing_proxy(pg_server.port) as proxy:
        engine = make_engine(
            f"postgresql+psycopg://bwv@127.0.0.1:{proxy.port}/{database}?sslmode=disable"
        )
        try:
            upgrade(engine)
            ledger = Ledger(engine, ORIGIN, signer, retry_seconds=10)
            before = ledger.append(_event(0, 0))
            proxy.armed.set()
            event = _event(0, 1)
            leaf = ledger.append(event)
            assert proxy.lost.is_set(), "the proxy never dropped a COMMIT's answer"
            assert leaf.seq == before.seq + 1
            assert [seq for seq, _, _ in _stored(engine)] == [0, 1]
            assert _stored(engine)[1][1] == event.id
            assert ledger.append(_event(0, 2)).seq == 2  # and the ledger carries on
        finally:
            engine.dispose()


# -- a failover ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    if find_bindir() is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found"
        if os.environ.get("BWV_REQUIRE_POSTGRES"):
            pytest.fail(f"{message}, and BWV_REQUIRE_POSTGRES is set")
        pytest.skip(message)
    with replicated_postgres() as servers:
        yield servers


@dataclass
class Writer:
    """A thread appending events until told to stop, noting what was acknowledged and what
    was tried but not (its append raised)."""

    ledger: Ledger
    number: int
    acknowledged: dict[str, AppendedLeaf] = field(default_factory=dict)
    unacknowledged: set[str] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)

    def run(self, stop: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            event = _event(self.number, n)
            try:
                self.acknowledged[event.id] = self.ledger.append(event)
            except Exception as exc:
                self.unacknowledged.add(event.id)
                self.errors.append(exc)
            n += 1


def _wait_for(count: int, writers: list[Writer], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while sum(len(w.acknowledged) for w in writers) < count:
        assert time.monotonic() < deadline, "the writers stopped acknowledging appends"
        time.sleep(0.02)


def test_appends_carry_on_through_a_failover_losing_and_doubling_nothing(
    replicated: Replicated, tmp_path: Path
) -> None:
    url = replicated.new_database("failover")
    data_dir = tmp_path / "data"
    ctx = Context(init_data_dir(data_dir, database_url=url, checkpoint_every_leaves=50))
    engine, ledger = ctx.engine, ctx.ledger  # as the service opens them, retrying for 30 s
    lost: list[BaseException] = []  # the database errors the writers met (and retried)
    event.listen(engine, "handle_error", lambda e: lost.append(e.original_exception))
    writers = [Writer(ledger, n) for n in range(4)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in writers]
    for t in threads:
        t.start()
    try:
        _wait_for(200, writers)
        replicated.stop_primary()
        time.sleep(0.3)  # writers meet the dead primary
        replicated.promote()
        promoted = sum(len(w.acknowledged) for w in writers)
        _wait_for(promoted + 200, writers)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    ctx.close()
    assert not replicated.in_recovery(replicated.standby_port)  # the standby took over

    acknowledged = {i: leaf for w in writers for i, leaf in w.acknowledged.items()}
    unacknowledged = set().union(*(w.unacknowledged for w in writers))
    assert lost, "no writer met the failover"
    assert [w.errors for w in writers] == [[]] * 4  # every append got through, retried
    after = make_engine(url)  # the same URL finds the new primary
    try:
        stored = _stored(after)
        by_id = {event_id: (seq, body) for seq, event_id, body in stored}
        # Every acknowledged leaf is there, as acknowledged.
        assert {i: by_id.get(i) for i in acknowledged} == {
            i: (leaf.seq, leaf.body) for i, leaf in acknowledged.items()
        }
        # No event twice: by id, and by what the leaves say (writer, number).
        said = [(d["w"], d["n"]) for d in (parse_leaf(b)["details"] for _, _, b in stored)]
        assert len(said) == len(set(said)) == len(by_id) == len(stored)
        # Nothing else: each leaf is an acknowledged event or one tried and not acknowledged.
        assert set(by_id) <= set(acknowledged) | unacknowledged
        assert len(stored) == len(acknowledged) + len(set(by_id) & unacknowledged)
        with after.connect() as conn:
            port = conn.execute(text("SELECT inet_server_port()")).scalar_one()
        assert port == replicated.standby_port
    finally:
        after.dispose()
    # `bwv audit verify` on the server host, through the same URL: the new primary's ledger.
    verified = bwv(
        data_dir, "audit", "verify", check=True, env=without_bwv_settings(BWV_DATABASE_URL=url)
    )
    assert verified.stdout.startswith(f"OK ledger of {len(stored)} leaves"), verified.stdout
    assert len(stored) >= 400
