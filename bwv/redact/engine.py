"""The redaction engine: find faces and plates on a schedule, link them into tracks, write the
plan (and the frames the contact sheet shows); then render it.

Detection runs on both cores: the main thread decodes; each detector has its own thread with one
inference thread (one onnxruntime session per detector, one thread each, measured faster on two
cores than one detector at a time with two threads each).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from bwv.errors import BwvError
from bwv.fsio import file_sha256
from bwv.redact.plan import (
    DETECTION_CLASSES,
    DetectorUsed,
    MuteSpan,
    Options,
    Plan,
    plan_tracks,
)
from bwv.redact.render import RenderError, frame_time, open_strict
from bwv.redact.tracks import iou, link

Progress = Callable[[int], None]
SHEET_FRAMES = 12
THUMB_WIDTH = 480


class DetectionFailed(BwvError):
    """A detector failed on a frame: no plan, so no copy."""


@dataclass
class Planned:
    plan: Plan
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)  # frame -> BGR, small
    crops: dict[int, np.ndarray] = field(default_factory=dict)  # track id -> BGR crop


class _Worker(threading.Thread):
    """Runs one detector on the frames queued for it; keeps the first failure."""

    def __init__(self, detector: Any, name: str) -> None:
        super().__init__(name=f"bwv-{name}", daemon=True)
        self.detector = detector
        self.jobs: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(maxsize=8)
        self.found: dict[int, list[Any]] = {}
        self.crops: dict[tuple[int, tuple[float, ...]], np.ndarray] = {}
        self.error: tuple[int, BaseException] | None = None

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue
            index, frame = job
            try:
                detect_at = getattr(self.detector, "detect_at", None)
                found = self.found[index] = list(
                    detect_at(index, frame) if detect_at else self.detector.detect(frame)
                )
                for det in found:
                    self.crops[(index, tuple(det.box))] = _crop(frame, det.box)
            except BaseException as exc:  # reported by the planner, with the frame
                self.error = (index, exc)

    def put(self, index: int, frame: np.ndarray) -> None:
        self.jobs.put((index, frame))

    def finish(self) -> None:
        self.jobs.put(None)
        self.join()


def _crop(frame: np.ndarray, box: tuple[float, ...], height: int = 96) -> np.ndarray:
    """A small picture of one detection, for the officer to recognise the track by."""
    import cv2

    x0, y0, x1, y1 = box
    px, py = (x1 - x0) * 0.2, (y1 - y0) * 0.2
    h, w = frame.shape[:2]
    a, b = max(0, int(x0 - px)), max(0, int(y0 - py))
    c, d = min(w, int(x1 + px) + 1), min(h, int(y1 + py) + 1)
    region = frame[b:d, a:c]
    if region.size == 0:
        return np.zeros((height, height, 3), np.uint8)
    scale = height / region.shape[0]
    width = max(8, min(4 * height, round(region.shape[1] * scale)))
    return cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)


class PlateFollower:
    """Text detection over the whole frame every ``full_every`` frames, and in between, on the
    frames it is given, only around the plates it already follows.

    The whole-frame pass (upscaled so characters reach ~14 px) is the engine's costliest call;
    a plate found once is re-found in a small window around where it was, at a fixed network
    input of ``ROI_INPUT`` (a few percent of the whole frame's cost). New plates are found by
    the whole-frame pass; the tracker carries them back to the previous one.
    """

    ROI_FRAME = (320, 160)  # crops are scaled to this size (2:1) ...
    ROI_INPUT = 640  # ... and to this network input width (characters stay >= ~14 px)
    WINDOW = 2.5  # window width, in plate widths

    def __init__(self, width: int, height: int, full_every: int) -> None:
        from bwv.redact.detect import TextDetector

        self.full = TextDetector(width, height, threads=1)
        self.window = TextDetector(*self.ROI_FRAME, input_width=self.ROI_INPUT, threads=1)
        self.model = self.full.model
        self.full_every = full_every
        self.reach = full_every  # for the tracker: how long a new plate may go unseen
        self.size = (width, height)
        self.following: list[tuple[float, float, float, float]] = []
        self.last_full: int | None = None
        self.misses: list[int] = []  # windows in a row each followed plate was not seen in
        self.patience = 3

    def detect_at(self, index: int, frame: np.ndarray) -> list[Any]:
        if self.last_full is None or index - self.last_full >= self.full_every:
            self.last_full = index
            found = self.full.detect(frame)
            self.following = [d.box for d in found if d.cls == "plate"]
            self.misses = [0] * len(self.following)
            return found
        found, following = [], []
        for box, misses in zip(self.following, self.misses, strict=True):
            near = self._around(frame, box)
            plates = [d for d in near if d.cls == "plate"]
            if plates:
                best = max(plates, key=lambda d: iou(d.box, box) - _gap(d.box, box))
                following.append((best.box, 0))
            elif misses + 1 < self.patience:  # a blurred frame is not the plate leaving
                following.append((box, misses + 1))
            found += [d for d in near if all(iou(d.box, f.box) < 0.3 for f in found)]
        self.following = [box for box, _ in following]
        self.misses = [misses for _, misses in following]
        return found

    def _around(self, frame: np.ndarray, box: tuple[float, float, float, float]) -> list[Any]:
        import cv2

        from bwv.redact.detect import Detection

        width, height = self.size
        win_w = min(width, max(self.ROI_FRAME[0], (box[2] - box[0]) * self.WINDOW))
        win_h = min(height, win_w * self.ROI_FRAME[1] / self.ROI_FRAME[0])
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0 = int(min(max(0, cx - win_w / 2), width - win_w))
        y0 = int(min(max(0, cy - win_h / 2), height - win_h))
        x1, y1 = int(x0 + win_w), int(y0 + win_h)
        crop = cv2.resize(frame[y0:y1, x0:x1], self.ROI_FRAME, interpolation=cv2.INTER_LINEAR)
        sx, sy = (x1 - x0) / self.ROI_FRAME[0], (y1 - y0) / self.ROI_FRAME[1]
        return [
            Detection(
                d.cls,
                (x0 + d.box[0] * sx, y0 + d.box[1] * sy, x0 + d.box[2] * sx, y0 + d.box[3] * sy),
                d.score,
            )
            for d in self.window.detect(crop)
        ]


def _gap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Centre distance in units of ``b``'s width."""
    return abs((a[0] + a[2]) - (b[0] + b[2])) / 2 / max(1.0, b[2] - b[0])


def _detectors(width: int, height: int, options: Options) -> list[tuple[Any, int, str]]:
    """The detectors and their schedules (frames between runs).

    Faces are found at two scales: the whole frame at full resolution every
    ``face_full_every`` frames, and downscaled to ``face_fast_width`` every ``face_every``. A face
    moves across the picture at a speed that grows with its size, and a large face is found at
    the small scale: so frequent cheap passes follow the near, fast faces and sparse full passes
    find the small, far, slow ones.
    """
    from bwv.redact.detect import FaceDetector, TextDetector

    wanted = set().union(*(DETECTION_CLASSES[c] for c in options.classes))
    out: list[tuple[Any, int, str]] = []
    if "face" in wanted:
        if width > options.face_fast_width * 1.25:
            # Full resolution first: where both scales ran on a frame, its boxes are kept.
            full = FaceDetector(width, height, threads=1)
            out.append((full, options.face_full_every, "faces-full"))
            fast = FaceDetector(width, height, input_width=options.face_fast_width, threads=1)
            out.append((fast, options.face_every, "faces"))
        else:
            out.append((FaceDetector(width, height, threads=1), options.face_every, "faces"))
    if wanted & {"plate", "text"}:
        if options.text_follow_every < options.text_every:
            follower = PlateFollower(width, height, options.text_every)
            out.append((follower, options.text_follow_every, "text"))
        else:
            out.append((TextDetector(width, height, threads=1), options.text_every, "text"))
    return out


def _merge(found: list[dict[int, list[Any]]]) -> dict[int, list[Any]]:
    """One detector group's detections by frame; where several scales ran on a frame, a
    detection that overlaps one already taken is the same object."""
    merged: dict[int, list[Any]] = {}
    for per_frame in found:
        for frame, detections in per_frame.items():
            taken = merged.setdefault(frame, [])
            for det in detections:
                if all(iou(det.box, other.box) < 0.3 for other in taken):
                    taken.append(det)
    return merged


def make_plan(
    source: Path,
    options: Options,
    *,
    evidence_id: str | None = None,
    source_sha256: str | None = None,
    progress: Progress | None = None,
    detectors: list[tuple[Any, int, str]] | None = None,
    mute: tuple[tuple[float, float], ...] = (),
) -> Planned:
    """Decode ``source`` once, detect on the schedule, link tracks, return the plan."""
    sha256 = source_sha256 or file_sha256(source)
    container, video, _ = open_strict(source)
    with container:
        width, height = video.codec_context.width, video.codec_context.height
        expected = video.frames or 0
        rate = video.average_rate or video.guessed_rate or Fraction(30)
        detectors = detectors if detectors is not None else _detectors(width, height, options)
        workers = [_Worker(d, name) for d, _, name in detectors]
        sheet_at = (
            {round(i * (expected - 1) / (SHEET_FRAMES - 1)) for i in range(SHEET_FRAMES)}
            if expected > 1
            else {0}
        )
        thumbnails: dict[int, np.ndarray] = {}
        for worker in workers:
            worker.start()
        index = 0
        last: Any = None
        queued = [-1] * len(workers)  # the last frame each detector was given
        try:
            try:
                for frame in container.decode(video):
                    bgr = None
                    for n, (worker, (_, every, _)) in enumerate(
                        zip(workers, detectors, strict=True)
                    ):
                        if index % every == 0:
                            if bgr is None:
                                bgr = frame.to_ndarray(format="bgr24")
                            worker.put(index, bgr)
                            queued[n] = index
                    if index in sheet_at:
                        thumb_h = round(height * THUMB_WIDTH / width / 2) * 2
                        thumbnails[index] = frame.to_ndarray(
                            format="bgr24", width=THUMB_WIDTH, height=thumb_h
                        )
                    last = frame
                    index += 1
                    if progress:
                        progress(index)
                    if any(w.error for w in workers):
                        break
            except av.error.FFmpegError as exc:
                raise RenderError(
                    f"frame {index} (at {frame_time(index, float(rate))}) of {source.name} could "
                    f"not be decoded: {exc}"
                ) from exc
            if index == 0:
                raise RenderError(f"{source.name}: no video frame could be decoded")
            # Every detector also sees the last frame: no track end is guessed past it.
            bgr = None
            for n, worker in enumerate(workers):
                if queued[n] != index - 1:
                    if bgr is None:
                        bgr = last.to_ndarray(format="bgr24")
                    worker.put(index - 1, bgr)
        finally:
            for worker in workers:
                worker.finish()
        for worker, (_, _, name) in zip(workers, detectors, strict=True):
            if worker.error is not None:
                at, exc = worker.error
                raise DetectionFailed(
                    f"{name} detector failed on frame {at} (at {frame_time(at, float(rate))}): "
                    f"{exc}"
                ) from exc
    frames = index
    tracks = []
    crops: dict[int, np.ndarray] = {}
    next_id = 1
    groups: dict[str, list[tuple[_Worker, int, int]]] = {}
    for worker, (detector, every, name) in zip(workers, detectors, strict=True):
        reach = max(every, getattr(detector, "reach", None) or every)
        groups.setdefault(name.split("-")[0], []).append((worker, every, reach))
    for members in groups.values():
        every = min(e for _, e, _ in members)
        longest = max(r for _, _, r in members)
        linked = link(
            _merge([w.found for w, _, _ in members]),
            interval=every,
            carry=longest,
            max_misses=max(1, -(-longest // every)),
            frame_count=frames,
            width=width,
            height=height,
            first_id=next_id,
        )
        next_id += len(linked)
        tracks += linked
        pictures = {k: v for w, _, _ in members for k, v in w.crops.items()}
        for track in linked:
            f, box = max(
                track.keyframes.items(),
                key=lambda kv: (kv[1][2] - kv[1][0]) * (kv[1][3] - kv[1][1]),
            )
            if (f, tuple(box)) in pictures:
                crops[track.id] = pictures[(f, tuple(box))]
    wanted = set().union(*(DETECTION_CLASSES[c] for c in options.classes))
    entries = plan_tracks(tracks, wanted, width, height, options.padding)
    used = []
    for detector, _, _ in detectors:
        model = getattr(detector, "model", None)
        if model is not None:
            used.append(
                DetectorUsed(
                    name=model.name,
                    package=model.package,
                    version=model.version,
                    sha256=model.sha256,
                    runtime=model.runtime,
                )
            )
    plan = Plan(
        evidence_id=evidence_id,
        source_sha256=sha256,
        width=width,
        height=height,
        frames=frames,
        frame_rate=str(Fraction(rate)),
        duration_s=frames / float(rate),
        options=options,
        detectors=tuple(used),
        tracks=tuple(entries),
        mute=tuple(MuteSpan(start_s=a, end_s=b) for a, b in mute),
    )
    return Planned(plan, thumbnails, crops)
