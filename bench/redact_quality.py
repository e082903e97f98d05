#!/usr/bin/env python
"""Face quality of the redaction schedule: what detecting every N frames loses against
per-frame full-resolution detection; plus licence plates (bench/redact_quality_plates.py).

    python bench/redact_quality.py                     # real + street, 720p + 1080p, 5 s (~6 min)
    python bench/redact_quality.py --quick             # real 720p only, 4 s, no plates
    python bench/redact_quality.py --face-every 1,2,4,6,8,12 --json

Clips: as bench/redact.py makes them (real EgoBlur faces, padded to 1280x720 / 1920x1080 at
30 fps; synthetic ``make_street_clip`` at 25 fps, whose true face box is known).

Reference: ``FaceDetector(w, h)`` (CenterFace at the frame's own size, threshold 0.2, the
engine's detector and settings) on every decoded frame of the clip (two detectors, one thread
each, frames alternating between them).

Schedules: ``make_plan(clip, Options(classes=("faces",), face_every_s=N / fps))`` for each N (plates
are another detector and another track set: they do not change the face tracks). The plan's
detector on a scheduled frame returns the reference's detections for that frame (looked up by
a BLAKE2 hash of the decoded BGR frame; same model, input size and thread count, so the same
output); for the default schedule the plan is also made with the real detector and the two
are compared (``--no-check`` skips that). The synthetic clips' known boxes are not used: they
are the pasted picture (hair, helmet, background), larger than the face a detector boxes.

Scores: a reference box is covered when >= 90% of its pixels lie under the union of the plan's
boxes for that frame (a mask per frame); "missed" counts the others (and those the reference
scored >= 0.5). Blurred area is that union's share of the frame, mean over frames; "reference
area" is the same for the per-frame reference boxes padded as plans pad them (the least a
per-frame detector would blur). Missed boxes are listed under the table (and in the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bench.common import cpu_model  # noqa: E402
from bench.redact import Clip, make_clips  # noqa: E402

COVERED = 0.90
GOAL = 0.99
CONFIDENT = 0.5  # a reference box the detector is sure of


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def frame_key(bgr: np.ndarray) -> bytes:
    return hashlib.blake2b(memoryview(np.ascontiguousarray(bgr)), digest_size=16).digest()


# --- reference: every frame at full resolution --------------------------------------------------


@dataclass
class Reference:
    boxes: list[list[tuple[tuple[float, float, float, float], float]]]  # frame -> (box, score)
    by_key: dict[bytes, list[Any]]  # frame hash -> Detection list
    seconds: float
    ms: list[float]


def reference(clip: Clip, workers: int = 2) -> Reference:
    """CenterFace at full resolution on every frame, decoded as the engine decodes."""
    from bwv.redact.detect import FaceDetector
    from bwv.redact.render import open_strict

    local = threading.local()

    def detect(bgr: np.ndarray) -> tuple[list[Any], float, bytes]:
        if not hasattr(local, "detector"):
            local.detector = FaceDetector(clip.width, clip.height)
        t = time.perf_counter()
        found = local.detector.detect(bgr)
        return found, (time.perf_counter() - t) * 1000, frame_key(bgr)

    started = time.perf_counter()
    futures = []
    container, video, _ = open_strict(clip.path)
    with container, ThreadPoolExecutor(workers) as pool:
        for frame in container.decode(video):
            futures.append(pool.submit(detect, frame.to_ndarray(format="bgr24")))
            if len(futures) > 2 * workers:
                futures[-2 * workers - 1].result()  # at most 2 frames per detector in flight
        results = [f.result() for f in futures]
    by_key = {key: found for found, _, key in results}
    boxes = [[(d.box, d.score) for d in found] for found, _, _ in results]
    return Reference(boxes, by_key, time.perf_counter() - started, [ms for _, ms, _ in results])


class CachedFaces:
    """A face detector answering from the reference (by frame hash); a miss runs the real one."""

    def __init__(self, clip: Clip, ref: Reference) -> None:
        from bwv.redact.detect import FaceDetector

        self.ref = ref
        self.real = FaceDetector(clip.width, clip.height, threads=1)
        self.model = self.real.model
        self.misses = 0

    def detect(self, frame: np.ndarray) -> list[Any]:
        found = self.ref.by_key.get(frame_key(frame))
        if found is None:
            self.misses += 1
            return self.real.detect(frame)
        return list(found)


# --- scoring -----------------------------------------------------------------------------------


@dataclass
class Score:
    every: int
    boxes: int = 0
    missed: int = 0
    missed_confident: int = 0
    confident: int = 0
    blurred: list[float] = field(default_factory=list)  # per frame, share of the frame
    worst: float = 1.0
    missed_at: list[dict[str, Any]] = field(default_factory=list)  # frame, box, score, coverage
    tracks: int = 0
    plan_s: float = 0.0
    cache_misses: int = 0

    @property
    def covered(self) -> float:
        return 1 - self.missed / self.boxes if self.boxes else 1.0


def _pixels(box: tuple[float, ...], w: int, h: int) -> tuple[int, int, int, int]:
    """The pixels a float box touches (rounded outwards: the stricter test)."""
    return (
        max(0, math.floor(box[0])),
        max(0, math.floor(box[1])),
        min(w, math.ceil(box[2])),
        min(h, math.ceil(box[3])),
    )


def coverage(mask: np.ndarray, box: tuple[float, ...]) -> float:
    x0, y0, x1, y1 = _pixels(box, mask.shape[1], mask.shape[0])
    if x1 <= x0 or y1 <= y0:
        return 1.0
    return float(mask[y0:y1, x0:x1].mean())


def score_plan(clip: Clip, plan: Any, ref: Reference, every: int) -> Score:
    regions = plan.regions()
    s = Score(every, tracks=len(plan.tracks))
    mask = np.zeros((clip.height, clip.width), dtype=bool)
    for index, found in enumerate(ref.boxes):
        mask[:] = False
        for _, (x0, y0, x1, y1) in regions.get(index, ()):
            mask[y0:y1, x0:x1] = True
        s.blurred.append(float(mask.mean()))
        for box, conf in found:
            c = coverage(mask, box)
            s.boxes += 1
            s.confident += conf >= CONFIDENT
            s.worst = min(s.worst, c)
            if c < COVERED:
                s.missed += 1
                s.missed_confident += conf >= CONFIDENT
                s.missed_at.append(
                    {
                        "frame": index,
                        "box": [round(v) for v in box],
                        "score": round(conf, 3),
                        "coverage": round(c, 3),
                    }
                )
    return s


def reference_area(clip: Clip, ref: Reference, padding: float) -> float:
    """Mean share of the frame under the per-frame reference boxes padded like plan boxes."""
    mask = np.zeros((clip.height, clip.width), dtype=bool)
    shares = []
    for found in ref.boxes:
        mask[:] = False
        for (x0, y0, x1, y1), _ in found:
            px, py = (x1 - x0) * padding, (y1 - y0) * padding
            a, b, c, d = _pixels((x0 - px, y0 - py, x1 + px, y1 + py), clip.width, clip.height)
            mask[b:d, a:c] = True
        shares.append(float(mask.mean()))
    return float(np.mean(shares))


def run_schedule(clip: Clip, ref: Reference, every: int) -> Score:
    from bwv.redact.engine import make_plan
    from bwv.redact.plan import Options

    options = Options(classes=("faces",), face_every_s=every / clip.fps)
    cached = CachedFaces(clip, ref)
    t = time.perf_counter()
    planned = make_plan(
        clip.path, options, source_sha256="0" * 64, detectors=[(cached, every, "faces")]
    )
    s = score_plan(clip, planned.plan, ref, every)
    s.plan_s = time.perf_counter() - t
    s.cache_misses = cached.misses
    return s


ENGINE = "engine"  # the engine's default schedule, both scales, real detectors


def run_engine_default(clip: Clip, ref: Reference) -> Score:
    """What ``bwv export`` does for faces: the default Options, the engine's own detectors
    (downscaled every ``face_every_s``, full resolution every ``face_full_every_s``)."""
    from bwv.redact.engine import make_plan
    from bwv.redact.plan import Options

    options = Options(classes=("faces",))
    t = time.perf_counter()
    planned = make_plan(clip.path, options, source_sha256="0" * 64)
    s = score_plan(clip, planned.plan, ref, options.every(options.face_every_s, clip.fps))
    s.plan_s = time.perf_counter() - t
    return s


def check_default(clip: Clip, ref: Reference, every: int) -> tuple[bool, float, str]:
    """The default schedule with the real detector: same tracks as with the reference's?"""
    from bwv.redact.engine import make_plan
    from bwv.redact.plan import Options

    options = Options(classes=("faces",), face_every_s=every / clip.fps)
    t = time.perf_counter()
    from bwv.redact.detect import FaceDetector

    full = FaceDetector(clip.width, clip.height, threads=1)
    real = make_plan(
        clip.path, options, source_sha256="0" * 64, detectors=[(full, every, "faces")]
    ).plan
    seconds = time.perf_counter() - t
    cached = make_plan(
        clip.path,
        options,
        source_sha256="0" * 64,
        detectors=[(CachedFaces(clip, ref), every, "faces")],
    ).plan
    if real.tracks == cached.tracks:
        return True, seconds, f"identical ({len(real.tracks)} tracks)"
    a = {(t.id, b) for t in real.tracks for b in t.boxes}
    b = {(t.id, x) for t in cached.tracks for x in t.boxes}
    return False, seconds, f"DIFFERENT: {len(a ^ b)} of {len(a | b)} track boxes differ"


