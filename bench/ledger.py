#!/usr/bin/env python
"""Custody ledger benchmark: durable appends, full verification, inclusion proofs.

    python bench/ledger.py            # full run (~5 minutes)
    python bench/ledger.py --quick    # smoke run (100,000-leaf ledger, fewer appends)

Appends are measured on SQLite (a file in a temporary directory, WAL, synchronous=FULL, as
bwv.records.database.make_engine sets it up) and on a real PostgreSQL server
(tests.support.pgserver), in one process
and in two, each with N threads appending concurrently through ``Ledger.append`` (group commit).
A single thread appending sequentially is reported as the fsync-bound baseline. The time is the
wall time from the moment every process has passed a start barrier until the last append of the
last thread has returned (i.e. is durable). Each figure is the median of several repeats.

Afterwards the ledger written by the append runs is verified in full (gap-free sequence numbers,
every node, every checkpoint), and a 1,000,000-leaf ledger is built with ``Ledger.append_many``
to time ``verify_ledger`` and ``Ledger.inclusion_proof``.

The output ends with a Markdown table that can be pasted into the README.
"""

from __future__ import annotations

import argparse
import copy
import math
import multiprocessing as mp
import os
import platform
import queue
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Barrier as MpBarrier
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from bench.common import Measure, cpu_model, maybe_postgres
from bwv.custody import merkle
from bwv.custody.leaf import Event, new_event_id
from bwv.custody.ledger import Ledger
from bwv.custody.verify import LedgerReport, verify_ledger
from bwv.keys import Keyring, SigningKey
from bwv.records.database import make_engine, upgrade

ORIGIN = "bench.bwv.example/custody"
KEY_NAME = "bench.bwv.example"
EVENT = Event(
    actor="officer-17",
    role="evidence-officer",
    action="clip.viewed",
    target="EV-2026-000123",
    reason="case 1234",
    details={"clip": "00:12:30-00:13:05", "station": "north", "via": "web"},
)


def _event() -> Event:
    """EVENT as a new event (an id of its own: appending one Event twice is one leaf)."""
    return _renamed(EVENT)


BUILD_BATCH = 10_000
GOAL_APPENDS = {"sqlite": 5_000.0, "postgresql": 3_000.0}
GOAL_VERIFY_S = 5.0
GOAL_PROOF_MS = 1.0
BACKENDS = ("sqlite", "postgresql")
LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Settings:
    quick: bool
    threads: int
    repeats: int
    appends: int  # per concurrent run, over all processes and threads
    sequential: int  # per sequential (one thread) run
    leaves: int  # size of the ledger built for verification and proofs
    pg_leaves: int  # the same on PostgreSQL (0: skip)
    proofs: int
    verify_repeats: int
    postgres: bool


# --- append runs (in child processes) ----------------------------------------------------------


def _signer(private_raw: bytes) -> SigningKey:
    return SigningKey(KEY_NAME, Ed25519PrivateKey.from_private_bytes(private_raw))


def _append_worker(
    url: str,
    private_raw: bytes,
    threads: int,
    per_thread: int,
    start_barrier: MpBarrier,
    results: MpQueue[tuple[Any, ...]],
) -> None:
    """One process: its own engine and Ledger, ``threads`` threads appending ``per_thread`` each.

    Reports (start, end, seqs): monotonic times (CLOCK_MONOTONIC, shared by all processes) of
    passing the start barrier and of the last append returning, and every sequence number got.
    """
    engine: Engine | None = None
    try:
        engine = make_engine(url)
        ledger = Ledger(engine, ORIGIN, _signer(private_raw))
        # Warm-up, untimed: opens the connection and reads the frontier and latest checkpoint.
        warm = [ledger.append(_event()).seq]
        got: list[list[int]] = [[] for _ in range(threads)]
        errors: list[BaseException] = []
        go = threading.Barrier(threads + 1)

        def run(out: list[int]) -> None:
            try:
                events = [_renamed(EVENT) for _ in range(per_thread)]  # made before the clock
                go.wait()
                for event in events:
                    out.append(ledger.append(event).seq)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=run, args=(out,), daemon=True) for out in got]
        for w in workers:
            w.start()
        start_barrier.wait(timeout=300)
        start = time.monotonic()
        go.wait()
        for w in workers:
            w.join()
        end = time.monotonic()
        if errors:
            raise errors[0]
        results.put(("ok", start, end, warm + [s for out in got for s in out]))
    except BaseException:
        start_barrier.abort()  # the other processes stop waiting for this one
        results.put(("error", traceback.format_exc()))
        raise
    finally:
        if engine is not None:
            engine.dispose()


