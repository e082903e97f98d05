#!/usr/bin/env python
"""Hold under abuse (issue 9, finding 9): docks uploading while anonymous clients attack.

    python bench/abuse.py              # 3 repeats of 60 s unloaded + 60 s under attack
    python bench/abuse.py --quick      # 1 repeat of 15 s + 15 s

One real ``bwv serve`` (tests/support/ingestserver.py: TLS on 127.0.0.1, SQLite + LocalStore, the
shipped limits) and, in each repeat:

1. Unloaded: D docks (threads, one persistent TLS connection each) upload fresh 2 MB MP4s
   (a PyAV clip with a random tag stamped in its metadata, so every upload is new evidence)
   over tus for T seconds: ingest rate in MB/s.
2. Under attack, the same docks for T seconds while, in another process (so the attackers'
   Python does not slow the docks' own): one anonymous client sends requests as fast as it can
   (GET /api/v1/clips without a token, and every 20th a 50 MB POST without a token), and 200
   slow-header connections trickle a byte every 2 s, reconnecting when dropped.

Reported per repeat, and as the median of the repeats: the docks' rate under attack against
the unloaded rate of the same repeat, the service's peak RSS (/proc/PID/status VmRSS, sampled
every 0.1 s) against its idle RSS just before the attack, and how many leaves the attack added
(access.denied one by one, access.denied.summary for what was counted past the rate limit).
Goals: >= 80% of the unloaded rate, peak within 200 MB of idle, a bounded number of leaves.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import platform
import secrets
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.common import cpu_model, version  # noqa: E402
from bench.ingest import TAG_HEX, TAG_PREFIX, make_base_clip, proc_cpu, tag_offset  # noqa: E402
from bwv.access.docks import assign_device  # noqa: E402
from bwv.custody.leaf import parse_leaf  # noqa: E402
from bwv.services.context import Context  # noqa: E402
from tests.integration.ingest.test_ingest import Dock  # noqa: E402
from tests.support.ingestserver import IngestServer, make_server  # noqa: E402

CLIP_BYTES = 2_000_000
MB = 1_000_000
CAMERA = "CAM-BENCH"
SUMMARY_SECONDS = 2.0
GOAL_RATE, GOAL_MEMORY_MB = 0.8, 200


@dataclass
class Repeat:
    unloaded: float  # MB/s
    loaded: float
    idle_mb: float
    peak_mb: float
    flood_requests: int
    slow_connections: int
    leaves: int  # access.denied + access.denied.summary added under attack
    refused_counted: int  # refusals in the summary leaves
    cpu_unloaded: float  # the service's CPU seconds per second of the phase
    cpu_loaded: float
    load: float  # the machine's 1-minute load average at the end

    @property
    def ratio(self) -> float:
        return self.loaded / self.unloaded if self.unloaded else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- docks ---------------------------------------------------------------------------------------


def dock_worker(dock: Dock, base: bytes, offset: int, stop: float, uploaded: list[int]) -> None:
    n = 0
    while time.monotonic() < stop:
        data = bytearray(base)
        tag = secrets.token_hex(TAG_HEX // 2).encode()
        data[offset + len(TAG_PREFIX) : offset + len(TAG_PREFIX) + len(tag)] = tag
        sha = hashlib.sha256(data).hexdigest()
        n += 1
        created = dock.create(
            len(data), sha256=sha, camera=CAMERA, filename=f"{CAMERA}_{sha[:8]}_{n}.mp4"
        )
        if created.status_code != 201:
            raise RuntimeError(f"create: {created.status_code} {created.text}")
        done = dock.patch(created.headers["Location"], 0, bytes(data))
        if done.status_code != 204:
            raise RuntimeError(f"patch: {done.status_code} {done.text}")
        uploaded.append(len(data))


def dock_phase(docks: list[Dock], base: bytes, offset: int, seconds: float) -> float:
    """MB/s the docks ingest together over ``seconds``."""
    uploaded: list[int] = []
    start = time.monotonic()
    threads = [
        threading.Thread(target=dock_worker, args=(d, base, offset, start + seconds, uploaded))
        for d in docks
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(uploaded) / MB / (time.monotonic() - start)


# --- attackers (another process) -----------------------------------------------------------------


# The attackers come from other addresses than the docks (127.0.0.1), as they would in the
# field: the service caps connections per address (BWV_MAX_CONNECTIONS_PER_ADDRESS).
SLOW_FROM, FLOOD_FROM = "127.0.0.2", "127.0.0.3"


def attack(port: int, ca: str, seconds: float, slow: int, results: multiprocessing.Queue) -> None:
    stop = time.monotonic() + seconds
    context = ssl.create_default_context(cafile=ca)
    opened = [0]

    def slow_header() -> None:
        while time.monotonic() < stop:
            try:
                raw = socket.create_connection(
                    ("127.0.0.1", port), timeout=5, source_address=(SLOW_FROM, 0)
                )
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
                opened[0] += 1
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while time.monotonic() < stop:
                    sock.sendall(b"X")
                    time.sleep(2)
            except (OSError, ssl.SSLError):
                time.sleep(0.5)

    threads = [threading.Thread(target=slow_header, daemon=True) for _ in range(slow)]
    for t in threads:
        t.start()
    sent = 0
    big = b'{"reason": "' + b"x" * (50 * MB) + b'"}'
    transport = httpx.HTTPTransport(local_address=FLOOD_FROM, verify=context)
    with httpx.Client(base_url=f"https://127.0.0.1:{port}", transport=transport, timeout=30) as c:
        while time.monotonic() < stop:
            try:
                if sent % 20 == 19:
                    c.post("/api/v1/clips/BWV-1/exports", content=big)
                else:
                    c.get("/api/v1/clips")
            except httpx.HTTPError:
                pass
            sent += 1
    results.put((sent, opened[0]))


# --- one repeat ----------------------------------------------------------------------------------


def denial_leaves(ctx: Context, since: int) -> tuple[int, int]:
    with ctx.engine.connect() as conn:
        bodies = conn.execute(
            text("SELECT body FROM ledger_leaf WHERE seq >= :n"), {"n": since}
        ).scalars()
        leaves = [parse_leaf(bytes(b)) for b in bodies]
    denied = [leaf for leaf in leaves if leaf["action"].startswith("access.denied")]
    counted = sum(
        leaf["details"]["refused"] for leaf in denied if leaf["action"] == "access.denied.summary"
    )
    return len(denied), counted


def repeat(
    server: IngestServer, ctx: Context, docks: list[Dock], base: bytes, offset: int, args: Any
) -> Repeat:
    assert server.process is not None
    pid = server.process.pid
    cpu = proc_cpu(pid)
    unloaded = dock_phase(docks, base, offset, args.seconds)
    cpu_unloaded = (proc_cpu(pid) - cpu) / args.seconds
    time.sleep(SUMMARY_SECONDS + 1)
    idle = rss_mb(pid)
    size = ctx.ledger.size()
    peak = [idle]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    results: multiprocessing.Queue = multiprocessing.Queue()
    attacker = multiprocessing.Process(
        target=attack, args=(server.port, str(server.ca), args.seconds + 2, args.slow, results)
    )
    attacker.start()
    time.sleep(2)  # let the slow connections pile up first
    cpu = proc_cpu(pid)
    loaded = dock_phase(docks, base, offset, args.seconds)
    cpu_loaded = (proc_cpu(pid) - cpu) / args.seconds
    flood, slow = results.get(timeout=120)
    attacker.join()
    sampling.set()
    sampler.join()
    time.sleep(SUMMARY_SECONDS * 2)  # the counted refusals are summarised
    leaves, counted = denial_leaves(ctx, size)
    return Repeat(
        unloaded,
        loaded,
        idle,
        peak[0],
        flood,
        slow,
        leaves,
        counted,
        cpu_unloaded,
        cpu_loaded,
        os.getloadavg()[0],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat of 15 s + 15 s")
    parser.add_argument("--seconds", type=float, help="each phase, in seconds (default 60)")
    parser.add_argument("--repeats", type=int, help="default 3 (1 with --quick)")
    parser.add_argument("--docks", type=int, default=2, help="docks uploading at once")
    parser.add_argument("--slow", type=int, default=200, help="slow-header connections")
    args = parser.parse_args()
    args.seconds = args.seconds or (15.0 if args.quick else 60.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bwv-abuse-") as tmp:
        root = Path(tmp)
        print("making the base clip ...", file=sys.stderr)
        base_path = make_base_clip(root / "base.mp4", CLIP_BYTES)
        base, offset = base_path.read_bytes(), tag_offset(base_path)
        server = make_server(root, refusal_summary_seconds=SUMMARY_SECONDS)
        ctx = Context(server.settings)
        assign_device(ctx.engine, CAMERA, "pc-bench")
        server.start()
        docks = [Dock(server, f"dock-{n}") for n in range(args.docks)]
        runs = []
        try:
            for n in range(args.repeats):
                print(f"repeat {n + 1}/{args.repeats} ...", file=sys.stderr)
                runs.append(repeat(server, ctx, docks, base, offset, args))
                r = runs[-1]
                print(
                    f"  unloaded {r.unloaded:.1f} MB/s, under attack {r.loaded:.1f} MB/s "
                    f"({r.ratio:.0%}); RSS idle {r.idle_mb:.0f} MB, peak {r.peak_mb:.0f} MB; "
                    f"{r.flood_requests} flood requests, {r.slow_connections} slow connections; "
                    f"{r.leaves} leaves ({r.refused_counted} refusals counted in summaries)",
                    file=sys.stderr,
                )
        finally:
            for d in docks:
                d.http.close()
            server.stop()
            ctx.close()
    med = statistics.median
    print(f"\nbwv {version('bwv')} on {cpu_model()}, Python {platform.python_version()}; ")
    print(f"{args.docks} docks, {args.seconds:.0f} s phases, {args.repeats} repeat(s)\n")
    print("| figure | median (min-max) | goal |")
    print("|---|---|---|")

    def row(name: str, values: list[float], fmt: str, goal: str) -> None:
        print(
            f"| {name} | {fmt.format(med(values))} "
            f"({fmt.format(min(values))}-{fmt.format(max(values))}) | {goal} |"
        )

    row("docks unloaded, MB/s", [r.unloaded for r in runs], "{:.1f}", "")
    row("docks under attack, MB/s", [r.loaded for r in runs], "{:.1f}", "")
    row("under attack / unloaded", [r.ratio * 100 for r in runs], "{:.0f}%", ">= 80%")
    row("RSS idle, MB", [r.idle_mb for r in runs], "{:.0f}", "")
    row(
        "RSS peak - idle, MB",
        [r.peak_mb - r.idle_mb for r in runs],
        "{:.0f}",
        f"<= {GOAL_MEMORY_MB}",
    )
    row("flood requests", [float(r.flood_requests) for r in runs], "{:.0f}", "")
    row("slow-header connections opened", [float(r.slow_connections) for r in runs], "{:.0f}", "")
    row("leaves the attack added", [float(r.leaves) for r in runs], "{:.0f}", "bounded")
    row("refusals counted in summaries", [float(r.refused_counted) for r in runs], "{:.0f}", "")
    row("service CPU unloaded, cores", [r.cpu_unloaded for r in runs], "{:.2f}", "")
    row("service CPU under attack, cores", [r.cpu_loaded for r in runs], "{:.2f}", "")
    row(f"machine load (of {os.cpu_count()} CPUs)", [r.load for r in runs], "{:.1f}", "")


if __name__ == "__main__":
    main()
