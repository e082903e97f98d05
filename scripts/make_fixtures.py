"""Write fixtures/: the small inputs the tests share (fixtures/README.md says what each is).

    python scripts/make_fixtures.py            # rewrite fixtures/
    python scripts/make_fixtures.py --out DIR  # write them elsewhere, e.g. to compare

Everything is made here, from nothing: no footage and nothing from outside the repository. The
clip and the still are encoded by the installed FFmpeg (PyAV), so their bytes can change with
its version; every other file is cut from the committed clip or written byte for byte, so it is
the same wherever this runs (tests/unit/test_fixtures.py checks both kinds).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np

from bwv.services.samples import make_sample_clip

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# A fixed recording time: the clip's metadata carries it, and a moving one would change the bytes.
RECORDED_AT = datetime(2025, 1, 1, 9, 30, tzinfo=UTC)
SAMPLE = "sample.mp4"
STILL = "still.jpg"


def write_sample(path: Path) -> Path:
    """One second of moving bars and a tone, H.264/AAC in MP4, 160x120 at 25 frames/s."""
    return make_sample_clip(path, seconds=1, width=160, height=120, recorded_at=RECORDED_AT)


def write_still(path: Path) -> Path:
    """A black 64x48 JPEG: a picture, not motion video."""
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("mjpeg")
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
        for packet in stream.encode(frame.reformat(format="yuvj420p")):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def derived(sample: bytes) -> dict[str, bytes]:
    """The files made byte for byte: clips that will not play, from the sample's own bytes, and
    files that are no clip at all."""
    moov = sample.find(b"moov")
    assert moov > 4, "the sample clip has no moov box at its end"
    return {
        "truncated.mp4": sample[: len(sample) // 2],  # the copy stopped half way
        "no-moov.mp4": sample[: moov - 4],  # power lost before the index was written
        "not-video.mp4": b"%PDF-1.7 not a video at all " * 50,
        "notes.txt": b"Officer's notes, not a recording.\n" * 40,
    }


def write_all(out: Path, sample: Path | None = None) -> list[Path]:
    """Write every fixture under ``out``; the derived ones from ``sample`` where given (the
    committed clip, when checking), else from the clip written here."""
    out.mkdir(parents=True, exist_ok=True)
    written = [write_sample(out / SAMPLE), write_still(out / STILL)]
    source = (sample or out / SAMPLE).read_bytes()
    for name, data in derived(source).items():
        (out / name).write_bytes(data)
        written.append(out / name)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="where to write (fixtures/)")
    args = parser.parse_args()
    for path in write_all(args.out):
        print(f"{path.stat().st_size:>7} {path}")


if __name__ == "__main__":
    main()
