"""Is a text line a licence plate? The text detector's "plate" lines, read by a recogniser.

:class:`~bwv.redact.detect.TextDetector` classes a line "plate" by its shape alone, so a shirt
logo, a cabinet handle, a head and shoulders (DBNet fires on all three) become plate tracks. A
plate *reads*: a few capitals and digits. :class:`PlateVerifier` reads the candidate with the
PP-OCRv4 recogniser (``ch_PP-OCRv4_rec_infer.onnx``, an SVTR-LCNet CTC model from the same
``rapidocr_onnxruntime`` wheel as the detector, Apache-2.0; its 6,623-character dictionary is in
the model's own metadata, so the checked hash covers it too) and calls it a plate when the
probabilities of the plate characters it read (capitals, digits, lower-case look-alikes) add
up to ``PLATE_MIN_SCORE``: about three sure characters.

It fails closed (a missed plate is a disclosure failure, an extra blur is not):

- a line thinner than ``READ_MIN_LINE`` frame pixels is a plate, unread: the recogniser
  misreads plates a person can still read at that size;
- it reads the line as the detector found it, then the whole grown box around it;
- a blob-shaped box (DBNet merges a blurred plate with the car around it) that reads as
  neither is looked into: the text detector runs on the box alone at ``LOOK_SIZE`` and every
  line it finds there is checked the same way (the costly step: a detector pass);
- only then is it "not a plate". Any error raises :class:`~bwv.base.errors.DetectorError`.

Pre- and post-processing follow rapidocr_onnxruntime 1.4.4 (``ch_ppocr_rec``, Apache-2.0): BGR
as decoded, height 48, width by the aspect ratio, ``(x / 255 - 0.5) / 0.5``, greedy CTC
decoding (blank is index 0; a space is appended to the dictionary). Unlike rapidocr a short line
is not padded to 320 px wide: half the cost, and on the 252 "plate" lines of the EU photos the
same verdicts on every plate (readings differ in punctuation only; 7 of the other lines, stickers
and signs, change verdict).
Recall on the openalpr EU photos (as they are, small, blurred), false tracks on real footage and
the cost per call: ``bench/redact_false_tracks.py``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

from bwv.base.errors import DetectorError
from bwv.redact.detect import (
    TEXT_GROW_HEIGHT,
    TEXT_GROW_LENGTH,
    TEXT_GROW_LENGTH_BY_HEIGHT,
    Box,
    TextDetector,
    _OrtEngine,
)
from bwv.redact.weights import ModelInfo, model_bytes, recogniser_model

# A plate reads as plate characters (below) whose probabilities add up to at least this: on the
# EU photos, as they are, small and blurred, every plate line >= READ_MIN_LINE read >= 3.37 (5+
# characters); faces, hair, logos and handles in the real footage read <= 1.95 (the "TF" shirt
# logo: two sure letters). A three-letter logo can pass: it is then blurred as a plate.
PLATE_MIN_SCORE = 2.2
# Letters and digits; lower-case letters count only where they look like their capitals (the
# recogniser reads an "O" on a plate as "o" now and then); a face reads "day", "C0y", "lo0".
_PLATE_CHAR = re.compile(r"[A-Z0-9cosuvwxz]")
READ_MIN_LINE = 12.0  # frame pixels: a thinner line is not read (a plate a person can read at
# 40 px wide, 9 px tall, misreads) and stays a plate
LOOK_SIZE = 320  # a candidate that reads as nothing is looked into at this size ...
LOOK_INPUT = 640  # ... and this network input (2x): a blurred plate inside a blob is found
LOOK_MAX_ASPECT = 1.8  # only blobs are looked into: a plate-shaped box (line >= 2.2:1) is not
LOOK_MARGIN = 0.10  # of the box, each side
REC_HEIGHT = 48  # the recogniser's input height
REC_MIN_WIDTH = 2 * REC_HEIGHT  # a near-square crop still gets a few CTC steps
REC_MAX_WIDTH = 16 * REC_HEIGHT  # longer lines are squeezed (plates measure <= 14:1)


@dataclass(frozen=True)
class Reading:
    """What the recogniser read in one crop."""

    text: str
    probs: tuple[float, ...]  # one per character of ``text``

    @property
    def plate_score(self) -> float:
        """How many plate characters (capitals, digits, look-alikes) it read, each counted by
        its probability."""
        return sum(
            p for c, p in zip(self.text, self.probs, strict=True) if _PLATE_CHAR.fullmatch(c)
        )


@dataclass(frozen=True)
class PlateCheck:
    """The verdict on one candidate, and why: "read" (it reads as a plate), "small" (too thin
    to read: a plate, unread), either with " inside" (a line found inside the box), or "not
    read" (no reading reached ``PLATE_MIN_SCORE``)."""

    plate: bool
    why: str
    readings: tuple[Reading, ...]

    @property
    def text(self) -> str:
        return self.readings[-1].text if self.readings else ""


