#!/usr/bin/env python
"""Licence plates the redaction engine leaves readable in video it has never seen, and how
much else it changes: OCR of each plate in the input clip and in the redacted copy.

    python bench/redact_quality_video.py                  # both tests, 4-6 minutes on 2 cores
    python bench/redact_quality_video.py --quick          # a third of the photos, 1-1.5 minutes
    python bench/redact_quality_video.py --dir DIR --set padding=0.2 --json   # DIR: reused
    python bench/redact_quality_video.py --tests pan --seed 3 --ocr-all --noise

    from bench.redact_quality_video import run
    result = run(padding=0.2, workdir=DIR)                # or run(options=Options(...))

Plates only: ``Options(classes=("plates",))`` unless the caller gives options (faces are
measured by bench/redact_quality.py); ``--set FIELD=VALUE`` / keyword arguments are Options
fields applied over it. Data: the 108 openalpr EU photos in ../shared/data/plates-eu
(``NAME.jpg`` + ``NAME.txt``: tab-separated ``file x y w h PLATE``), never copied into bwv.
Every random choice comes from ``numpy.random.default_rng((seed, test))``: the same seed makes
the same clips, byte for byte, and the same figures.

Clips (1280x720, 30 fps, H.264 libx264 veryfast crf 18 yuv420p, no audio, written with PyAV):

- "10frame": every photo (quick: 36), in a seeded order, shown for 10 frames (a third of a
  second) with hard cuts between photos; scaled so its plate is 40-220 px wide (log-uniform;
  the photos' own plates are 70-505 px), at a random place with the plate inside the frame, on
  mid-grey or on the photo itself blurred to nothing; a random walk moves it up to 6 px each
  frame (a hand-held camera).
- "pan": four virtual-camera pans (right 56 px/frame, left 72, down-right 48+27, up-right
  60-34), 27 photos each (quick: 9), hard cuts between them. Each canvas is a grid of 360 px
  high tiles (480-800 px wide); one photo per tile the camera frames whole at some moment (plate
  60-200 px wide, log-uniform, inside the tile; the rest of the tile that photo blurred), other
  tiles mid-grey. The camera runs from half a view before the canvas to half a view past it, so
  plates enter from the edge; each is in view under a second (reported). Motion blur: a frame is
  the mean of 5 camera positions over 1/600 s (3-4 px of smear). A longer shutter leaves little
  to measure: at 1/300 s about half the plates never read even in the input, at 1/120 s none.

Ground truth: each plate's box, scaled and moved with its photo (the mid-shutter camera
position for pans), clipped to the frame; a plate is "in view" on a frame when at least 60% of
its box is in the picture, and only those frames are scored.

OCR: ``rapidocr_onnxruntime``'s PP-OCRv4 recogniser (``ch_PP-OCRv4_rec_infer.onnx``, its own
``TextRecognizer``, no text detection) on the plate box grown by 10% of its width left and
right and 20% of its height above and below, resized to 48 px high (cubic up, area down).
Read and true plate are uppercased, cut to A-Z0-9, O taken as 0 and I as 1 (the truth files mix
them); a view is readable when the two are within Levenshtein distance 1. By this rule 108 of
108 plates read in the photos themselves, at their own size ("photos"). A plate is readable when
at least one of its frames of the INPUT reads, hidden when readable and no frame of the COPY
reads; recall = hidden / readable. A plate's views are read middle frame first, then outwards,
until one reads (all of them if none does); in the copy, least covered by the plan first, and
every view of a plate that reads (to list its frames). The input side's reads are cached in the
work directory per (test, seed, quick): a run with other engine options reads only the copy.
A copy view whose box, grown by the motion smear, lies wholly under the plan's regions is not
read and counts as unreadable when the plan's shape is "box" (the renderer shrinks such a box
to 6 px across before blurring it); ``--ocr-all`` reads those too (on the default run, seed 0:
the same figures, 2,950 crops read instead of 150, ~3 minutes more). Misses are listed with their
width, the copy frames that read (from the plate's first frame in view), the frames the plan
covered (>= 90% of the box under its regions), and how: never covered, found late (a frame
reads before the first covered one), lost early (after the last), gaps (between), read under
cover.

Over-redaction: luma in 16x16 blocks; a block is changed when its mean absolute difference
between copy and input exceeds 4 levels. Encoder noise alone (the renderer's copy of the plan
with no tracks; ``--noise`` measures it) changes 0.002-0.004% of blocks at 4 (at 3:
0.05-0.08%, at 2: 0.5-1.4%). Reported: the changed blocks wholly outside every true plate box
(every plate touching the frame, in view or not) grown by 25% of its size each side (the engine
pads by 15%), as a share of all blocks of all frames and of the changed blocks; and the share
of all blocks changed.

Time: ``make_plan`` and ``render`` wall seconds per test (the engine on both cores); clip
making and OCR (2 threads) apart. Timings move with the machine's load (reported). Measured
beside another benchmark (load ~4 on 2 cores): 5.7 minutes for the first run (clips and input
OCR, ~80 s of it), 4.5 minutes after; the engine's plan is ~80% of it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import cpu_model, version  # noqa: E402
from bwv.base.files import file_sha256  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data/plates-eu"
TESTS = ("10frame", "pan")
GENERATOR = 3  # bump when the clips change: cached clips and input OCR are then remade
WIDTH, HEIGHT, FPS = 1280, 720, 30
CRF, PRESET = 18, "veryfast"
GREY = 128
# 10-frame test
HOLD = 10  # frames per photo
TEN_PLATE_PX = (40.0, 220.0)  # plate width in the frame, log-uniform
DRIFT_STEP, DRIFT_MAX = 1.2, 6.0  # px: random walk per frame, bound
# pan test
PAN_PLATE_PX = (60.0, 200.0)
TILE_H = 360
TILE_W = (480, 800)
SUBFRAMES = 5
SHUTTER = 0.05  # of the frame interval: 1/600 s
PANS = (  # name, px per frame (x, y)
    ("right", (56.0, 0.0)),
    ("left", (-72.0, 0.0)),
    ("down-right", (48.0, 27.0)),
    ("up-right", (60.0, -34.0)),
)
# scoring
IN_VIEW = 0.60  # of a plate's box in the picture for the frame to count
MARGIN_X, MARGIN_Y = 0.10, 0.20  # OCR crop: of the plate's width each side, height above/below
OCR_HEIGHT = 48
MAX_EDITS = 1
COVERED = 0.90  # of a plate's box under the plan's regions: "covered" on that frame
BLOCK = 16
CHANGED_MAD = 4.0  # luma levels
GROW = 0.25  # true boxes grown by this of their size each side, for over-redaction
WIDTH_BINS = (60, 100, 150)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    name: str
    path: Path
    plates: tuple[tuple[tuple[int, int, int, int], str], ...]  # ((x, y, w, h), text)


def photos(directory: Path) -> list[Photo]:
    found: dict[str, list[tuple[tuple[int, int, int, int], str]]] = {}
    for txt in sorted(directory.glob("*.txt")):
        for line in txt.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 6 or not (directory / parts[0]).is_file():
                continue  # the licence text
            try:
                x, y, w, h = (int(v) for v in parts[1:5])
            except ValueError:
                continue
            found.setdefault(parts[0], []).append(((x, y, w, h), parts[5].strip()))
    return [Photo(n, directory / n, tuple(p)) for n, p in sorted(found.items())]


def key(text: str) -> str:
    """What is compared: A-Z0-9 only, O as 0 and I as 1."""
    return re.sub(r"[^A-Z0-9]", "", text.upper()).replace("O", "0").replace("I", "1")


def edits(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def readable(read: str | None, truth: str) -> bool:
    return read is not None and edits(key(read), key(truth)) <= MAX_EDITS


# --- OCR ---------------------------------------------------------------------------------------


class Reader:
    """rapidocr's PP-OCRv4 recogniser alone, on crops already 48 px high."""

    def __init__(self, threads: int = 2) -> None:
        import rapidocr_onnxruntime
        from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer
        from rapidocr_onnxruntime.utils import read_yaml

        root = Path(rapidocr_onnxruntime.__file__).parent
        config = dict(read_yaml(root / "config.yaml")["Rec"])
        config["model_path"] = str(root / config["model_path"])
        config["intra_op_num_threads"] = threads
        config["inter_op_num_threads"] = 1
        config["rec_batch_num"] = 8
        self.model = Path(config["model_path"]).name
        self.recognizer = TextRecognizer(config)
        self.crops = 0
        self.seconds = 0.0

    def read(self, crops: list[np.ndarray]) -> list[str]:
        if not crops:
            return []
        started = time.perf_counter()
        out, _ = self.recognizer(crops)
        self.seconds += time.perf_counter() - started
        self.crops += len(crops)
        return [text for text, _ in out]


