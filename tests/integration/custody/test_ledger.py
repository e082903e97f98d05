"""The custody ledger on SQLite and PostgreSQL: leaves, proofs from stored nodes, checkpoints,
and gap-free sequence numbers under concurrent processes."""

from __future__ import annotations

import json
import multiprocessing
import threading
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from bwv.base.errors import BwvError, ProofError
from bwv.custody import merkle
from bwv.custody.leaf import Event, Outcome, parse_leaf
from bwv.custody.ledger import Ledger
from bwv.custody.note import open_checkpoint
from bwv.custody.verify import verify_ledger
from bwv.keys import Keyring, SigningKey
from bwv.records.database import make_engine
from tests.support import ORIGIN

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _event(n: int = 0, target: str | None = "EV-1") -> Event:
    return Event(
        actor=f"officer-{n}",
        role="evidence-officer",
        action="clip.viewed",
        target=target,
        reason="case 1234",
    )


def test_leaf_is_canonical_json_with_every_field(ledger: Ledger) -> None:
    leaf = ledger.append(
        Event(
            actor="pc-1",
            role="officer",
            action="clip.ingested",
            target="EV-7",
            sha256=SHA,
            outcome=Outcome.OK,
            reason=None,
            details={"dock": "d1", "bay": 2},
        )
    )
    fields = parse_leaf(leaf.body)  # raises unless canonical
    assert fields == {
        "v": 1,
        "sequence": 0,
        "time": fields["time"],
        "actor": "pc-1",
        "role": "officer",
        "action": "clip.ingested",
        "target": "EV-7",
        "sha256": SHA,
        "outcome": "ok",
        "reason": None,
        "details": {"bay": 2, "dock": "d1"},
    }
    assert fields["time"].endswith("Z")
    assert leaf.leaf_hash == merkle.leaf_hash(leaf.body)


def test_leaf_time_is_utc(engine: Engine, signer: SigningKey) -> None:
    tz = datetime(2026, 11, 25, 20, 0, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=2))
    )
    ledger = Ledger(engine, ORIGIN, signer, clock=lambda: tz)
    fields = parse_leaf(ledger.append(_event()).body)
    assert fields["time"] == "2026-11-25T20:00:00.000000Z"


def test_sequence_numbers_start_at_zero_and_have_no_gaps(ledger: Ledger) -> None:
    seqs = [ledger.append(_event(n)).seq for n in range(25)]
    assert seqs == list(range(25))
    assert ledger.size() == 25


def test_append_many_is_one_transaction(ledger: Ledger) -> None:
    leaves = ledger.append_many([_event(n) for n in range(5)])
    assert [leaf.seq for leaf in leaves] == [0, 1, 2, 3, 4]


def test_event_without_actor_is_refused_before_anything_is_written(ledger: Ledger) -> None:
    with pytest.raises(BwvError, match="non-empty actor"):
        ledger.append(Event(actor=" ", role="officer", action="clip.viewed"))
    assert ledger.size() == 0


def test_event_with_bad_sha256_is_refused() -> None:
    with pytest.raises(BwvError, match="SHA-256"):
        Event(actor="a", role="officer", action="clip.ingested", sha256="ABC")


def test_inclusion_proofs_from_stored_nodes_verify(ledger: Ledger) -> None:
    leaves = [ledger.append(_event(n)) for n in range(37)]
    for size in (1, 2, 5, 16, 37):
        root = ledger.root(size)
        for leaf in leaves[:size]:
            merkle.verify_inclusion(
                leaf.leaf_hash, leaf.seq, size, ledger.inclusion_proof(leaf.seq, size), root
            )


def test_root_matches_a_tree_recomputed_from_the_leaves(ledger: Ledger) -> None:
    leaves = ledger.append_many([_event(n) for n in range(23)])
    levels = merkle.tree_levels([merkle.leaf_hash(leaf.body) for leaf in leaves])
    assert ledger.root(23) == merkle.root_hash(merkle.levels_lookup(levels), 23)


def test_consistency_proofs_from_stored_nodes_verify(ledger: Ledger) -> None:
    ledger.append_many([_event(n) for n in range(30)])
    for size1 in (1, 3, 8, 17, 30):
        merkle.verify_consistency(
            size1, 30, ledger.consistency_proof(size1, 30), ledger.root(size1), ledger.root(30)
        )