@dataclass(frozen=True)
class AppendRun:
    appends: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.appends / self.seconds


def _ledger_size(url: str) -> int:
    engine = make_engine(url)
    try:
        return Ledger(engine, ORIGIN).size()
    finally:
        engine.dispose()


def run_appends(url: str, private_raw: bytes, procs: int, threads: int, total: int) -> AppendRun:
    """``procs`` processes x ``threads`` threads appending ``total`` events between them."""
    per_thread = max(1, math.ceil(total / (procs * threads)))
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(procs)
    results: MpQueue[tuple[Any, ...]] = ctx.Queue()
    before = _ledger_size(url)
    children = [
        ctx.Process(
            target=_append_worker,
            args=(url, private_raw, threads, per_thread, barrier, results),
            daemon=True,
        )
        for _ in range(procs)
    ]
    for c in children:
        c.start()
    reports: list[tuple[Any, ...]] = []
    try:
        for _ in children:
            try:
                report = results.get(timeout=600)
            except queue.Empty:
                raise RuntimeError("an append worker did not report within 600 s") from None
            if report[0] != "ok":
                raise RuntimeError(f"an append worker failed:\n{report[1]}")
            reports.append(report)
    finally:
        for c in children:
            c.join(timeout=30)
            if c.is_alive():
                c.terminate()
    start = min(r[1] for r in reports)
    end = max(r[2] for r in reports)
    seqs = sorted(s for r in reports for s in r[3])
    # Every append got its own sequence number, and together they are exactly the new leaves.
    expected = list(range(before, before + procs * (threads * per_thread + 1)))
    if seqs != expected:
        raise AssertionError(
            f"sequence numbers are not unique and gap-free: {len(seqs)} appends, "
            f"{len(set(seqs))} distinct, range {seqs[0]}..{seqs[-1]}, expected "
            f"{expected[0]}..{expected[-1]}"
        )
    if _ledger_size(url) != expected[-1] + 1:
        raise AssertionError("the ledger size does not match the appends made")
    return AppendRun(procs * threads * per_thread, end - start)


# --- results -----------------------------------------------------------------------------------


@dataclass
class Results:
    appends: dict[tuple[str, int, int], Measure] = field(default_factory=dict)
    build_s: dict[str, float] = field(default_factory=dict)
    verify_s: dict[str, Measure] = field(default_factory=dict)
    proof_ms: dict[str, Measure] = field(default_factory=dict)
    leaves: dict[str, int] = field(default_factory=dict)
    audit: dict[str, LedgerReport] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the benchmark, per backend ----------------------------------------------------------------


def bench_appends(
    backend: str, url: str, key: SigningKey, private_raw: bytes, s: Settings, res: Results
) -> None:
    configs = [(1, 1, s.sequential), (1, s.threads, s.appends), (2, s.threads, s.appends)]
    for repeat in range(s.repeats):
        for procs, threads, total in configs:
            run = run_appends(url, private_raw, procs, threads, total)
            res.appends.setdefault((backend, procs, threads), Measure()).values.append(run.rate)
            log(
                f"  {LABEL[backend]}: {procs} process(es) x {threads} thread(s), repeat "
                f"{repeat + 1}/{s.repeats}: {run.appends:,} appends in {run.seconds:.2f} s "
                f"= {run.rate:,.0f}/s"
            )
    engine = make_engine(url)
    try:
        t = time.perf_counter()
        report = verify_ledger(engine, Keyring([key.verifier]), ORIGIN)
        elapsed = time.perf_counter() - t
        size = Ledger(engine, ORIGIN).size()
    finally:
        engine.dispose()
    if not report.ok or report.size != size:
        raise AssertionError(f"{LABEL[backend]} ledger after the append runs: {report.findings}")
    res.audit[backend] = report
    log(
        f"  {LABEL[backend]}: verify_ledger after the append runs: ok, {report.size:,} leaves, "
        f"{report.nodes:,} nodes, {report.checkpoints} checkpoints ({elapsed:.2f} s)"
    )


