"""Render a plan: decode the original, hide every planned region in every frame, encode an MP4
(H.264, AAC when audio is kept) with the same frames at the same times.

Regions are hidden in the decoded YUV planes themselves (no round trip through RGB). Decoding is
strict: a frame FFmpeg cannot decode cleanly stops the render with its index and time, and the
half-written output is removed (fail closed: no copy rather than a copy with a bare frame).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from bwv.base.errors import BwvError
from bwv.base.files import replaced_when_done
from bwv.redact.plan import Plan, PlanError

Progress = Callable[[int], None]


class RenderError(BwvError):
    """The disclosure copy could not be made; nothing was written."""


@dataclass(frozen=True)
class Rendered:
    path: Path
    frames: int
    audio: str  # "copied", "encoded", "silent", "none"


def open_strict(path: Path) -> tuple[Any, Any, Any]:
    """The container, its first video stream and first audio stream (or None), decoding
    strictly: a damaged frame raises instead of being concealed."""
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as exc:  # FFmpeg's AVERROR_INVALIDDATA, shown as an errno
        raise RenderError(f"not a video file PyAV can read: {path.name}") from exc
    except av.error.FFmpegError as exc:
        raise RenderError(f"cannot open {path.name}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise RenderError(f"{path.name} has no video stream")
    video = container.streams.video[0]
    video.thread_type = "AUTO"
    video.codec_context.options = {"err_detect": "explode"}
    audio = container.streams.audio[0] if container.streams.audio else None
    return container, video, audio


def frame_time(index: int, fps: float) -> str:
    seconds = index / fps if fps else 0.0
    return f"{int(seconds // 60)}:{seconds % 60:06.3f}"


# --- hiding a region in YUV 4:2:0 planes -----------------------------------------------------


def _hide_plane(
    plane: np.ndarray, box: tuple[int, int, int, int], mode: str, shape: str, fill: int
) -> None:
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    roi = plane[y0:y1, x0:x1]
    h, w = roi.shape
    if mode == "solid":
        hidden = np.full_like(roi, fill)
    elif mode == "pixelate":
        cells = max(1, math.ceil(max(w, h) / 10))  # ~10 blocks across: no feature survives
        # Each block the mean of its cells (INTER_AREA), not a sample of a few of them.
        small = cv2.resize(
            roi, (max(1, w // cells), max(1, h // cells)), interpolation=cv2.INTER_AREA
        )
        hidden = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    else:
        # Shrink to at most 6 px across, blur, grow back: a strong, even blur whose cost does
        # not depend on the box size.
        scale = max(w, h) / 6
        small = cv2.resize(
            roi, (max(1, round(w / scale)), max(1, round(h / scale))), interpolation=cv2.INTER_AREA
        )
        small = cv2.GaussianBlur(small, (3, 3), 0)
        hidden = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if shape == "ellipse":
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (w // 2, h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 255, -1)
        roi[mask > 0] = hidden[mask > 0]
    else:
        roi[:] = hidden


def hide_regions(
    yuv: np.ndarray,
    width: int,
    height: int,
    boxes: list[tuple[int, int, int, int]],
    mode: str,
    shape: str,
) -> None:
    """Hide ``boxes`` in a yuv420p frame array as PyAV lays it out (Y rows, then U, then V)."""
    y_plane = yuv[:height]
    chroma = yuv[height:].reshape(2, height // 2, width // 2)
    for x0, y0, x1, y1 in boxes:
        _hide_plane(y_plane, (x0, y0, x1, y1), mode, shape, 16)
        half = (x0 // 2, y0 // 2, math.ceil(x1 / 2), math.ceil(y1 / 2))
        _hide_plane(chroma[0], half, mode, shape, 128)
        _hide_plane(chroma[1], half, mode, shape, 128)


# --- audio -------------------------------------------------------------------------------------


def _muted(frame: av.AudioFrame, spans: list[tuple[float, float]]) -> av.AudioFrame:
    if not spans or frame.pts is None or frame.time_base is None:
        return frame
    start = float(frame.pts * frame.time_base)
    rate = frame.sample_rate
    samples = frame.to_ndarray()
    planar = samples.ndim == 2 and frame.format.is_planar
    changed = False
    for a, b in spans:
        first = max(0, math.floor((a - start) * rate))
        last = frame.samples if math.isinf(b) else min(frame.samples, math.ceil((b - start) * rate))
        if last > first:
            changed = True
            if planar:
                samples[:, first:last] = 0
            else:
                channels = len(frame.layout.channels)
                samples[:, first * channels : last * channels] = 0
    if not changed:
        return frame
    out = av.AudioFrame.from_ndarray(samples, format=frame.format.name, layout=frame.layout.name)
    out.sample_rate, out.pts, out.time_base = rate, frame.pts, frame.time_base
    return out


# --- the render --------------------------------------------------------------------------------


def render(
    source: Path,
    plan: Plan,
    dest: Path,
    *,
    progress: Progress | None = None,
    preset: str = "veryfast",
    crf: int = 20,
) -> Rendered:
    """Write the disclosure copy of ``source`` as ``plan`` says to ``dest`` (an .mp4)."""
    regions = plan.regions()
    options = plan.options
    spans = [(s.start_s, s.end_s) for s in plan.mute]
    if options.audio == "mute":
        spans = [(0.0, math.inf)]
    container, video, audio = open_strict(source)
    width, height = video.codec_context.width, video.codec_context.height
    if (width, height) != (plan.width, plan.height):
        container.close()
        raise PlanError(f"clip is {width}x{height}, the plan is for {plan.width}x{plan.height}")
    if width % 2 or height % 2:
        container.close()
        raise RenderError(f"odd frame size {width}x{height} cannot be written as 4:2:0 H.264")
    # Written beside the destination and renamed into place when complete: a failed render
    # leaves no file and never touches what was there.
    index = 0
    audio_mode = "none"
    try:
        with (
            replaced_when_done(dest) as partial,
            container,
            av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as out,
        ):
            rate = Fraction(plan.frame_rate)
            v_out = out.add_stream("libx264", rate=rate)
            v_out.width, v_out.height, v_out.pix_fmt = width, height, "yuv420p"
            v_out.time_base = video.time_base
            v_out.codec_context.time_base = video.time_base
            v_out.options = {"preset": preset, "crf": str(crf)}
            # A PyAV stream (Any, as open_strict's); only audio packets, once it is set, use it.
            a_out: Any = None
            copy_audio = False
            if audio is not None and options.audio != "strip":
                copy_audio = audio.codec_context.name == "aac" and not spans
                if copy_audio:
                    a_out = out.add_stream_from_template(audio)
                    audio_mode = "copied"
                else:
                    a_out = out.add_stream("aac", rate=audio.codec_context.sample_rate)
                    a_out.layout = audio.codec_context.layout.name
                    audio_mode = "silent" if options.audio == "mute" else "encoded"
            streams = [video] + ([audio] if a_out is not None else [])
            for packet in container.demux(*streams):
                if packet.stream is video:
                    for frame in packet.decode():
                        if index >= plan.frames:
                            raise RenderError(f"clip has more frames than the plan's {plan.frames}")
                        yuv = frame.to_ndarray(format="yuv420p")
                        boxes = [box for _, box in regions.get(index, ())]
                        if boxes:
                            hide_regions(yuv, width, height, boxes, options.mode, options.shape)
                        new = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                        new.pts, new.time_base = frame.pts, frame.time_base
                        for out_packet in v_out.encode(new):
                            out.mux(out_packet)
                        index += 1
                        if progress:
                            progress(index)
                elif copy_audio:
                    if packet.dts is None:
                        continue
                    packet.stream = a_out
                    out.mux(packet)
                else:
                    for frame in packet.decode():
                        frame = _muted(frame, spans)
                        for out_packet in a_out.encode(frame):
                            out.mux(out_packet)
            for out_packet in v_out.encode():
                out.mux(out_packet)
            if a_out is not None and not copy_audio:
                for out_packet in a_out.encode():
                    out.mux(out_packet)
            if index != plan.frames:  # before the rename: a short copy is no copy
                raise RenderError(f"clip decoded to {index} frames, the plan covers {plan.frames}")
    except av.error.FFmpegError as exc:
        raise RenderError(
            f"frame {index} (at {frame_time(index, plan.fps())}) of {source.name} could not be "
            f"decoded: {exc}"
        ) from exc
    return Rendered(dest, index, audio_mode)
