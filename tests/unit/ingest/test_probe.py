"""Probing says ``playable`` only for motion video that decodes; everything else is stored as
``unplayable`` with the reason (the clip is evidence either way)."""

from __future__ import annotations

import random
from pathlib import Path

import av
import pytest

from bwv.ingest.probe import PLAYABLE, UNPLAYABLE, probe_clip
from tests.support.fixtures import fixture


def test_sample_clip_is_playable_with_its_streams() -> None:
    probe = probe_clip(fixture("sample.mp4"))
    assert probe.status == PLAYABLE, probe.error
    assert probe.fields["video_codec"] == "h264" and probe.fields["audio_codec"] == "aac"


@pytest.mark.parametrize("name", ["truncated.mp4", "no-moov.mp4", "not-video.mp4"])
def test_a_clip_cut_short_without_its_index_or_not_video_is_unplayable(name: str) -> None:
    probe = probe_clip(fixture(name))
    assert probe.status == UNPLAYABLE and probe.error


def test_noise_that_ffmpeg_guesses_is_raw_h263_is_unplayable(tmp_path: Path) -> None:
    path = tmp_path / "noise.MP4"
    # This noise passes FFmpeg's content probe as a raw H.263 stream; seen flaking a fault test.
    path.write_bytes(random.Random("x/84").randbytes(400 * 1024 + 4))
    with av.open(str(path)) as container:
        assert container.format.name == "h263"
    assert probe_clip(path).status == UNPLAYABLE


def test_noise_taken_for_an_audio_stream_without_a_codec_is_unplayable(tmp_path: Path) -> None:
    path = tmp_path / "noise.MP4"
    # FFmpeg opens this noise as an AC-4 stream it has no decoder for (PyAV gives no codec).
    path.write_bytes(random.Random("x/2456").randbytes(400 * 1024 + 1))
    probe = probe_clip(path)
    assert probe.status == UNPLAYABLE and probe.error


def test_text_file_is_unplayable() -> None:
    probe = probe_clip(fixture("notes.txt"))  # FFmpeg opens .txt as tty "video"
    assert probe.status == UNPLAYABLE and "not motion video" in str(probe.error)


def test_still_image_is_unplayable() -> None:
    probe = probe_clip(fixture("still.jpg"))
    assert probe.status == UNPLAYABLE and "not motion video" in str(probe.error)