def plate_crop(image: np.ndarray, box: Box) -> np.ndarray | None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    ih, iw = image.shape[:2]
    a, b = max(0, math.floor(x0 - MARGIN_X * w)), max(0, math.floor(y0 - MARGIN_Y * h))
    c, d = min(iw, math.ceil(x1 + MARGIN_X * w)), min(ih, math.ceil(y1 + MARGIN_Y * h))
    if c - a < 4 or d - b < 4:
        return None
    crop = image[b:d, a:c]
    scale = OCR_HEIGHT / crop.shape[0]
    size = (max(8, round(crop.shape[1] * scale)), OCR_HEIGHT)
    return cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)


Views = dict[int, list[tuple[int, np.ndarray | None]]]  # pid -> (frame, crop), in reading order


def read_until(
    views: Views, truths: dict[int, str], reader: Reader, texts: dict[tuple[int, int], str | None]
) -> set[int]:
    """Read each plate's views in order until one is readable (all of them if none is);
    ``texts[(pid, frame)]`` gets what each view read. Returns the plates that read."""
    found: set[int] = set()
    pending = {pid: list(v) for pid, v in views.items() if v}
    while pending:
        keys, crops = [], []
        for pid, todo in pending.items():
            frame, crop = todo.pop(0)
            if crop is None:
                texts[(pid, frame)] = None
            else:
                keys.append((pid, frame))
                crops.append(crop)
        for k, text in zip(keys, reader.read(crops), strict=True):
            texts[k] = text
            if readable(text, truths[k[0]]):
                found.add(k[0])
        pending = {pid: todo for pid, todo in pending.items() if todo and pid not in found}
    return found


def middle_out(frames: list[int]) -> list[int]:
    """The middle frame first (the plate whole and central), then outwards."""
    mid = (frames[0] + frames[-1]) / 2
    return sorted(frames, key=lambda f: (abs(f - mid), f))


# --- clips -------------------------------------------------------------------------------------


@dataclass
class Plate:
    """One plate of one photo in a clip, where the clip shows it."""

    pid: int
    photo: str
    text: str
    segment: str
    n: int = 0  # which of its photo's plates
    smear: tuple[float, float] = (0.0, 0.0)  # px of motion blur, x and y
    views: dict[int, Box] = field(default_factory=dict)  # frame -> box clipped, >= 60% in view
    seen: dict[int, Box] = field(default_factory=dict)  # frame -> box clipped, any part in view

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "photo": self.photo,
            "text": self.text,
            "segment": self.segment,
            "n": self.n,
            "smear": list(self.smear),
            "views": [[f, *map(_r2, b)] for f, b in sorted(self.views.items())],
            "seen": [[f, *map(_r2, b)] for f, b in sorted(self.seen.items())],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plate:
        return cls(
            pid=d["pid"],
            photo=d["photo"],
            text=d["text"],
            segment=d["segment"],
            n=d["n"],
            smear=tuple(d["smear"]),  # type: ignore[arg-type]
            views={int(v[0]): tuple(v[1:]) for v in d["views"]},  # type: ignore[misc]
            seen={int(v[0]): tuple(v[1:]) for v in d["seen"]},  # type: ignore[misc]
        )

    def width(self) -> float:
        return statistics.median(b[2] - b[0] for b in self.views.values()) if self.views else 0