def line_box(box: Box) -> Box:
    """The text line inside a box :class:`~bwv.redact.detect.TextDetector` grew (the unclipped
    DBNet rectangle, for an upright line): the growth undone."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    along, across = (width, height) if width >= height else (height, width)
    thickness = across / (1 + 2 * TEXT_GROW_HEIGHT)
    by_height = along - 2 * TEXT_GROW_LENGTH_BY_HEIGHT * thickness
    by_length = along / (1 + 2 * TEXT_GROW_LENGTH)
    # The detector grew each end by the larger of the two; which one it was shows in the result.
    length = (
        by_length
        if TEXT_GROW_LENGTH * by_length >= TEXT_GROW_LENGTH_BY_HEIGHT * thickness
        else by_height
    )
    length = max(length, thickness)
    w, h = (length, thickness) if width >= height else (thickness, length)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


class PlateVerifier:
    """Reads candidate plate lines; one onnxruntime session, not thread-safe."""

    def __init__(
        self,
        *,
        threads: int = 1,
        model: ModelInfo | None = None,
        look_inside: bool = True,
        text_model: ModelInfo | None = None,
    ) -> None:
        self.model = model if model is not None else recogniser_model()
        # The detectors' onnxruntime engine: same session options, same failure diagnosis.
        self._engine = _OrtEngine(self.model, model_bytes(self.model), None, threads)
        meta = self._engine.session.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise DetectorError(f"{self.model.name} model {self.model.path} has no dictionary")
        self._chars = ["", *meta["character"].split("\n"), " "]  # CTC blank first
        self._look = (
            TextDetector(
                LOOK_SIZE, LOOK_SIZE, input_width=LOOK_INPUT, threads=threads, model=text_model
            )
            if look_inside
            else None
        )

    def check(self, frame: np.ndarray, box: Box) -> PlateCheck:
        """Is the candidate ``box`` (frame pixels, as the text detector returned it) a plate?

        Read the line, then the whole box; a blob-shaped box that reads as neither is looked
        into (the text detector at ``LOOK_SIZE``) and each line found there is read."""
        self._frame_ok(frame)
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise DetectorError(f"{self.model.name}: bad candidate box {box!r}")
        readings: list[Reading] = []
        verdict = self._check(frame, box, readings)
        if verdict is not None:
            return PlateCheck(True, verdict, tuple(readings))
        x0, y0, x1, y1 = box
        long_side, short_side = max(x1 - x0, y1 - y0), min(x1 - x0, y1 - y0)
        if self._look is not None and long_side <= LOOK_MAX_ASPECT * short_side:
            for inner in self._look_inside(frame, box):
                verdict = self._check(frame, inner, readings)
                if verdict is not None:
                    return PlateCheck(True, f"{verdict} inside", tuple(readings))
        return PlateCheck(False, "not read", tuple(readings))

    def _frame_ok(self, frame: np.ndarray) -> None:
        if (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.ndim != 3
            or frame.shape[2] != 3
        ):
            raise DetectorError(
                f"{self.model.name} reads BGR uint8 frames, got "
                f"{getattr(frame, 'shape', None)} {getattr(frame, 'dtype', type(frame).__name__)}"
            )

    def _check(self, frame: np.ndarray, box: Box, readings: list[Reading]) -> str | None:
        line = line_box(box)
        if min(line[2] - line[0], line[3] - line[1]) < READ_MIN_LINE:
            return "small"
        for region in (line, box):
            reading = self.read(frame, region)
            readings.append(reading)
            if reading.plate_score >= PLATE_MIN_SCORE:
                return "read"
        return None

    def _look_inside(self, frame: np.ndarray, box: Box) -> list[Box]:
        """Text lines inside ``box`` (frame pixels), found with the box alone in view."""
        fh, fw = frame.shape[:2]
        mx, my = (box[2] - box[0]) * LOOK_MARGIN, (box[3] - box[1]) * LOOK_MARGIN
        x0, y0 = max(0, math.floor(box[0] - mx)), max(0, math.floor(box[1] - my))
        x1, y1 = min(fw, math.ceil(box[2] + mx)), min(fh, math.ceil(box[3] + my))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return []
        scale = LOOK_SIZE / max(x1 - x0, y1 - y0)
        w, h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        window = cv2.resize(frame[y0:y1, x0:x1], (w, h), interpolation=interp)
        window = cv2.copyMakeBorder(
            window, 0, LOOK_SIZE - h, 0, LOOK_SIZE - w, cv2.BORDER_CONSTANT, value=0
        )
        look = self._look
        if look is None:
            return []
        sx, sy = (x1 - x0) / w, (y1 - y0) / h
        return [
            (x0 + d.box[0] * sx, y0 + d.box[1] * sy, x0 + d.box[2] * sx, y0 + d.box[3] * sy)
            for d in look.detect(window)
            if d.box[0] < w and d.box[1] < h
        ]

    def read(self, frame: np.ndarray, box: Box) -> Reading:
        """The text in ``box`` of ``frame`` (BGR uint8), as one line."""
        self._frame_ok(frame)
        fh, fw = frame.shape[:2]
        x0, y0 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
        x1, y1 = min(fw, math.ceil(box[2])), min(fh, math.ceil(box[3]))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return Reading("", ())
        crop = frame[y0:y1, x0:x1]
        if crop.shape[0] > crop.shape[1] * 1.5:
            crop = cv2.rotate(crop, cv2.ROTATE_90_COUNTERCLOCKWISE)  # as rapidocr turns tall lines
        h, w = crop.shape[:2]
        width = min(REC_MAX_WIDTH, max(1, math.ceil(REC_HEIGHT * w / h)))
        interp = cv2.INTER_AREA if h > REC_HEIGHT else cv2.INTER_LINEAR
        line = cv2.resize(crop, (width, REC_HEIGHT), interpolation=interp)
        blob = np.zeros((1, 3, REC_HEIGHT, max(width, REC_MIN_WIDTH)), np.float32)
        blob[0, :, :, :width] = line.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1.0
        (probs,) = self._engine.run(blob)
        if probs.ndim != 3 or probs.shape[0] != 1 or probs.shape[2] != len(self._chars):
            raise DetectorError(
                f"{self.model.name} returned shape {probs.shape}, "
                f"expected (1, T, {len(self._chars)})"
            )
        if not np.isfinite(probs).all():
            raise DetectorError(f"{self.model.name} returned non-finite values")
        return _ctc(probs[0], self._chars)


def _ctc(probs: np.ndarray, chars: list[str]) -> Reading:
    """Greedy CTC: the best class per step, repeats merged, blanks dropped."""
    best = probs.argmax(axis=1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    keep &= best != 0
    steps = np.nonzero(keep)[0]
    return Reading(
        "".join(chars[best[t]] for t in steps), tuple(float(probs[t, best[t]]) for t in steps)
    )
