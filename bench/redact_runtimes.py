#!/usr/bin/env python
"""Detector runtimes compared: onnxruntime, OpenCV DNN and OpenVINO, fp32 and int8; and the
cost of getting a decoded frame to the network.

    python bench/redact_runtimes.py                    # everything, ~10-15 minutes
    python bench/redact_runtimes.py --json             # the same as one JSON object
    python bench/redact_runtimes.py --parts latency,windows --repeats 9

Parts (``--parts``, comma-separated; default all):

- ``latency``: one inference (``engine.run(blob)``, the blob already made) of each model on each
  runtime at one thread: CenterFace at 1280x736, 640x384, 1920x1088; the PP-OCRv4 DBNet at
  1600x928, 1280x736, 960x544, 640x384 and 640x320 (a 320x160 plate window upscaled 2x). Per
  size the three engines are built, warmed twice, then timed in rounds, each round running
  every runtime once, the order rotating from round to round; medians over rounds, and per
  round the ratio to the model's current runtime (``bwv.redact.weights``), so load from other
  processes hits every runtime alike. OpenVINO's compile and first inference are reported.
- ``windows``: DBNet on windows of varying size, 320x160 to 640x320 (widths in steps of 32,
  2:1): onnxruntime (one session takes every shape), OpenVINO with one compiled model per shape
  (``OpenVinoEngine`` default) and with one dynamic-shape model (``max_shapes=0``).
- ``concurrency``: CenterFace 1280x736 and DBNet 1600x928 at one thread each, in two Python
  threads at once, as the redaction engine runs them: the current pair (OpenCV + onnxruntime),
  OpenVINO for both, and OpenVINO with CPU pinning (its default, turned off in the engine).
- ``int8``: post-training quantisation of both models, by onnxruntime's ``quantize_static``
  (QDQ, Conv/ConvTranspose only, per-channel int8 weights, uint8 activations, MinMax; needs the
  ``onnx`` package) run on onnxruntime and on OpenVINO, and by NNCF (``nncf.quantize``,
  performance preset; needs ``nncf``) run on OpenVINO. Calibration: every 4th plates-eu photo
  (27) and every other sampled footage frame. Latency fp32 vs int8 as above. Recall cost: for
  DBNet, plates-eu coverage (``bench/redact_quality_plates.py``'s scoring: >= 90% of the plate
  box under boxes of class "plate") of each int8 model against fp32, on all 108 plates and on
  the 81 of the photos not used for calibration; for CenterFace, the share of fp32 face boxes
  (OpenCV DNN) that the int8 model also finds (IoU >= 0.5) on the footage frames not used for
  calibration.
- ``prep``: a 1280x720 H.264 clip (made from the footage in a temporary folder) decoded by
  PyAV: ``to_ndarray(format="bgr24")`` then ``cv2.resize``, against
  ``reformat(width, height, format="bgr24").to_ndarray()`` (swscale), to 640x360 and 1600x900;
  and ``cv2.dnn.blobFromImage`` / ``blobFromImageWithParams`` at the network sizes. OpenCV and
  swscale at one thread.

Noise: the machine may be shared. Each part reports how much CPU other processes used while it
ran (from /proc/stat, as a share of all cores) and each row its min-max.
Data: ``../shared/data`` (``--data``); the int8 recall parts need it and are skipped without
it; latency and prep fall back to synthetic frames.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from bench.common import cpu_model, version
from bench.redact_quality_plates import ground_truth, score, union_mask
from bwv.redact.detect import (
    _CENTERFACE_OUTPUTS,
    _PPOCR_BLOB,
    FaceDetector,
    TextDetector,
    _CvEngine,
    _OrtEngine,
)
from bwv.redact.runtimes import OpenVinoEngine
from bwv.redact.tracks import iou
from bwv.redact.weights import ModelInfo, centerface_model, model_bytes, text_model, with_dims

DATA = Path(__file__).resolve().parents[2] / "shared/data"
PARTS = ("latency", "windows", "concurrency", "int8", "prep")
RUNTIMES = ("onnxruntime", "opencv-dnn", "openvino")
FACE_SIZES = [(1280, 736), (640, 384), (1920, 1088)]
TEXT_SIZES = [(1600, 928), (1280, 736), (960, 544), (640, 384), (640, 320)]
WINDOWS = [(w, -(-w // 64) * 32) for w in range(320, 641, 32)]  # (w, h): 320x160 .. 640x320


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- machine load --------------------------------------------------------------------------


class Load:
    """CPU used by other processes while a part ran, as a share of all cores."""

    def __init__(self) -> None:
        self.start = self._snap()

    @staticmethod
    def _snap() -> tuple[float, float, float]:
        busy = 0.0
        try:
            vals = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
            busy = (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            pass
        t = os.times()
        return time.monotonic(), busy, t.user + t.system

    def report(self) -> dict[str, float]:
        wall0, busy0, own0 = self.start
        wall1, busy1, own1 = self._snap()
        cores = os.cpu_count() or 1
        wall = max(wall1 - wall0, 1e-9)
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall * cores)
        return {
            "wall_s": round(wall, 1),
            "others_cpu_share": round(others, 3),
            "loadavg_1min": round(os.getloadavg()[0], 2),
        }


def stats(values: list[float]) -> dict[str, float]:
    med = statistics.median(values)
    return {
        "median": round(med, 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "spread": round((max(values) - min(values)) / med, 3) if med else 0.0,
        "n": len(values),
    }


# --- frames and blobs ----------------------------------------------------------------------


def sample_image(data: Path | None) -> np.ndarray:
    if data is not None:
        image = cv2.imread(str(data / "footage/egoblur-gen2-test_face_image.png"))
        if image is not None:
            return image
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8)


def face_blob(image: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.dnn.blobFromImage(cv2.resize(image, (w, h)), 1.0, swapRB=True)


def text_blob(image: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.dnn.blobFromImageWithParams(cv2.resize(image, (w, h)), _PPOCR_BLOB)


def face_dims(w: int | str, h: int | str) -> dict[str, list[int | str]]:
    """CenterFace's input and outputs at w x h (strings: symbolic), for onnxruntime."""
    dims: dict[str, list[int | str]] = {"input.1": [1, 3, h, w]}
    for name, channels in zip(_CENTERFACE_OUTPUTS, (1, 2, 2, 10), strict=True):
        dims[name] = [
            1,
            channels,
            h // 4 if isinstance(h, int) else "oh",
            w // 4 if isinstance(w, int) else "ow",
        ]
    return dims


