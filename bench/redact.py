#!/usr/bin/env python
"""Redaction speed: bwv's export path against deface and against a bare transcode, one run.

    python bench/redact.py                    # 720p + 1080p clips of 5 s, 3 repeats (~6 min)
    python bench/redact.py --quick            # 2 s clips, 1 repeat (~1.5 min)
    python bench/redact.py --every 0.2,1.6 --every 0.3,2.4 --json

Clips (made in a temporary directory, deleted afterwards): "real" is 70% of the time
../shared/data/footage/egoblur-gen1-test_video.mp4 (one face, portrait) then the rest
egoblur-gen2-test_face_video.mp4 (two faces, 10 fps, looped), each scaled to the frame height and
padded to 1280x720 / 1920x1080, 30 fps, H.264 (veryfast, crf 20) + a mono AAC tone, made with
the system ffmpeg. Without ../shared/data (or ffmpeg) the clips are ``make_street_clip`` (a
synthetic face and a car with a plate moving across, 25 fps), said in the output.

For each clip, per repeat (the median of the repeats is reported), in this order:

(1) bwv: ``make_plan(clip, Options(...))`` then ``render(clip, plan, out)`` in this process,
    default Options (faces + plates: faces at 640 wide every 0.2 s and at full resolution
    every 0.8 s, text over the whole frame every 1.6 s and every 0.2 s wherever the picture
    shows something new) unless ``--every F,T`` (seconds) adds
    schedules: what ``bwv redact FILE -o OUT`` does (it also hashes the file). fps = frames /
    wall seconds of both. The detectors are the engine's own (``engine._detectors``) behind a
    proxy that times each ``detect`` call where it runs (two worker threads, one core each).
(2) deface (its CLI, a subprocess) with ``--scale 640x360`` and at full resolution (the latter
    in the first ``--deface-full-repeats`` repeats only, default 1: at ~2-6 fps it would take
    most of the time budget, and it is not in the goals), same clip,
    ``--keep-audio`` (deface drops audio without it; with it ffmpeg copies the AAC, as bwv does)
    and ``--ffmpeg-config`` giving libx264 with bwv's preset and crf and no resizing to multiples
    of 16. fps = frames / wall seconds of the whole command (start-up, its frame-counting
    pass, model load included, as bwv's figure includes hashing and model load); the in-loop
    rate tqdm prints is reported too. ``--backend`` is deface's default unless given.
(3) transcode only, the limit: PyAV decode (as ``render`` opens it) -> libx264 with
    ``render``'s default preset and crf (read from its signature), audio copied; no detection,
    no hiding.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Measure, cpu_model, first_line, version  # noqa: E402

FOOTAGE = REPO.parent / "shared/data/footage"
GEN1 = "egoblur-gen1-test_video.mp4"
GEN2 = "egoblur-gen2-test_face_video.mp4"
SIZES = {720: (1280, 720), 1080: (1920, 1080)}
GOAL_720_FPS = 30.0
GOAL_720_VS_DEFACE = 2.0
GOAL_1080_FPS = 15.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- clips (shared with bench/redact_quality.py) ----------------------------------------------


@dataclass(frozen=True)
class Clip:
    name: str  # e.g. "real-720p"
    kind: str  # "real" | "street"
    path: Path
    width: int
    height: int
    frames: int
    fps: float


def footage_available(footage: Path = FOOTAGE) -> bool:
    return (
        (footage / GEN1).is_file() and (footage / GEN2).is_file() and bool(shutil.which("ffmpeg"))
    )


def make_real_clip(
    dest: Path, width: int, height: int, seconds: float, footage: Path = FOOTAGE, fps: int = 30
) -> Path:
    """EgoBlur gen1 for 70% of ``seconds`` then gen2 looped, scaled to ``height``, padded to
    ``width``, ``fps``, H.264 veryfast crf 20 + mono AAC tone (system ffmpeg)."""
    first = round(seconds * 0.7, 3)
    second = round(seconds - first, 3)
    fit = f"fps={fps},scale=-2:{height},pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1"
    graph = (
        f"[0:v]trim=duration={first},setpts=PTS-STARTPTS,{fit}[a];"
        f"[1:v]trim=duration={second},setpts=PTS-STARTPTS,{fit}[b];"
        f"[a][b]concat=n=2:v=1:a=0[v]"
    )
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-i", str(footage / GEN1),
            "-stream_loop", "-1", "-i", str(footage / GEN2),
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-filter_complex", graph, "-map", "[v]", "-map", "2:a", "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-ac", "1", str(dest),
        ],
        check=True,
    )  # fmt: skip
    return dest


def _probe(path: Path) -> tuple[int, int, int, float]:
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = video.frames or sum(1 for packet in container.demux(video) if packet.size)
        rate = float(video.average_rate or video.guessed_rate or 0)
        return video.codec_context.width, video.codec_context.height, frames, rate


def make_clips(
    directory: Path, heights: list[int], seconds: float, kinds: list[str]
) -> tuple[list[Clip], list[str]]:
    """The test clips and notes on how they were made (and what was missing)."""
    from bwv.services.samples import make_street_clip

    notes: list[str] = []
    if "real" in kinds and not footage_available():
        missing = "ffmpeg" if not shutil.which("ffmpeg") else f"{FOOTAGE}"
        notes.append(f"NO REAL FOOTAGE ({missing} missing): synthetic street clips only")
        kinds = ["street"]
    clips = []
    for kind in kinds:
        for h in heights:
            width, height = SIZES[h]
            path = directory / f"{kind}-{h}p.mp4"
            if kind == "real":
                make_real_clip(path, width, height, seconds)
            else:
                make_street_clip(path, seconds=seconds, width=width, height=height)
            w, hh, frames, fps = _probe(path)
            clips.append(Clip(f"{kind}-{h}p", kind, path, w, hh, frames, fps))
    if any(c.kind == "real" for c in clips):
        notes.append(
            f"real clips: {GEN1} (608x1080 portrait, 1 face) for 70% of the time, then {GEN2} "
            f"(2560x1920, 10 fps, 2 faces, looped), scaled to the frame height, padded, 30 fps, "
            f"H.264 veryfast crf 20 + AAC mono tone; {seconds:g} s"
        )
    if any(c.kind == "street" for c in clips):
        notes.append(
            f"street clips: bwv.services.samples.make_street_clip "
            "(astronaut face walking across, car "
            f"with plate driving the other way, textured background, 25 fps); {seconds:g} s"
        )
    return clips, notes


# --- (1) bwv -----------------------------------------------------------------------------------


class TimedDetector:
    """A detector that records how long each ``detect`` call takes (ms)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model = getattr(inner, "model", None)
        self.models = getattr(inner, "models", None)
        self.ms: list[float] = []

    @property
    def reach(self) -> int | None:
        return getattr(self.inner, "reach", None)

    @property
    def watches(self) -> bool:
        return bool(getattr(self.inner, "watches", False))

    def detect_at(self, index: int, frame: Any, look: Any = None) -> list[Any]:
        t = time.perf_counter()
        try:
            if self.watches:
                return self.inner.detect_at(index, frame, look)
            if hasattr(self.inner, "detect_at"):
                return self.inner.detect_at(index, frame)
            return self.inner.detect(frame)
        finally:
            self.ms.append((time.perf_counter() - t) * 1000)


