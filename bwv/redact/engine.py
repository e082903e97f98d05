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
from typing import Any, cast

import av
import numpy as np

from bwv.base.errors import BwvError
from bwv.base.files import file_sha256
from bwv.redact.motion import Camera, Rect
from bwv.redact.plan import (
    DETECTION_CLASSES,
    DetectorUsed,
    MuteSpan,
    Options,
    Plan,
    plan_tracks,
)
from bwv.redact.render import RenderError, frame_time, open_strict
from bwv.redact.tracks import centre_distance, clip, comparable, iou, link, shift, union

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


@dataclass(frozen=True)
class Look:
    """What the decoder measured on a frame, for a detector that watches for new content."""

    grey: np.ndarray  # the frame's small grey copy (bwv.redact.motion.small_size)
    position: tuple[float, float]  # the camera's position, frame pixels
    cut: bool  # a new scene starts at this frame


class _Worker(threading.Thread):
    """Runs one detector on the frames queued for it; keeps the first failure."""

    def __init__(self, detector: Any, name: str) -> None:
        super().__init__(name=f"bwv-{name}", daemon=True)
        self.detector = detector
        self.watches = bool(getattr(detector, "watches", False))
        self.jobs: queue.Queue[tuple[int, np.ndarray, Look] | None] = queue.Queue(maxsize=8)
        self.found: dict[int, list[Any]] = {}
        self.crops: dict[tuple[int, tuple[float, ...]], np.ndarray] = {}
        self.error: tuple[int, BaseException] | None = None

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue
            index, frame, look = job
            try:
                detect_at = getattr(self.detector, "detect_at", None)
                if self.watches:
                    found = detect_at(index, frame, look)  # type: ignore[misc]
                elif detect_at is not None:
                    found = detect_at(index, frame)
                else:
                    found = self.detector.detect(frame)
                found = self.found[index] = list(found)
                for det in found:
                    if det.score > 0:
                        self.crops[(index, tuple(det.box))] = _crop(frame, det.box)
            except BaseException as exc:  # reported by the planner, with the frame
                self.error = (index, exc)

    def put(self, index: int, frame: np.ndarray, look: Look) -> None:
        self.jobs.put((index, frame, look))

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


@dataclass
class _Followed:
    box: tuple[float, float, float, float]
    at: int  # frame it was last found (or held) on
    position: tuple[float, float]  # the camera's position then
    velocity: tuple[float, float] = (0.0, 0.0)  # in the scene, pixels per frame
    misses: int = 0  # looks in a row it was on new content and not found
    plate: bool = True  # the verifier read it as a plate (else it is followed as text)
    checked_area: float = 0.0  # box area when it was last read