def _renamed(event: Event) -> Event:
    """The event with a new id, without canonicalising its details again (as Event() would):
    each leaf of the built ledger is an event of its own."""
    fresh = copy.copy(event)
    object.__setattr__(fresh, "id", new_event_id())
    return fresh


def _build_events() -> list[Event]:
    """A batch's worth of varied events (built once: Event() canonicalises its details)."""
    actions = ["clip.viewed", "clip.exported", "clip.redacted", "evidence.ingested"]
    pool = [
        Event(
            actor=f"officer-{i % 97}",
            role="evidence-officer",
            action=actions[i % len(actions)],
            target=f"EV-2026-{i % 5000:06d}",
            reason=f"case {1000 + i % 300}",
            details={"station": "north", "via": "web", "n": i},
        )
        for i in range(1000)
    ]
    return [pool[i % len(pool)] for i in range(BUILD_BATCH)]


def bench_large(
    backend: str, url: str, key: SigningKey, leaves: int, s: Settings, res: Results
) -> None:
    """Build a ``leaves``-leaf ledger with append_many, then time full verification and proofs."""
    engine = make_engine(url)
    try:
        ledger = Ledger(engine, ORIGIN, key)
        batch = _build_events()
        t = time.perf_counter()
        done = 0
        while done < leaves:
            n = min(BUILD_BATCH, leaves - done)
            ledger.append_many([_renamed(e) for e in batch[:n]])
            done += n
            if done % 100_000 == 0:
                rate = done / (time.perf_counter() - t)
                log(f"  {LABEL[backend]}: built {done:,}/{leaves:,} leaves ({rate:,.0f}/s)")
        res.build_s[backend] = time.perf_counter() - t
        res.leaves[backend] = leaves
        size = ledger.size()
        if size != leaves:
            raise AssertionError(f"{LABEL[backend]}: built {size:,} leaves, not {leaves:,}")
        if backend == "postgresql":
            # What autovacuum does within a minute of a bulk load; without it the planner works
            # from an empty table's statistics, and the first proofs are ~0.2 ms slower.
            with engine.begin() as conn:
                conn.execute(text("ANALYZE ledger_leaf, merkle_node, ledger_checkpoint"))

        keyring = Keyring([key.verifier])
        measure = res.verify_s.setdefault(backend, Measure())
        for repeat in range(s.verify_repeats):
            t = time.perf_counter()
            report = verify_ledger(engine, keyring, ORIGIN)
            measure.values.append(time.perf_counter() - t)
            if not report.ok or report.size != leaves:
                raise AssertionError(f"{LABEL[backend]}: verification failed: {report.findings}")
            log(
                f"  {LABEL[backend]}: verify_ledger of {leaves:,} leaves, repeat "
                f"{repeat + 1}/{s.verify_repeats}: {measure.values[-1]:.2f} s "
                f"({report.checkpoints} checkpoints, {report.nodes:,} nodes)"
            )

        rng = random.Random(1234)
        for _ in range(20):  # warm-up: pool, statement caches
            ledger.inclusion_proof(rng.randrange(size), size)
        times: list[float] = []
        for _ in range(s.proofs):
            index = rng.randrange(size)
            t = time.perf_counter()
            ledger.inclusion_proof(index, size)
            times.append((time.perf_counter() - t) * 1000)
        res.proof_ms[backend] = Measure(times)
        # The proofs are right: they lead to the root of the latest signed checkpoint.
        signed = ledger.checkpoints()
        latest = signed[-1] if signed else None
        if latest is None or latest.size != size:
            raise AssertionError(f"{LABEL[backend]}: no checkpoint at {size:,} leaves")
        for _ in range(20):
            index = rng.randrange(size)
            proof = ledger.inclusion_proof(index, size)
            leaf = ledger.leaf(index)
            merkle.verify_inclusion(leaf.leaf_hash, index, size, proof, latest.checkpoint.root)
        q = statistics.quantiles(times, n=100)
        summary = (
            f"{s.proofs:,} inclusion proofs at {size:,} leaves: median "
            f"{statistics.median(times):.3f} ms, p90 {q[89]:.3f} ms, p99 {q[98]:.3f} ms"
        )
        log(f"  {LABEL[backend]}: {summary}")
        res.notes.append(f"{LABEL[backend]} proofs: {summary}.")
    finally:
        engine.dispose()


