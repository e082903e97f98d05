"""Time, not frames: detections made on a schedule become tracks that cover every frame.

Footage is processed offline, so a track may use the future as well as the past. Detections on
scheduled frames are linked into tracks (greedy association on the box predicted from the
track's velocity), then every frame between two detections of a track gets a box interpolated
between them, grown by how far the box moved (a face that turns or stops between two detections
stays inside). A track is also carried one detection interval beyond its first and last
detection, moved on by its velocity, because the detector may have missed it there: an object
that enters or leaves between two scheduled frames is never left bare. A detection seen once is
kept (a missed face is a failure; an extra blur is not).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in frame pixels


class Detected(Protocol):
    @property
    def cls(self) -> str: ...
    @property
    def box(self) -> Box: ...
    @property
    def score(self) -> float: ...


@dataclass
class Track:
    """One object over time: ``keyframes`` are where it was detected, ``boxes`` every frame it
    covers (frame index -> box), filled in by :func:`link`."""

    id: int
    cls: str
    keyframes: dict[int, Box] = field(default_factory=dict)
    boxes: dict[int, Box] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)

    @property
    def first(self) -> int:
        return min(self.boxes)

    @property
    def last(self) -> int:
        return max(self.boxes)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _centre_distance(a: Box, b: Box) -> float:
    """Distance between centres in units of the larger box's size (0 = same place)."""
    size = max(a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1], 1.0)
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return math.hypot(dx, dy) / size


def _lerp(a: Box, b: Box, t: float) -> Box:
    return (
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
        a[3] + (b[3] - a[3]) * t,
    )


def _union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _grow(box: Box, dx: float, dy: float) -> Box:
    return (box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy)


def _shift(box: Box, dx: float, dy: float) -> Box:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


@dataclass
class _Live:
    track: Track
    last_frame: int
    last_box: Box
    velocity: tuple[float, float] = (0.0, 0.0)  # centre motion, pixels per frame
    misses: int = 0

    def predict(self, frame: int) -> Box:
        steps = frame - self.last_frame
        return _shift(self.last_box, self.velocity[0] * steps, self.velocity[1] * steps)


def _group(cls: str) -> str:
    # The text detector may call the same plate "plate" on one frame and "text" on the next.
    return "text" if cls in ("plate", "text") else cls