def test_proof_beyond_the_ledger_is_refused(ledger: Ledger) -> None:
    ledger.append_many([_event(n) for n in range(3)])
    with pytest.raises(ProofError, match="holds 3 leaves"):
        ledger.inclusion_proof(1, 9)


def test_checkpoint_every_n_leaves(ledger: Ledger, keyring: Keyring) -> None:
    for n in range(25):
        ledger.append(_event(n))
    sizes = [cp.size for cp in ledger.checkpoints()]
    assert sizes == [1, 10, 20]  # the first leaf, then every 10 (the fixture's setting)
    for cp in ledger.checkpoints():
        checkpoint = open_checkpoint(cp.note, keyring, ORIGIN)
        assert checkpoint.root == ledger.root(checkpoint.size)


def test_checkpoint_every_t_seconds(engine: Engine, signer: SigningKey) -> None:
    now = [datetime(2026, 11, 25, 12, 0, tzinfo=UTC)]
    ledger = Ledger(
        engine,
        ORIGIN,
        signer,
        checkpoint_every_leaves=1000,
        checkpoint_every_seconds=60,
        clock=lambda: now[0],
    )
    ledger.append(_event())
    ledger.append(_event())
    assert [cp.size for cp in ledger.checkpoints()] == [1]
    now[0] += timedelta(seconds=61)
    ledger.append(_event())
    assert [cp.size for cp in ledger.checkpoints()] == [1, 3]


def test_idle_log_gets_a_checkpoint_when_one_is_due(engine: Engine, signer: SigningKey) -> None:
    now = [datetime(2026, 11, 25, 12, 0, tzinfo=UTC)]
    ledger = Ledger(
        engine,
        ORIGIN,
        signer,
        checkpoint_every_leaves=1000,
        checkpoint_every_seconds=60,
        clock=lambda: now[0],
    )
    ledger.append_many([_event(), _event()])
    ledger.append(_event())
    assert ledger.checkpoint(force=False).size == 2
    now[0] += timedelta(seconds=61)
    assert ledger.checkpoint(force=False).size == 3


def test_checkpoint_on_demand_covers_every_leaf(ledger: Ledger) -> None:
    ledger.append_many([_event(n) for n in range(4)])
    assert ledger.checkpoint().size == 4
    assert ledger.checkpoint().id == ledger.checkpoint().id  # nothing new: no new checkpoint


def test_concurrent_threads_share_transactions_and_stay_gap_free(
    ledger: Ledger, keyring: Keyring
) -> None:
    def work() -> None:
        for n in range(40):
            ledger.append(_event(n))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.size() == 320
    report = verify_ledger(ledger.engine, keyring, ORIGIN)
    assert report.ok, report.findings


def test_leaves_for_a_clip_in_order(ledger: Ledger) -> None:
    for n in range(6):
        ledger.append(_event(n, target=f"EV-{n % 2}"))
    assert [leaf.seq for leaf in ledger.leaves_for("EV-1")] == [1, 3, 5]


def _append_in_process(url: str, key_bytes: bytes, worker: int, count: int) -> None:
    signer = SigningKey(ORIGIN, Ed25519PrivateKey.from_private_bytes(key_bytes))
    engine = make_engine(url)
    ledger = Ledger(engine, ORIGIN, signer, checkpoint_every_leaves=100)
    threads = [
        threading.Thread(
            target=lambda t=t: [
                ledger.append(
                    Event(
                        actor=f"proc-{worker}",
                        role="dock",
                        action="test.append",
                        details={"thread": t, "n": n},
                    )
                )
                for n in range(count // 4)
            ]
        )
        for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()


@pytest.mark.slow
def test_four_processes_by_500_appends_get_unique_gap_free_indices(engine: Engine) -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes_raw()
    url = engine.url.render_as_string(hide_password=False)
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=_append_in_process, args=(url, raw, w, 500)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(text("SELECT seq FROM ledger_leaf ORDER BY seq"))]
        bodies = [json.loads(r[0]) for r in conn.execute(text("SELECT body FROM ledger_leaf"))]
    assert seqs == list(range(2000))
    per_worker = {w: sum(b["actor"] == f"proc-{w}" for b in bodies) for w in range(4)}
    assert per_worker == {0: 500, 1: 500, 2: 500, 3: 500}
    keyring = Keyring([SigningKey(ORIGIN, key).verifier])
    report = verify_ledger(engine, keyring, ORIGIN)
    assert report.ok, report.findings
    assert report.size == 2000 and report.checkpoints >= 4
