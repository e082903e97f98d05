#!/usr/bin/env python
"""Licence-plate coverage of the text detector on real photos, and detector latency.

    python bench/redact_quality_plates.py              # ../shared/data/plates-eu, ~1 minute
    python bench/redact_quality_plates.py --json       # the same as one JSON object
    python bench/redact_quality_plates.py --latency    # ORT vs OpenCV DNN, both models

Data: the openalpr "eu" benchmark photos (not part of bwv, never copied into it): ``euN.jpg``
and ``test_NNN.jpg``, each with a ``.txt`` beside it holding one tab-separated line per plate,
``file x y w h PLATE``.

For each photo ``bwv.redact.detect.TextDetector`` runs at its default input size
(``text_input_width``: upscaled 2x, capped at 1920 on the long side; the rule for video too).
On these ~500 px photos the plates are 16-38 px tall, their characters ~11-27 px, so 2x puts
every character above the ~14 px the network needs. No ground truth is used to choose the size.
A plate counts as covered when at least 90% of its box lies under the union of the returned
boxes: of class "plate", and separately of any class. Over-blur is the area of that union
outside every plate box, as a fraction of the photo.
Time is ``detect()`` alone (resize, inference, post-processing), after one warm-up per size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from bench.common import Measure, cpu_model
from bwv.redact.detect import Detection, FaceDetector, TextDetector, text_input_width

DATA = Path(__file__).resolve().parents[2] / "shared/data/plates-eu"
GOAL_COVERED = 0.95
COVERED = 0.90


@dataclass
class PhotoResult:
    name: str
    size: tuple[int, int]
    input_size: tuple[int, int]
    plates: int
    covered_plate: int
    covered_any: int
    overblur_plate: float
    overblur_any: float
    ms: float
    detections: int


@dataclass
class Summary:
    photos: int = 0
    plates: int = 0
    covered_plate: int = 0
    covered_any: int = 0
    overblur_plate: list[float] = field(default_factory=list)
    overblur_any: list[float] = field(default_factory=list)
    ms: Measure = field(default_factory=Measure)
    missed: list[str] = field(default_factory=list)


def ground_truth(directory: Path) -> dict[Path, list[tuple[int, int, int, int]]]:
    photos: dict[Path, list[tuple[int, int, int, int]]] = {}
    for txt in sorted(directory.glob("*.txt")):
        for line in txt.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 5 or not (directory / parts[0]).is_file():
                continue  # the licence text
            x, y, w, h = (int(v) for v in parts[1:5])
            photos.setdefault(directory / parts[0], []).append((x, y, w, h))
    return photos


def union_mask(shape: tuple[int, int], dets: list[Detection], classes: set[str]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for d in dets:
        if d.cls in classes:
            x0, y0, x1, y1 = d.box
            mask[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
    return mask


def score(mask: np.ndarray, plates: list[tuple[int, int, int, int]]) -> tuple[int, float]:
    gt = np.zeros_like(mask)
    covered = 0
    for x, y, w, h in plates:
        gt[y : y + h, x : x + w] = True
        if mask[y : y + h, x : x + w].mean() >= COVERED:
            covered += 1
    return covered, float((mask & ~gt).sum() / mask.size)


def run_photos(directory: Path, threads: int, long_side: int | None) -> list[PhotoResult]:
    # One detector at a time: a session holds ~400 MB of buffers at these input sizes.
    detector: TextDetector | None = None
    results = []
    for path, plates in ground_truth(directory).items():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"cannot read {path}")
        h, w = image.shape[:2]
        if detector is None or detector.frame_size != (w, h):
            width = None
            if long_side is not None:
                width = max(32, round(w * long_side / max(w, h)))
            detector = None  # free the old session first
            detector = TextDetector(w, h, input_width=width, threads=threads)
            detector.detect(image)  # warm-up: the first run allocates
        t = time.perf_counter()
        dets = detector.detect(image)
        ms = (time.perf_counter() - t) * 1000
        plate_mask = union_mask((h, w), dets, {"plate"})
        any_mask = union_mask((h, w), dets, {"plate", "text"})
        covered_plate, over_plate = score(plate_mask, plates)
        covered_any, over_any = score(any_mask, plates)
        results.append(
            PhotoResult(
                path.name,
                (w, h),
                detector.input_size,
                len(plates),
                covered_plate,
                covered_any,
                over_plate,
                over_any,
                ms,
                len(dets),
            )
        )
    return results


def summarise(results: list[PhotoResult]) -> Summary:
    s = Summary()
    for r in results:
        s.photos += 1
        s.plates += r.plates
        s.covered_plate += r.covered_plate
        s.covered_any += r.covered_any
        s.overblur_plate.append(r.overblur_plate)
        s.overblur_any.append(r.overblur_any)
        s.ms.values.append(r.ms)
        if r.covered_plate < r.plates:
            s.missed.append(r.name)
    return s


def latency(threads: int, repeats: int) -> list[dict[str, Any]]:
    """Per-inference time of both detectors on both runtimes, on a noise frame."""
    rng = np.random.default_rng(0)
    rows = []
    cases = [
        ("face", 1280, 720, None),
        ("face", 1280, 720, 640),
        ("text", 1280, 720, 1600),
        ("text", 1280, 720, 1920),
    ]
    for kind, fw, fh, iw in cases:
        frame = rng.integers(0, 256, (fh, fw, 3), dtype=np.uint8)
        for runtime in ("onnxruntime", "opencv-dnn"):
            cls = FaceDetector if kind == "face" else TextDetector
            detector = cls(fw, fh, input_width=iw, threads=threads, runtime=runtime)
            detector.detect(frame)
            m = Measure()
            for _ in range(repeats):
                t = time.perf_counter()
                detector.detect(frame)
                m.values.append((time.perf_counter() - t) * 1000)
            iw_, ih_ = detector.input_size
            rows.append(
                {
                    "model": detector.model.name,
                    "frame": f"{fw}x{fh}",
                    "input": f"{iw_}x{ih_}",
                    "runtime": runtime,
                    "threads": threads,
                    "median_ms": round(m.median, 1),
                    "min_ms": round(min(m.values), 1),
                    "max_ms": round(max(m.values), 1),
                    "chosen": runtime == _default_runtime(kind),
                }
            )
            print(
                f"  {detector.model.name:13} {iw_}x{ih_:<5} {runtime:12} {threads} thr  "
                f"{m.median:7.1f} ms{m.spread(lambda v: f'{v:.0f}')}",
                file=sys.stderr,
            )
    return rows


def _default_runtime(kind: str) -> str:
    from bwv.redact.weights import centerface_model, text_model

    return (centerface_model() if kind == "face" else text_model()).runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help=f"photos + .txt boxes (default {DATA})")
    p.add_argument("--threads", type=int, default=2, help="inference threads (default 2)")
    p.add_argument(
        "--long-side", type=int, help="network input long side (default: text_input_width)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--latency", action="store_true", help="time both runtimes, both models")
    p.add_argument("--repeats", type=int, default=7, help="latency repeats (default 7)")
    a = p.parse_args(argv)

    if a.latency:
        rows = latency(a.threads, a.repeats)
        if a.json:
            print(json.dumps({"cpu": cpu_model(), "latency": rows}, indent=2))
        else:
            print(f"CPU: {cpu_model()}, {a.threads} threads, median of {a.repeats}")
            print("| model | input | runtime | median ms | min-max |")
            print("|---|---|---|---:|---|")
            for r in rows:
                print(
                    f"| {r['model']} | {r['input']} | {r['runtime']}{' (chosen)' * r['chosen']}"
                    f" | {r['median_ms']} | {r['min_ms']}-{r['max_ms']} |"
                )
        return 0

    if not a.data.is_dir():
        raise SystemExit(f"no data at {a.data} (give --data DIR)")
    started = time.perf_counter()
    results = run_photos(a.data, a.threads, a.long_side)
    s = summarise(results)
    frac_plate = s.covered_plate / s.plates
    frac_any = s.covered_any / s.plates
    summary = {
        "cpu": cpu_model(),
        "threads": a.threads,
        "input_rule": f"long side {a.long_side}"
        if a.long_side
        else "text_input_width: 2x, long side <= 1920 "
        f"(576x432 -> {text_input_width(576, 432)} wide)",
        "photos": s.photos,
        "plates": s.plates,
        "covered_plate": s.covered_plate,
        "covered_plate_fraction": round(frac_plate, 4),
        "covered_any": s.covered_any,
        "covered_any_fraction": round(frac_any, 4),
        "goal_fraction": GOAL_COVERED,
        "overblur_plate_median": round(statistics.median(s.overblur_plate), 4),
        "overblur_plate_mean": round(statistics.fmean(s.overblur_plate), 4),
        "overblur_any_median": round(statistics.median(s.overblur_any), 4),
        "overblur_any_mean": round(statistics.fmean(s.overblur_any), 4),
        "ms_median": round(s.ms.median, 1),
        "ms_min": round(min(s.ms.values), 1),
        "ms_max": round(max(s.ms.values), 1),
        "missed_as_plate": s.missed,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if a.json:
        summary["photos_detail"] = [asdict(r) for r in results]
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{s.photos} photos, {s.plates} plates, {cpu_model()}, {a.threads} threads")
    print(f"input: {summary['input_rule']}")
    print("| boxes counted | plates >=90% covered | over-blur median | over-blur mean |")
    print("|---|---:|---:|---:|")
    for label, covered, frac, med, mean in (
        ("plate", s.covered_plate, frac_plate, "plate_median", "plate_mean"),
        ("plate + text", s.covered_any, frac_any, "any_median", "any_mean"),
    ):
        print(
            f"| {label} | {covered}/{s.plates} = {frac:.1%} "
            f"| {summary['overblur_' + med]:.2%} | {summary['overblur_' + mean]:.2%} |"
        )
    print(
        f"time per photo: {s.ms.median:.0f} ms{s.ms.spread(lambda v: f'{v:.0f}')} "
        f"(goal: >= {GOAL_COVERED:.0%} covered as plate)"
    )
    if s.missed:
        print(f"plates not covered as plate: {', '.join(s.missed)}")
    return 0 if frac_plate >= GOAL_COVERED else 1


if __name__ == "__main__":
    sys.exit(main())
