#!/usr/bin/env python
"""Ingest benchmark: dock -> tus over TLS -> ``bwv serve`` -> receipt -> wipe, against raw loopback.

    python bench/ingest.py                 # full run: 1 GiB clip x 3 repeats, 200 x 10 MB clips
    python bench/ingest.py --quick         # smoke run: 256 MiB x 1, 40 clips
    python bench/ingest.py --size-mib 2048 --clips 400

Everything runs on 127.0.0.1 over TLS with one throwaway CA (bwv.base.tls.make_ca):

(a) raw loopback rate, the baseline: ``curl -T FILE --cacert CA https://127.0.0.1:PORT/upload``
    to a bare ASGI app under uvicorn (same certificate, a subprocess) that writes the body in
    chunks to a file next to the bwv data dir, fsyncs it and answers 201. Timed end to end.
(b) the full path: a real ``bwv serve`` process (embedded default: SQLite + LocalStore, data
    dir initialised as tests/support/ingestserver.py does) and an in-process
    ``DockAgent(config).run(once=True)`` over one bay holding the same file with a ``.done``
    marker: the dock hashes the file, uploads it over tus (8 MiB PATCHes), the
    service hashes as bytes arrive, probes the clip, links it into the LocalStore, indexes it,
    appends to the ledger and signs a receipt; the dock verifies the receipt and wipes the
    camera file. Timed from constructing the dock to its return (the wipe). The file is copied
    into the bay fresh for every repeat (untimed) with a per-repeat tag stamped into its MP4
    metadata, so every repeat is new evidence (no dedup).
(c) clips per minute: N clips of ~10 MB spread over 4 bays, one dock with its default parallelism
    (and parallel=4), from dock start until every clip is wiped.

(a) and (b) alternate, each repeated (median); the clip is a real MP4 (H.264 720p + AAC, made with
PyAV and looped with ``ffmpeg -stream_loop -c copy``), so the service's probe does real work;
without ffmpeg the file is random bytes (said in the output). MB is 10**6 bytes.

The output ends with a Markdown table that can be pasted into the README.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import secrets
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Measure, cpu_model, first_line, version  # noqa: E402
from bwv.base.net import free_port  # noqa: E402
from bwv.services.samples import mux_tone  # noqa: E402

MIB = 1 << 20
MB = 1_000_000
GOAL_RATIO = 0.7
BAYS = 4
CLIP_BYTES = 10 * MB  # size of a (c) clip
CLIP_SECONDS = 5
TAG_PREFIX = b"bwv-bench-"
TAG_HEX = 32  # hex digits of the per-copy tag
PLACEHOLDER = TAG_PREFIX + b"0" * TAG_HEX
SINK_CHUNK_NOTE = "each body message as uvicorn delivers it"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the bare sink: the baseline's server (runs in a subprocess) -------------------------------


def sink_app_factory(directory: Path) -> Callable[..., Any]:
    counter = iter(range(1 << 62))

    async def app(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status = 200
        if scope["method"] in ("PUT", "POST"):
            path = directory / f"sink-{os.getpid()}-{next(counter)}.bin"
            with open(path, "wb") as f:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    f.write(message.get("body", b""))
                    if not message.get("more_body"):
                        break
                f.flush()
                os.fsync(f.fileno())
            status = 201
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    return app


def run_sink(port: int, cert: str, key: str, directory: str) -> None:
    import uvicorn

    uvicorn.run(
        sink_app_factory(Path(directory)),
        host="127.0.0.1",
        port=port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        log_level="warning",
    )


@dataclass
class Sink:
    directory: Path
    ca: Path
    cert: Path
    key: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/upload"

    def start(self, wait: float = 30.0) -> None:
        import httpx

        self.directory.mkdir(parents=True, exist_ok=True)
        log_path = self.directory.parent / "sink.log"
        with open(log_path, "wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--sink",
                    str(self.port),
                    str(self.cert),
                    str(self.key),
                    str(self.directory),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        context = ssl.create_default_context(cafile=str(self.ca))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the sink exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url, verify=context, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"the sink did not come up: {log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- CPU accounting ---------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- media -------------------------------------------------------------------------------------


def make_base_clip(path: Path, target_bytes: int) -> Path:
    """A ~target_bytes H.264 720p25 + AAC MP4 of changing noise (incompressible, so the bitrate
    is what the encoder is told), with a placeholder tag in its metadata."""
    import av
    import numpy as np

    width, height, fps = 1280, 720, 25
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(8)]
    bit_rate = int(target_bytes * 8 / CLIP_SECONDS * 0.86)  # x264 overshoots ~15% on noise
    with av.open(str(path), "w", format="mp4") as out:
        out.metadata["creation_time"] = "2026-01-01T08:00:00.000000Z"
        out.metadata["location"] = "+51.5072-000.1276/"
        out.metadata["comment"] = PLACEHOLDER.decode()
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = bit_rate
        sound = out.add_stream("aac", rate=48000, layout="mono")
        for n in range(fps * CLIP_SECONDS):
            image = av.VideoFrame.from_ndarray(frames[n % len(frames)], format="rgb24")
            for packet in video.encode(image):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        mux_tone(out, sound, CLIP_SECONDS, 440)
    return path


def make_big_file(base: Path | None, path: Path, target_bytes: int) -> str:
    """The (a)/(b) file: the base clip looped to >= target_bytes with ffmpeg (stream copy), or
    random bytes without ffmpeg. Returns a description."""
    if base is not None and shutil.which("ffmpeg"):
        loops = max(0, -(-target_bytes // base.stat().st_size) - 1)
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops), "-i", str(base),
                "-map", "0", "-c", "copy",
                "-metadata", "creation_time=2026-01-01T08:00:00.000000Z",
                "-metadata", f"comment={PLACEHOLDER.decode()}",
                str(path),
            ],
            check=True,
        )  # fmt: skip
        return (
            f"a real MP4: a {CLIP_SECONDS} s PyAV clip (H.264 1280x720 25 fps of noise + AAC "
            f"mono, {base.stat().st_size / MB:.1f} MB) looped {loops + 1}x with "
            f"`ffmpeg -stream_loop {loops} -c copy`"
        )
    with open(path, "wb") as f:
        left = target_bytes
        while left:
            block = os.urandom(min(64 * MIB, left))
            f.write(block)
            left -= len(block)
        f.write(PLACEHOLDER)
    return "random bytes (os.urandom in 64 MiB blocks; no ffmpeg/PyAV for a real MP4)"


def tag_offset(path: Path) -> int:
    """Where the placeholder tag sits (the MP4's moov is at the end, so look there first)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        for tail in (16 * MIB, size):
            start = max(0, size - tail)
            f.seek(start)
            data = f.read()
            at = data.rfind(PLACEHOLDER)
            if at >= 0:
                return start + at
    raise RuntimeError(f"no placeholder tag in {path}")


def copy_tagged(source: Path, offset: int, destination: Path) -> None:
    """Copy ``source`` and stamp a fresh random tag at ``offset``: new bytes, same size, still a
    valid MP4 (the tag is the value of a metadata comment)."""
    shutil.copyfile(source, destination)
    with open(destination, "r+b") as f:
        f.seek(offset + len(TAG_PREFIX))
        f.write(secrets.token_hex(TAG_HEX // 2).encode())


def place_in_bay(source: Path, offset: int, bay: Path, name: str) -> Path:
    clip = bay / name
    copy_tagged(source, offset, clip)
    (bay / (name + ".done")).touch()
    return clip


# --- instrumentation of the dock (wrappers; the product code is not changed) -------------------


@dataclass
class Calls:
    """Durations of the dock's hashing and of its requests, by kind."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    hashing: list[float] = field(default_factory=list)
    requests: dict[str, list[float]] = field(default_factory=dict)
    final_patch: list[float] = field(default_factory=list)
    patch_bytes: list[int] = field(default_factory=list)  # all PATCHes but the last
    final_bytes: int = 0

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.requests.setdefault(kind, []).append(seconds)

    def total(self, kind: str) -> float:
        return sum(self.requests.get(kind, []))


CALLS = Calls()


def instrument_dock() -> None:
    import docks.agent
    from docks.client import TusClient

    original_hash = docks.agent.hash_file

    def timed_hash(*args: Any, **kwargs: Any) -> str:
        t = time.perf_counter()
        try:
            return original_hash(*args, **kwargs)
        finally:
            with CALLS.lock:
                CALLS.hashing.append(time.perf_counter() - t)

    docks.agent.hash_file = timed_hash  # type: ignore[assignment]

    def wrap(name: str) -> None:
        method = getattr(TusClient, name)

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t
                if name == "patch" and kwargs.get("final"):
                    with CALLS.lock:
                        CALLS.final_patch.append(elapsed)
                        CALLS.final_bytes += len(args[2])
                else:
                    CALLS.add(name, elapsed)
                    if name == "patch":
                        with CALLS.lock:
                            CALLS.patch_bytes.append(len(args[2]))

        setattr(TusClient, name, timed)

    for name in ("create", "offset", "patch", "finalise", "receipt"):
        wrap(name)


def reset_calls() -> None:
    global CALLS
    CALLS = Calls()


# --- results -----------------------------------------------------------------------------------


@dataclass
class FullRun:
    seconds: float
    hashing: float
    patches: int
    patch_seconds: float  # all PATCHes but the last
    patch_bytes: int
    final_patch: float  # the last PATCH: its bytes + the service's finalisation
    final_bytes: int
    other_requests: float  # receipt lookup, create
    server_cpu: float
    dock_cpu: float


@dataclass
class Results:
    size: int = 0
    raw: Measure = field(default_factory=Measure)  # seconds
    raw_server_cpu: list[float] = field(default_factory=list)
    raw_curl_cpu: list[float] = field(default_factory=list)
    full: list[FullRun] = field(default_factory=list)
    probe_s: float = 0.0
    clips: dict[int, tuple[int, int, float, float, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _mbs(size: int, seconds: float) -> float:
    return size / seconds / MB


# --- (a) raw loopback --------------------------------------------------------------------------


def run_raw(sink: Sink, path: Path, size: int, curl: str) -> tuple[float, float, float]:
    """curl -T ``path`` to the sink; returns (seconds, sink CPU s, curl CPU s)."""
    assert sink.process is not None
    before = set(sink.directory.glob("sink-*.bin"))
    cpu0, child0 = proc_cpu(sink.process.pid), children_cpu()
    t = time.perf_counter()
    done = subprocess.run(
        [curl, "-sS", "-T", str(path), "--cacert", str(sink.ca), sink.url,
         "-o", "/dev/null", "-w", "%{http_code}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t
    cpu1, child1 = proc_cpu(sink.process.pid), children_cpu()
    if done.returncode != 0 or done.stdout.strip() != "201":
        raise RuntimeError(f"curl: exit {done.returncode}, HTTP {done.stdout!r}: {done.stderr}")
    written = list(set(sink.directory.glob("sink-*.bin")) - before)
    if len(written) != 1 or written[0].stat().st_size != size:
        raise RuntimeError(f"the sink wrote {[(p.name, p.stat().st_size) for p in written]}")
    # Kept until the end, as the store keeps its originals: both sides write into page cache
    # that is not freed (and recycled) between runs.
    return seconds, cpu1 - cpu0, child1 - child0


# --- (b) and (c): the dock against bwv serve ---------------------------------------------------


def run_dock(config: Any, server_pid: int) -> tuple[float, Any, float, float]:
    """Construct the dock and run it once; returns (seconds, report, server CPU, dock CPU)."""
    from docks import DockAgent

    cpu0, own0 = proc_cpu(server_pid), time.process_time()
    t = time.perf_counter()
    with DockAgent(config) as agent:
        report = agent.run(once=True)
    seconds = time.perf_counter() - t
    return seconds, report, proc_cpu(server_pid) - cpu0, time.process_time() - own0


def check_wiped(report: Any, clips: list[Path], store_root: Path) -> None:
    from bwv.store.local import LocalStore

    if report.rejected or report.failed or report.pending or len(report.wiped) != len(clips):
        problems = [(c.path.name, c.state, c.last_error) for c in report.rejected + report.failed]
        raise RuntimeError(
            f"dock run: {len(report.wiped)} of {len(clips)} wiped; "
            f"pending {len(report.pending)}; problems {problems[:5]}"
        )
    left = [c for c in clips if c.exists()]
    if left:
        raise RuntimeError(f"{len(left)} camera files were not wiped, e.g. {left[0]}")
    store = LocalStore(store_root)
    for clip in report.wiped:
        if not store.exists("originals", clip.sha256):
            raise RuntimeError(f"no stored original for {clip.path.name} ({clip.sha256})")


def run_full(server: Any, config: Any, bay: Path, source: Path, offset: int, size: int) -> FullRun:
    clip = place_in_bay(source, offset, bay, "BWC-0001_0001.mp4")
    os.sync()  # untimed: the copy's dirty pages are on disk before the clock starts
    reset_calls()
    seconds, report, server_cpu, dock_cpu = run_dock(config, server.process.pid)
    check_wiped(report, [clip], server.settings.data_dir / "store")
    calls = CALLS
    patches = calls.requests.get("patch", [])
    return FullRun(
        seconds=seconds,
        hashing=sum(calls.hashing),
        patches=len(patches) + len(calls.final_patch),
        patch_seconds=sum(patches),
        patch_bytes=sum(calls.patch_bytes),
        final_patch=sum(calls.final_patch),
        final_bytes=calls.final_bytes,
        other_requests=sum(calls.total(k) for k in ("create", "offset", "finalise", "receipt")),
        server_cpu=server_cpu,
        dock_cpu=dock_cpu,
    )


def run_clips(
    server: Any, config: Any, root: Path, source: Path, offset: int, count: int, parallel: int
) -> tuple[int, int, float, float, str]:
    """``count`` tagged copies of the clip over BAYS bays; returns (clips, bytes, seconds,
    server CPU, per-clip breakdown)."""
    bays = []
    for b in range(1, BAYS + 1):
        bay = root / f"clips-p{parallel}" / f"bay-{b}"
        bay.mkdir(parents=True)
        (bay / "CAMERA").write_text(f"BWC-{b:04d}\n")
        bays.append(bay)
    clips = [
        place_in_bay(source, offset, bays[n % BAYS], f"BWC-{n % BAYS + 1:04d}_{n // BAYS:04d}.mp4")
        for n in range(count)
    ]
    os.sync()
    # The same enrolment with a state directory of its own: an empty queue.
    dock = replace(config, state_dir=root / f"dock-clips-p{parallel}", bays=bays, parallel=parallel)
    reset_calls()
    seconds, report, server_cpu, _ = run_dock(dock, server.process.pid)
    check_wiped(report, clips, server.settings.data_dir / "store")
    total = sum(c.size for c in report.wiped)
    shutil.rmtree(root / f"clips-p{parallel}")
    return count, total, seconds, server_cpu, _per_clip(CALLS, count, seconds, parallel)


def _per_clip(calls: Calls, count: int, seconds: float, parallel: int) -> str:
    """Mean time per clip in each step, as the dock's workers saw it."""
    hashing = sum(calls.hashing) / count
    patch = calls.total("patch") / count
    final = sum(calls.final_patch) / count
    other = sum(calls.total(k) for k in ("create", "offset", "finalise", "receipt")) / count
    busy = seconds * parallel / count  # worker time per clip
    rest = busy - hashing - patch - final - other
    return (
        f"{busy * 1000:.0f} ms of worker time per clip: hash {hashing * 1000:.0f} ms, "
        f"receipt lookup + create {other * 1000:.0f} ms, PATCHes before the last "
        f"{patch * 1000:.0f} ms, last PATCH (bytes + finalisation) {final * 1000:.0f} ms, "
        f"queue transitions, receipt verification, wipe and waiting {rest * 1000:.0f} ms"
    )


# --- machine facts -----------------------------------------------------------------------------


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return ", ".join(f for f in ("sha_ni", "aes", "avx2") if f in flags) or "none"
    except OSError:
        pass
    return "unknown"


def sha256_mb_s(total: int = 512 * MIB) -> float:
    """hashlib SHA-256 over 1 MiB blocks, best of 3 (one core)."""
    block = os.urandom(MIB)
    best = float("inf")
    for _ in range(3):
        h = hashlib.sha256()
        t = time.perf_counter()
        for _ in range(total // MIB):
            h.update(block)
        best = min(best, time.perf_counter() - t)
    return total / best / MB


def write_fsync_mb_s(directory: Path, total: int = 512 * MIB) -> tuple[float, float]:
    """Sequential 1 MiB writes of ``total`` bytes then one fsync, in ``directory``: into a new
    file, then into another right after deleting the first (so its page cache is reused).
    On a VM whose memory is backed lazily the first can be much slower."""
    block = os.urandom(MIB)
    rates = []
    for name in ("first.probe", "second.probe"):
        path = directory / name
        t = time.perf_counter()
        with open(path, "wb") as f:
            for _ in range(total // MIB):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        rates.append(total / (time.perf_counter() - t) / MB)
        path.unlink()
    return rates[0], rates[1]


def _free_page_reporting() -> str:
    """Whether this is a VM whose balloon hands freed memory back to the host (virtio-balloon
    free page reporting): then page cache written into such memory is faulted in again."""
    for device in Path("/sys/bus/virtio/devices").glob("*"):
        try:
            if (device / "device").read_text().strip() != "0x0005":
                continue
            features = (device / "features").read_text().strip()
        except OSError:
            continue
        on = len(features) > 5 and features[5] == "1"  # VIRTIO_BALLOON_F_REPORTING
        return f"virtio-balloon free page reporting {'on' if on else 'off'}"
    return "no virtio balloon"


def _tree() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"{head}{' with uncommitted changes' if dirty else ''}"  # fmt: skip


def machine_facts(tmp: Path) -> list[str]:
    affinity = len(os.sched_getaffinity(0))
    uv = "uvloop" if version("uvloop") != "not installed" else "asyncio"
    h1 = "httptools" if version("httptools") != "not installed" else "h11"
    fresh, reused = write_fsync_mb_s(tmp)
    return [
        f"Machine: nproc {affinity} ({os.cpu_count()} CPUs), {cpu_model()} "
        f"(flags: {_cpu_flags()}); {platform.platform()}; {_free_page_reporting()}; "
        f"RAM {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB; "
        f"code at {_tree()}",
        f"Python {platform.python_version()}; uvicorn {version('uvicorn')} ({uv} + {h1}), "
        f"httpx {version('httpx')}, fastapi {version('fastapi')}, starlette "
        f"{version('starlette')}, PyAV {version('av')}; {ssl.OPENSSL_VERSION}",
        f"{first_line(['curl', '--version'])}; {first_line(['ffmpeg', '-version'])}",
        f"hashlib SHA-256: {sha256_mb_s():,.0f} MB/s on one core (1 MiB updates, best of 3); "
        f"sequential write + fsync of 512 MiB in the data dir's filesystem: {fresh:,.0f} MB/s "
        f"into a new file, {reused:,.0f} MB/s right after deleting it (page cache reused)",
    ]


# --- report ------------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def render(res: Results, s: Settings, machine: list[str]) -> str:
    size = res.size
    raw_mbs = Measure([_mbs(size, v) for v in res.raw.values])
    full_mbs = Measure([_mbs(size, r.seconds) for r in res.full])
    nohash_mbs = Measure([_mbs(size, r.seconds - r.hashing) for r in res.full])
    ratio = full_mbs.median / raw_mbs.median
    ratio_nohash = nohash_mbs.median / raw_mbs.median
    mib = f"{size / MIB:,.0f} MiB"
    mbs = lambda v: f"{v:,.0f}"  # noqa: E731
    lines = [
        "| Figure | Result | Goal | Met? |",
        "|---|---:|---|:-:|",
        f"| (a) Raw loopback: `curl -T` {mib} to a bare uvicorn sink (TLS, write + fsync) "
        f"| {raw_mbs.median:,.0f} MB/s{raw_mbs.spread(mbs)}, {res.raw.median:.2f} s "
        f"| baseline | - |",
        f"| (b) Full path: dock hash → tus → service hash → probe → LocalStore → index + "
        f"ledger → receipt verified → camera wiped, {mib} "
        f"| {full_mbs.median:,.0f} MB/s{full_mbs.spread(mbs)}, "
        f"{statistics.median(r.seconds for r in res.full):.2f} s | - | - |",
        f"| Throughput ratio (b)/(a) | {ratio:.2f} | ≥ {GOAL_RATIO} "
        f"| {_mark(ratio >= GOAL_RATIO)} |",
        f"| (b) without the dock's local hashing (b minus hash time) "
        f"| {nohash_mbs.median:,.0f} MB/s{nohash_mbs.spread(mbs)}, ratio {ratio_nohash:.2f} "
        f"| (≥ {GOAL_RATIO}) | {_mark(ratio_nohash >= GOAL_RATIO)} |",
    ]
    for parallel, (count, total, seconds, _cpu, _per) in sorted(res.clips.items()):
        label = "default parallelism" if parallel == 2 else "parallel"
        lines.append(
            f"| (c) Clips per minute: {count} x {total / count / MB:.1f} MB over {BAYS} bays, "
            f"one dock, {label} {parallel} | {count / seconds * 60:,.0f} clips/min "
            f"({_mbs(total, seconds):,.0f} MB/s, {seconds:.1f} s) | - | - |"
        )
    out = ["\n".join(lines), ""]
    out += [f"- {m}" for m in machine]
    out += [f"- {n}" for n in res.notes]
    return "\n".join(out)


def breakdown(res: Results) -> list[str]:
    """Where the time of the median (b) run goes."""
    runs = sorted(res.full, key=lambda r: r.seconds)
    r = runs[len(runs) // 2]
    n = max(1, r.patches - 1)
    per_patch = r.patch_seconds / n
    rate = r.patch_bytes / r.patch_seconds if r.patch_seconds else float("inf")
    finalisation = r.final_patch - r.final_bytes / rate  # its bytes at the other PATCHes' rate
    rest = r.seconds - r.hashing - r.patch_seconds - r.final_patch - r.other_requests
    chunk = round(r.patch_bytes / n / MIB, 1)
    return [
        f"Where (b)'s time goes (median run, {r.seconds:.2f} s; (a) takes "
        f"{res.raw.median:.2f} s): dock SHA-256 of the whole file before uploading "
        f"{r.hashing:.2f} s; {r.patches} PATCHes ({chunk:g} MiB, fsynced "
        f"by the service before it answers) {r.patch_seconds + r.final_bytes / rate:.2f} s "
        f"({per_patch * 1000:.0f} ms per {chunk:g} MiB = {rate / MB:,.0f} MB/s while sending); "
        f"service finalisation (the last PATCH's time minus its bytes at that rate: probe, "
        f"LocalStore link, index + ledger, receipt) {finalisation:.2f} s (probe_clip of the "
        f"file alone, in-process, warm cache: {res.probe_s:.2f} s); receipt lookup + create "
        f"{r.other_requests:.2f} s; scan, queue transitions, receipt verification and wipe "
        f"{rest:.2f} s.",
        f"CPU during (b) (median run): service {r.server_cpu:.2f} s "
        f"({r.server_cpu / r.seconds:.0%} of a core over the run; "
        f"{r.server_cpu / (r.seconds - r.hashing):.0%} while it had work), dock "
        f"{r.dock_cpu:.2f} s; during (a): sink {statistics.median(res.raw_server_cpu):.2f} s, "
        f"curl {statistics.median(res.raw_curl_cpu):.2f} s.",
    ]


# --- main --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    quick: bool
    size_mib: int
    clips: int
    repeats: int
    parallels: tuple[int, ...]
    directory: Path | None


def parse_args(argv: list[str] | None = None) -> Settings:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 256 MiB, 40 clips, 1 repeat")
    p.add_argument("--size-mib", type=int, help="size of the (a)/(b) file (default 1024)")
    p.add_argument("--clips", type=int, help="clips of ~10 MB for (c) (default 200)")
    p.add_argument("--repeats", type=int, help="repeats of (a) and (b) (default 3)")
    p.add_argument(
        "--parallel", type=int, action="append", help="dock parallelism for (c); repeatable"
    )
    p.add_argument("--dir", type=Path, help="where the temporary directory goes (default TMPDIR)")
    a = p.parse_args(argv)
    return Settings(
        quick=a.quick,
        size_mib=a.size_mib or (256 if a.quick else 1024),
        clips=a.clips or (40 if a.quick else 200),
        repeats=a.repeats or (1 if a.quick else 3),
        parallels=tuple(a.parallel or ((2,) if a.quick else (2, 4))),
        directory=a.dir,
    )


def command_line(argv: list[str]) -> str:
    return " ".join(["python", "bench/ingest.py", *argv])


@contextlib.contextmanager
def stopping(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in things:
            with contextlib.suppress(Exception):
                thing.stop()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--sink"]:
        port, cert, key, directory = argv[1:5]
        run_sink(int(port), cert, key, directory)
        return 0
    s = parse_args(argv)
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl is needed for the raw loopback baseline")
    os.chdir(REPO)  # bwv serve runs as `python -m cli`
    started = time.perf_counter()
    load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())

    from bwv.ingest.probe import probe_clip
    from docks import write_enrollment
    from tests.support.ingestserver import make_server

    instrument_dock()
    res = Results()
    with tempfile.TemporaryDirectory(prefix="bwv-bench-ingest-", dir=s.directory) as tmp_name:
        tmp = Path(tmp_name)
        log("machine facts (hashlib SHA-256 rate, write + fsync rate)")
        machine = machine_facts(tmp)

        log(f"making the {s.size_mib} MiB file and the ~{CLIP_BYTES / MB:.0f} MB clip")
        media = tmp / "media"
        media.mkdir()
        t = time.perf_counter()
        try:
            base: Path | None = make_base_clip(media / "base.mp4", CLIP_BYTES)
        except Exception as exc:  # no PyAV/x264: random bytes still measure the path
            log(f"  PyAV could not make a clip ({exc}); using random bytes")
            base = None
        big = media / "big.mp4"
        what = make_big_file(base, big, s.size_mib * MIB)
        if base is None:
            base = media / "base.mp4"
            make_big_file(None, base, CLIP_BYTES)
        make_s = time.perf_counter() - t
        res.size = big.stat().st_size
        big_offset, base_offset = tag_offset(big), tag_offset(base)
        probe = probe_clip(big)
        t = time.perf_counter()
        probe_clip(big)
        res.probe_s = time.perf_counter() - t
        log(f"  {what}: {res.size:,} bytes in {make_s:.1f} s; probe: {probe.status}")

        server = make_server(tmp)  # tmp/service (data dir) and tmp/tls (the CA), as the tests do
        sink = Sink(tmp / "sink", server.ca, server.cert, server.key)
        with stopping(server, sink):
            server.start()
            sink.start()
            name = "bench-dock"
            token = server.enroll(name)
            bay = tmp / "bays" / "bay-1"
            bay.mkdir(parents=True)
            (bay / "CAMERA").write_text("BWC-0001\n")
            config = write_enrollment(
                tmp / "dock", server.url, name, token, [server.service_key], server.ca, bays=[bay]
            )
            os.sync()

            log("warm-up (untimed): one 10 MB clip through each path")
            run_raw(sink, base, base.stat().st_size, curl)
            place_in_bay(base, base_offset, bay, "warmup.mp4")
            _, report, _, _ = run_dock(config, server.process.pid)  # type: ignore[union-attr]
            check_wiped(report, [bay / "warmup.mp4"], server.settings.data_dir / "store")

            for repeat in range(s.repeats):
                seconds, sink_cpu, curl_cpu = run_raw(sink, big, res.size, curl)
                res.raw.values.append(seconds)
                res.raw_server_cpu.append(sink_cpu)
                res.raw_curl_cpu.append(curl_cpu)
                log(
                    f"  (a) raw, repeat {repeat + 1}/{s.repeats}: {seconds:.2f} s = "
                    f"{_mbs(res.size, seconds):,.0f} MB/s (sink CPU {sink_cpu:.2f} s, "
                    f"curl CPU {curl_cpu:.2f} s)"
                )
                run = run_full(server, config, bay, big, big_offset, res.size)
                res.full.append(run)
                log(
                    f"  (b) full, repeat {repeat + 1}/{s.repeats}: {run.seconds:.2f} s = "
                    f"{_mbs(res.size, run.seconds):,.0f} MB/s (hash {run.hashing:.2f} s, "
                    f"PATCHes {run.patch_seconds:.2f} s + last {run.final_patch:.2f} s, "
                    f"service CPU {run.server_cpu:.2f} s, dock CPU {run.dock_cpu:.2f} s)"
                )

            for parallel in s.parallels:
                count, total, seconds, cpu, per = run_clips(
                    server, config, tmp, base, base_offset, s.clips, parallel
                )
                res.clips[parallel] = (count, total, seconds, cpu, per)
                log(
                    f"  (c) {count} clips, parallel {parallel}: {seconds:.1f} s = "
                    f"{count / seconds * 60:,.0f} clips/min ({_mbs(total, seconds):,.0f} MB/s, "
                    f"service CPU {cpu:.1f} s); {per}"
                )

    total_s = time.perf_counter() - started
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    res.notes.append(
        f"File: {what}; {res.size:,} bytes; the service's probe finds it {probe.status}. Each "
        f"copy into a bay (untimed, then `sync`) gets a fresh random tag in its MP4 comment, so "
        f"every run is new evidence (no dedup)."
    )
    res.notes += breakdown(res)
    res.notes.append(
        f"(a) and (b) alternate, {s.repeats} repeat(s) each, median (min-max); after an untimed "
        f"warm-up of each path with one 10 MB clip. (a) is `curl -T FILE --cacert CA "
        f"https://127.0.0.1:PORT/upload` (PUT) to an ASGI app under uvicorn (same defaults and "
        f"TLS certificate as `bwv serve`) that writes {SINK_CHUNK_NOTE} to a file in the "
        f"data dir's filesystem and fsyncs it. (b) is `bwv serve` (a subprocess; SQLite + "
        f"LocalStore under one data dir, as tests/support/ingestserver.py sets up) and "
        f"`DockAgent(config).run(once=True)` in the benchmark's process with the dock's "
        f"defaults (8 MiB PATCHes, no per-chunk checksum, HTTP/1.1 over httpx), timed "
        f"from constructing the agent to its return after the wipe."
    )
    for parallel, (_n, _b, seconds, cpu, per) in sorted(res.clips.items()):
        res.notes.append(
            f"(c) parallel {parallel}: {per}; service CPU {cpu:.1f} s over {seconds:.1f} s "
            f"({cpu / seconds:.0%} of a core)."
        )
    res.notes.append(
        f"(c): one dock run per parallelism, clips tagged copies of the ~10 MB clip, "
        f"{BAYS} bays, `.done` markers, a fresh dock queue; timed from constructing the agent "
        f"until every clip is wiped (all receipts verified, all originals in the store)."
    )
    res.notes.append(
        f"Run: `{command_line(argv)}` on {datetime.now(UTC):%Y-%m-%d}, total {total_s:.0f} s; "
        f"load average before {load_before}, after {load}."
    )
    print()
    print(render(res, s, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