def link(
    detections: dict[int, Sequence[Detected]],
    *,
    interval: int,
    frame_count: int,
    width: int,
    height: int,
    max_misses: int = 1,
    carry: int | None = None,
    first_id: int = 1,
) -> list[Track]:
    """Link one detector's detections (frame index -> detections) into tracks covering frames.

    ``interval`` is the detector's schedule (frames between runs); ``max_misses`` how many
    scheduled runs a track may go unseen and still be the same object; ``carry`` the most
    frames a track is carried past its ends (default ``interval``; with detectors at several
    scales, the sparsest schedule, used in full for a track seen only once).
    """
    tracks: list[Track] = []
    live: list[_Live] = []
    next_id = first_id
    for frame in sorted(detections):
        found = list(detections[frame])
        pairs = []
        for i, candidate in enumerate(live):
            predicted = candidate.predict(frame)
            for j, det in enumerate(found):
                if _group(det.cls) != _group(candidate.track.cls):
                    continue
                overlap = iou(predicted, det.box)
                distance = _centre_distance(predicted, det.box)
                # Until a track has moved once its velocity is unknown: allow a wider gate, the
                # wider the longer since it was seen (a face near the camera, or a camera
                # panning, crosses a third of its own width a frame).
                steps = frame - candidate.last_frame
                if len(candidate.track.keyframes) > 1:
                    gate = 0.75 + 0.1 * steps
                else:
                    gate = max(1.5, 0.4 * steps)
                if overlap > 0.05 or distance < gate:
                    pairs.append((-overlap + distance, i, j))
        pairs.sort()
        used_live: set[int] = set()
        used_found: set[int] = set()
        for _, i, j in pairs:
            if i in used_live or j in used_found:
                continue
            used_live.add(i)
            used_found.add(j)
            state, det = live[i], found[j]
            steps = frame - state.last_frame
            cx0, cy0 = (
                (state.last_box[0] + state.last_box[2]) / 2,
                (state.last_box[1] + state.last_box[3]) / 2,
            )
            cx1, cy1 = (det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2
            state.velocity = ((cx1 - cx0) / steps, (cy1 - cy0) / steps)
            state.last_frame, state.last_box, state.misses = frame, det.box, 0
            state.track.keyframes[frame] = det.box
            state.track.scores.append(det.score)
            if det.cls == "plate":
                state.track.cls = "plate"
        for i, state in enumerate(live):
            if i not in used_live:
                state.misses += 1
        live = [s for s in live if s.misses <= max_misses]
        for j, det in enumerate(found):
            if j in used_found:
                continue
            track = Track(next_id, det.cls, {frame: det.box}, scores=[det.score])
            next_id += 1
            tracks.append(track)
            live.append(_Live(track, frame, det.box))
    longest = max(carry or interval, interval)
    for track in tracks:
        keys = sorted(track.keyframes)
        spacing = max((b - a for a, b in itertools.pairwise(keys)), default=longest)
        reach = min(longest, max(interval, spacing))
        _fill(track, interval=reach, frame_count=frame_count, width=width, height=height)
    return tracks


def _fill(track: Track, *, interval: int, frame_count: int, width: int, height: int) -> None:
    keys = sorted(track.keyframes)
    boxes: dict[int, Box] = {}
    for a, b in itertools.pairwise(keys):
        box_a, box_b = track.keyframes[a], track.keyframes[b]
        # Half the movement as margin: a path that bends between detections stays inside.
        mx = max(abs(box_b[0] - box_a[0]), abs(box_b[2] - box_a[2])) / 2
        my = max(abs(box_b[1] - box_a[1]), abs(box_b[3] - box_a[3])) / 2
        for f in range(a, b):
            t = (f - a) / (b - a)
            edge = min(t, 1 - t) * 2  # no extra margin at the detections themselves
            boxes[f] = _grow(_lerp(box_a, box_b, t), mx * edge, my * edge)
    boxes[keys[-1]] = track.keyframes[keys[-1]]
    vx, vy = _end_velocity(track, keys[0], keys[1] if len(keys) > 1 else None)
    for step in range(1, interval + 1):
        f = keys[0] - step
        if f < 0:
            break
        boxes[f] = _union(
            track.keyframes[keys[0]], _shift(track.keyframes[keys[0]], -vx * step, -vy * step)
        )
    vx, vy = _end_velocity(track, keys[-1], keys[-2] if len(keys) > 1 else None)
    for step in range(1, interval + 1):
        f = keys[-1] + step
        if f >= frame_count:
            break
        boxes[f] = _union(
            track.keyframes[keys[-1]], _shift(track.keyframes[keys[-1]], vx * step, vy * step)
        )
    track.boxes = {f: _clip(box, width, height) for f, box in sorted(boxes.items())}
    track.boxes = {f: box for f, box in track.boxes.items() if box[2] > box[0] and box[3] > box[1]}


def _end_velocity(track: Track, end: int, neighbour: int | None) -> tuple[float, float]:
    if neighbour is None:
        return 0.0, 0.0
    a, b = track.keyframes[end], track.keyframes[neighbour]
    steps = neighbour - end
    return ((b[0] + b[2] - a[0] - a[2]) / 2 / steps, (b[1] + b[3] - a[1] - a[3]) / 2 / steps)


def _clip(box: Box, width: int, height: int) -> Box:
    return (
        min(max(box[0], 0.0), float(width)),
        min(max(box[1], 0.0), float(height)),
        min(max(box[2], 0.0), float(width)),
        min(max(box[3], 0.0), float(height)),
    )
