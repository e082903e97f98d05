"""Tracks in time: boxes move with the camera, gates are in seconds, no track crosses a cut."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from bwv.redact.tracks import link


@dataclass(frozen=True)
class Det:
    cls: str
    box: tuple[float, float, float, float]
    score: float = 0.9


def test_a_box_found_once_on_a_parked_car_moves_with_the_pan() -> None:
    # The camera pans right 20 px a frame, so what is still in the scene moves left 20 px.
    camera = [(-20.0 * f, 0.0) for f in range(30)]
    tracks = link(
        {10: [Det("plate", (600, 300, 700, 330))]},
        interval=6,
        frame_count=30,
        width=1280,
        height=720,
        camera=camera,
    )
    (track,) = tracks
    assert track.boxes[16] == (480, 300, 580, 330)  # six frames on: 120 px to the left
    assert track.boxes[4] == (720, 300, 820, 330)


def test_detections_too_far_apart_in_time_and_space_are_two_tracks_not_one_sweep() -> None:
    # A false face on glare at the left, another at the right two seconds later (10 fps).
    found = {0: [Det("face", (100, 100, 140, 140))], 20: [Det("face", (900, 500, 940, 540))]}
    tracks = link(found, interval=2, frame_count=40, width=1280, height=720, max_misses=10, fps=10)
    assert len(tracks) == 2
    covered = {f for t in tracks for f in t.boxes}
    assert all(f not in covered for f in range(5, 16))  # nothing swept between them


def test_a_box_that_doubles_in_size_between_looks_is_another_object() -> None:
    found = {0: [Det("face", (100, 100, 140, 140))], 3: [Det("face", (100, 100, 200, 200))]}
    assert len(link(found, interval=3, frame_count=10, width=640, height=360)) == 2


def test_no_track_crosses_a_cut() -> None:
    found = {0: [Det("plate", (100, 100, 200, 130))], 6: [Det("plate", (100, 100, 200, 130))]}
    tracks = link(found, interval=6, frame_count=20, width=640, height=360, cuts=[4])
    assert len(tracks) == 2
    first, second = sorted(tracks, key=lambda t: t.first)
    assert max(first.boxes) == 3 and min(second.boxes) == 4  # carried up to the cut, not past


def test_a_held_box_continues_a_track_but_never_starts_one() -> None:
    found = {
        0: [Det("plate", (100, 100, 200, 130))],
        3: [Det("plate", (100, 100, 200, 130), score=0.0)],
        9: [Det("plate", (400, 100, 500, 130), score=0.0)],  # held, with no track near
    }
    (track,) = link(found, interval=3, frame_count=12, width=640, height=360, max_misses=3)
    assert track.seen == {0} and 3 in track.keyframes


@pytest.mark.parametrize("fps", [10.0, 30.0])
def test_interpolated_boxes_cover_a_plate_moving_across_the_picture(fps: float) -> None:
    # 30 px a frame at 30 fps, 90 px a frame at 10 fps: the same speed in time.
    step = 900 / fps
    found = {f: [Det("plate", (100 + step * f, 200, 200 + step * f, 230))] for f in (0, 3, 6)}
    (track,) = link(found, interval=3, frame_count=7, width=1280, height=720, fps=fps)
    for f in range(7):
        x0, _, x1, _ = track.boxes[f]
        assert x0 <= 100 + step * f and x1 >= min(1280, 200 + step * f), f
    assert np.isclose(track.boxes[6][0], 100 + step * 6)


@pytest.mark.parametrize(
    "schedule",
    [
        {"face_every_s": 0},
        {"face_every_s": -0.2},
        {"face_every_s": 6},  # a frame count, not seconds
        {"text_every_s": float("nan")},
        {"text_every_s": float("inf")},
        {"text_look_every_s": 2},
        {"face_full_every_s": "often"},
    ],
    ids=str,
)
def test_a_schedule_out_of_bounds_is_refused(schedule: dict[str, object]) -> None:
    from pydantic import ValidationError

    from bwv.redact.plan import Options

    with pytest.raises(ValidationError):
        Options(**schedule)


def test_a_schedule_step_is_at_least_one_frame() -> None:
    from bwv.redact.plan import Options

    options = Options(text_look_every_s=0.001)
    assert options.every(options.text_look_every_s, 30.0) == 1
    assert options.every(0.2, 10.0) == 2 and options.every(0.2, 30.0) == 6