class PlateWatcher:
    """Plates wherever they appear: text over the whole frame every ``full_every`` frames and
    at every cut, and on every frame it is given, on whatever the picture shows that the
    detector has not examined yet (:class:`bwv.redact.motion.Watch`: exposed by a pan, moved,
    or changed), at the whole-frame pass's scale.

    A plate found is followed: where the picture around it is what was examined, it is where
    the camera's motion puts it (a held box, score 0: it continues a track, never starts one);
    where that part of the picture changed and the plate is not found again, the held box grows
    by ``GROWTH`` each look, for at most ``patience`` looks: a plate that blurs or moves is
    hidden by a growing box, never by a box left drifting.
    """

    watches = True
    WHOLE_SHARE = 0.45  # regions covering more of the frame than this: the whole frame instead
    GROWTH = 0.2  # of the box's size, each side, per look it is not found

    def __init__(
        self,
        width: int,
        height: int,
        full_every: int,
        patience: int = 3,
        min_whole: int = 0,
        verify: bool = True,
    ) -> None:
        from bwv.redact.detect import TextDetector
        from bwv.redact.motion import Watch
        from bwv.redact.verify import PlateVerifier

        self.full = TextDetector(width, height, threads=1)
        self.model = self.full.model
        # A line shaped like a plate is a plate only if it reads like one: a shirt logo, a
        # cabinet handle or a head and shoulders (DBNet fires on all three) stays "text".
        self.verifier = PlateVerifier(threads=1, look_inside=False) if verify else None
        self.models = [self.model] + ([self.verifier.model] if self.verifier else [])
        self.full_every = full_every
        # A plate first found (or lost) may have been there, undetected, since the last whole
        # pass (blurred, then sharp; approached with little change): tracks are carried that far.
        self.reach = full_every
        self.size = (width, height)
        self.watch = Watch(width, height)
        self.following: list[_Followed] = []
        self.last_full: int | None = None
        self.patience = patience
        self.min_whole = min_whole  # frames: whole passes no closer than this, but at cuts
        self.calls = {
            "whole": 0,
            "regions": 0,
            "reads": 0,
        }  # for the benches: what the schedule cost

    def detect_at(self, index: int, frame: np.ndarray, look: Look) -> list[Any]:
        width, height = self.size
        rects: list[Rect] | None = None
        if not (look.cut or self.last_full is None or index - self.last_full >= self.full_every):
            share, new = self.watch.new_regions(look.grey, look.position)
            rects = _merged(new)
            if share >= self.WHOLE_SHARE or _area(rects) >= self.WHOLE_SHARE * width * height:
                if index - self.last_full < self.min_whole:
                    # Most of the picture is new, too soon after the last whole pass: what is
                    # new stays new (unexamined) until the next look may take the whole frame.
                    return self._follow(index, frame, look, [], [])
                rects = None
        if look.cut:
            self.following = []
        if rects is None:
            found = self.full.detect(frame)
            self.last_full = index
            self.calls["whole"] += 1
        else:
            found = [d for r in rects for d in self.full.detect_region(frame, r)]
            self.calls["regions"] += len(rects)
            # A line that reaches a region's inner edge may go on outside it (a plate half in
            # the strip a pan exposed): look again around it, centred on it.
            bounds = [t for r in rects for t in self.full.region_tiles(r)]
            cut_off = [d.box for d in found if _at_inner_edge(d.box, bounds, width, height)]
            again = _merged([_around(box, width, height) for box in cut_off])
            if again:
                # Kept, not replaced: a plate wider than a tile's overlap is seen in parts,
                # which _distinct joins.
                found += [d for w in again for d in self.full.detect_region(frame, w)]
                self.calls["regions"] += len(again)
                rects = rects + again
        found = _distinct(found)
        self.watch.examined(look.grey, look.position, rects)
        held = self._follow(index, frame, look, found, rects)
        return [d for d in found if d.cls != "plate"] + held

    def _follow(
        self, index: int, frame: np.ndarray, look: Look, found: list[Any], rects: list[Rect] | None
    ) -> list[Any]:
        """Match the plates found to the plates followed: the plates found (classed by the
        verifier's reading, inherited by a plate followed) and the held boxes of the rest."""
        from bwv.redact.detect import Detection

        width, height = self.size
        plates = [d for d in found if d.cls == "plate"]
        matched: set[int] = set()
        out: list[Any] = []
        following: list[_Followed] = []
        for f in self.following:
            steps = index - f.at
            dx, dy = look.position[0] - f.position[0], look.position[1] - f.position[1]
            here = (f.box[0] + dx, f.box[1] + dy, f.box[2] + dx, f.box[3] + dy)
            # Where its surroundings did not change it is where the camera put it; where they
            # did, it may also have moved on by its own velocity: both, joined.
            ahead = shift(here, f.velocity[0] * steps, f.velocity[1] * steps)
            examined = rects is None or any(_inside(here, r) > 0.5 for r in rects)
            moved = union(here, ahead) if examined else here
            best = max(
                (j for j in range(len(plates)) if j not in matched),
                key=lambda j: iou(plates[j].box, moved) - centre_distance(plates[j].box, moved),
                default=None,
            )
            if best is not None and (
                iou(plates[best].box, moved) > 0.05
                or centre_distance(plates[best].box, moved) < 1.0
            ):
                matched.add(best)
                box = plates[best].box
                velocity = f.velocity
                if comparable(box, f.box, width, height):
                    velocity = (
                        ((box[0] + box[2]) - (f.box[0] + f.box[2] + 2 * dx)) / 2 / max(steps, 1),
                        ((box[1] + box[3]) - (f.box[1] + f.box[3] + 2 * dy)) / 2 / max(steps, 1),
                    )
                kept = _Followed(box, index, look.position, velocity, 0, f.plate, f.checked_area)
                if not f.plate and (rects is None or _box_area(box) >= 1.5 * f.checked_area):
                    # Read again at each whole pass and when nearer: a plate read once in a blur
                    # is not text for good. Only "plate" is kept without reading.
                    kept.plate, kept.checked_area = self._reads(frame, box)
                following.append(kept)
                out.append(_as(plates[best], kept.plate))
                continue
            # Not found where it was looked for, or not found before and nothing changed since.
            misses = f.misses + 1 if examined or f.misses else 0
            if misses > self.patience:
                continue  # looked for long enough: the next whole pass decides
            if misses:  # looked for and not seen: it may be anywhere near
                gx = (moved[2] - moved[0]) * self.GROWTH
                gy = (moved[3] - moved[1]) * self.GROWTH
                moved = (moved[0] - gx, moved[1] - gy, moved[2] + gx, moved[3] + gy)
            box = clip(moved, width, height)
            if (box[2] - box[0]) * (box[3] - box[1]) < 0.25 * _box_area(moved):
                continue  # left the picture
            following.append(
                _Followed(box, index, look.position, f.velocity, misses, f.plate, f.checked_area)
            )
            out.append(Detection("plate" if f.plate else "text", box, 0.0))
        for j, d in enumerate(plates):
            if j not in matched:
                plate, area = self._reads(frame, d.box)
                following.append(_Followed(d.box, index, look.position, (0.0, 0.0), 0, plate, area))
                out.append(_as(d, plate))
        self.following = following
        return out

    def _reads(
        self, frame: np.ndarray, box: tuple[float, float, float, float]
    ) -> tuple[bool, float]:
        """(whether the line reads as a plate, the box's area when read)."""
        if self.verifier is None:
            return True, _box_area(box)
        self.calls["reads"] += 1
        return self.verifier.check(frame, box).plate, _box_area(box)