@dataclass
class BwvRun:
    seconds: float
    plan_s: float
    render_s: float
    tracks: int
    audio: str
    detectors: dict[str, list[float]] = field(default_factory=dict)  # name -> ms per call


def run_bwv(clip: Clip, every: tuple[float, float], dest: Path) -> BwvRun:
    from bwv.redact.engine import _detectors, make_plan
    from bwv.redact.plan import Options
    from bwv.redact.render import render

    options = Options(face_every_s=every[0], text_every_s=every[1])
    started = time.perf_counter()
    timed = [
        (TimedDetector(d), n, name)
        for d, n, name in _detectors(clip.width, clip.height, options, clip.fps)
    ]
    planned = make_plan(clip.path, options, detectors=timed)  # type: ignore[arg-type]
    planned_at = time.perf_counter()
    rendered = render(clip.path, planned.plan, dest)
    done = time.perf_counter()
    dest.unlink(missing_ok=True)
    if rendered.frames != clip.frames:
        raise RuntimeError(f"bwv rendered {rendered.frames} frames of {clip.frames}")
    return BwvRun(
        done - started,
        planned_at - started,
        done - planned_at,
        len(planned.plan.tracks),
        rendered.audio,
        {name: d.ms for d, _, name in timed},
    )


# --- (2) deface --------------------------------------------------------------------------------