# --- plates (another engineer's bench, called as it is) ---------------------------------------


def plates() -> dict[str, Any]:
    """``bench/redact_quality_plates.py --json``, run in-process; its JSON object."""
    try:
        from bench import redact_quality_plates
    except Exception as exc:
        return {"error": f"cannot import bench/redact_quality_plates.py: {exc}"}
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            code = redact_quality_plates.main(["--json"])
        result = json.loads(buffer.getvalue())
    except (Exception, SystemExit) as exc:
        return {"error": f"redact_quality_plates.main failed: {exc}"}
    result.pop("photos_detail", None)
    result["exit_code"] = code
    return result


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="real 720p only, 4 s, no plates")
    p.add_argument("--seconds", type=float, help="clip length (default 5, quick 4)")
    p.add_argument("--face-every", help="schedules to score (default 1,2,4,6,8; 4 is bwv's)")
    p.add_argument("--heights", help="clip heights (default 720,1080; quick 720)")
    p.add_argument("--kinds", help="clip kinds (default real,street; quick real)")
    p.add_argument("--no-check", action="store_true", help="skip the real-detector check")
    p.add_argument("--no-plates", action="store_true", help="skip the plate bench")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--dir", type=Path, help="where the temporary directory goes")
    a = p.parse_args(argv)

    from bwv.redact.plan import Options

    default = round(Options().face_every_s * 30)  # frames, at the clips' 30 fps
    padding = Options().padding
    seconds = a.seconds or (4.0 if a.quick else 5.0)
    schedules = [int(v) for v in (a.face_every or "1,2,4,6,8").split(",")]
    schedules.sort()
    heights = [int(v) for v in (a.heights or ("720" if a.quick else "720,1080")).split(",")]
    kinds = (a.kinds or ("real" if a.quick else "real,street")).split(",")
    started = time.perf_counter()
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bwv-bench-redactq-", dir=a.dir) as tmp_name:
        log(f"making clips {kinds} x {heights}, {seconds:g} s")
        clips, notes = make_clips(Path(tmp_name), heights, seconds, kinds)
        for clip in clips:
            ref = reference(clip)
            n = sum(len(f) for f in ref.boxes)
            log(
                f"{clip.name}: reference {n} boxes in {clip.frames} frames, {ref.seconds:.1f} s "
                f"({np.median(ref.ms):.0f} ms per frame per detector)"
            )
            check = None
            if not a.no_check:
                same, check_s, said = check_default(clip, ref, default)
                check = {"identical": same, "seconds": round(check_s, 1), "said": said}
                log(f"{clip.name}: real-detector plan at every {default}: {said}")
            ref_area = reference_area(clip, ref, padding)
            for every in [*schedules, ENGINE]:
                s = (
                    run_engine_default(clip, ref)
                    if every == ENGINE
                    else run_schedule(clip, ref, every)
                )
                log(
                    f"{clip.name} every {every}: {s.covered:.2%} covered, {s.missed} missed, "
                    f"blurred {np.mean(s.blurred):.2%}"
                )
                rows.append(
                    {
                        "clip": clip.name,
                        "frames": clip.frames,
                        "face_every": every,
                        "default": every == ENGINE,
                        "reference_boxes": s.boxes,
                        "reference_confident": s.confident,
                        "covered_fraction": round(s.covered, 5),
                        "missed": s.missed,
                        "missed_confident": s.missed_confident,
                        "missed_boxes": s.missed_at[:50],
                        "worst_coverage": round(s.worst, 3),
                        "blurred_area_mean": round(float(np.mean(s.blurred)), 5),
                        "reference_area_mean": round(ref_area, 5),
                        "tracks": s.tracks,
                        "cache_misses": s.cache_misses,
                        "reference_ms_per_frame": round(float(np.median(ref.ms)), 1),
                        "check": check if every == ENGINE else None,
                        "goal_met": s.covered >= GOAL,
                    }
                )
    plate_result = None if (a.quick or a.no_plates) else plates()
    total = time.perf_counter() - started
    load_after = os.getloadavg()
    command = " ".join(["python", "bench/redact_quality.py", *argv])
    default_rows = [r for r in rows if r["default"]]
    ok = all(r["goal_met"] for r in default_rows)
    if a.json:
        print(
            json.dumps(
                {
                    "command": command,
                    "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
                    "cpu": cpu_model(),
                    "goal_covered": GOAL,
                    "covered_threshold": COVERED,
                    "notes": notes,
                    "faces": rows,
                    "plates": plate_result,
                    "load_before": [round(v, 2) for v in load_before],
                    "load_after": [round(v, 2) for v in load_after],
                    "total_s": round(total, 1),
                },
                indent=2,
            )
        )
        return 0 if ok else 1
    print()
    print(
        "| clip | face every | faces covered (>=90%) | missed boxes (score>=0.5) "
        "| blurred area | reference area | tracks |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['clip']} | {r['face_every']}{' (default)' * r['default']} "
            f"| {r['covered_fraction']:.2%} of {r['reference_boxes']} "
            f"| {r['missed']} ({r['missed_confident']}) | {r['blurred_area_mean']:.2%} "
            f"| {r['reference_area_mean']:.2%} | {r['tracks']} |"
        )
    print()
    for r in default_rows:
        mark = "PASS" if r["goal_met"] else "FAIL"
        print(f"goal {r['clip']} faces covered >= {GOAL:.0%} at the default schedule: {mark}")
    for r in default_rows:
        for m in r["missed_boxes"]:
            print(
                f"  missed at the default schedule: {r['clip']} frame {m['frame']} box "
                f"{m['box']} score {m['score']}, {m['coverage']:.0%} covered"
            )
    if plate_result is not None:
        if "error" in plate_result:
            print(f"plates: {plate_result['error']}")
        else:
            print(
                f"plates (bench/redact_quality_plates.py): {plate_result['covered_plate']}/"
                f"{plate_result['plates']} = {plate_result['covered_plate_fraction']:.1%} covered "
                f"as plate (goal {plate_result['goal_fraction']:.0%}), "
                f"{plate_result['covered_any_fraction']:.1%} as plate or text; over-blur mean "
                f"{plate_result['overblur_plate_mean']:.2%}; {plate_result['ms_median']} ms per "
                f"photo; {plate_result['photos']} photos"
            )
    print()
    for r in default_rows:
        if r["check"]:
            print(
                f"- {r['clip']}: default plan with the real detector vs the reference's: "
                f"{r['check']['said']} ({r['check']['seconds']} s)"
            )
    for note in notes:
        print(f"- {note}")
    refms = ", ".join(f"{r['clip']} {r['reference_ms_per_frame']} ms" for r in default_rows)
    print(
        f"- reference CenterFace at full resolution, ms per frame per detector "
        f"(2 in parallel): {refms}"
    )
    print(
        f"- `{command}` {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {total:.0f} s, {cpu_model()}; "
        f"load before {', '.join(f'{v:.2f}' for v in load_before)}, after "
        f"{', '.join(f'{v:.2f}' for v in load_after)}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