# --- environment -------------------------------------------------------------------------------


def _pg_settings(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
            fsync = conn.execute(text("SHOW fsync")).scalar_one()
            sync = conn.execute(text("SHOW synchronous_commit")).scalar_one()
            method = conn.execute(text("SHOW wal_sync_method")).scalar_one()
    finally:
        engine.dispose()
    return (
        f"PostgreSQL {version.split()[0]} (fsync={fsync}, synchronous_commit={sync}, "
        f"wal_sync_method={method})"
    )


def _fsync_us(directory: str) -> float:
    """Median time of a 4 KiB write + fsync in ``directory``, as a sanity check of the disk."""
    path = os.path.join(directory, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        times = []
        for _ in range(200):
            t = time.perf_counter()
            os.pwrite(fd, b"x" * 4096, 0)
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    return statistics.median(times) * 1e6


# --- report ------------------------------------------------------------------------------------


def _rate(v: float) -> str:
    return f"{v:,.0f}"


def _mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def render(res: Results, s: Settings, machine: list[str], backends: list[str]) -> str:
    head = "| Measurement | " + " | ".join(LABEL[b] for b in backends) + " | Goal |"
    lines = [head, "|---|" + "---:|" * len(backends) + "---|"]

    def row(name: str, cells: list[str], goal: str) -> None:
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {goal} |")

    def append_cell(b: str, procs: int, threads: int, goal: bool) -> str:
        m = res.appends.get((b, procs, threads))
        if m is None:
            return "n/a"
        cell = f"{_rate(m.median)}/s{m.spread(_rate)}"
        return f"{cell} {_mark(m.median >= GOAL_APPENDS[b])}" if goal else cell

    goal_text = " / ".join(f"≥ {GOAL_APPENDS[b]:,.0f}/s {LABEL[b]}" for b in backends)
    row(
        "Durable appends, 1 process x 1 thread (sequential baseline: one commit per append)",
        [append_cell(b, 1, 1, False) for b in backends],
        "-",
    )
    for procs in (1, 2):
        row(
            f"Durable appends, {procs} process{'es' if procs > 1 else ''} x {s.threads} threads"
            f" each (group commit)",
            [append_cell(b, procs, s.threads, True) for b in backends],
            goal_text,
        )

    def n_leaves(b: str) -> str:
        return f"{res.leaves[b]:,}" if b in res.leaves else "-"

    def by_backend(values: dict[str, Any], fmt: Callable[[str], str]) -> list[str]:
        return [fmt(b) if b in values else "not run" for b in backends]

    row(
        f"Build ledger with `append_many` ({BUILD_BATCH:,}/batch): leaves, seconds",
        by_backend(res.build_s, lambda b: f"{n_leaves(b)} in {res.build_s[b]:.1f} s"),
        "-",
    )
    row(
        "Full verification (`verify_ledger`): seconds",
        by_backend(
            res.verify_s,
            lambda b: (
                f"{res.verify_s[b].median:.2f} s{res.verify_s[b].spread(lambda v: f'{v:.2f}')}"
                f" at {n_leaves(b)} {_mark(res.verify_s[b].median <= GOAL_VERIFY_S)}"
            ),
        ),
        f"≤ {GOAL_VERIFY_S:.0f} s at 1,000,000 leaves",
    )
    row(
        f"Inclusion proof (`inclusion_proof`), median of {s.proofs:,} random leaves",
        by_backend(
            res.proof_ms,
            lambda b: (
                f"{res.proof_ms[b].median:.3f} ms at {n_leaves(b)} "
                f"{_mark(res.proof_ms[b].median <= GOAL_PROOF_MS)}"
            ),
        ),
        f"≤ {GOAL_PROOF_MS:.0f} ms at 1,000,000 leaves",
    )
    out = ["\n".join(lines), ""]
    out += [f"- {m}" for m in machine]
    out += [f"- {n}" for n in res.notes]
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: fewer appends, 100k leaves")
    p.add_argument("--threads", type=int, default=32, help="appending threads per process")
    p.add_argument("--repeats", type=int, help="repeats of each append measurement")
    p.add_argument("--leaves", type=int, help="leaves of the SQLite verification/proof ledger")
    p.add_argument("--pg-leaves", type=int, help="the same on PostgreSQL (0: skip)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    a = p.parse_args(argv)
    leaves = a.leaves or (100_000 if a.quick else 1_000_000)
    return Settings(
        quick=a.quick,
        threads=a.threads,
        repeats=a.repeats or (1 if a.quick else 3),
        appends=4_000 if a.quick else 20_000,
        sequential=500 if a.quick else 2_000,
        leaves=leaves,
        pg_leaves=leaves if a.pg_leaves is None else a.pg_leaves,
        proofs=200 if a.quick else 1_000,
        verify_repeats=1 if a.quick else 3,
        postgres=not a.no_postgres,
    )


def main(argv: list[str] | None = None) -> int:
    s = parse_args(argv)
    started = time.perf_counter()
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    private = Ed25519PrivateKey.generate()
    private_raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    key = _signer(private_raw)
    res = Results()
    backends = [b for b in BACKENDS if b == "sqlite" or s.postgres]
    with tempfile.TemporaryDirectory(prefix="bwv-bench-") as tmp, maybe_postgres(s.postgres) as pg:
        machine = [
            f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
            f"{cpu_model()}; Python {platform.python_version()} on {platform.platform()}",
            f"Disk: 4 KiB write+fsync median {_fsync_us(tmp):.0f} µs in the temp dir; "
            f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)",
        ]
        urls: dict[str, tuple[str, str]] = {}
        urls["sqlite"] = (f"sqlite:///{tmp}/appends.db", f"sqlite:///{tmp}/large.db")
        if pg is not None:
            urls["postgresql"] = (pg.new_database(), pg.new_database())
            machine.append(_pg_settings(urls["postgresql"][0]))
        for append_url, large_url in urls.values():
            for url in (append_url, large_url):
                engine = make_engine(url)
                upgrade(engine)
                engine.dispose()
        for b in backends:
            log(f"{LABEL[b]}: append throughput ({s.threads} threads per process)")
            bench_appends(b, urls[b][0], key, private_raw, s, res)
        for b in backends:
            leaves = s.leaves if b == "sqlite" else s.pg_leaves
            if leaves <= 0:
                res.notes.append(f"{LABEL[b]}: verification and proofs not run (--pg-leaves 0)")
                continue
            log(f"{LABEL[b]}: {leaves:,}-leaf ledger: build, verify, proofs")
            bench_large(b, urls[b][1], key, leaves, s, res)
    total = time.perf_counter() - started
    res.notes.append(
        f"Appends: event {EVENT.action} by {EVENT.actor}; {s.threads} threads per process "
        f"(`--threads`); each process has its own engine and Ledger; wall time from a start "
        f"barrier to the last durable append; median (min-max) of {s.repeats} repeat(s) of "
        f"{s.appends:,} appends ({s.sequential:,} sequential)."
    )
    res.notes.append(
        "After the append runs each backend's ledger passed `verify_ledger` ("
        + "; ".join(
            f"{LABEL[b]}: {r.size:,} leaves, {r.checkpoints} checkpoints"
            for b, r in res.audit.items()
        )
        + "), and every run's sequence numbers were unique and gap-free."
    )
    res.notes.append(
        f"Verification: median of {s.verify_repeats} run(s). Proofs: {s.proofs:,} random leaves "
        f"after 20 warm-up proofs, checked against the latest signed checkpoint; PostgreSQL "
        f"tables ANALYZEd after the bulk build (as autovacuum would)."
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    res.notes.append(
        f"Run: `python bench/ledger.py{' --quick' if s.quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d}, total {total:.0f} s; load average before {load_before}, "
        f"after {load} (other work on the machine skews the figures)."
    )
    print()
    print(render(res, s, machine, backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())
