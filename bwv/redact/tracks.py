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

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
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
    seen: set[int] = field(default_factory=set)  # keyframes a detector made (not held boxes)

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


def centre_distance(a: Box, b: Box) -> float:
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


def union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _grow(box: Box, dx: float, dy: float) -> Box:
    return (box[0] - dx, box[1] - dy, box[2] + dx, box[3] + dy)


def shift(box: Box, dx: float, dy: float) -> Box:
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


@dataclass
class _Live:
    track: Track
    last_frame: int
    last_box: Box
    velocity: tuple[float, float] = (0.0, 0.0)  # centre motion in the scene, pixels per frame
    misses: int = 0


class _Scene:
    """The camera's position per frame and the cuts: where a box found on one frame is on
    another, and which frames can show the same object at all."""

    def __init__(
        self,
        frame_count: int,
        camera: Sequence[tuple[float, float]] | None,
        cuts: Sequence[int],
        width: int,
        height: int,
    ) -> None:
        self.camera = list(camera or ())
        self.cuts = sorted(c for c in cuts if 0 < c < frame_count)
        self.frame_count = frame_count
        self.width, self.height = width, height

    def at(self, frame: int) -> tuple[float, float]:
        if not self.camera:
            return 0.0, 0.0
        return self.camera[min(max(frame, 0), len(self.camera) - 1)]

    def moved(self, box: Box, frm: int, to: int) -> Box:
        """``box`` on frame ``frm`` moved with the camera to frame ``to``."""
        (ax, ay), (bx, by) = self.at(frm), self.at(to)
        return shift(box, bx - ax, by - ay)

    def scene(self, frame: int) -> int:
        return bisect.bisect_right(self.cuts, frame)

    def bounds(self, frame: int) -> tuple[int, int]:
        """First and last frame of the scene ``frame`` is in."""
        n = self.scene(frame)
        first = self.cuts[n - 1] if n else 0
        last = self.cuts[n] - 1 if n < len(self.cuts) else self.frame_count - 1
        return first, last


def _group(cls: str) -> str:
    # The text detector may call the same plate "plate" on one frame and "text" on the next.
    return "text" if cls in ("plate", "text") else cls


def comparable(a: Box, b: Box, width: int, height: int) -> bool:
    """Whether two boxes of one object measure its motion: sizes within 25%, and neither cut by
    the frame's edge (a plate sliding into view grows; its centre's motion is not its own)."""
    if not 0.8 <= _size(a) / _size(b) <= 1.25:
        return False
    return all(x[0] > 1 and x[1] > 1 and x[2] < width - 1 and x[3] < height - 1 for x in (a, b))


def _size(box: Box) -> float:
    return math.sqrt(max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0))


