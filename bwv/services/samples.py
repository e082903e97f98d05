"""Short sample clips made with PyAV, for the demo and the tests (real H.264 + AAC in MP4,
with the metadata a body-worn camera writes)."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from bwv.base.clock import system_clock


def make_sample_clip(
    path: Path,
    *,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    audio: bool = True,
    recorded_at: datetime | None = None,
    location: str | None = "+51.5072-000.1276/",
    seed: int = 0,
) -> Path:
    """Write a clip of moving bars (different for each ``seed``) and a tone."""
    recorded_at = recorded_at or system_clock()
    frames = max(1, round(seconds * fps))
    with av.open(str(path), "w", format="mp4") as out:
        out.metadata["creation_time"] = recorded_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if location:
            out.metadata["location"] = location
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono") if audio else None
        x = np.arange(width, dtype=np.int32)
        for n in range(frames):
            bars = ((x[None, :] + 4 * n + 37 * seed) // 16 % 8 * 32).astype(np.uint8)
            image = np.repeat(np.repeat(bars, height, axis=0)[:, :, None], 3, axis=2)
            image[:, :, (seed + n // fps) % 3] //= 2
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            mux_tone(out, sound, seconds, 440 + 110 * seed)
    return path


def mux_tone(out: Any, sound: Any, seconds: float, hz: float, rate: int = 48000) -> None:
    """Encode and mux ``seconds`` of a sine tone at ``hz`` into the mono AAC stream ``sound``."""
    total = int(seconds * rate)
    t = np.arange(total, dtype=np.float32) / rate
    tone = (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    for start in range(0, total, 1024):
        frame = av.AudioFrame.from_ndarray(
            tone[None, start : start + 1024], format="fltp", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        for packet in sound.encode(frame):
            out.mux(packet)
    for packet in sound.encode():
        out.mux(packet)


def render_plate(text: str = "AB12 CDE", char_height: int = 32, yellow: bool = False) -> np.ndarray:
    """A UK/EU-style number plate as a BGR image: dark characters on white (or yellow)."""
    import cv2

    scale = char_height / 22  # FONT_HERSHEY_DUPLEX capitals are ~22 px tall at scale 1
    thickness = max(2, round(scale * 2.2))
    (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    pad_x, pad_y = char_height // 2, char_height // 3
    plate = np.full((h + 2 * pad_y, w + 2 * pad_x, 3), (0, 210, 255) if yellow else 245, np.uint8)
    cv2.putText(
        plate,
        text,
        (pad_x, pad_y + h),
        cv2.FONT_HERSHEY_DUPLEX,
        scale,
        (20, 20, 20),
        thickness,
        cv2.LINE_AA,
    )
    cv2.rectangle(plate, (0, 0), (plate.shape[1] - 1, plate.shape[0] - 1), (40, 40, 40), 2)
    return plate


def make_street_clip(
    path: Path,
    *,
    seconds: float = 3.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    seed: int = 0,
    recorded_at: datetime | None = None,
) -> tuple[Path, list[dict[str, object]]]:
    """A street scene to redact: a real face (``skimage.data.astronaut``, public domain) walking
    across and a car with a number plate driving the other way, over a textured background,
    with a tone. Returns the path and, per frame, where the face and the plate truly are."""
    import cv2
    from skimage import data

    rng = np.random.default_rng(seed)
    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]
    k = height / 720  # sizes below are for 720p
    face = cv2.resize(
        astronaut[0:250, 110:340], (round(184 * k), round(200 * k)), interpolation=cv2.INTER_AREA
    )
    plate = render_plate(char_height=max(12, round(32 * k)))
    car_w, car_h = round(440 * k), round(200 * k)
    small = rng.integers(70, 150, (height // 8, width // 8, 3), dtype=np.uint8)
    background = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    frames = max(1, round(seconds * fps))
    truth: list[dict[str, object]] = []
    with av.open(str(path), "w", format="mp4") as out:
        when = recorded_at or system_clock()
        out.metadata["creation_time"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        video = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "20"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=48000, layout="mono")
        for n in range(frames):
            t = n / max(1, frames - 1)
            image = background.copy()
            fx = int(60 * k + t * (width - face.shape[1] - 120 * k))
            fy = int(height * 0.12 + 20 * k * np.sin(6 * t))
            image[fy : fy + face.shape[0], fx : fx + face.shape[1]] = face
            cx = int(width - car_w - 80 * k - t * (width - car_w - 260 * k))
            cy = int(height * 0.55)
            cv2.rectangle(image, (cx, cy), (cx + car_w, cy + car_h), (90, 40, 30), -1)
            px, py = cx + car_w // 2 - plate.shape[1] // 2, cy + round(120 * k)
            image[py : py + plate.shape[0], px : px + plate.shape[1]] = plate
            truth.append(
                {
                    "face": (fx, fy, fx + face.shape[1], fy + face.shape[0]),
                    "plate": (px, py, px + plate.shape[1], py + plate.shape[0]),
                }
            )
            for packet in video.encode(
                av.VideoFrame.from_ndarray(image.astype(np.uint8), format="bgr24")
            ):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        mux_tone(out, sound, seconds, 330)
    return path, truth
