"""What a clip is, read with PyAV in-process. A clip that will not decode is still evidence:
probing never raises, it reports the clip ``unplayable`` with the reason."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

PLAYABLE = "playable"
UNPLAYABLE = "unplayable"
# ISO 6709 as cameras and phones write it, e.g. "+51.5072-000.1276+011.000/".
# Demuxers that FFmpeg offers a "video stream" for but that no camera records: stills, text.
_NOT_MOTION_VIDEO = re.compile(r"^(image2|.*_pipe|tty|gif|apng|webp)$")
_ISO6709 = re.compile(r"^[+-]\d{2}(\.\d+)?[+-]\d{3}(\.\d+)?([+-]\d+(\.\d+)?)?(CRS[^/]*)?/?$")


@dataclass
class Probe:
    status: str
    error: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


# A camera time outside these years is a clock fault, not a time to index by.
_PLAUSIBLE_YEARS = range(1900, 3000)


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 (§5.6) / ISO 8601 time as an aware UTC datetime (naive means UTC); None if
    unreadable or implausible (e.g. ``9999-12-31T23:59:59-12:00``, which no UTC datetime can
    hold). The caller keeps the text as given; only a usable time is indexed."""
    if not value or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.year in _PLAUSIBLE_YEARS else None


def _location(metadata: dict[str, str]) -> str | None:
    for key in ("location", "com.apple.quicktime.location.ISO6709", "location-eng"):
        value = metadata.get(key, "").strip()
        if value and _ISO6709.match(value):
            return value
    return None


def _missing_frames(container: Any, video: Any, file_size: int) -> str | None:
    """Demux (not decode) every video packet: the index of a truncated file promises frames
    whose bytes are not there."""
    container.seek(0)
    present = 0
    for packet in container.demux(video):
        if packet.size and (packet.pos is None or packet.pos + packet.size <= file_size):
            present += 1
    expected = video.frames
    if expected and present < expected:
        return f"truncated: {present} of {expected} video frames present"
    return None


def probe_clip(path: Path) -> Probe:
    """Container, codecs, duration, size, frame rate, creation time and location of a clip."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            video = next(iter(container.streams.video), None)
            audio = next(iter(container.streams.audio), None)
            metadata = dict(container.metadata)
            fields: dict[str, Any] = {
                "container": container.format.name,
                "duration_s": container.duration / av.time_base if container.duration else None,
                "audio_codec": audio.codec_context.name if audio else None,
                "creation_time": parse_time(metadata.get("creation_time")),
                "location": _location(metadata),
            }
            if video is None:
                return Probe(UNPLAYABLE, "no video stream", fields)
            if _NOT_MOTION_VIDEO.match(container.format.name):
                return Probe(UNPLAYABLE, f"not motion video: {container.format.long_name}", fields)
            rate = video.average_rate or video.guessed_rate
            fields.update(
                video_codec=video.codec_context.name,
                width=video.codec_context.width or None,
                height=video.codec_context.height or None,
                frame_rate=float(Fraction(rate)) if rate else None,
            )
            if fields["duration_s"] is None and video.duration and video.time_base:
                fields["duration_s"] = float(video.duration * video.time_base)
            # A header can be intact over a body that is not, and FFmpeg's content probe can take
            # noise for a raw H.263 stream: decode a frame strictly to be sure.
            video.codec_context.options = {"err_detect": "explode"}
            for _frame in container.decode(video=0):
                break
            else:
                return Probe(UNPLAYABLE, "no decodable video frame", fields)
            missing = _missing_frames(container, video, path.stat().st_size)
            if missing:
                return Probe(UNPLAYABLE, missing, fields)
    except Exception as exc:  # whatever FFmpeg makes of the bytes, the clip is kept
        return Probe(UNPLAYABLE, _without_path(f"{type(exc).__name__}: {exc}", path)[:500])
    return Probe(PLAYABLE, None, fields)


def _without_path(message: str, path: Path) -> str:
    """FFmpeg names the file it failed on; the error goes into a permanent leaf, which must not
    hold server paths."""
    for shown in (f": {str(path)!r}", f" {str(path)!r}", str(path)):
        message = message.replace(shown, "")
    return message