def _at_inner_edge(box: tuple[float, ...], bounds: list[Rect], width: int, height: int) -> bool:
    """Whether ``box`` may be a line cut by a tile: no tile holds it clear of the tile's inner
    edges (those that are not the frame's), and one it lies in cuts it."""

    def cut_by(tile: Rect) -> bool:
        x0, y0, x1, y1 = tile
        near = 0.05 * max(box[2] - box[0], box[3] - box[1]) + 2
        return (
            (x0 > 0 and box[0] <= x0 + near)
            or (y0 > 0 and box[1] <= y0 + near)
            or (box[2] >= x1 - near and x1 < width)
            or (box[3] >= y1 - near and y1 < height)
        )

    holding = [t for t in bounds if _inside(box, t) >= 0.5]
    return bool(holding) and not any(_inside(box, t) >= 1.0 and not cut_by(t) for t in holding)


def _around(box: tuple[float, ...], width: int, height: int) -> Rect:
    """Around a (perhaps cut) text line, wide enough for the whole plate it may be part of: the
    line and, each side, eight times its height (plates are at most ~5:1); tiles over this
    meet the line's cut ends from outside."""
    w, h = box[2] - box[0], box[3] - box[1]
    reach_x, reach_y = max(w, 8 * h), max(2 * h, w / 3)
    return (
        max(0, int(box[0] - reach_x)),
        max(0, int(box[1] - reach_y)),
        min(width, int(box[2] + reach_x) + 1),
        min(height, int(box[3] + reach_y) + 1),
    )


def _as(det: Any, plate: bool) -> Any:
    """``det`` classed as the verifier read it."""
    from bwv.redact.detect import Detection

    return (
        det
        if (det.cls == "plate") == plate
        else Detection("plate" if plate else "text", det.box, det.score)
    )


def _area(rects: list[tuple[int, int, int, int]]) -> float:
    return sum(_box_area(r) for r in rects)


