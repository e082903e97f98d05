#!/usr/bin/env python
"""People-and-policy API benchmark: search at scale over TLS, and retention run throughput.

    python bench/api.py                # full run: 20,000-clip search, 2,000-clip retention, x3
    python bench/api.py --quick        # smoke run: 2,000-clip search, 300-clip retention
    python bench/api.py --clips 50000 --no-postgres

Both parts run on the embedded default (SQLite + LocalStore) and, when PostgreSQL's server
binaries are installed (tests/support/pgserver.py), on a throwaway PostgreSQL server too.

(1) Search at scale. N clip rows are bulk-inserted straight into the ``clip`` table (no ledger
    leaves for them: only the rows matter to search) with a realistic spread: ~200 officers with
    one or two cameras each, 12 docks of 4 bays, recorded times over the past year (2% unknown),
    ingested hours to days later, categories (evidential / non-evidential / uncategorised) with
    their retention dates, a few holds, and clips past their date marked deleted as a retention
    run would. A real ``bwv serve`` process (tests/support/ingestserver.py) then answers one
    persistent httpx client over TLS with an evidence-officer token. Five kinds of request,
    interleaved round-robin so that noise on the machine hits all alike:

    - ``GET /api/v1/health``: TLS + HTTP + the app, no auth, no leaf (the baseline)
    - ``GET /api/v1/me``: bearer-token auth, no leaf
    - ``GET /api/v1/clips?limit=50``: auth + the search query + its count + one leaf
    - ``GET /api/v1/clips?officer=X&recorded_from=..&recorded_to=..``: a random officer's clips
      over a random 30-day window (auth + filtered query + count + leaf)
    - ``GET /api/v1/clips/{id}``: a random clip (auth + view + leaf)

    Each repeat times R requests of each kind (wall time of the client call) and reports the
    median and p95 in ms and the median's ratio to the health baseline of the same repeat.

(2) Retention run throughput. A fresh data dir per repeat holds M clips, each with a real
    object in the LocalStore (4 KiB of random bytes put under their SHA-256), recorded 40-400
    days ago and uncategorised (kept 31 days), so all are due. Timed: ``run_retention(...,
    dry_run=True)`` and the real run (each deletion: a claim transaction, the unlink, a tombstone
    leaf transaction). The baseline in the same data dir and repeat: M ``Ledger.append`` calls of
    a trivial event, one after another. The ratio is the time per deleted clip over the time per
    append.

Every figure is the median (min-max) of the repeats. The output ends with a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import secrets
import sqlite3
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from sqlalchemy import Engine, func, insert, select, text  # noqa: E402

from bench.common import Measure, cpu_model, maybe_postgres, version  # noqa: E402
from bwv.access import add_user  # noqa: E402
from bwv.custody.leaf import Event  # noqa: E402
from bwv.records.clips import EXPORT  # noqa: E402
from bwv.records.database import make_engine  # noqa: E402
from bwv.records.tables import Clip  # noqa: E402
from bwv.services.context import Context  # noqa: E402
from bwv.services.retention import run_retention  # noqa: E402
from bwv.store import open_store  # noqa: E402
from tests.support.ingestserver import init_data_dir, make_server  # noqa: E402
from tests.support.pgserver import find_bindir  # noqa: E402

CLIP = Clip.__table__
# The search's count of copies per clip, as bwv.records.clips.search_clips builds it.
_EXPORTS = (
    select(func.count()).select_from(EXPORT).where(EXPORT.c.clip_id == CLIP.c.id).scalar_subquery()
)
BACKENDS = ("sqlite", "postgresql")
LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
KINDS = ("health", "me", "list", "filtered", "view")
KIND_LABEL = {
    "health": "`GET /health` (baseline: TLS + HTTP + app)",
    "me": "`GET /me` (auth, no leaf)",
    "list": "`GET /clips?limit=50` (auth + query + count + leaf)",
    "filtered": "`GET /clips?officer=&recorded_from=&recorded_to=` (30 days)",
    "view": "`GET /clips/{id}` (view + leaf)",
}
OFFICERS = 200
DOCKS = 12
BAYS = 4
CATEGORY_DAYS = {"evidential": 6 * 365 + 2, "non-evidential": 31, "uncategorised": 31}
CATEGORIES = tuple(CATEGORY_DAYS)
OBJECT_BYTES = 4096
WINDOW = timedelta(days=30)
SEED_BATCH = 5_000


@dataclass(frozen=True)
class Settings:
    quick: bool
    clips: int  # rows seeded for search
    requests: int  # per kind per repeat
    retention_clips: int
    repeats: int
    postgres: bool


@dataclass
class Results:
    # (backend, kind) -> per-repeat medians / p95s / ratios to health
    median_ms: dict[tuple[str, str], Measure] = field(default_factory=dict)
    p95_ms: dict[tuple[str, str], Measure] = field(default_factory=dict)
    ratio: dict[tuple[str, str], Measure] = field(default_factory=dict)
    append_rate: dict[str, Measure] = field(default_factory=dict)  # appends/s
    dry_s: dict[str, Measure] = field(default_factory=dict)
    delete_rate: dict[str, Measure] = field(default_factory=dict)  # clips/s
    delete_ratio: dict[str, Measure] = field(default_factory=dict)  # per clip / per append
    seed_s: dict[str, float] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _add(store: dict[Any, Measure], key: Any, value: float) -> None:
    store.setdefault(key, Measure()).values.append(value)


# --- seeding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    officers: list[str]
    cameras: dict[str, list[str]]  # officer -> camera serials

    @classmethod
    def make(cls, rng: random.Random) -> Fleet:
        officers = [f"pc-{n:04d}" for n in range(1, OFFICERS + 1)]
        cameras: dict[str, list[str]] = {}
        serial = 0
        for officer in officers:
            cameras[officer] = []
            for _ in range(1 if rng.random() < 0.7 else 2):
                serial += 1
                cameras[officer].append(f"CAM-{serial:05d}")
        return cls(officers, cameras)


def _sha() -> str:
    return secrets.token_hex(32)


def _evidence_id(when: datetime) -> str:
    return f"EV-{when:%Y%m%d}-{secrets.token_hex(4).upper()}"


def _receipt(evidence_id: str, sha256: str, size: int, seq: int, when: datetime) -> str:
    """About the size and shape of a real signed receipt (the service never checks it here)."""
    return (
        f'{{"receipt": {{"evidence_id": "{evidence_id}", "sha256": "{sha256}", "size": {size}, '
        f'"ledger_index": {seq}, "received_at": "{when:%Y-%m-%dT%H:%M:%S.%fZ}", '
        f'"service": "bwv.local/custody"}}, "signature": "{secrets.token_urlsafe(64)}"}}'
    )


def search_rows(n: int, now: datetime, fleet: Fleet, rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    year = 365 * 86400
    for i in range(n):
        officer = rng.choice(fleet.officers)
        camera = rng.choice(fleet.cameras[officer])
        dock = rng.randrange(DOCKS)
        recorded = now - timedelta(seconds=rng.uniform(3600, year))
        ingested = recorded + timedelta(seconds=rng.uniform(600, 4 * 86400))
        if ingested > now:
            ingested = now - timedelta(seconds=rng.uniform(0, 600))
        known = rng.random() >= 0.02
        age = (now - recorded).days
        # Older clips have mostly been triaged; recent ones mostly not yet.
        weights = (0.15, 0.15, 0.7) if age < 14 else (0.35, 0.45, 0.2)
        category = rng.choices(CATEGORIES, weights)[0]
        case_ref = f"CASE-{rng.randrange(1, 3000):05d}" if category == "evidential" else None
        start = recorded if known else ingested
        retain_until = start + timedelta(days=CATEGORY_DAYS[category])
        held = category == "evidential" and rng.random() < 0.02
        deleted_at = retain_until + timedelta(hours=2) if retain_until < now and not held else None
        playable = rng.random() >= 0.01
        size = rng.randrange(20, 900) * 1_000_000
        sha256 = _sha()
        evidence_id = _evidence_id(ingested)
        rows.append(
            {
                "evidence_id": evidence_id,
                "sha256": sha256,
                "size": size,
                "status": "playable" if playable else "unplayable",
                "camera_serial": camera,
                "officer": officer,
                "dock": f"dock-{dock:02d}",
                "bay": str(rng.randrange(1, BAYS + 1)),
                "original_name": f"{camera}_{recorded:%Y%m%d_%H%M%S}.mp4",
                "recorded_at": recorded if known else None,
                "ingested_at": ingested,
                "container": "mov,mp4,m4a,3gp,3g2,mj2" if playable else None,
                "video_codec": "h264" if playable else None,
                "audio_codec": "aac" if playable else None,
                "duration_s": rng.uniform(20, 1800) if playable else None,
                "width": 1920 if playable else None,
                "height": 1080 if playable else None,
                "frame_rate": 30.0 if playable else None,
                "creation_time": recorded if known else None,
                "location": None,
                "probe_error": None if playable else "moov atom not found",
                "ledger_index": i,
                "receipt": _receipt(evidence_id, sha256, size, i, ingested),
                "category": category,
                "case_ref": case_ref,
                "retain_until": retain_until,
                "held": held,
                "deleted_at": deleted_at,
            }
        )
    return rows


def bulk_insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), SEED_BATCH):
            conn.execute(insert(CLIP), rows[start : start + SEED_BATCH])


def analyze(engine: Engine, backend: str) -> None:
    """PostgreSQL: what autovacuum does within a minute of a bulk load. SQLite: nothing (the
    service never runs ANALYZE, so its planner has no statistics; that is what is measured)."""
    if backend == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE clip"))


# --- (1) search over TLS -----------------------------------------------------------------------


@dataclass
class Workload:
    token: str
    officers: list[str]
    evidence_ids: list[str]
    oldest: datetime
    now: datetime


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_for(kind: str, w: Workload, rng: random.Random) -> tuple[str, dict[str, str]]:
    if kind == "health":
        return "/api/v1/health", {}
    if kind == "me":
        return "/api/v1/me", {}
    if kind == "list":
        return "/api/v1/clips", {"limit": "50"}
    if kind == "filtered":
        span = (w.now - WINDOW - w.oldest).total_seconds()
        start = w.oldest + timedelta(seconds=rng.uniform(0, span))
        return "/api/v1/clips", {
            "officer": rng.choice(w.officers),
            "recorded_from": _iso(start),
            "recorded_to": _iso(start + WINDOW),
        }
    return f"/api/v1/clips/{rng.choice(w.evidence_ids)}", {}


def time_requests(
    http: httpx.Client, w: Workload, count: int, rng: random.Random
) -> dict[str, list[float]]:
    """``count`` requests of each kind, round-robin; milliseconds per request, by kind."""
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    auth = {"Authorization": f"Bearer {w.token}"}
    for _ in range(count):
        for kind in KINDS:
            path, params = request_for(kind, w, rng)
            headers = {} if kind == "health" else auth
            t = time.perf_counter()
            answer = http.get(path, params=params, headers=headers)
            elapsed = time.perf_counter() - t
            if answer.status_code != 200:
                raise RuntimeError(f"{kind} {path}: {answer.status_code} {answer.text[:300]}")
            times[kind].append(elapsed * 1000)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def bench_search(
    backend: str, root: Path, database_url: str | None, s: Settings, res: Results
) -> None:
    extra: dict[str, object] = {} if database_url is None else {"database_url": database_url}
    server = make_server(root, **extra)
    ctx = Context(server.settings)
    rng = random.Random(20260101)
    try:
        now = datetime.now(UTC)
        fleet = Fleet.make(rng)
        rows = search_rows(s.clips, now, fleet, rng)
        t = time.perf_counter()
        bulk_insert(ctx.engine, rows)
        analyze(ctx.engine, backend)
        res.seed_s[backend] = time.perf_counter() - t
        log(f"  {LABEL[backend]}: seeded {len(rows):,} clips in {res.seed_s[backend]:.1f} s")
        token = add_user(ctx.engine, "eo-bench", "evidence-officer", now, 30)
        res.plans[backend] = explain_search(ctx.engine, backend, fleet.officers[0], now)
        recorded = [r["recorded_at"] for r in rows if r["recorded_at"] is not None]
        workload = Workload(
            token,
            fleet.officers,
            [r["evidence_id"] for r in rows],
            min(recorded),
            now,
        )
        server.start()
        verify = ssl.create_default_context(cafile=str(server.ca))
        with httpx.Client(base_url=server.url, verify=verify, timeout=120) as http:
            time_requests(http, workload, 10, rng)  # warm-up: connection, pools, caches
            for repeat in range(s.repeats):
                times = time_requests(http, workload, s.requests, rng)
                base = statistics.median(times["health"])
                summary = []
                for kind in KINDS:
                    med = statistics.median(times[kind])
                    _add(res.median_ms, (backend, kind), med)
                    _add(res.p95_ms, (backend, kind), p95(times[kind]))
                    _add(res.ratio, (backend, kind), med / base)
                    summary.append(f"{kind} {med:.2f}")
                log(
                    f"  {LABEL[backend]}: search repeat {repeat + 1}/{s.repeats}, median ms: "
                    + ", ".join(summary)
                )
    finally:
        server.stop()
        ctx.close()


def search_queries(officer: str, now: datetime) -> dict[str, Any]:
    """The statements ``search_clips`` issues for the list and filtered requests (rebuilt here
    the way the route builds them, for EXPLAIN)."""
    base = select(CLIP, _EXPORTS.label("export_count"))
    order = (CLIP.c.recorded_at.desc().nulls_last(), CLIP.c.ingested_at.desc(), CLIP.c.id.desc())
    filtered = base.where(
        CLIP.c.officer == officer,
        CLIP.c.recorded_at >= now - timedelta(days=200),
        CLIP.c.recorded_at <= now - timedelta(days=170),
    )
    return {
        "list page": base.order_by(*order).limit(50),
        "list count": select(func.count()).select_from(base.subquery()),
        "filtered page": filtered.order_by(*order).limit(50),
    }


_PLAN_DETAIL = ("Index Cond", "Recheck Cond", "Filter", "Sort Key", "Rows Removed")


def explain_search(engine: Engine, backend: str, officer: str, now: datetime) -> list[str]:
    """Each search statement's plan (node names only) and its median time run in-process, on
    its own (no HTTP, no auth, no leaf), over 20 runs."""
    out = []
    with engine.connect() as conn:
        for name, query in search_queries(officer, now).items():
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            if backend == "sqlite":
                plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
                steps = [row[-1] for row in plan]
            else:
                plan = conn.exec_driver_sql(f"EXPLAIN {compiled}").all()
                steps = [row[0].strip().removeprefix("->").strip() for row in plan]
                steps = [s.split("  (cost")[0] for s in steps if not s.startswith(_PLAN_DETAIL)]
            times = []
            for _ in range(20):
                t = time.perf_counter()
                conn.execute(query).all()
                times.append((time.perf_counter() - t) * 1000)
            out.append(f"{name}: {statistics.median(times):.2f} ms in-process; " + "; ".join(steps))
    return out


# --- (2) retention ----------------------------------------------------------------------------


def seed_due_clips(ctx: Context, root: Path, m: int, now: datetime, rng: random.Random) -> None:
    """``m`` uncategorised clips, all past their 31 days, each with a real stored object."""
    store = open_store(ctx.settings.store_url)
    staging = root / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(m):
        data = os.urandom(OBJECT_BYTES)
        sha256 = hashlib.sha256(data).hexdigest()
        path = staging / sha256
        path.write_bytes(data)
        recorded = now - timedelta(days=rng.uniform(40, 400))
        retain_until = recorded + timedelta(days=CATEGORY_DAYS["uncategorised"])
        store.put("originals", sha256, path, adopt=True, retain_until=retain_until)
        evidence_id = _evidence_id(recorded)
        rows.append(
            {
                "evidence_id": evidence_id,
                "sha256": sha256,
                "size": OBJECT_BYTES,
                "status": "playable",
                "camera_serial": f"CAM-{i % 250:05d}",
                "officer": f"pc-{i % OFFICERS:04d}",
                "dock": f"dock-{i % DOCKS:02d}",
                "recorded_at": recorded,
                "ingested_at": recorded + timedelta(hours=6),
                "ledger_index": i,
                "receipt": _receipt(evidence_id, sha256, OBJECT_BYTES, i, recorded),
                "category": "uncategorised",
                "retain_until": retain_until,
            }
        )
    bulk_insert(ctx.engine, rows)


def bench_retention(
    backend: str,
    root: Path,
    database_url: Callable[[], str | None],
    s: Settings,
    res: Results,
) -> None:
    m = s.retention_clips
    for repeat in range(s.repeats):
        url = database_url()
        extra: dict[str, object] = {} if url is None else {"database_url": url}
        settings = init_data_dir(root / f"retention-{repeat}", **extra)
        ctx = Context(settings)
        try:
            now = datetime.now(UTC)
            seed_due_clips(ctx, root / f"retention-{repeat}", m, now, random.Random(repeat))
            analyze(ctx.engine, backend)
            store = open_store(settings.store_url)
            ctx.ledger.append(Event("bench", "system", "bench.warmup"))  # opens the pool

            event = Event("bench", "system", "bench.append", target="EV-20260101-00000000")
            t = time.perf_counter()
            for _ in range(m):
                ctx.ledger.append(event)
            append_s = time.perf_counter() - t

            t = time.perf_counter()
            dry = run_retention(ctx, store, operator="bench", dry_run=True, now=now)
            dry_s = time.perf_counter() - t
            if len(dry.due) != m or dry.deleted:
                raise AssertionError(f"dry run: {len(dry.due)} due, {len(dry.deleted)} deleted")

            t = time.perf_counter()
            done = run_retention(ctx, store, operator="bench", dry_run=False, now=now)
            run_s = time.perf_counter() - t
            if len(done.deleted) != m or done.failures:
                raise AssertionError(
                    f"retention run deleted {len(done.deleted)} of {m}: {done.failures[:3]}"
                )
            originals = settings.data_dir / "store" / "originals"
            left = sum(1 for f in originals.rglob("*") if f.is_file())
            if left:
                raise AssertionError(f"{left} objects left in the store after the run")
            with ctx.engine.connect() as conn:
                tombstones = conn.execute(
                    text("SELECT count(*) FROM ledger_leaf WHERE action = 'clip.deleted'")
                ).scalar_one()
            if tombstones != m:
                raise AssertionError(f"{tombstones} tombstones for {m} deletions")
        finally:
            ctx.close()
        _add(res.append_rate, backend, m / append_s)
        _add(res.dry_s, backend, dry_s)
        _add(res.delete_rate, backend, m / run_s)
        _add(res.delete_ratio, backend, run_s / append_s)
        log(
            f"  {LABEL[backend]}: retention repeat {repeat + 1}/{s.repeats}: {m:,} appends "
            f"{m / append_s:,.0f}/s; dry run {dry_s:.2f} s; run {run_s:.2f} s = "
            f"{m / run_s:,.0f} clips/s ({run_s / append_s:.2f}x an append)"
        )


# --- environment -------------------------------------------------------------------------------


def _pg_version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            v = conn.execute(text("SHOW server_version")).scalar_one()
            sync = conn.execute(text("SHOW synchronous_commit")).scalar_one()
    finally:
        engine.dispose()
    return f"PostgreSQL {v.split()[0]} (synchronous_commit={sync}, initdb --no-sync, loopback TCP)"


# --- report ------------------------------------------------------------------------------------


def _ms(v: float) -> str:
    return f"{v:.2f}"


def _x(v: float) -> str:
    return f"{v:.1f}"


def render(res: Results, s: Settings, backends: list[str], machine: list[str]) -> str:
    lines = [
        "| Measurement | " + " | ".join(LABEL[b] for b in backends) + " |",
        "|---|" + "---:|" * len(backends),
    ]

    def row(name: str, cells: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    for kind in KINDS:
        cells = []
        for b in backends:
            med = res.median_ms.get((b, kind))
            if med is None:
                cells.append("not run")
                continue
            cell = f"{_ms(med.median)}{med.spread(_ms)} / p95 {_ms(res.p95_ms[(b, kind)].median)}"
            if kind != "health":
                cell += f" ({_x(res.ratio[(b, kind)].median)}x)"
            cells.append(cell)
        row(f"{KIND_LABEL[kind]}: median / p95 ms (x health)", cells)

    def cell(store: dict[str, Measure], b: str, fmt: Callable[[float], str], unit: str) -> str:
        m = store.get(b)
        return "not run" if m is None else f"{fmt(m.median)}{unit}{m.spread(fmt)}"

    def rate(v: float) -> str:
        return f"{v:,.0f}"

    n = f"{s.retention_clips:,}"
    row(
        f"Ledger appends alone ({n} sequential `Ledger.append`, baseline): appends/s",
        [cell(res.append_rate, b, rate, "/s") for b in backends],
    )
    row(
        f"Retention dry run ({n} due): ms",
        [cell(res.dry_s, b, lambda v: f"{v * 1000:.0f}", " ms") for b in backends],
    )
    row(
        f"Retention run ({n} due, 4 KiB objects): clips deleted/s",
        [cell(res.delete_rate, b, rate, "/s") for b in backends],
    )
    row(
        "Retention: time per deleted clip ÷ time per append",
        [cell(res.delete_ratio, b, _x, "x") for b in backends],
    )
    out = ["\n".join(lines), ""]
    out += [f"- {m}" for m in machine]
    for b in backends:
        for plan in res.plans.get(b, []):
            out.append(f"- {LABEL[b]} plan, {plan}")
    out += [f"- {n}" for n in res.notes]
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Settings, str]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 2,000 clips, 300 to delete")
    p.add_argument("--clips", type=int, help="clip rows seeded for search (20,000)")
    p.add_argument("--requests", type=int, help="requests of each kind per repeat (200)")
    p.add_argument("--retention-clips", type=int, help="clips due for retention (2,000)")
    p.add_argument("--repeats", type=int, help="repeats of each measurement (3)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    a = p.parse_args(argv)
    s = Settings(
        quick=a.quick,
        clips=a.clips or (2_000 if a.quick else 20_000),
        requests=a.requests or (60 if a.quick else 200),
        retention_clips=a.retention_clips or (300 if a.quick else 2_000),
        repeats=a.repeats or 3,
        postgres=not a.no_postgres,
    )
    command = "python bench/api.py" + "".join(f" {arg}" for arg in (argv or sys.argv[1:]))
    return s, command


def main(argv: list[str] | None = None) -> int:
    s, command = parse_args(argv)
    started = time.perf_counter()
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    res = Results()
    postgres = s.postgres and find_bindir() is not None
    if s.postgres and not postgres:
        res.notes.append("PostgreSQL not run: no server binaries (initdb, pg_ctl) found.")
    backends = [b for b in BACKENDS if b == "sqlite" or postgres]
    with (
        tempfile.TemporaryDirectory(prefix="bwv-bench-api-") as tmp,
        maybe_postgres(postgres) as pg,
    ):
        root = Path(tmp)
        machine = [
            f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
            f"{cpu_model()}; Python {platform.python_version()} on {platform.platform()}; "
            f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL); uvicorn "
            f"{version('uvicorn')}, FastAPI {version('fastapi')}, httpx {version('httpx')}, "
            f"SQLAlchemy {version('sqlalchemy')}",
        ]
        if pg is not None:
            machine.append(_pg_version(pg.new_database()))
        urls: dict[str, Callable[[], str | None]] = {"sqlite": lambda: None}
        if pg is not None:
            urls["postgresql"] = pg.new_database
        for b in backends:
            log(f"{LABEL[b]}: search over TLS, {s.clips:,} clips")
            bench_search(b, root / f"search-{b}", urls[b](), s, res)
        for b in backends:
            log(f"{LABEL[b]}: retention, {s.retention_clips:,} due clips")
            bench_retention(b, root / f"retention-{b}", urls[b], s, res)
    total = time.perf_counter() - started
    res.notes.append(
        f"Search: {s.clips:,} clip rows bulk-inserted ({OFFICERS} officers, {DOCKS} docks, "
        f"recorded over a year, clips past retention marked deleted); one httpx client, one "
        f"TLS connection kept alive, to a `bwv serve` process; {s.requests} requests of each kind "
        f"per repeat, round-robin, after 10 of each to warm up; PostgreSQL's clip table ANALYZEd "
        f"after the load (as autovacuum would), SQLite's not (the service never runs ANALYZE). "
        f"Figures: median (min-max) over {s.repeats} repeats of each repeat's median; p95 and "
        f"ratio are medians of the repeats' values."
    )
    res.notes.append(
        f"Retention: a fresh data dir per repeat; {OBJECT_BYTES:,}-byte objects in the LocalStore; "
        f"the appends baseline runs first in the same data dir; after each run every object is "
        f"gone and every clip has its tombstone."
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    res.notes.append(
        f"Run: `{command}` on {datetime.now(UTC):%Y-%m-%d}, total {total:.0f} s; load average "
        f"before {load_before}, after {load} (other work on the machine skews the figures)."
    )
    print()
    print(render(res, s, backends, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