def render_defaults() -> tuple[str, int]:
    from bwv.redact.render import render

    params = inspect.signature(render).parameters
    return params["preset"].default, params["crf"].default


def deface_config() -> str:
    preset, crf = render_defaults()
    return json.dumps(
        {
            "codec": "libx264",
            "quality": None,  # no -crf from imageio's quality scale
            "macro_block_size": 1,  # no resize of 1080 to 1088
            "output_params": ["-preset", preset, "-crf", str(crf)],
        }
    )


@dataclass
class DefaceRun:
    seconds: float
    loop_fps: float | None  # tqdm's rate for the frame loop
    backend: str
    frames_out: int


def run_deface(clip: Clip, scale: str | None, dest: Path, backend: str | None) -> DefaceRun:
    exe = shutil.which("deface")
    if exe is None:
        raise RuntimeError("deface is not installed")
    cmd = [exe, str(clip.path), "-o", str(dest), "--keep-audio", "--ffmpeg-config", deface_config()]
    if scale:
        cmd += ["--scale", scale]
    if backend:
        cmd += ["--backend", backend]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not dest.is_file():
        raise RuntimeError(f"deface failed ({done.returncode}): {done.stderr[-2000:]}")
    text = (done.stdout + done.stderr).replace("\r", "\n")
    rates = re.findall(r"(\d+(?:\.\d+)?)it/s\]", text)
    used = backend if backend and backend != "auto" else None
    if used is None:
        used = "onnxrt" if "Running on" in text else "opencv"
    if used == "onnxrt":
        provider = re.search(r"Running on (\w+)", text)
        used += f" ({provider.group(1)})" if provider else ""
    frames_out = _probe(dest)[2]
    dest.unlink(missing_ok=True)
    return DefaceRun(seconds, float(rates[-1]) if rates else None, used, frames_out)


# --- (3) transcode only ------------------------------------------------------------------------


