"""Short sample clips made with PyAV, for the demo and the tests (real H.264 + AAC in MP4,
with the metadata a body-worn camera writes)."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


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
    recorded_at = recorded_at or datetime.now(UTC)
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
            samples_per_frame, rate = 1024, 48000
            total = int(seconds * rate)
            t = np.arange(total, dtype=np.float32) / rate
            tone = (0.2 * np.sin(2 * np.pi * (440 + 110 * seed) * t)).astype(np.float32)
            for start in range(0, total, samples_per_frame):
                chunk = tone[start : start + samples_per_frame]
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, start
                frame.time_base = Fraction(1, rate)
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path