def make_engine(
    runtime: str,
    model: ModelInfo,
    size: tuple[int, int] | None,
    data: bytes | None = None,
    weights: bytes = b"",
    **ov_options: Any,
) -> Any:
    """An engine as ``detect._engine`` would build it, at one thread. ``size`` fixes
    CenterFace's dims for onnxruntime (None: symbolic)."""
    face = model.name == "centerface"
    outputs = _CENTERFACE_OUTPUTS if face else None
    blob = model_bytes(model) if data is None else data
    if runtime == "onnxruntime":
        if face:
            blob = with_dims(blob, face_dims(*size) if size else face_dims("w", "h"))
        return _OrtEngine(model, blob, outputs, 1)
    if runtime == "opencv-dnn":
        return _CvEngine(model, blob, outputs, 1)
    return OpenVinoEngine(model, blob, outputs, 1, weights=weights, **ov_options)


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def interleaved(
    calls: dict[str, Callable[[], Any]], repeats: int, base: str | None
) -> dict[str, Any]:
    """Time each call once per round, the order rotating; medians, and ratios to ``base``."""
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(timed(calls[name]))
    out: dict[str, Any] = {n: stats(v) for n, v in times.items()}
    if base is not None:
        for n in names:
            ratios = [a / b for a, b in zip(times[n], times[base], strict=True)]
            out[n]["ratio_to_" + base] = stats(ratios)
    return out


# --- part: latency -------------------------------------------------------------------------


