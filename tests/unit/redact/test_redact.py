"""The redaction engine as a specification: tracks cover every frame, plans are checked against
their clip, the renderer keeps the clip's timing and hides exactly what the plan says, and the
real detectors on a real face and a rendered plate leave nothing findable in the copy."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import ffmpeg
import numpy as np
import pytest

from bwv.redact.engine import DetectionFailed, make_plan
from bwv.redact.plan import Options, Plan, PlanError
from bwv.redact.render import RenderError, hide_regions, render
from bwv.redact.sheet import write_sheet
from bwv.redact.tracks import link
from bwv.services.samples import make_sample_clip, make_street_clip


@dataclass(frozen=True)
class Seen:
    cls: str
    box: tuple[float, float, float, float]
    score: float = 0.9


def schedule(frame_count: int, interval: int) -> list[int]:
    """The frames the planner gives a detector: every ``interval``-th, and the last."""
    frames = list(range(0, frame_count, interval))
    return frames if frames[-1] == frame_count - 1 else [*frames, frame_count - 1]


def square_at(frame: int) -> tuple[float, float, float, float]:
    x = 100.0 + 10 * frame
    return (x, 300.0, x + 80, 380.0)


def covered(inner: tuple[float, ...], outer: tuple[float, ...]) -> float:
    ix = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    return ix * iy / ((inner[2] - inner[0]) * (inner[3] - inner[1]))


# --- tracks --------------------------------------------------------------------------------------


def test_every_frame_between_two_detections_of_a_moving_object_is_covered() -> None:
    seen = {f: [Seen("face", square_at(f))] for f in schedule(60, 8)}
    (track,) = link(seen, interval=8, frame_count=60, width=1280, height=720)
    for f in range(60):
        assert covered(square_at(f), track.boxes[f]) >= 0.99, f


def test_a_track_is_carried_one_interval_before_its_first_and_after_its_last_detection() -> None:
    seen = {f: [Seen("face", square_at(f))] if 16 <= f <= 32 else [] for f in schedule(60, 8)}
    (track,) = link(seen, interval=8, frame_count=60, width=1280, height=720)
    assert track.first == 8 and track.last == 40
    assert covered(square_at(9), track.boxes[9]) >= 0.99  # entered between scheduled frames
    assert covered(square_at(39), track.boxes[39]) >= 0.99


def test_one_missed_detection_does_not_split_a_track_or_leave_frames_bare() -> None:
    seen = {f: [Seen("face", square_at(f))] if f != 24 else [] for f in schedule(48, 8)}
    tracks = link(seen, interval=8, frame_count=48, width=1280, height=720)
    assert len(tracks) == 1
    assert all(covered(square_at(f), tracks[0].boxes[f]) >= 0.99 for f in range(48))


def test_a_face_crossing_the_picture_fast_stays_one_track_covered_on_every_frame() -> None:
    def fast(frame: int) -> tuple[float, float, float, float]:
        x = 50.0 + 20 * frame  # a quarter of its width a frame: near the camera, or a pan
        return (x, 300.0, x + 80, 380.0)

    seen = {f: [Seen("face", fast(f))] for f in schedule(48, 6)}
    tracks = link(seen, interval=6, frame_count=48, width=1280, height=720)
    assert len(tracks) == 1
    assert all(covered(fast(f), tracks[0].boxes[f]) >= 0.99 for f in range(48))


def test_two_faces_far_apart_are_two_tracks() -> None:
    seen = {
        f: [Seen("face", square_at(f)), Seen("face", (1000.0, 50.0, 1080.0, 130.0))]
        for f in schedule(40, 8)
    }
    assert len(link(seen, interval=8, frame_count=40, width=1280, height=720)) == 2


def test_a_plate_the_detector_once_calls_text_stays_one_plate_track() -> None:
    box = (500.0, 500.0, 700.0, 540.0)
    seen = {0: [Seen("plate", box)], 8: [Seen("text", box)], 16: [Seen("plate", box)]}
    (track,) = link(seen, interval=8, frame_count=24, width=1280, height=720)
    assert track.cls == "plate"


# --- plans ---------------------------------------------------------------------------------------


def plan_dict(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "evidence_id": "EV-20261125-AAAAAAAA",
        "source_sha256": "a" * 64,
        "width": 320,
        "height": 240,
        "frames": 50,
        "frame_rate": "25",
        "duration_s": 2.0,
        "tracks": [{"id": 1, "cls": "face", "boxes": [[0, 10, 10, 50, 50]]}],
    }
    plan.update(changes)
    return plan


def load(tmp_path: Path, data: Any) -> Plan:
    path = tmp_path / "plan.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return Plan.load(path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tracks": [{"id": 1, "cls": "face", "boxes": [[0, 300, 10, 330, 50]]}]}, "outside"),
        ({"tracks": [{"id": 1, "cls": "face", "boxes": [[0, -5, 10, 30, 50]]}]}, "outside"),
        ({"tracks": [{"id": 1, "cls": "face", "boxes": [[50, 10, 10, 30, 50]]}]}, "last frame"),
        ({"tracks": [{"id": 1, "cls": "dog", "boxes": [[0, 10, 10, 30, 50]]}]}, "cls"),
        ({"manual": [{"start_s": 1, "end_s": 9, "box": [0, 0, 10, 10]}]}, "past the clip's end"),
        ({"mute": [{"start_s": 1.5, "end_s": 0.5}]}, "before it starts"),
        ({"mute": [{"start_s": 1, "end_s": 30}]}, "past the clip's end"),
        ({"options": {"classes": ["faces", "tattoos"]}}, "classes"),
        ({"surprise": 1}, "surprise"),
        ({"frame_rate": "0"}, "not a frame rate"),
        ({"frame_rate": "1/0"}, "not a frame rate"),
        ({"frame_rate": "-30"}, "not a frame rate"),
    ],
)
def test_a_plan_that_does_not_fit_its_clip_is_refused_with_where(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        load(tmp_path, plan_dict(**changes))


def test_a_corrupt_plan_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="not JSON"):
        load(tmp_path, '{"evidence_id": "EV-1", "tracks": [')


def test_a_plan_for_another_clip_is_refused() -> None:
    plan = Plan.model_validate(plan_dict())
    with pytest.raises(PlanError, match="plan is for EV-20261125-AAAAAAAA"):
        plan.for_clip("EV-20261125-BBBBBBBB", "b" * 64)


def test_a_kept_track_is_not_hidden_and_a_manual_box_is() -> None:
    plan = Plan.model_validate(
        plan_dict(
            tracks=[{"id": 1, "cls": "face", "keep": True, "boxes": [[0, 10, 10, 50, 50]]}],
            manual=[{"start_s": 0.0, "end_s": 0.1, "box": [100, 100, 150, 150]}],
        )
    )
    regions = plan.regions()
    assert regions[0] == [("manual", (100, 100, 150, 150))]
    assert sorted(regions) == [0, 1, 2, 3]


# --- rendering -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample_clip(
        tmp_path_factory.mktemp("sample") / "sample.mp4", seconds=2, width=320, height=240
    )


def sample_plan(sample: Path, **changes: Any) -> Plan:
    from bwv.base.files import file_sha256

    data = plan_dict(source_sha256=file_sha256(sample), evidence_id=None, **changes)
    return Plan.model_validate(data)


def probe(path: Path) -> dict[str, dict[str, Any]]:
    streams = ffmpeg.probe(str(path), count_frames=None)["streams"]
    return {s["codec_type"]: s for s in streams}


def test_the_copy_has_the_same_frames_rate_and_duration_and_decodes_in_ffmpeg(
    sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy.mp4"
    render(sample, sample_plan(sample), out)
    original, copy = probe(sample), probe(out)
    assert copy["video"]["codec_name"] == "h264" and copy["audio"]["codec_name"] == "aac"
    for key in ("nb_frames", "r_frame_rate", "avg_frame_rate", "width", "height"):
        assert copy["video"][key] == original["video"][key], key
    assert float(copy["video"]["duration"]) == pytest.approx(float(original["video"]["duration"]))
    raw, _ = (
        ffmpeg.input(str(out))
        .output("pipe:", format="rawvideo", pix_fmt="gray")
        .run(capture_stdout=True, capture_stderr=True)
    )
    assert len(raw) == 50 * 320 * 240


def test_solid_mode_hides_exactly_the_planned_box_in_its_frames(
    sample: Path, tmp_path: Path
) -> None:
    out = tmp_path / "solid.mp4"
    box = [0, 40, 40, 120, 120]
    plan = sample_plan(
        sample,
        options={"mode": "solid"},
        tracks=[{"id": 1, "cls": "face", "boxes": [[f, *box[1:]] for f in range(10)]}],
    )
    render(sample, plan, out)
    with av.open(str(out)) as copy, av.open(str(sample)) as original:
        pairs = zip(copy.decode(video=0), original.decode(video=0), strict=True)
        for n, (a, b) in enumerate(pairs):
            y_copy, y_orig = a.to_ndarray(format="gray"), b.to_ndarray(format="gray")
            inside = y_copy[44:116, 44:116]
            if n < 10:
                assert inside.max() < 40, n  # black, allowing for the encoder
            else:
                assert np.abs(inside.astype(int) - y_orig[44:116, 44:116]).mean() < 12, n


def test_muting_the_whole_clip_keeps_a_silent_track(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "silent.mp4"
    rendered = render(sample, sample_plan(sample, options={"audio": "mute"}), out)
    assert rendered.audio == "silent" and "audio" in probe(out)
    assert loudness(out, 0.0, 2.0) < 0.01


@pytest.mark.parametrize(("audio", "expect"), [("keep", "copied"), ("strip", "none")])
def test_audio_is_kept_as_it_was_or_stripped(
    sample: Path, tmp_path: Path, audio: str, expect: str
) -> None:
    out = tmp_path / f"{audio}.mp4"
    rendered = render(sample, sample_plan(sample, options={"audio": audio}), out)
    assert rendered.audio == expect
    assert ("audio" in probe(out)) is (audio == "keep")


def loudness(path: Path, start: float, end: float) -> float:
    with av.open(str(path)) as container:
        peaks = [
            float(np.abs(f.to_ndarray()).max())
            for f in container.decode(audio=0)
            if start <= float(f.pts * f.time_base) and float(f.pts * f.time_base) + 0.03 <= end
        ]
    return max(peaks)


def test_a_muted_span_is_silent_and_the_rest_is_not(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "muted.mp4"
    rendered = render(sample, sample_plan(sample, mute=[{"start_s": 0.5, "end_s": 1.5}]), out)
    assert rendered.audio == "encoded"
    assert loudness(out, 0.6, 1.4) < 0.01
    assert loudness(out, 0.0, 0.4) > 0.1 and loudness(out, 1.6, 2.0) > 0.1


def test_a_clip_with_a_damaged_frame_gives_no_copy_and_says_which_frame(
    sample: Path, tmp_path: Path
) -> None:
    data = bytearray(sample.read_bytes())
    mdat = data.find(b"mdat")
    for offset in range(mdat + 4000, mdat + 4400):
        data[offset] ^= 0x5A
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "never.mp4"
    out.write_bytes(b"an earlier file")
    with pytest.raises(RenderError, match=r"frame \d+ \(at 0:\d\d\.\d{3}\)"):
        render(damaged, sample_plan(damaged), out)
    assert out.read_bytes() == b"an earlier file"  # untouched: the render went to a partial file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.mp4", "never.mp4"]


class Broken:
    model = None

    def detect(self, frame: np.ndarray) -> list[Seen]:
        raise RuntimeError("onnxruntime: out of memory")


def test_a_failing_detector_stops_the_plan_and_names_the_frame(sample: Path) -> None:
    with pytest.raises(DetectionFailed, match=r"faces detector failed on frame 0 .*out of memory"):
        make_plan(sample, Options(), detectors=[(Broken(), 4, "faces")])


# --- the real detectors, end to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("street")
    return make_street_clip(folder / "street.mp4", seconds=1.6, width=960, height=540, fps=25)


@pytest.fixture(scope="module")
def street_plan(street: tuple[Path, list[dict[str, Any]]]) -> Any:
    return make_plan(street[0], Options())


def test_the_plan_finds_the_face_and_the_plate_on_every_frame(
    street: tuple[Path, list[dict[str, Any]]], street_plan: Any
) -> None:
    _, truth = street
    regions = street_plan.plan.regions()
    for n, where in enumerate(truth):
        boxes = [box for _, box in regions.get(n, [])]
        assert max(covered(where["plate"], b) for b in boxes) >= 0.9, f"plate, frame {n}"
        # The face is the middle of the pasted portrait, not the whole tile.
        x0, y0, x1, y1 = where["face"]
        face = (
            x0 + 0.3 * (x1 - x0),
            y0 + 0.2 * (y1 - y0),
            x1 - 0.3 * (x1 - x0),
            y0 + 0.6 * (y1 - y0),
        )
        assert max(covered(face, b) for b in boxes) >= 0.9, f"face, frame {n}"


def test_no_face_is_findable_in_any_frame_of_the_copy(
    street: tuple[Path, list[dict[str, Any]]], street_plan: Any, tmp_path: Path
) -> None:
    from bwv.redact.detect import FaceDetector

    out = tmp_path / "street-redacted.mp4"
    render(street[0], street_plan.plan, out)
    detector = FaceDetector(960, 540)
    with av.open(str(street[0])) as original:
        first = next(original.decode(video=0)).to_ndarray(format="bgr24")
    assert detector.detect(first), "the detector must see the face in the original"
    with av.open(str(out)) as copy:
        for n, frame in enumerate(copy.decode(video=0)):
            assert detector.detect(frame.to_ndarray(format="bgr24")) == [], n


def test_the_contact_sheet_shows_sampled_frames_and_each_track(
    street_plan: Any, tmp_path: Path
) -> None:
    path = write_sheet(
        street_plan.plan, street_plan.thumbnails, street_plan.crops, tmp_path / "sheet.png"
    )
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] == 4 * 480
    assert len(street_plan.thumbnails) == 12
    assert set(street_plan.crops) == {t.id for t in street_plan.plan.tracks}
    # Boxes are drawn: the track colours appear on the sheet.
    assert (np.all(image == (40, 40, 230), axis=2)).sum() > 100


def _watch(watcher: Any, index: int, frame: np.ndarray, camera: Any) -> list[Any]:
    """One look of a PlateWatcher at ``frame``, as the engine gives it (grey copy, camera)."""
    from bwv.redact.engine import Look

    w, h = camera.size
    grey = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (w, h), interpolation=cv2.INTER_AREA)
    step = camera.add(grey)
    return watcher.detect_at(index, frame, Look(grey, camera.positions[-1], step.cut))


def test_a_plate_that_appears_between_whole_frame_passes_is_found_where_it_appears() -> None:
    from bwv.redact.engine import PlateWatcher
    from bwv.redact.motion import Camera
    from bwv.services.samples import render_plate

    plate = render_plate(char_height=20)
    h, w = plate.shape[:2]
    watcher = PlateWatcher(960, 540, full_every=48)
    camera = Camera(960, 540)
    rng = np.random.default_rng(3)
    wall = cv2.GaussianBlur(rng.integers(60, 190, (540, 960, 3), dtype=np.uint8), (0, 0), 5)
    _watch(watcher, 0, wall.copy(), camera)  # the whole frame, once: no plate
    shown = wall.copy()
    shown[350 : 350 + h, 600 : 600 + w] = plate
    found = _watch(watcher, 3, shown, camera)
    plates = [d.box for d in found if d.cls == "plate" and d.score > 0]
    assert plates and max(covered((600, 350, 600 + w, 350 + h), b) for b in plates) >= 0.9
    assert (watcher.calls["whole"], watcher.calls["regions"]) == (1, 1)  # where it changed


def test_a_followed_plate_that_moves_fast_keeps_its_box_on_it() -> None:
    from bwv.redact.engine import PlateWatcher
    from bwv.redact.motion import Camera
    from bwv.services.samples import render_plate

    plate = render_plate(char_height=24)
    h, w = plate.shape[:2]
    watcher = PlateWatcher(960, 540, full_every=48)
    camera = Camera(960, 540)
    calls = []
    watcher.full.detect = lambda frame, real=watcher.full.detect: calls.append(1) or real(frame)

    def frame_with_plate_at(x: int) -> np.ndarray:
        frame = np.full((540, 960, 3), 90, np.uint8)
        frame[300 : 300 + h, x : x + w] = plate
        return frame

    for index in range(0, 24, 3):
        x = 60 + 25 * index  # 25 px a frame: 75 px between looks, a third of the plate
        found = _watch(watcher, index, frame_with_plate_at(x), camera)
        plates = [d.box for d in found if d.cls == "plate"]
        assert plates and max(covered((x, 300, x + w, 300 + h), b) for b in plates) >= 0.9, index
    assert len(calls) == 1  # only frame 0 searched the whole frame


def test_a_version_1_plan_schedule_in_frames_is_read_in_seconds() -> None:
    from bwv.redact.plan import Plan

    old = (
        '{"version": 1, "evidence_id": null, "source_sha256": "' + "0" * 64 + '", "width": 64, '
        '"height": 48, "frames": 30, "frame_rate": "10", "duration_s": 3.0, "options": '
        '{"face_every": 6, "face_full_every": 24, "text_every": 48, "text_follow_every": 6}}'
    )
    plan = Plan.parse(old.encode(), "old.plan.json")
    assert plan.version == 2
    assert (plan.options.face_every_s, plan.options.text_every_s) == (0.6, 4.8)
    assert plan.options.text_look_every_s == 0.6


@pytest.mark.parametrize("mode", ["pixelate", "blur"])
def test_a_hidden_region_is_made_of_averages_not_of_samples_of_the_picture(mode: str) -> None:
    # Noise averaged over blocks is nearly flat; sampled a few pixels a block (the shrink's
    # interpolation was once lost to a positional argument) it stays as rough as the noise.
    w, h = 160, 96
    yuv = np.full((h * 3 // 2, w), 128, np.uint8)
    yuv[:h] = np.random.default_rng(7).integers(0, 256, (h, w), dtype=np.uint8)
    hide_regions(yuv, w, h, [(0, 0, w, h)], mode, "box")
    assert float(yuv[:h].std()) < 8  # the noise's own is about 74