def _r2(v: float) -> float:
    return round(float(v), 2)


class Writer:
    def __init__(self, dest: Path) -> None:
        import av

        self.container = av.open(str(dest), "w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=FPS)
        self.stream.width, self.stream.height, self.stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        self.stream.options = {"crf": str(CRF), "preset": PRESET}
        self.frames = 0

    def write(self, bgr: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
        for packet in self.stream.encode(frame.reformat(format="yuv420p")):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _read(photo: Photo) -> np.ndarray:
    image = cv2.imread(str(photo.path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read {photo.path}")
    return image


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _blurred_cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The photo scaled to cover width x height, blurred until nothing in it can be read."""
    small = cv2.resize(image, (max(2, width // 32), max(2, height // 32)), cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _clip_box(box: Box, rect: Box) -> tuple[Box | None, float]:
    """The box clipped to rect, and the share of the box's area inside it."""
    x0, y0 = max(box[0], rect[0]), max(box[1], rect[1])
    x1, y1 = min(box[2], rect[2]), min(box[3], rect[3])
    area = (box[2] - box[0]) * (box[3] - box[1])
    if x1 <= x0 or y1 <= y0 or area <= 0:
        return None, 0.0
    return (x0, y0, x1, y1), (x1 - x0) * (y1 - y0) / area


def _place(target: Box, room: Box, rng: Any) -> tuple[float, float]:
    """A random offset for a picture whose ``target`` box (in its own pixels) must land in
    ``room``."""
    spans = ((target[0], target[2], room[0], room[2]), (target[1], target[3], room[1], room[3]))
    out = []
    for lo, hi, r_lo, r_hi in spans:
        a, b = r_lo - lo, r_hi - hi
        out.append(float(rng.uniform(a, b)) if b > a else (a + b) / 2)
    return out[0], out[1]


def make_10frame(chosen: list[Photo], rng: Any, dest: Path) -> tuple[list[Plate], int]:
    writer = Writer(dest)
    plates: list[Plate] = []
    frame_rect = (0.0, 0.0, float(WIDTH), float(HEIGHT))
    try:
        for photo in chosen:
            image = _read(photo)
            (px, py, pw, ph), _ = photo.plates[0]
            lo, hi = TEN_PLATE_PX
            scale = math.exp(rng.uniform(math.log(lo), math.log(hi))) / pw
            scaled = _resized(image, scale)
            sy, sx = scaled.shape[0] / image.shape[0], scaled.shape[1] / image.shape[1]
            if rng.random() < 0.5:
                background = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
            else:
                background = _blurred_cover(image, WIDTH, HEIGHT)
            target = (px * sx, py * sy, (px + pw) * sx, (py + ph) * sy)
            room = DRIFT_MAX + 8
            ox, oy = _place(target, (room, room, WIDTH - room, HEIGHT - room), rng)
            mine = [
                Plate(len(plates) + n, photo.name, text, "10frame", n)
                for n, (_, text) in enumerate(photo.plates)
            ]
            plates += mine
            dx = dy = 0.0
            for _ in range(HOLD):
                index = writer.frames
                matrix = np.float32([[1, 0, ox + dx], [0, 1, oy + dy]])
                frame = background.copy()
                cv2.warpAffine(
                    scaled,
                    matrix,
                    (WIDTH, HEIGHT),
                    dst=frame,
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_TRANSPARENT,
                )
                writer.write(frame)
                for plate, ((bx, by, bw, bh), _) in zip(mine, photo.plates, strict=True):
                    box = (
                        bx * sx + ox + dx,
                        by * sy + oy + dy,
                        (bx + bw) * sx + ox + dx,
                        (by + bh) * sy + oy + dy,
                    )
                    clipped, share = _clip_box(box, frame_rect)
                    if clipped is not None:
                        plate.seen[index] = clipped
                        if share >= IN_VIEW:
                            plate.views[index] = clipped
                dx = float(np.clip(dx + rng.normal(0, DRIFT_STEP), -DRIFT_MAX, DRIFT_MAX))
                dy = float(np.clip(dy + rng.normal(0, DRIFT_STEP), -DRIFT_MAX, DRIFT_MAX))
    finally:
        writer.close()
    return plates, writer.frames


@dataclass
class Tile:
    rect: tuple[int, int, int, int]  # x0, y0, x1, y1 on the canvas
    image: np.ndarray
    plates: list[tuple[Plate, Box]] = field(default_factory=list)  # box on the canvas


def _tile(photo: Photo, rect: tuple[int, int, int, int], rng: Any) -> Tile:
    image = _read(photo)
    x0, y0, x1, y1 = rect
    tw, th = x1 - x0, y1 - y0
    (px, py, pw, ph), _ = photo.plates[0]
    lo, hi = PAN_PLATE_PX
    want = min(math.exp(rng.uniform(math.log(lo), math.log(hi))), tw - 24, (th - 24) * pw / ph)
    scaled = _resized(image, want / pw)
    sy, sx = scaled.shape[0] / image.shape[0], scaled.shape[1] / image.shape[1]
    picture = _blurred_cover(image, tw, th)
    target = (px * sx, py * sy, (px + pw) * sx, (py + ph) * sy)
    ox, oy = _place(target, (12.0, 12.0, tw - 12.0, th - 12.0), rng)
    ox, oy = round(ox), round(oy)
    # paste the scaled photo, clipped to the tile
    a, b = max(0, ox), max(0, oy)
    c, d = min(tw, ox + scaled.shape[1]), min(th, oy + scaled.shape[0])
    if c > a and d > b:
        picture[b:d, a:c] = scaled[b - oy : d - oy, a - ox : c - ox]
    tile = Tile(rect, picture)
    for n, ((bx, by, bw, bh), text) in enumerate(photo.plates):
        box = (bx * sx + ox, by * sy + oy, (bx + bw) * sx + ox, (by + bh) * sy + oy)
        on_canvas = (box[0] + x0, box[1] + y0, box[2] + x0, box[3] + y0)
        tile.plates.append((Plate(-1, photo.name, text, "", n), on_canvas))
    return tile


def _path(canvas: tuple[int, int], speed: tuple[float, float]) -> list[tuple[float, float]]:
    """Camera positions (the view's top-left at mid-shutter), one per frame, from half a view
    before the canvas to half a view past it, at ``speed`` adjusted to a whole number of
    frames (both axes arrive together)."""
    starts, ranges = [], []
    for extent, view, v in ((canvas[0], WIDTH, speed[0]), (canvas[1], HEIGHT, speed[1])):
        starts.append(0.0 if v == 0 else -view / 2 if v > 0 else extent - view / 2)
        ranges.append(0.0 if v == 0 else math.copysign(extent, v))
    frames = max(math.ceil(abs(r / v)) for r, v in zip(ranges, speed, strict=True) if v)
    return [
        (starts[0] + ranges[0] * t / frames, starts[1] + ranges[1] * t / frames)
        for t in range(frames + 1)
    ]


def _layout(
    n: int, speed: tuple[float, float], rng: Any
) -> tuple[list[tuple[int, int, int, int]], list[tuple[float, float]]]:
    """``n`` cells of a canvas the camera frames whole at some moment, in the order it meets
    them, and the camera path. Horizontal pans: two rows of tiles, the view's height. Diagonal
    pans: rows added until the band the view sweeps holds ``n`` whole cells."""
    rows = 2
    while True:
        edges = [0]
        if speed[1] == 0:
            wanted = math.ceil(n / rows)
            while len(edges) <= wanted:
                edges.append(edges[-1] + int(rng.integers(TILE_W[0], TILE_W[1] + 1)))
        else:
            width = rows * TILE_H * abs(speed[0] / speed[1])
            while edges[-1] < width:
                edges.append(edges[-1] + int(rng.integers(TILE_W[0], TILE_W[1] + 1)))
        path = _path((edges[-1], rows * TILE_H), speed)
        cells = [
            cell
            for r in range(rows)
            for c in range(len(edges) - 1)
            if any(
                x <= (cell := (edges[c], r * TILE_H, edges[c + 1], (r + 1) * TILE_H))[0]
                and y <= cell[1]
                and cell[2] <= x + WIDTH
                and cell[3] <= y + HEIGHT
                for x, y in path
            )
        ]
        if len(cells) >= n or speed[1] == 0:
            break
        rows += 1
    cells.sort(key=lambda c: ((c[0] + c[2]) * speed[0] + (c[1] + c[3]) * speed[1], c[1], c[0]))
    if len(cells) > n:  # spread over the whole pan
        cells = [cells[i] for i in np.linspace(0, len(cells) - 1, n).round().astype(int)]
    return cells, path


def _view(tiles: list[Tile], x: int, y: int) -> np.ndarray:
    out = np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)
    for tile in tiles:
        tx0, ty0, tx1, ty1 = tile.rect
        a, b = max(x, tx0), max(y, ty0)
        c, d = min(x + WIDTH, tx1), min(y + HEIGHT, ty1)
        if c > a and d > b:
            out[b - y : d - y, a - x : c - x] = tile.image[b - ty0 : d - ty0, a - tx0 : c - tx0]
    return out


def make_pan(chosen: list[Photo], rng: Any, dest: Path) -> tuple[list[Plate], int]:
    writer = Writer(dest)
    plates: list[Plate] = []
    per = [len(chosen) // len(PANS) + (i < len(chosen) % len(PANS)) for i in range(len(PANS))]
    offsets = [SHUTTER * (k / (SUBFRAMES - 1) - 0.5) for k in range(SUBFRAMES)]
    start = 0
    try:
        for (name, speed), n in zip(PANS, per, strict=True):
            mine, start = chosen[start : start + n], start + n
            if not mine:
                continue
            cells, path = _layout(n, speed, rng)
            tiles = [_tile(photo, cell, rng) for photo, cell in zip(mine, cells, strict=True)]
            step = (path[1][0] - path[0][0], path[1][1] - path[0][1])
            smear = (_r2(abs(step[0]) * SHUTTER), _r2(abs(step[1]) * SHUTTER))
            segment: list[tuple[Plate, Box, tuple[int, int, int, int]]] = []
            for tile in tiles:
                for plate, box in tile.plates:
                    plate.pid, plate.segment, plate.smear = len(plates), name, smear
                    plates.append(plate)
                    segment.append((plate, box, tile.rect))
            for cx, cy in path:
                index = writer.frames
                acc = np.zeros((HEIGHT, WIDTH, 3), np.uint16)
                for o in offsets:
                    acc += _view(tiles, round(cx + step[0] * o), round(cy + step[1] * o))
                writer.write(((acc + SUBFRAMES // 2) // SUBFRAMES).astype(np.uint8))
                view = (cx, cy, cx + WIDTH, cy + HEIGHT)
                for plate, box, rect in segment:
                    drawn, drawn_share = _clip_box(box, rect)  # what its tile shows of it
                    clipped, share = _clip_box(drawn, view) if drawn else (None, 0.0)
                    if clipped is None:
                        continue
                    in_frame = (clipped[0] - cx, clipped[1] - cy, clipped[2] - cx, clipped[3] - cy)
                    plate.seen[index] = in_frame
                    if drawn_share * share >= IN_VIEW:
                        plate.views[index] = in_frame
    finally:
        writer.close()
    return plates, writer.frames


# --- the clips, cached with the input side's OCR ----------------------------------------------


@dataclass
class Clip:
    test: str
    path: Path
    frames: int
    plates: list[Plate]
    input_texts: dict[tuple[int, int], str | None]  # (pid, frame) -> what the input reads
    make_s: float = 0.0
    ocr_s: float = 0.0
    cached: bool = False


def _choose(test: str, every: list[Photo], seed: int, quick: bool) -> list[Photo]:
    salt = TESTS.index(test) + 1
    order = np.random.default_rng((seed, salt, 0)).permutation(len(every))
    n = max(1, len(every) // 3) if quick else len(every)
    return [every[i] for i in order[:n]]


def crops_of(path: Path, wanted: dict[int, list[tuple[int, Box]]]) -> dict[tuple[int, int], Any]:
    """The OCR crop of each (pid, box) of each frame in ``wanted``, decoding ``path`` once."""
    out: dict[tuple[int, int], Any] = {}
    for index, frame in enumerate(_frames(path)):
        if index in wanted:
            bgr = frame.to_ndarray(format="bgr24")
            for pid, box in wanted[index]:
                out[(pid, index)] = plate_crop(bgr, box)
    return out


def prepare(
    test: str, every: list[Photo], seed: int, quick: bool, workdir: Path, reader: Reader
) -> Clip:
    name = f"{test}-seed{seed}{'-quick' if quick else ''}"
    path, meta = workdir / f"{name}.mp4", workdir / f"{name}.json"
    chosen = _choose(test, every, seed, quick)
    ident = {
        "generator": GENERATOR,
        "test": test,
        "seed": seed,
        "quick": quick,
        "photos": [p.name for p in chosen],
        "crop": [MARGIN_X, MARGIN_Y, OCR_HEIGHT, reader.model],
    }
    if meta.is_file() and path.is_file():
        with contextlib.suppress(ValueError, KeyError):
            saved = json.loads(meta.read_text())
            if saved["ident"] == ident and saved["sha256"] == file_sha256(path):
                plates = [Plate.from_json(p) for p in saved["plates"]]
                texts = {(pid, f): t for pid, f, t in saved["input_texts"]}
                return Clip(test, path, saved["frames"], plates, texts, cached=True)
    log(f"{test}: making the clip from {len(chosen)} photos")
    started = time.perf_counter()
    partial = path.with_suffix(".partial.mp4")
    rng = np.random.default_rng((seed, TESTS.index(test) + 1))
    if test == "10frame":
        plates, frames = make_10frame(chosen, rng, partial)
    else:
        plates, frames = make_pan(chosen, rng, partial)
    partial.replace(path)
    make_s = time.perf_counter() - started
    log(f"{test}: {frames} frames in {make_s:.1f} s; OCR of the input")
    started = time.perf_counter()
    wanted: dict[int, list[tuple[int, Box]]] = {}
    for plate in plates:
        for f, box in plate.views.items():
            wanted.setdefault(f, []).append((plate.pid, box))
    crops = crops_of(path, wanted)
    texts: dict[tuple[int, int], str | None] = {}
    views = {
        p.pid: [(f, crops[(p.pid, f)]) for f in middle_out(sorted(p.views))]
        for p in plates
        if p.views
    }
    read_until(views, {p.pid: p.text for p in plates}, reader, texts)
    ocr_s = time.perf_counter() - started
    meta.write_text(
        json.dumps(
            {
                "ident": ident,
                "sha256": file_sha256(path),
                "frames": frames,
                "plates": [p.to_json() for p in plates],
                "input_texts": [[pid, f, t] for (pid, f), t in sorted(texts.items())],
            }
        )
    )
    plates = [Plate.from_json(p.to_json()) for p in plates]  # as a cached run sees them
    return Clip(test, path, frames, plates, texts, make_s, ocr_s)


def photos_readable(
    every: list[Photo], workdir: Path, reader: Reader
) -> dict[tuple[str, int], bool]:
    """(photo, n) -> is the photo's plate n readable in the photo itself, at its own size."""
    cache = workdir / "photos-ocr.json"
    ident = [[p.name, *(text for _, text in p.plates)] for p in every]
    ident.append([MARGIN_X, MARGIN_Y, OCR_HEIGHT, reader.model])
    plates = [(p, n, box, text) for p in every for n, (box, text) in enumerate(p.plates)]
    texts: list[str | None] | None = None
    if cache.is_file():
        with contextlib.suppress(ValueError, KeyError):
            saved = json.loads(cache.read_text())
            if saved["ident"] == ident:
                texts = saved["texts"]
    if texts is None:
        crops = []
        for photo, _, (x, y, w, h), _ in plates:
            crop = plate_crop(_read(photo), (x, y, x + w, y + h))
            crops.append(crop if crop is not None else np.zeros((OCR_HEIGHT, 8, 3), np.uint8))
        texts = list(reader.read(crops))
        cache.write_text(json.dumps({"ident": ident, "texts": texts}))
    return {
        (photo.name, n): readable(read, text)
        for (photo, n, _, text), read in zip(plates, texts, strict=True)
    }


# --- scoring the copy --------------------------------------------------------------------------


@dataclass
class Scored:
    crops: dict[tuple[int, int], Any]  # (pid, frame) -> copy crop to read
    skipped: set[tuple[int, int]]  # views wholly under the plan, not read
    coverage: dict[tuple[int, int], float]  # (pid, frame) -> share of the box under the plan
    blocks: int
    changed: int
    changed_outside: int


def _block_mad(a: Any, b: Any) -> np.ndarray:
    """Mean absolute luma difference of two decoded frames, per 16x16 block."""
    rows, cols = HEIGHT // BLOCK, WIDTH // BLOCK
    ya = a.to_ndarray(format="yuv420p")[: rows * BLOCK, : cols * BLOCK].astype(np.int16)
    yb = b.to_ndarray(format="yuv420p")[: rows * BLOCK, : cols * BLOCK].astype(np.int16)
    return np.abs(ya - yb).reshape(rows, BLOCK, cols, BLOCK).mean(axis=(1, 3))


def _grown_blocks(near: np.ndarray, box: Box, grow: float) -> None:
    w, h = box[2] - box[0], box[3] - box[1]
    x0, y0 = box[0] - grow * w, box[1] - grow * h
    x1, y1 = box[2] + grow * w, box[3] + grow * h
    near[
        max(0, math.floor(y0 / BLOCK)) : max(0, math.ceil(y1 / BLOCK)),
        max(0, math.floor(x0 / BLOCK)) : max(0, math.ceil(x1 / BLOCK)),
    ] = True


def _pixels(box: Box) -> tuple[slice, slice]:
    x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    x1, y1 = min(WIDTH, math.ceil(box[2])), min(HEIGHT, math.ceil(box[3]))
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _frames(path: Path) -> Iterator[Any]:
    import av

    with av.open(str(path)) as container:
        yield from container.decode(video=0)


def score_copy(
    clip: Clip,
    copy: Path,
    regions: dict[int, list[tuple[str, tuple[int, int, int, int]]]],
    want: set[int],
    skip_covered: bool,
) -> Scored:
    """Decode input and copy together: the changed blocks of every frame, the plan's coverage
    of every view, and the copy's crops of the views of the plates in ``want``."""
    views: dict[int, list[tuple[Plate, Box]]] = {}
    seen: dict[int, list[Box]] = {}
    for plate in clip.plates:
        for f, box in plate.views.items():
            views.setdefault(f, []).append((plate, box))
        for f, box in plate.seen.items():
            seen.setdefault(f, []).append(box)
    crops: dict[tuple[int, int], Any] = {}
    skipped: set[tuple[int, int]] = set()
    coverage: dict[tuple[int, int], float] = {}
    blocks = changed = outside = 0
    for index, (a, b) in enumerate(zip(_frames(clip.path), _frames(copy), strict=True)):
        hit = _block_mad(a, b) > CHANGED_MAD
        near = np.zeros_like(hit)
        for box in seen.get(index, ()):
            _grown_blocks(near, box, GROW)
        blocks += hit.size
        changed += int(hit.sum())
        outside += int((hit & ~near).sum())
        if index not in views:
            continue
        mask = np.zeros((HEIGHT, WIDTH), bool)
        for _, (x0, y0, x1, y1) in regions.get(index, ()):
            mask[y0:y1, x0:x1] = True
        bgr = None
        for plate, box in views[index]:
            k = (plate.pid, index)
            under = mask[_pixels(box)]
            coverage[k] = float(under.mean()) if under.size else 0.0
            if plate.pid not in want:
                continue
            sx, sy = plate.smear[0] / 2 + 1, plate.smear[1] / 2 + 1
            smeared = mask[_pixels((box[0] - sx, box[1] - sy, box[2] + sx, box[3] + sy))]
            if skip_covered and smeared.size and smeared.all():
                skipped.add(k)
                continue
            if bgr is None:
                bgr = b.to_ndarray(format="bgr24")
            crops[k] = plate_crop(bgr, box)
    return Scored(crops, skipped, coverage, blocks, changed, outside)


def encoder_noise(clip: Clip, plan: Any, workdir: Path) -> dict[str, float]:
    """Share of blocks changed, per threshold, by the renderer's re-encode alone (the plan
    without its tracks)."""
    from bwv.redact.render import render

    empty = plan.model_copy(update={"tracks": (), "manual": ()})
    dest = workdir / f"{clip.path.stem}-noise.mp4"
    render(clip.path, empty, dest)
    levels = (1.0, 2.0, 3.0, 4.0, 6.0)
    hits = dict.fromkeys(levels, 0)
    blocks = 0
    for a, b in zip(_frames(clip.path), _frames(dest), strict=True):
        mad = _block_mad(a, b)
        blocks += mad.size
        for level in levels:
            hits[level] += int((mad > level).sum())
    dest.unlink()
    return {f"{level:g}": round(hits[level] / blocks, 6) for level in levels}


# --- one test ----------------------------------------------------------------------------------


def _kind(read: list[int], covered: list[int]) -> str:
    """How the plan missed a plate, from the copy frames that read and those >= 90% covered."""
    if not covered:
        return "never covered"
    kinds = [
        name
        for name, hit in (
            ("found late", any(f < covered[0] for f in read)),
            ("lost early", any(f > covered[-1] for f in read)),
            ("gaps", any(covered[0] < f < covered[-1] and f not in covered for f in read)),
            ("read under cover", any(f in covered for f in read)),
        )
        if hit
    ]
    return " + ".join(kinds)


def _bin(width: float) -> str:
    """Plate width class, named so that the names sort in order."""
    lo = 0
    for hi in WIDTH_BINS:
        if width < hi:
            return f"{lo:03d}-{hi:03d}"
        lo = hi
    return f"{lo:03d}+"


@dataclass
class Outcome:
    plate: Plate
    width: float  # px, median over its frames in view
    frames: list[int]  # in view
    readable: bool  # in the input
    hidden: bool
    covered: list[int]  # frames >= 90% under the plan's regions


def _counts(outcomes: list[Outcome], group: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for o in outcomes:
        c = out.setdefault(group(o), {"plates": 0, "readable": 0, "hidden": 0})
        c["plates"] += 1
        c["readable"] += o.readable
        c["hidden"] += o.hidden
    return out


def run_test(
    clip: Clip,
    options: Any,
    workdir: Path,
    reader: Reader,
    in_photo: dict[tuple[str, int], bool],
    ocr_all: bool,
    with_noise: bool,
) -> dict[str, Any]:
    from bwv.redact.engine import make_plan
    from bwv.redact.render import render

    log(f"{clip.test}: plan")
    started = time.perf_counter()
    planned = make_plan(clip.path, options)
    plan_s = time.perf_counter() - started
    plan = planned.plan
    plan.save(workdir / f"{clip.path.stem}-plan.json")
    copy = workdir / f"{clip.path.stem}-copy.mp4"
    log(f"{clip.test}: render ({len(plan.tracks)} tracks, plan {plan_s:.1f} s)")
    started = time.perf_counter()
    render(clip.path, plan, copy)
    render_s = time.perf_counter() - started
    log(f"{clip.test}: scoring the copy (render {render_s:.1f} s)")

    truths = {p.pid: p.text for p in clip.plates}
    read_in = {
        p.pid: [f for f in sorted(p.views) if readable(clip.input_texts.get((p.pid, f)), p.text)]
        for p in clip.plates
    }
    want = {pid for pid, frames in read_in.items() if frames}
    shape_box = getattr(getattr(plan, "options", None), "shape", None) == "box"
    scored = score_copy(clip, copy, plan.regions(), want, shape_box and not ocr_all)
    before = reader.seconds
    texts: dict[tuple[int, int], str | None] = dict.fromkeys(scored.skipped, "")
    views: Views = {}
    for plate in clip.plates:
        if plate.pid in want:
            order = middle_out(sorted(plate.views))
            order.sort(key=lambda f: scored.coverage.get((plate.pid, f), 0.0))  # stable
            views[plate.pid] = [
                (f, scored.crops[(plate.pid, f)]) for f in order if (plate.pid, f) in scored.crops
            ]
    found = read_until(views, truths, reader, texts)
    # a plate the copy still shows: read the rest of its views, for the frames that show it
    rest = [
        (pid, f, c)
        for pid in sorted(found)
        for f, c in views[pid]
        if (pid, f) not in texts and c is not None
    ]
    for (pid, f, _), text in zip(rest, reader.read([c for *_, c in rest]), strict=True):
        texts[(pid, f)] = text
    ocr_copy_s = reader.seconds - before
    noise_share = encoder_noise(clip, plan, workdir) if with_noise else None

    outcomes: list[Outcome] = []
    misses = []
    for plate in clip.plates:
        frames = sorted(plate.views)
        if not frames:
            continue
        read_copy = [f for f in frames if readable(texts.get((plate.pid, f)), plate.text)]
        is_readable = bool(read_in[plate.pid])
        o = Outcome(
            plate,
            plate.width(),
            frames,
            is_readable,
            is_readable and not read_copy,
            [f for f in frames if scored.coverage.get((plate.pid, f), 0.0) >= COVERED],
        )
        outcomes.append(o)
        if is_readable and read_copy:
            first = frames[0]
            misses.append(
                {
                    "photo": plate.photo,
                    "plate": plate.text,
                    "segment": plate.segment,
                    "width_px": round(o.width, 1),
                    "frames_in_view": len(frames),
                    "first_frame": first,
                    "input_read_at": [f - first for f in read_in[plate.pid]],
                    "readable_in_copy": [f - first for f in read_copy],
                    "covered": [f - first for f in o.covered],
                    "read_as": sorted({str(texts[(plate.pid, f)]) for f in read_copy}),
                    "kind": _kind(read_copy, o.covered),
                }
            )
    readable_n = sum(o.readable for o in outcomes)
    hidden_n = sum(o.hidden for o in outcomes)
    widths = [o.width for o in outcomes]
    in_view = [len(o.frames) for o in outcomes]
    kinds: dict[str, int] = {}
    for m in misses:
        kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
    return {
        "frames": clip.frames,
        "plates": len(outcomes),
        "photos": len({o.plate.photo for o in outcomes}),
        "readable_in_photo": sum(in_photo.get((o.plate.photo, o.plate.n), 0) for o in outcomes),
        "readable": readable_n,
        "hidden": hidden_n,
        "recall": round(hidden_n / readable_n, 4) if readable_n else None,
        "covered_every_frame": sum(o.readable and o.covered == o.frames for o in outcomes),
        "missed": len(misses),
        "missed_median_width_px": round(statistics.median(m["width_px"] for m in misses), 1)
        if misses
        else None,
        "miss_kinds": kinds,
        "by_width": dict(sorted(_counts(outcomes, lambda o: _bin(o.width)).items())),
        "segments": _counts(outcomes, lambda o: o.plate.segment),
        "plate_width_px": {
            "min": round(min(widths), 1),
            "median": round(statistics.median(widths), 1),
            "max": round(max(widths), 1),
        },
        "frames_in_view": {"median": statistics.median(in_view), "max": max(in_view)},
        "over_redaction": {
            "blocks": scored.blocks,
            "changed_share": round(scored.changed / scored.blocks, 5),
            "outside_share_of_all": round(scored.changed_outside / scored.blocks, 5),
            "outside_share_of_changed": round(scored.changed_outside / scored.changed, 4)
            if scored.changed
            else None,
            "noise_changed_share": noise_share,
        },
        "tracks": len(plan.tracks),
        "copy_views_read": len(texts) - len(scored.skipped),
        "copy_views_skipped": len(scored.skipped),
        "plan_s": round(plan_s, 1),
        "render_s": round(render_s, 1),
        "ocr_copy_s": round(ocr_copy_s, 1),
        "ocr_input_s": round(clip.ocr_s, 1),
        "make_clip_s": round(clip.make_s, 1),
        "clip_cached": clip.cached,
        "misses": misses,
    }


# --- the whole run -----------------------------------------------------------------------------


def _options_dict(options: Any) -> Any:
    dump = getattr(options, "model_dump", None)
    return dump(mode="json") if dump else repr(options)


def run(
    options: Any = None,
    tests: tuple[str, ...] | list[str] = TESTS,
    quick: bool = False,
    workdir: Path | str | None = None,
    seed: int = 0,
    *,
    data: Path = DATA,
    ocr_all: bool = False,
    noise: bool = False,
    threads: int = 2,
    **engine: Any,
) -> dict[str, Any]:
    """Run the tests; return the result as a dict (what ``--json`` prints).

    ``options``: the engine's Options (default ``Options(classes=("plates",))``); keyword
    arguments are Options fields, applied over it (``run(text_every_s=0.8)``). ``workdir`` keeps
    the clips and the input side's OCR for the next run (default: a temporary directory,
    deleted)."""
    from bwv.redact.plan import Options

    if options is None:
        options = Options(classes=("plates",), **engine)
    elif engine:
        options = type(options).model_validate({**options.model_dump(), **engine})
    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        raise ValueError(f"unknown test {', '.join(unknown)} (there are {', '.join(TESTS)})")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"no plate photos at {data} (../shared/data/plates-eu)")
    every = photos(Path(data))
    if not every:
        raise FileNotFoundError(f"no photos with plate boxes in {data}")
    started = time.perf_counter()
    load_before = os.getloadavg()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bwv-rqv-")))
        else:
            where = Path(workdir)
            where.mkdir(parents=True, exist_ok=True)
        reader = Reader(threads)
        in_photo = photos_readable(every, where, reader)
        results = {}
        for test in tests:
            clip = prepare(test, every, seed, quick, where, reader)
            results[test] = run_test(clip, options, where, reader, in_photo, ocr_all, noise)
    return {
        "bench": "redact_quality_video",
        "cpu": cpu_model(),
        "load_before": [round(v, 2) for v in load_before],
        "rapidocr": version("rapidocr_onnxruntime"),
        "ocr_model": reader.model,
        "seed": seed,
        "quick": quick,
        "workdir": str(workdir) if workdir else None,
        "options": _options_dict(options),
        "rule": {
            "readable": f"Levenshtein <= {MAX_EDITS} after A-Z0-9, O->0, I->1",
            "in_view": IN_VIEW,
            "crop_margin": [MARGIN_X, MARGIN_Y],
            "ocr_height": OCR_HEIGHT,
            "covered": COVERED,
            "block": BLOCK,
            "changed_mad": CHANGED_MAD,
            "grow": GROW,
            "ocr_all": ocr_all,
        },
        "photos": {"plates": len(in_photo), "readable": sum(in_photo.values())},
        "tests": results,
        "ocr_crops": reader.crops,
        "ocr_s": round(reader.seconds, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }


# --- report ------------------------------------------------------------------------------------


def _ranges(frames: list[int]) -> str:
    """0,1,2,5,7,8 -> 0-2,5,7-8"""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs) or "-"


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}%}"


def report(result: dict[str, Any]) -> None:
    options = result["options"]
    shown = (
        ", ".join(f"{k}={v}" for k, v in options.items()) if isinstance(options, dict) else options
    )
    print(
        f"plates left readable in video: seed {result['seed']}, "
        + ("quick, " * result["quick"])
        + result["cpu"]
    )
    print(f"options: {shown}")
    photos = result["photos"]
    print(
        f"photos: {photos['readable']}/{photos['plates']} plates readable by OCR in the photos "
        f"themselves ({result['rule']['readable']})"
    )
    print()
    print(
        "| test | frames | plates | readable in photo | readable in input | hidden | recall "
        "| covered every frame | missed (median px) | changed blocks | changed outside plates "
        "(of all / of changed) | plan s | render s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, t in result["tests"].items():
        o = t["over_redaction"]
        median = t["missed_median_width_px"]
        print(
            f"| {name} | {t['frames']} | {t['plates']} | {t['readable_in_photo']} "
            f"| {t['readable']} "
            f"| {t['hidden']} | {_pct(t['recall'])} | {t['covered_every_frame']} "
            f"| {t['missed']} ({median if median is not None else '-'}) "
            f"| {_pct(o['changed_share'], 2)} | {_pct(o['outside_share_of_all'], 2)} / "
            f"{_pct(o['outside_share_of_changed'])} | {t['plan_s']} | {t['render_s']} |"
        )
    print()
    print("| test | plate width px / pan | plates | readable in input | hidden |")
    print("|---|---|---:|---:|---:|")
    for name, t in result["tests"].items():
        rows = list(t["by_width"].items())
        if len(t["segments"]) > 1:
            rows += [(f"pan {k}", v) for k, v in t["segments"].items()]
        for label, c in rows:
            print(f"| {name} | {label} | {c['plates']} | {c['readable']} | {c['hidden']} |")
    for name, t in result["tests"].items():
        fv, pw = t["frames_in_view"], t["plate_width_px"]
        print(
            f"\n{name}: plates {pw['min']}-{pw['max']} px wide (median {pw['median']}), in view "
            f"{fv['median']} frames (median, max {fv['max']}); {t['tracks']} tracks; "
            f"copy views read {t['copy_views_read']}, skipped as wholly under the plan "
            f"{t['copy_views_skipped']}; misses: "
            + (", ".join(f"{k} {v}" for k, v in sorted(t["miss_kinds"].items())) or "none")
        )
        if noise := t["over_redaction"]["noise_changed_share"]:
            print(f"  re-encode alone, share of blocks changed, by threshold: {noise}")
        for m in t["misses"]:
            print(
                f"  {m['photo']} {m['plate']} ({m['segment']}, {m['width_px']} px, frames "
                f"{m['first_frame']}+0..{m['frames_in_view'] - 1}): readable in copy "
                f"{_ranges(m['readable_in_copy'])} as {'/'.join(m['read_as'])}, covered "
                f"{_ranges(m['covered'])}: {m['kind']}"
            )
    t_all = result["tests"].values()

    def total(name: str) -> str:
        return f"{sum(t[name] for t in t_all):.1f}"

    print(
        f"\ntime: {result['wall_s']} s wall; clips made {total('make_clip_s')} s, "
        f"plan {total('plan_s')} s, render {total('render_s')} s, "
        f"OCR {result['ocr_s']} s ({result['ocr_crops']} crops; input side "
        + ("cached" if all(t["clip_cached"] for t in t_all) else "read this run")
        + ")"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a third of the photos (~1 minute)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--dir", type=Path, help="keep clips and input OCR here (reused; default: temp)")
    p.add_argument("--tests", default=",".join(TESTS), help=f"default {','.join(TESTS)}")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="an engine Options field, e.g. --set text_every_s=0.8 (repeatable)",
    )
    p.add_argument(
        "--ocr-all", action="store_true", help="OCR copy views wholly under the plan too"
    )
    p.add_argument("--noise", action="store_true", help="also measure the re-encode's block noise")
    p.add_argument("--data", type=Path, default=DATA, help="plate photos + .txt boxes")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    a = p.parse_args(argv)
    if not a.data.is_dir():
        print(
            f"error: no plate photos at {a.data} (the ../shared/data this bench reads)",
            file=sys.stderr,
        )
        return 1
    engine: dict[str, Any] = {}
    for item in a.set:
        name, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set {item}: expected FIELD=VALUE")
        try:
            engine[name] = json.loads(value)
        except ValueError:
            engine[name] = value
    if isinstance(engine.get("classes"), str):
        engine["classes"] = tuple(engine["classes"].split(","))
    result = run(
        tests=tuple(t for t in a.tests.split(",") if t),
        quick=a.quick,
        workdir=a.dir,
        seed=a.seed,
        data=a.data,
        ocr_all=a.ocr_all,
        noise=a.noise,
        **engine,
    )
    if a.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