def part_latency(image: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    rows = []
    cases = [(centerface_model(), s) for s in FACE_SIZES] + [(text_model(), s) for s in TEXT_SIZES]
    for model, (w, h) in cases:
        face = model.name == "centerface"
        blob = face_blob(image, w, h) if face else text_blob(image, w, h)
        engines, first = {}, {}
        for runtime in RUNTIMES:
            e = engines[runtime] = make_engine(runtime, model, (w, h))
            first[runtime] = timed(lambda e=e, b=blob: e.run(b))
            e.run(blob)
        compile_ms = next(iter(engines["openvino"].compile_ms.values()))
        base = model.runtime
        result = interleaved(
            {r: (lambda e=e, b=blob: e.run(b)) for r, e in engines.items()}, repeats, base
        )
        row = {
            "model": model.name,
            "input": f"{w}x{h}",
            "current": base,
            "runtimes": result,
            "first_call_ms": {r: round(v) for r, v in first.items()},
            "openvino_compile_ms": round(compile_ms),
        }
        rows.append(row)
        log(
            f"  {model.name:13} {w}x{h:<5} "
            + "  ".join(f"{r} {result[r]['median']:.0f}" for r in RUNTIMES)
            + f"  (ov compile {compile_ms:.0f}, first {first['openvino']:.0f} ms)"
        )
        del engines
        gc.collect()
    return rows


# --- part: windows -------------------------------------------------------------------------


def part_windows(image: np.ndarray, repeats: int) -> dict[str, Any]:
    model = text_model()
    blobs = [text_blob(image, w, h) for w, h in WINDOWS]
    engines = {
        "onnxruntime": make_engine("onnxruntime", model, None),
        "openvino per-shape": make_engine("openvino", model, None, max_shapes=len(WINDOWS)),
        "openvino dynamic": make_engine("openvino", model, None, max_shapes=0),
    }
    first_cycle = {}
    for name, e in engines.items():
        first_cycle[name] = round(sum(timed(lambda b=b, e=e: e.run(b)) for b in blobs))
    per_shape: dict[str, dict[str, list[float]]] = {n: {} for n in engines}
    cycle: dict[str, list[float]] = {n: [] for n in engines}
    names = list(engines)
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            e = engines[name]
            total = 0.0
            for (w, h), b in zip(WINDOWS, blobs, strict=True):
                ms = timed(lambda b=b, e=e: e.run(b))
                per_shape[name].setdefault(f"{w}x{h}", []).append(ms)
                total += ms
            cycle[name].append(total)
    out = {
        "shapes": [f"{w}x{h}" for w, h in WINDOWS],
        "first_cycle_ms": first_cycle,
        "openvino_compile_ms": {
            n: round(sum(engines[n].compile_ms.values())) for n in names if "openvino" in n
        },
        "cycle_ms": {n: stats(v) for n, v in cycle.items()},
        "per_shape_median_ms": {
            n: {s: round(statistics.median(v), 1) for s, v in d.items()}
            for n, d in per_shape.items()
        },
    }
    ratios = [a / b for a, b in zip(cycle["openvino per-shape"], cycle["onnxruntime"], strict=True)]
    out["cycle_ratio_openvino_per_shape_to_onnxruntime"] = stats(ratios)
    log(
        "  windows, 11 shapes per cycle: "
        + "  ".join(f"{n} {out['cycle_ms'][n]['median']:.0f} ms" for n in names)
    )
    return out


# --- part: concurrency ---------------------------------------------------------------------


def part_concurrency(image: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    face, text = centerface_model(), text_model()
    fb, tb = face_blob(image, 1280, 736), text_blob(image, 1600, 928)
    setups = [
        ("opencv-dnn + onnxruntime", "opencv-dnn", "onnxruntime", False),
        ("openvino + openvino", "openvino", "openvino", False),
        ("openvino + openvino, pinned", "openvino", "openvino", True),
    ]
    rows = []
    for label, fr, tr, pinned in setups:
        fe = make_engine(fr, face, (1280, 736))
        te = make_engine(tr, text, (1600, 928))
        for e in (fe, te):
            if isinstance(e, OpenVinoEngine):
                e._config["ENABLE_CPU_PINNING"] = pinned  # the engine's default is False
        for _ in range(2):
            fe.run(fb)
            te.run(tb)
        alone = interleaved(
            {"face": lambda e=fe: e.run(fb), "text": lambda e=te: e.run(tb)}, 3, None
        )
        times: dict[str, list[float]] = {"face": [], "text": []}

        tids: dict[str, int] = {}

        def loop(out: list[float], e: Any, b: np.ndarray, name: str, tids: dict[str, int]) -> None:
            tids[name] = threading.get_native_id()
            for _ in range(repeats):
                out.append(timed(lambda: e.run(b)))

        threads = [
            threading.Thread(target=loop, args=(times["face"], fe, fb, "face", tids)),
            threading.Thread(target=loop, args=(times["text"], te, tb, "text", tids)),
        ]
        wall = time.perf_counter()
        for t in threads:
            t.start()
        affinity = thread_cpus(tids, threads)
        for t in threads:
            t.join()
        wall = (time.perf_counter() - wall) * 1000
        rows.append(
            {
                "setup": label,
                "alone_ms": {k: v["median"] for k, v in alone.items()},
                "together_ms": {k: stats(v) for k, v in times.items()},
                "wall_ms": round(wall),
                "calls_each": repeats,
                "thread_cpus": affinity,
            }
        )
        log(
            f"  {label:28} alone {alone['face']['median']:.0f}/{alone['text']['median']:.0f}"
            f"  together {statistics.median(times['face']):.0f}/"
            f"{statistics.median(times['text']):.0f} ms  wall {wall:.0f} ms"
            f"  CPUs allowed {affinity.get('face')}/{affinity.get('text')}"
        )
        fe = te = None
        gc.collect()
    return rows


def thread_cpus(tids: dict[str, int], threads: list[threading.Thread]) -> dict[str, list[str]]:
    """The CPU lists each named thread was allowed while the threads ran, sampled every 10 ms
    from /proc (OpenVINO pins a thread for the length of a call and restores it after)."""
    seen: dict[str, set[str]] = {}
    while any(t.is_alive() for t in threads):
        for name, tid in list(tids.items()):
            try:
                status = Path(f"/proc/self/task/{tid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    seen.setdefault(name, set()).add(line.split(":", 1)[1].strip())
        time.sleep(0.01)
    return {name: sorted(v) for name, v in seen.items()}


# --- part: int8 ----------------------------------------------------------------------------


def footage_frames(data: Path) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(calibration, evaluation) footage frames: every other sampled frame of each video, the
    two stills for evaluation."""
    import av

    calib, evaluate = [], []
    for name, step in (
        ("egoblur-gen1-test_video.mp4", 40),
        ("egoblur-gen2-test_face_video.mp4", 1),
    ):
        path = data / "footage" / name
        if not path.is_file():
            continue
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i % step:
                    continue
                item = (f"{name}#{i}", frame.to_ndarray(format="bgr24"))
                (calib if (i // step) % 2 == 0 else evaluate).append(item)
    for name in ("deface-city.jpg", "egoblur-gen2-test_face_image.png"):
        image = cv2.imread(str(data / "footage" / name))
        if image is not None:
            evaluate.append((name, image))
    return calib, evaluate


def prepared_blob(model: ModelInfo, image: np.ndarray) -> np.ndarray:
    """The blob the default detector feeds the network for this image."""
    h, w = image.shape[:2]
    if model.name == "centerface":
        g = FaceDetector(w, h)._geometry
        return cv2.dnn.blobFromImage(g.prepare(image, model.name), 1.0, swapRB=True)
    g = TextDetector(w, h)._geometry
    return cv2.dnn.blobFromImageWithParams(g.prepare(image, model.name), _PPOCR_BLOB)


def calibration_blobs(model: ModelInfo, images: list[np.ndarray]) -> Iterator[np.ndarray]:
    for image in images:
        yield prepared_blob(model, image)


def quantise_ort(model: ModelInfo, images: list[np.ndarray], tmp: Path) -> bytes:
    import onnx
    import onnxruntime
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnxruntime.set_default_logger_severity(3)
    logging.getLogger().setLevel(logging.ERROR)  # a warning per bias not an initializer
    data = model_bytes(model)
    if model.name == "centerface":
        data = with_dims(data, face_dims("w", "h"))
    proto = onnx.load_from_string(data)
    # CenterFace (opset 9) lists its weights as graph inputs too; the quantiser wants them as
    # initializers only.
    inits = {i.name for i in proto.graph.initializer}
    keep = [i for i in proto.graph.input if i.name not in inits]
    del proto.graph.input[:]
    proto.graph.input.extend(keep)
    input_name = keep[0].name
    blobs = calibration_blobs(model, images)

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(blobs, None)
            return None if blob is None else {input_name: blob}

    if proto.opset_import[0].version < 13:  # per-channel DequantizeLinear needs opset 13
        proto = version_converter.convert_version(proto, 13)
    src = tmp / f"{model.name}-in.onnx"
    pre, out = tmp / f"{model.name}-pre.onnx", tmp / f"{model.name}-int8.onnx"
    onnx.save(proto, src)
    # Pre-processing folds the BatchNorms and turns DBNet's Constant weights into initializers
    # (given a ModelProto rather than a path, onnxruntime 1.32's optimisation step fails).
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    quantize_static(
        pre,
        out,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        # Also quantising Mul/Add made OpenVINO's low-precision passes throw on DBNet.
        op_types_to_quantize=["Conv", "ConvTranspose"],
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"CalibMaxIntermediateOutputs": 4},
    )
    return out.read_bytes()


def quantise_nncf(model: ModelInfo, images: list[np.ndarray], tmp: Path) -> tuple[bytes, bytes]:
    import nncf
    import openvino as ov

    ov_model = ov.Core().read_model(model_bytes(model), b"")
    ov_model.reshape({ov_model.inputs[0].get_any_name(): ov.PartialShape([1, 3, -1, -1])})
    blobs = list(calibration_blobs(model, images))
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(sys.stderr):  # its progress bars
        quantised = nncf.quantize(
            ov_model,
            nncf.Dataset(blobs),
            subset_size=len(blobs),
            preset=nncf.QuantizationPreset.PERFORMANCE,
        )
    xml = tmp / f"{model.name}-nncf.xml"
    ov.save_model(quantised, str(xml), compress_to_fp16=False)
    return xml.read_bytes(), xml.with_suffix(".bin").read_bytes()


def plate_coverage(
    engines: dict[str, Any],
    photos: dict[Path, list[tuple[int, int, int, int]]],
    held_out: set[Path],
) -> dict[str, dict[str, Any]]:
    """Plates covered as "plate" by a ``TextDetector`` on each engine, in one pass."""
    out = {
        n: {"covered": 0, "plates": 0, "covered_held_out": 0, "plates_held_out": 0, "missed": []}
        for n in engines
    }
    detector = None
    for path, boxes in photos.items():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        h, w = image.shape[:2]
        if detector is None or detector.frame_size != (w, h):
            detector = None
            detector = TextDetector(w, h)  # its own engine is swapped out below
        for name, engine in engines.items():
            detector._engine = engine
            dets = detector.detect(image)
            n, _ = score(union_mask((h, w), dets, {"plate"}), boxes)
            r = out[name]
            r["covered"] += n
            r["plates"] += len(boxes)
            if path in held_out:
                r["covered_held_out"] += n
                r["plates_held_out"] += len(boxes)
            if n < len(boxes):
                r["missed"].append(path.name)
    return out


def face_boxes(
    engines: dict[str, Any], frames: list[tuple[str, np.ndarray]]
) -> dict[str, dict[str, list[Any]]]:
    """Face boxes per engine per frame; "fp32 on opencv-dnn" is each detector's own engine
    (one OpenCV Net per frame size: a Net fed changing sizes has returned junk)."""
    out: dict[str, dict[str, list[Any]]] = {"fp32 on opencv-dnn": {}, **{n: {} for n in engines}}
    for name, image in frames:
        h, w = image.shape[:2]
        detector = FaceDetector(w, h, runtime="opencv-dnn")
        own = detector._engine
        for variant, engine in (("fp32 on opencv-dnn", own), *engines.items()):
            detector._engine = engine
            out[variant][name] = [d.box for d in detector.detect(image)]
    return out


def face_recall(ref: dict[str, list[Any]], got: dict[str, list[Any]]) -> dict[str, Any]:
    found = total = extra = 0
    for name, boxes in ref.items():
        total += len(boxes)
        found += sum(any(iou(b, g) >= 0.5 for g in got[name]) for b in boxes)
        extra += sum(not any(iou(g, b) >= 0.5 for b in boxes) for g in got[name])
    return {
        "fp32_boxes": total,
        "found": found,
        "share": round(found / total, 4) if total else None,
        "int8_extra": extra,
    }


def part_int8(data: Path, image: np.ndarray, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"skipped": []}
    photos = ground_truth(data / "plates-eu")
    calib_photos = list(photos)[::4]
    calib_frames, eval_frames = footage_frames(data)
    calib_images = [cv2.imread(str(p)) for p in calib_photos] + [f for _, f in calib_frames]
    out["calibration"] = {
        "plates_eu_photos": len(calib_photos),
        "footage_frames": len(calib_frames),
        "face_eval_frames": [n for n, _ in eval_frames],
    }
    face, text = centerface_model(), text_model()
    variants: dict[str, dict[str, tuple[str, bytes, bytes]]] = {face.name: {}, text.name: {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for model in (face, text):
            try:
                t = time.perf_counter()
                q = quantise_ort(model, calib_images, tmp)
                out.setdefault("quantise_s", {})[f"{model.name} ort"] = round(
                    time.perf_counter() - t, 1
                )
                variants[model.name]["int8 ort-qdq on onnxruntime"] = ("onnxruntime", q, b"")
                variants[model.name]["int8 ort-qdq on openvino"] = ("openvino", q, b"")
            except ImportError as exc:
                out["skipped"].append(f"onnxruntime quantisation ({exc.name} not installed)")
            try:
                t = time.perf_counter()
                xml, bin_ = quantise_nncf(model, calib_images, tmp)
                out.setdefault("quantise_s", {})[f"{model.name} nncf"] = round(
                    time.perf_counter() - t, 1
                )
                variants[model.name]["int8 nncf on openvino"] = ("openvino", xml, bin_)
            except ImportError as exc:
                out["skipped"].append(f"NNCF quantisation ({exc.name} not installed)")
            log(f"  quantised {model.name}: {out.get('quantise_s')}")

    def build(model: ModelInfo, runtime: str, q: bytes, w: bytes, size: Any) -> Any:
        if runtime == "onnxruntime" and model.name == "centerface":
            return _OrtEngine(model, q, _CENTERFACE_OUTPUTS, 1)  # dims already symbolic
        return make_engine(runtime, model, size, data=q, weights=w)

    # Latency, fp32 vs int8, interleaved.
    rows = []
    for model, sizes in ((face, [(1280, 736), (640, 384)]), (text, [(1600, 928), (640, 320)])):
        for w, h in sizes:
            blob = face_blob(image, w, h) if model is face else text_blob(image, w, h)
            calls = {}
            for runtime in RUNTIMES:
                if runtime == "opencv-dnn" and model is text:
                    continue
                e = make_engine(runtime, model, (w, h))
                e.run(blob)
                calls[f"fp32 on {runtime}"] = lambda e=e, b=blob: e.run(b)
            for name, (runtime, q, wts) in variants[model.name].items():
                try:
                    e = build(model, runtime, q, wts, (w, h))
                    e.run(blob)
                except Exception as exc:
                    out["skipped"].append(f"{model.name} {name} at {w}x{h}: {exc}")
                    continue
                calls[name] = lambda e=e, b=blob: e.run(b)
            for c in calls.values():
                c()
            result = interleaved(calls, repeats, f"fp32 on {model.runtime}")
            rows.append({"model": model.name, "input": f"{w}x{h}", "variants": result})
            log(
                f"  {model.name:13} {w}x{h:<5} "
                + "  ".join(f"{n} {r['median']:.0f}" for n, r in result.items())
            )
            del calls
            gc.collect()
    out["latency"] = rows

    # Recall cost.
    held_out = set(photos) - set(calib_photos)
    engines: dict[str, Any] = {
        "fp32 on onnxruntime": make_engine("onnxruntime", text, None),
        "fp32 on openvino": make_engine("openvino", text, None),
    }
    for name, (runtime, q, wts) in variants[text.name].items():
        try:
            engines[name] = build(text, runtime, q, wts, None)
        except Exception as exc:
            out["skipped"].append(f"{text.name} {name} coverage: {exc}")
    coverage = plate_coverage(engines, photos, held_out)
    for name, c in coverage.items():
        log(f"  plates {name:28} {c['covered']}/{c['plates']} (held out {c['covered_held_out']})")
    out["plates_coverage"] = coverage
    del engines
    gc.collect()
    engines = {"fp32 on openvino": make_engine("openvino", face, None)}
    for name, (runtime, q, wts) in variants[face.name].items():
        try:
            engines[name] = build(face, runtime, q, wts, None)
        except Exception as exc:
            out["skipped"].append(f"{face.name} {name} recall: {exc}")
    boxes = face_boxes(engines, eval_frames)
    ref = boxes.pop("fp32 on opencv-dnn")
    faces = {name: face_recall(ref, got) for name, got in boxes.items()}
    for name, f in faces.items():
        log(f"  faces {name:28} {f['found']}/{f['fp32_boxes']} (+{f['int8_extra']} new)")
    out["face_recall_vs_fp32_opencv"] = faces
    return out


# --- part: prep ----------------------------------------------------------------------------


def clip_1280x720(data: Path | None, tmp: Path) -> Path:
    """A 1280x720 H.264 clip: the footage's frames scaled, else moving synthetic ones."""
    import av

    frames: list[np.ndarray] = []
    src = data / "footage/egoblur-gen2-test_face_video.mp4" if data else None
    if src is not None and src.is_file():
        with av.open(str(src)) as container:
            for frame in container.decode(video=0):
                frames.append(cv2.resize(frame.to_ndarray(format="bgr24"), (1280, 720)))
    if not frames:
        rng = np.random.default_rng(0)
        base = cv2.GaussianBlur(rng.integers(0, 256, (720, 1400, 3), dtype=np.uint8), (9, 9), 3)
        frames = [np.ascontiguousarray(base[:, i * 8 : i * 8 + 1280]) for i in range(14)]
    path = tmp / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for _ in range(2):
            for f in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def part_prep(data: Path | None, repeats: int) -> dict[str, Any]:
    import av

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            path = clip_1280x720(data, Path(tmpdir))
            with av.open(str(path)) as container:
                t = time.perf_counter()
                frames = list(container.decode(video=0))
                decode_ms = (time.perf_counter() - t) * 1000 / len(frames)
        bgr = frames[0].to_ndarray(format="bgr24")
        s640 = cv2.resize(bgr, (640, 360), interpolation=cv2.INTER_AREA)
        s1600 = cv2.resize(bgr, (1600, 900), interpolation=cv2.INTER_LINEAR)
        p736 = cv2.copyMakeBorder(bgr, 0, 16, 0, 0, cv2.BORDER_CONSTANT, value=0)
        p384 = cv2.copyMakeBorder(s640, 0, 24, 0, 0, cv2.BORDER_CONSTANT, value=0)
        p928 = cv2.copyMakeBorder(s1600, 0, 28, 0, 0, cv2.BORDER_CONSTANT, value=0)
        ops: dict[str, Callable[[Any], Any]] = {
            "to_ndarray bgr24 1280x720": lambda f: f.to_ndarray(format="bgr24"),
            "to_ndarray + cv2.resize AREA 640x360": lambda f: cv2.resize(
                f.to_ndarray(format="bgr24"), (640, 360), interpolation=cv2.INTER_AREA
            ),
            "reformat 640x360 bgr24 (bilinear, 1 thr)": lambda f: f.reformat(
                width=640, height=360, format="bgr24", threads=1
            ).to_ndarray(),
            "reformat 640x360 bgr24 (area, 1 thr)": lambda f: f.reformat(
                width=640, height=360, format="bgr24", interpolation="AREA", threads=1
            ).to_ndarray(),
            "reformat 640x360 bgr24 (bilinear, auto thr)": lambda f: f.reformat(
                width=640, height=360, format="bgr24"
            ).to_ndarray(),
            "to_ndarray + cv2.resize LINEAR 1600x900": lambda f: cv2.resize(
                f.to_ndarray(format="bgr24"), (1600, 900), interpolation=cv2.INTER_LINEAR
            ),
            "reformat 1600x900 bgr24 (bilinear, 1 thr)": lambda f: f.reformat(
                width=1600, height=900, format="bgr24", threads=1
            ).to_ndarray(),
            "copyMakeBorder 1600x900 -> 1600x928": lambda f: cv2.copyMakeBorder(
                s1600, 0, 28, 0, 0, cv2.BORDER_CONSTANT, value=0
            ),
            "blobFromImage RGB 1280x736 (CenterFace)": lambda f: cv2.dnn.blobFromImage(
                p736, 1.0, swapRB=True
            ),
            "blobFromImage RGB 640x384 (CenterFace)": lambda f: cv2.dnn.blobFromImage(
                p384, 1.0, swapRB=True
            ),
            "blobFromImageWithParams 1600x928 (DBNet)": lambda f: cv2.dnn.blobFromImageWithParams(
                p928, _PPOCR_BLOB
            ),
        }
        times: dict[str, list[float]] = {k: [] for k in ops}
        names = list(ops)
        for r in range(max(1, repeats // 3)):
            for i, frame in enumerate(frames):
                k = (r * len(frames) + i) % len(names)
                for name in names[k:] + names[:k]:
                    times[name].append(timed(lambda name=name, frame=frame: ops[name](frame)))
        a = cv2.resize(
            frames[3].to_ndarray(format="bgr24"), (640, 360), interpolation=cv2.INTER_AREA
        )
        b = frames[3].reformat(width=640, height=360, format="bgr24").to_ndarray()
        return {
            "clip": "1280x720 H.264 yuv420p, "
            + ("footage frames scaled" if data else "synthetic")
            + f", {len(frames)} frames",
            "decode_ms_per_frame": round(decode_ms, 2),
            "ops_ms": {k: stats(v) for k, v in times.items()},
            "cv2_area_vs_swscale_bilinear_640x360_mean_abs_diff": round(
                float(np.abs(a.astype(np.int16) - b).mean()), 2
            ),
        }
    finally:
        cv2.setNumThreads(threads)


# --- output --------------------------------------------------------------------------------


def print_tables(report: dict[str, Any]) -> None:
    m = report["machine"]
    print(f"CPU: {m['cpu']}, {m['cores']} cores; {m['versions']}; one inference thread")
    for part, load in report["load"].items():
        print(
            f"  {part}: {load['wall_s']} s, other processes used {load['others_cpu_share']:.0%} "
            f"of the CPU (load average {load['loadavg_1min']})"
        )
    if "latency" in report:
        print("\nInference, ms: median of rounds (min-max); ratio to the current runtime, median")
        print(
            "| model | input | onnxruntime | opencv-dnn | openvino | ov/current | ov compile+1st |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        for row in report["latency"]:
            r = row["runtimes"]
            cells = [
                f"{r[n]['median']:.0f} ({r[n]['min']:.0f}-{r[n]['max']:.0f})"
                + ("*" if n == row["current"] else "")
                for n in RUNTIMES
            ]
            ratio = r["openvino"][f"ratio_to_{row['current']}"]
            print(
                f"| {row['model']} | {row['input']} | {' | '.join(cells)} | "
                f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f}) | "
                f"{row['first_call_ms']['openvino']} |"
            )
        print("* current runtime")
    if "windows" in report:
        w = report["windows"]
        print(f"\nDBNet windows, one cycle = {len(w['shapes'])} shapes {w['shapes'][0]}..")
        print("| engine | cycle ms median (min-max) | first cycle ms | compile ms |")
        print("|---|---:|---:|---:|")
        for n, s in w["cycle_ms"].items():
            print(
                f"| {n} | {s['median']:.0f} ({s['min']:.0f}-{s['max']:.0f}) | "
                f"{w['first_cycle_ms'][n]} | {w['openvino_compile_ms'].get(n, '-')} |"
            )
        for n, d in w["per_shape_median_ms"].items():
            print(f"  {n}: " + ", ".join(f"{s} {v}" for s, v in d.items()))
    if "concurrency" in report:
        print("\nTwo threads at once (CenterFace 1280x736 + DBNet 1600x928), ms per call")
        print("| setup | alone face/text | together face/text | wall | threads' CPUs |")
        print("|---|---:|---:|---:|---|")
        for row in report["concurrency"]:
            a, t, c = row["alone_ms"], row["together_ms"], row.get("thread_cpus", {})
            print(
                f"| {row['setup']} | {a['face']:.0f} / {a['text']:.0f} | "
                f"{t['face']['median']:.0f} / {t['text']['median']:.0f} | {row['wall_ms']} | "
                f"{c.get('face')} / {c.get('text')} |"
            )
    if "int8" in report:
        q = report["int8"]
        print(f"\nint8 (calibration {q.get('calibration')}; quantise s {q.get('quantise_s')})")
        print("| model | input | variant | ms median (min-max) | ratio to current fp32 |")
        print("|---|---|---|---:|---:|")
        for row in q.get("latency", []):
            for n, s in row["variants"].items():
                ratio = next(v for k, v in s.items() if k.startswith("ratio_to_"))
                print(
                    f"| {row['model']} | {row['input']} | {n} | {s['median']:.0f} "
                    f"({s['min']:.0f}-{s['max']:.0f}) | {ratio['median']:.2f} |"
                )
        print("| DBNet variant | plates covered (>= 90%) | of held-out |")
        print("|---|---:|---:|")
        for n, c in q.get("plates_coverage", {}).items():
            print(
                f"| {n} | {c['covered']}/{c['plates']} | "
                f"{c['covered_held_out']}/{c['plates_held_out']} |"
            )
        print("| CenterFace variant | fp32 (OpenCV) boxes found, IoU >= 0.5 | new boxes |")
        print("|---|---:|---:|")
        for n, f in q.get("face_recall_vs_fp32_opencv", {}).items():
            print(f"| {n} | {f['found']}/{f['fp32_boxes']} | {f['int8_extra']} |")
        for s in q.get("skipped", []):
            print(f"  skipped: {s}")
    if "prep" in report:
        p = report["prep"]
        print(f"\nPreprocessing, {p['clip']}; decode {p['decode_ms_per_frame']} ms/frame")
        print("| step | ms median (min-max) |")
        print("|---|---:|")
        for n, s in p["ops_ms"].items():
            print(f"| {n} | {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) |")
        print(
            "  cv2 INTER_AREA vs swscale bilinear at 640x360: mean |diff| "
            f"{p['cv2_area_vs_swscale_bilinear_640x360_mean_abs_diff']} (0-255)"
        )
    for s in report.get("skipped", []):
        print(f"skipped: {s}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help=f"real material (default {DATA})")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {PARTS}")
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per row (default 7)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    a = p.parse_args(argv)
    parts = [s.strip() for s in a.parts.split(",") if s.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    data: Path | None = a.data if a.data.is_dir() else None
    report: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "versions": {
                d: version(d)
                for d in ("onnxruntime", "opencv-python", "openvino", "onnx", "nncf", "av")
            },
        },
        "repeats": a.repeats,
        "load": {},
        "skipped": [],
    }
    if data is None:
        report["skipped"].append(
            f"no data at {a.data}: synthetic frames for latency and prep, no int8 part"
        )
    image = sample_image(data)
    started = Load()
    for part in parts:
        log(f"{part}:")
        load = Load()
        if part == "latency":
            report["latency"] = part_latency(image, a.repeats)
        elif part == "windows":
            report["windows"] = part_windows(image, a.repeats)
        elif part == "concurrency":
            report["concurrency"] = part_concurrency(image, a.repeats)
        elif part == "int8":
            if data is None:
                continue
            report["int8"] = part_int8(data, image, a.repeats)
        elif part == "prep":
            report["prep"] = part_prep(data, a.repeats)
        report["load"][part] = load.report()
    report["load"]["total"] = started.report()
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print_tables(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