def _box_area(box: tuple[float, ...]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _inside(box: tuple[float, ...], rect: tuple[int, int, int, int]) -> float:
    """Share of ``box`` inside ``rect``."""
    w = max(0.0, min(box[2], rect[2]) - max(box[0], rect[0]))
    h = max(0.0, min(box[3], rect[3]) - max(box[1], rect[1]))
    return w * h / max(_box_area(box), 1e-9)


def _merged(rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Rectangles joined where one around both costs little more than the two: fewer, larger
    detector calls, and no plate cut in two by a seam between them."""
    out = list(rects)
    joined = True
    while joined:
        joined = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                u = union(a, b)
                if _box_area(u) <= 1.3 * (_box_area(a) + _box_area(b)):
                    out[i] = cast(Rect, u)  # ints in, ints out
                    del out[j]
                    joined = True
                    break
            if joined:
                break
    return out


def _distinct(found: list[Any]) -> list[Any]:
    """Detections from overlapping tiles, each object once: lines that overlap are one line,
    boxed by their union (two tiles that each cut a plate see its two halves)."""
    from bwv.redact.detect import Detection

    out: list[Any] = []
    for det in sorted(found, key=lambda d: -d.score):
        for n, other in enumerate(out):
            if iou(det.box, other.box) >= 0.1 or _inside(det.box, other.box) >= 0.5:
                cls = "plate" if "plate" in (det.cls, other.cls) else other.cls
                out[n] = Detection(cls, union(det.box, other.box), other.score)
                break
        else:
            out.append(det)
    return out


def _detectors(
    width: int, height: int, options: Options, fps: float = 30.0
) -> list[tuple[Any, int, str]]:
    """The detectors and their schedules (frames between runs, from the options' seconds at
    ``fps``).

    Faces are found at two scales: the whole frame at full resolution every
    ``face_full_every_s``, and downscaled to ``face_fast_width`` every ``face_every_s``. A face
    moves across the picture at a speed that grows with its size, and a large face is found at
    the small scale: so frequent cheap passes follow the near, fast faces and sparse full passes
    find the small, far, slow ones. Text (plates) is watched every ``text_look_every_s``
    (:class:`PlateWatcher`).
    """
    from bwv.redact.detect import FaceDetector

    wanted = set().union(*(DETECTION_CLASSES[c] for c in options.classes))
    out: list[tuple[Any, int, str]] = []
    if "face" in wanted:
        every = options.every(options.face_every_s, fps)
        if width > options.face_fast_width * 1.25:
            # Full resolution first: where both scales ran on a frame, its boxes are kept.
            full = FaceDetector(width, height, threads=1)
            out.append((full, options.every(options.face_full_every_s, fps), "faces-full"))
            fast = FaceDetector(width, height, input_width=options.face_fast_width, threads=1)
            out.append((fast, every, "faces"))
        else:
            out.append((FaceDetector(width, height, threads=1), every, "faces"))
    if wanted & {"plate", "text"}:
        watcher = PlateWatcher(width, height, options.every(options.text_every_s, fps))
        look = min(options.text_look_every_s, options.text_every_s)
        out.append((watcher, options.every(look, fps), "text"))
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
        fps = float(rate)
        detectors = detectors if detectors is not None else _detectors(width, height, options, fps)
        workers = [_Worker(d, name) for d, _, name in detectors]
        camera = Camera(width, height)
        grey_w, grey_h = camera.size
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
        look: Look | None = None
        queued = [-1] * len(workers)  # the last frame each detector was given
        try:
            try:
                for frame in container.decode(video):
                    # Scaled by the decoder's own scaler: no full-size grey copy is made.
                    grey = frame.reformat(width=grey_w, height=grey_h, format="gray").to_ndarray()
                    step = camera.add(grey)
                    look = Look(grey, camera.positions[-1], step.cut)
                    bgr = None
                    for n, (worker, (_, every, _)) in enumerate(
                        zip(workers, detectors, strict=True)
                    ):
                        if index % every == 0 or (step.cut and worker.watches):
                            if bgr is None:
                                bgr = frame.to_ndarray(format="bgr24")
                            worker.put(index, bgr, look)
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
                    assert look is not None
                    worker.put(index - 1, bgr, look)
        finally:
            for worker in workers:
                worker.finish()
        for worker, (_, _, name) in zip(workers, detectors, strict=True):
            if worker.error is not None:
                at, failure = worker.error
                raise DetectionFailed(
                    f"{name} detector failed on frame {at} (at {frame_time(at, float(rate))}): "
                    f"{failure}"
                ) from failure
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
            fps=fps,
            camera=camera.positions,
            cuts=camera.cuts,
        )
        next_id += len(linked)
        tracks += linked
        pictures = {k: v for w, _, _ in members for k, v in w.crops.items()}
        for track in linked:
            seen = [(k, b) for k, b in track.keyframes.items() if k in track.seen]
            f, box = max(
                seen or track.keyframes.items(),
                key=lambda kv: (kv[1][2] - kv[1][0]) * (kv[1][3] - kv[1][1]),
            )
            if (f, tuple(box)) in pictures:
                crops[track.id] = pictures[(f, tuple(box))]
    wanted = set().union(*(DETECTION_CLASSES[c] for c in options.classes))
    entries = plan_tracks(tracks, wanted, width, height, options.padding)
    used = []
    for detector, _, _ in detectors:
        models = getattr(detector, "models", None) or [getattr(detector, "model", None)]
        for model in (m for m in models if m is not None):
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