def link(
    detections: Mapping[int, Sequence[Detected]],
    *,
    interval: int,
    frame_count: int,
    width: int,
    height: int,
    max_misses: int = 1,
    carry: int | None = None,
    first_id: int = 1,
    fps: float = 30.0,
    camera: Sequence[tuple[float, float]] | None = None,
    cuts: Sequence[int] = (),
) -> list[Track]:
    """Link one detector's detections (frame index -> detections) into tracks covering frames.

    ``interval`` is the detector's schedule (frames between runs); ``max_misses`` how many
    scheduled runs a track may go unseen and still be the same object; ``carry`` the most
    frames a track is carried past its ends (default ``interval``; with detectors at several
    scales, the sparsest schedule, used in full for a track seen only once). ``camera`` is each
    frame's camera position (:class:`bwv.redact.motion.Camera`): boxes move with it between
    and beyond detections. ``cuts`` start new scenes: no track crosses one. Gates are in
    seconds (``fps``): how far, and how much bigger or smaller, an object can have become since
    it was last seen, so detections that cannot be one object are never joined.
    """
    scene = _Scene(frame_count, camera, cuts, width, height)
    tracks: list[Track] = []
    live: list[_Live] = []
    next_id = first_id
    for frame in sorted(detections):
        found = list(detections[frame])
        live = [s for s in live if scene.scene(s.last_frame) == scene.scene(frame)]
        pairs = []
        for i, candidate in enumerate(live):
            steps = frame - candidate.last_frame
            vx, vy = candidate.velocity
            predicted = shift(
                scene.moved(candidate.last_box, candidate.last_frame, frame), vx * steps, vy * steps
            )
            seconds = steps / fps
            for j, det in enumerate(found):
                if _group(det.cls) != _group(candidate.track.cls):
                    continue
                ratio = _size(det.box) / _size(predicted)
                if not MAX_GROWTH**-1 <= ratio <= MAX_GROWTH:
                    continue  # a face does not double in size between two looks
                overlap = iou(predicted, det.box)
                distance = centre_distance(predicted, det.box)
                # Until a track has moved once its velocity is unknown: a wider gate, the wider
                # the longer since it was seen, but never unbounded (a glare on one side of the
                # picture is not the glare on the other side two seconds later).
                if len(candidate.track.keyframes) > 1:
                    gate = min(0.75 + 3.0 * seconds, 2.5)
                else:
                    gate = min(1.0 + 10.0 * seconds, 4.0)  # a car passing: ~10 plates/s
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
            before = scene.moved(state.last_box, state.last_frame, frame)
            cx0, cy0 = (before[0] + before[2]) / 2, (before[1] + before[3]) / 2
            cx1, cy1 = (det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2
            if comparable(before, det.box, width, height):
                state.velocity = ((cx1 - cx0) / steps, (cy1 - cy0) / steps)
            state.last_frame, state.last_box, state.misses = frame, det.box, 0
            state.track.keyframes[frame] = det.box
            if det.score > 0:
                state.track.seen.add(frame)
                state.track.scores.append(det.score)
            if det.cls == "plate":
                state.track.cls = "plate"
        for i, state in enumerate(live):
            if i not in used_live:
                state.misses += 1
        live = [s for s in live if s.misses <= max_misses]
        for j, det in enumerate(found):
            if j in used_found or det.score <= 0:
                continue  # a held box (score 0) only continues a track, never starts one
            track = Track(next_id, det.cls, {frame: det.box}, scores=[det.score], seen={frame})
            next_id += 1
            tracks.append(track)
            live.append(_Live(track, frame, det.box))
    longest = max(carry or interval, interval)
    for track in tracks:
        keys = sorted(track.keyframes)
        spacing = max((b - a for a, b in itertools.pairwise(keys)), default=longest)
        reach = min(longest, max(interval, spacing))
        _fill(track, scene, interval=reach, width=width, height=height)
    return tracks


MAX_GROWTH = 2.0  # the most a box's size may change between two linked detections


def _fill(track: Track, scene: _Scene, *, interval: int, width: int, height: int) -> None:
    keys = sorted(track.keyframes)
    boxes: dict[int, Box] = {}
    for a, b in itertools.pairwise(keys):
        # In the scene's coordinates (the camera's motion taken out), then put back per frame.
        box_a, box_b = track.keyframes[a], scene.moved(track.keyframes[b], b, a)
        # Half the movement as margin: a path that bends between detections stays inside.
        mx = max(abs(box_b[0] - box_a[0]), abs(box_b[2] - box_a[2])) / 2
        my = max(abs(box_b[1] - box_a[1]), abs(box_b[3] - box_a[3])) / 2
        for f in range(a, b):
            t = (f - a) / (b - a)
            edge = min(t, 1 - t) * 2  # no extra margin at the detections themselves
            moved = scene.moved(_grow(_lerp(box_a, box_b, t), mx * edge, my * edge), a, f)
            # Joined with the straight line in the picture: what moves with the camera (a
            # person beside the officer, a car followed) stays on the picture's straight line.
            plain_b = track.keyframes[b]
            px = max(abs(plain_b[0] - box_a[0]), abs(plain_b[2] - box_a[2])) / 2
            py = max(abs(plain_b[1] - box_a[1]), abs(plain_b[3] - box_a[3])) / 2
            boxes[f] = union(moved, _grow(_lerp(box_a, plain_b, t), px * edge, py * edge))
    boxes[keys[-1]] = track.keyframes[keys[-1]]
    first, _ = scene.bounds(keys[0])
    _, last = scene.bounds(keys[-1])
    vx, vy = _end_velocity(track, scene, keys[0], keys[1] if len(keys) > 1 else None)
    start = _beyond_edges(track.keyframes[keys[0]], width, height)
    for step in range(1, interval + 1):
        f = keys[0] - step
        if f < first:
            break
        here = scene.moved(start, keys[0], f)
        boxes[f] = union(here, shift(here, -vx * step, -vy * step))
    vx, vy = _end_velocity(track, scene, keys[-1], keys[-2] if len(keys) > 1 else None)
    end = _beyond_edges(track.keyframes[keys[-1]], width, height)
    for step in range(1, interval + 1):
        f = keys[-1] + step
        if f > last:
            break
        here = scene.moved(end, keys[-1], f)
        boxes[f] = union(here, shift(here, vx * step, vy * step))
    track.boxes = {f: clip(box, width, height) for f, box in sorted(boxes.items())}
    track.boxes = {f: box for f, box in track.boxes.items() if box[2] > box[0] and box[3] > box[1]}


def _beyond_edges(box: Box, width: int, height: int) -> Box:
    """A box cut by the frame's edge, continued past it: the object goes on outside the
    picture, and carried back into it (a plate sliding in, found once half in) it must cover
    the part that was outside."""
    x0, y0, x1, y1 = box
    reach = max(x1 - x0, y1 - y0, 4 * (y1 - y0))
    return (
        x0 - reach if x0 <= 1 else x0,
        y0 - reach if y0 <= 1 else y0,
        x1 + reach if x1 >= width - 1 else x1,
        y1 + reach if y1 >= height - 1 else y1,
    )


def _end_velocity(
    track: Track, scene: _Scene, end: int, neighbour: int | None
) -> tuple[float, float]:
    """The object's own velocity at one end of the track (the camera's taken out)."""
    if neighbour is None:
        return 0.0, 0.0
    a, b = track.keyframes[end], scene.moved(track.keyframes[neighbour], neighbour, end)
    if not comparable(a, track.keyframes[neighbour], scene.width, scene.height):
        return 0.0, 0.0
    steps = neighbour - end
    return ((b[0] + b[2] - a[0] - a[2]) / 2 / steps, (b[1] + b[3] - a[1] - a[3]) / 2 / steps)


def clip(box: Box, width: int, height: int) -> Box:
    return (
        min(max(box[0], 0.0), float(width)),
        min(max(box[1], 0.0), float(height)),
        min(max(box[2], 0.0), float(width)),
        min(max(box[3], 0.0), float(height)),
    )