def run_transcode(clip: Clip, dest: Path) -> float:
    """Decode -> libx264 (render's preset and crf) -> MP4, AAC copied; seconds."""
    import av

    from bwv.redact.render import open_strict

    preset, crf = render_defaults()
    started = time.perf_counter()
    container, video, audio = open_strict(clip.path)
    frames = 0
    with (
        container,
        av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        v_out = out.add_stream("libx264", rate=video.average_rate)
        v_out.width, v_out.height, v_out.pix_fmt = clip.width, clip.height, "yuv420p"
        v_out.time_base = video.time_base
        v_out.codec_context.time_base = video.time_base
        v_out.options = {"preset": preset, "crf": str(crf)}
        a_out = None
        if audio is not None and audio.codec_context.name == "aac":
            a_out = out.add_stream_from_template(audio)
        streams = [video] + ([audio] if a_out is not None else [])
        for packet in container.demux(*streams):
            if packet.stream is video:
                for frame in packet.decode():
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for out_packet in v_out.encode(frame):
                        out.mux(out_packet)
                    frames += 1
            elif packet.dts is not None:
                packet.stream = a_out
                out.mux(packet)
        for out_packet in v_out.encode():
            out.mux(out_packet)
    seconds = time.perf_counter() - started
    dest.unlink(missing_ok=True)
    if frames != clip.frames:
        raise RuntimeError(f"transcode decoded {frames} frames of {clip.frames}")
    return seconds


# --- machine -----------------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    import av

    try:
        import imageio_ffmpeg

        deface_ffmpeg = f"imageio-ffmpeg {imageio_ffmpeg.__version__}: ffmpeg " + (
            imageio_ffmpeg.get_ffmpeg_version()
        )
    except Exception as exc:  # its binary is what deface encodes with
        deface_ffmpeg = f"unknown ({exc})"
    codec = av.library_versions.get("libavcodec", ())
    return {
        "cpu": f"{cpu_model()}, nproc {len(os.sched_getaffinity(0))}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyav": f"{version('av')} (libavcodec {'.'.join(map(str, codec))})",
        "onnxruntime": version("onnxruntime"),
        "opencv": version("opencv-python"),
        "deface": version("deface"),
        "deface_ffmpeg": deface_ffmpeg,
        "system_ffmpeg": first_line(["ffmpeg", "-version"]),
    }


# --- report ------------------------------------------------------------------------------------


@dataclass
class ClipResult:
    clip: Clip
    bwv: dict[tuple[int, int], list[BwvRun]] = field(default_factory=dict)
    deface: dict[str, list[DefaceRun]] = field(default_factory=dict)  # "640x360" | "full"
    transcode: Measure = field(default_factory=Measure)

    def fps(self, seconds: list[float]) -> Measure:
        return Measure([self.clip.frames / s for s in seconds])

    def bwv_fps(self, every: tuple[int, int]) -> Measure:
        return self.fps([r.seconds for r in self.bwv[every]])

    def deface_fps(self, key: str) -> Measure | None:
        runs = self.deface.get(key)
        return self.fps([r.seconds for r in runs]) if runs else None

    def transcode_fps(self) -> Measure:
        return self.fps(self.transcode.values)


def _f(m: Measure | None) -> str:
    if m is None or not m.values:
        return "-"
    return f"{m.median:.1f}{m.spread(lambda v: f'{v:.1f}')}"


def _ratio(a: Measure | None, b: Measure | None) -> float | None:
    if a is None or b is None or not a.values or not b.values:
        return None
    return a.median / b.median


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def goals(results: list[ClipResult], every: tuple[int, int]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        if r.clip.kind != results[0].clip.kind or every not in r.bwv:
            continue
        fps = r.bwv_fps(every).median
        if r.clip.height == 720:
            out.append(
                {
                    "goal": f"{r.clip.name} faces+plates >= {GOAL_720_FPS:g} fps",
                    "value": round(fps, 1),
                    "met": fps >= GOAL_720_FPS,
                }
            )
            ratio = _ratio(r.bwv_fps(every), r.deface_fps("640x360"))
            out.append(
                {
                    "goal": f"{r.clip.name} >= {GOAL_720_VS_DEFACE:g}x deface --scale 640x360",
                    "value": None if ratio is None else round(ratio, 2),
                    "met": None if ratio is None else ratio >= GOAL_720_VS_DEFACE,
                }
            )
        elif r.clip.height == 1080:
            out.append(
                {
                    "goal": f"{r.clip.name} faces+plates >= {GOAL_1080_FPS:g} fps",
                    "value": round(fps, 1),
                    "met": fps >= GOAL_1080_FPS,
                }
            )
    return out


def table(results: list[ClipResult], schedules: list[tuple[int, int]]) -> list[str]:
    lines = [
        "| clip | face/text every | bwv fps | deface 640x360 fps | deface full fps "
        "| transcode-only fps | bwv / deface-640 | bwv / transcode |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for every in schedules:
            bwv = r.bwv_fps(every)
            d640 = r.deface_fps("640x360")
            vs_d = _ratio(bwv, d640)
            vs_t = _ratio(bwv, r.transcode_fps())
            lines.append(
                f"| {r.clip.name} ({r.clip.frames} frames) | {every[0]}/{every[1]} | {_f(bwv)} "
                f"| {_f(d640)} | {_f(r.deface_fps('full'))} | {_f(r.transcode_fps())} "
                f"| {'-' if vs_d is None else f'{vs_d:.2f}'} "
                f"| {'-' if vs_t is None else f'{vs_t:.2f}'} |"
            )
    return lines


def breakdown(results: list[ClipResult], schedules: list[tuple[int, int]]) -> list[str]:
    """Where bwv's time goes (median run by total time), and deface's in-loop rate."""
    lines = []
    for r in results:
        for every in schedules:
            runs = sorted(r.bwv[every], key=lambda x: x.seconds)
            m = runs[len(runs) // 2]
            parts = []
            for name, ms in m.detectors.items():
                med = Measure(ms).median if ms else 0.0
                parts.append(f"{name} {len(ms)} calls x {med:.0f} ms = {sum(ms) / 1000:.1f} s")
            lines.append(
                f"{r.clip.name} bwv {every[0]}/{every[1]}: {m.seconds:.1f} s = plan "
                f"{m.plan_s:.1f} s ({r.clip.frames / m.plan_s:.0f} fps; {'; '.join(parts)}; "
                f"detectors run in parallel, one thread each) + render {m.render_s:.1f} s "
                f"({r.clip.frames / m.render_s:.0f} fps); {m.tracks} tracks; audio {m.audio}"
            )
        for key, runs in r.deface.items():
            loop = [x.loop_fps for x in runs if x.loop_fps]
            lines.append(
                f"{r.clip.name} deface {key}: backend {runs[0].backend}; in-loop (tqdm) "
                f"{Measure(loop).median if loop else float('nan'):.1f} fps vs "
                f"{_f(r.deface_fps(key))} end to end; output {runs[0].frames_out} frames"
            )
    return lines


# --- main --------------------------------------------------------------------------------------


def parse_every(text: str) -> tuple[float, float]:
    try:
        f, t = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected F,T (e.g. 0.2,1.6), got {text!r}") from None
    if not (0 < f <= 10 and 0 < t <= 20):
        raise argparse.ArgumentTypeError("F must be in (0, 10] and T in (0, 20] seconds")
    return f, t


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 s clips, 1 repeat")
    p.add_argument("--repeats", type=int, help="repeats per measurement (default 3, quick 1)")
    p.add_argument("--seconds", type=float, help="clip length (default 5, quick 2)")
    p.add_argument(
        "--every",
        type=parse_every,
        action="append",
        help="face_every_s,text_every_s for bwv, seconds (repeatable; default: Options())",
    )
    p.add_argument("--heights", default="720,1080", help="clip heights (default 720,1080)")
    p.add_argument("--kind", choices=["real", "street"], default="real", help="clip kind")
    p.add_argument(
        "--deface-backend", choices=["auto", "onnxrt", "opencv"], help="deface --backend"
    )
    p.add_argument(
        "--deface-full-repeats", type=int, default=1, help="repeats of deface at full size (1)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--dir", type=Path, help="where the temporary directory goes")
    a = p.parse_args(argv)

    from bwv.redact.plan import Options

    defaults = (Options().face_every_s, Options().text_every_s)
    repeats = a.repeats or (1 if a.quick else 3)
    seconds = a.seconds or (2.0 if a.quick else 5.0)
    schedules = a.every or [defaults]
    heights = [int(h) for h in a.heights.split(",")]
    started = time.perf_counter()
    load_before = os.getloadavg()
    results: list[ClipResult] = []
    with tempfile.TemporaryDirectory(prefix="bwv-bench-redact-", dir=a.dir) as tmp_name:
        tmp = Path(tmp_name)
        log(f"making {a.kind} clips ({seconds:g} s, {heights})")
        clips, notes = make_clips(tmp, heights, seconds, [a.kind])
        results = [ClipResult(c) for c in clips]
        out = tmp / "out.mp4"
        for repeat in range(repeats):
            for r in results:
                c = r.clip
                tag = f"[{repeat + 1}/{repeats}] {c.name}"
                for every in schedules:
                    run = run_bwv(c, every, out)
                    r.bwv.setdefault(every, []).append(run)
                    log(f"{tag} bwv {every[0]}/{every[1]}: {c.frames / run.seconds:.1f} fps")
                for key, scale in (("640x360", "640x360"), ("full", None)):
                    if key == "full" and repeat >= a.deface_full_repeats:
                        continue
                    d = run_deface(c, scale, out, a.deface_backend)
                    r.deface.setdefault(key, []).append(d)
                    log(f"{tag} deface {key} ({d.backend}): {c.frames / d.seconds:.1f} fps")
                t = run_transcode(c, out)
                r.transcode.values.append(t)
                log(f"{tag} transcode: {c.frames / t:.1f} fps")
    total = time.perf_counter() - started
    load_after = os.getloadavg()
    preset, crf = render_defaults()
    machine = machine_facts()
    settings = {
        "command": " ".join(["python", "bench/redact.py", *argv]),
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "repeats": repeats,
        "deface_full_repeats": min(repeats, a.deface_full_repeats),
        "seconds": seconds,
        "schedules": [list(s) for s in schedules],
        "render_preset_crf": [preset, crf],
        "deface_ffmpeg_config": json.loads(deface_config()),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "total_s": round(total, 1),
    }
    goal_rows = goals(results, defaults) if defaults in schedules else []
    if a.json:
        doc = {
            "settings": settings,
            "machine": machine,
            "notes": notes,
            "clips": [
                {
                    "name": r.clip.name,
                    "size": [r.clip.width, r.clip.height],
                    "frames": r.clip.frames,
                    "fps": round(r.clip.fps, 3),
                    "bwv": [
                        {
                            "face_every_s": ev[0],
                            "text_every_s": ev[1],
                            "fps": round(r.bwv_fps(ev).median, 2),
                            "fps_runs": [round(v, 2) for v in r.bwv_fps(ev).values],
                            "plan_s": [round(x.plan_s, 2) for x in runs],
                            "render_s": [round(x.render_s, 2) for x in runs],
                            "tracks": runs[0].tracks,
                            "detector_ms_median": {
                                n: round(Measure(ms).median, 1) if ms else None
                                for n, ms in runs[len(runs) // 2].detectors.items()
                            },
                            "detector_calls": {n: len(ms) for n, ms in runs[0].detectors.items()},
                            "vs_deface_640": _ratio(r.bwv_fps(ev), r.deface_fps("640x360")),
                            "vs_transcode": _ratio(r.bwv_fps(ev), r.transcode_fps()),
                        }
                        for ev, runs in r.bwv.items()
                    ],
                    "deface": {
                        k: {
                            "fps": round(r.fps([x.seconds for x in runs]).median, 2),
                            "fps_runs": [round(r.clip.frames / x.seconds, 2) for x in runs],
                            "loop_fps": [x.loop_fps for x in runs],
                            "backend": runs[0].backend,
                        }
                        for k, runs in r.deface.items()
                    },
                    "transcode_fps": round(r.transcode_fps().median, 2),
                    "transcode_fps_runs": [round(v, 2) for v in r.transcode_fps().values],
                }
                for r in results
            ],
            "goals": goal_rows,
        }
        print(json.dumps(doc, indent=2))
    else:
        print()
        print("\n".join(table(results, schedules)))
        print()
        for g in goal_rows:
            value = "-" if g["value"] is None else g["value"]
            print(f"goal {g['goal']}: {value} {_mark(g['met'])}")
        print()
        for line in breakdown(results, schedules):
            print(f"- {line}")
        for line in notes:
            print(f"- {line}")
        print(
            f"- fps = frames / wall seconds, median (min-max) of {repeats} repeat(s) "
            f"({min(repeats, a.deface_full_repeats)} for deface full); bwv and "
            f"transcode encode libx264 preset {preset} crf {crf}; deface --ffmpeg-config "
            f"{deface_config()} --keep-audio"
        )
        print(f"- machine: {'; '.join(f'{k} {v}' for k, v in machine.items())}")
        print(
            f"- run: `{settings['command']}` {settings['date']}, {total:.0f} s; load average "
            f"before {', '.join(f'{v:.2f}' for v in load_before)}, after "
            f"{', '.join(f'{v:.2f}' for v in load_after)}"
        )
    met = [g["met"] for g in goal_rows if g["met"] is not None]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
