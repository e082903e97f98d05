"""Inference engines beyond the two in :mod:`bwv.redact.detect`: OpenVINO's CPU plugin.

:class:`OpenVinoEngine` keeps the contract of ``detect._OrtEngine`` and ``detect._CvEngine``:
built from ``(model, data, outputs, threads)``, ``run(blob)`` takes one NCHW float32 blob and
returns the outputs named by ``outputs`` in that order (all the model's outputs, in its order,
when ``outputs`` is None); every failure raises :class:`DetectorError` naming the model. It is
not thread-safe: one engine per thread (two engines in two threads run in parallel: inference
releases the GIL).

Its settings, measured on the 2-core development machine (Intel Xeon, AVX-512 with VNNI and BF16,
no AMX; OpenVINO 2026.4; ``python bench/redact_runtimes.py``, medians of runs on a quiet machine):

- ``INFERENCE_PRECISION_HINT f32``. The CPU plugin's default on this CPU is bf16, which was
  slower here (CenterFace 1280x736 177 vs 143 ms, 640x384 47 vs 28 ms; DBNet 1600x928 297 vs
  210 ms; one quick run) and moved outputs by up to 1.2 (CenterFace logits) and 0.6 (DBNet's
  probability map) against onnxruntime. In f32 they agree with onnxruntime's to 4e-5.
- ``ENABLE_CPU_PINNING False``. Pinning (the default) pins the calling thread for each call, and
  two engines in two Python threads were both pinned to CPU 0: CenterFace 1280x736 + DBNet
  1600x928 at one thread each took 263-270 + 420-452 ms a call run together, against 127-130 +
  207-213 ms unpinned (alone: 116-122 and 201-215 ms either way).
- ``INFERENCE_NUM_THREADS threads``, ``NUM_STREAMS 1``, ``PERFORMANCE_HINT LATENCY``.
- One compiled model per input shape, compiled at the first blob of that shape (so the engine is
  built like the other two; ``shapes=`` compiles ahead, e.g. before a video starts). Both models
  take any NCHW shape whose H and W are multiples of 32: ``reshape`` overrides the 10x3x32x32
  that CenterFace's graph declares, no ONNX surgery. A compile takes 0.16-0.3 s and holds 35 MB
  (DBNet 320x160) to 320 MB (CenterFace 1920x1088); the first inference after it takes 1.2-1.5x
  a normal one (up to 4x in a fresh process). One model compiled with dynamic H and W instead
  compiles once (~0.2 s) but ran every call 20-35% slower, even when the shape repeated: DBNet
  on 11 window shapes from 320x160 to 640x320, 7.8-26.4 ms a call per-shape against 10.6-31.9
  ms dynamic (onnxruntime: 11.8-48.0 ms); a cycle of the 11, 181 against 220 ms, so per-shape
  compiling pays for itself after ~70 calls of a shape. Hence up to ``max_shapes`` shapes are
  compiled one by one; blobs of further shapes run on one dynamic-shape model (compiled at the
  first such blob), which bounds the memory and never recompiles.
- Blobs whose H or W is not a multiple of 32 are refused: the dynamic-shape model given one
  returned the previous call's outputs, without an error.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from bwv.base.errors import DetectorError
from bwv.redact.weights import ModelInfo

MAX_SHAPES = 8  # static compiled models per engine before the dynamic fallback
_NUMPY_BRIDGE = threading.Lock()
_numpy_bridge_ready = False


def _warm_numpy_bridge(ov: Any) -> None:
    """Make OpenVINO's numpy bridge ready once, on one thread, before any inference.

    The bridge (pybind11's ``npy_api``) is set up on first use by ``std::call_once`` holding
    the GIL: two threads inferring for the first time at once deadlock there, and the whole
    process hangs (seen in ``bwv demo`` under load; every time in a stress run of three
    detectors on their own threads). A tensor made from an array here sets it up.
    """
    global _numpy_bridge_ready
    with _NUMPY_BRIDGE:
        if not _numpy_bridge_ready:
            ov.Tensor(np.zeros((1, 1), np.float32)).data.copy()
            _numpy_bridge_ready = True


STRIDE = 32  # both models' total stride: input height and width must be multiples of it


class OpenVinoEngine:
    """One ONNX model on OpenVINO's CPU plugin, loaded from memory, fed NCHW float32 blobs.

    ``compile_ms`` records each compile (key: the input shape, or ``"dynamic"``), for benches.
    """

    def __init__(
        self,
        model: ModelInfo,
        data: bytes,
        outputs: list[str] | None,
        threads: int,
        *,
        shapes: tuple[tuple[int, ...], ...] = (),
        max_shapes: int = MAX_SHAPES,
        weights: bytes = b"",
    ) -> None:
        self.name = model.name
        if threads < 1:
            raise DetectorError(f"{model.name} detector needs at least 1 thread, got {threads}")
        try:
            import openvino as ov
        except ImportError as exc:
            raise DetectorError(
                f"cannot run {model.name} on openvino: the openvino package is not installed"
            ) from exc
        self._ov = ov
        _warm_numpy_bridge(ov)
        try:
            self._core = ov.Core()
            self._model = self._core.read_model(data, weights)
        except Exception as exc:
            raise DetectorError(
                f"cannot load {model.name} model {model.path}: {_why(exc)}"
            ) from exc
        where = f"{model.name} model {model.path}"
        if len(self._model.inputs) != 1:
            raise DetectorError(f"cannot load {where}: {len(self._model.inputs)} inputs, not 1")
        self._input = self._model.inputs[0].get_any_name()
        names = [out.get_names() for out in self._model.outputs]
        if outputs is None:
            self._order = list(range(len(names)))
        else:
            missing = [o for o in outputs if not any(o in n for n in names)]
            if missing:
                have = ", ".join(sorted(n for ns in names for n in ns))
                raise DetectorError(f"cannot load {where}: no outputs {missing} (has {have})")
            self._order = [next(i for i, n in enumerate(names) if o in n) for o in outputs]
        self._config: dict[str, Any] = {
            "INFERENCE_NUM_THREADS": threads,
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self._max_shapes = max_shapes
        self._static: dict[tuple[int, ...], Any] = {}
        self._dynamic: Any = None
        self.compile_ms: dict[tuple[int, ...] | str, float] = {}
        for shape in shapes:
            self._request(tuple(shape))

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        if not isinstance(blob, np.ndarray) or blob.dtype != np.float32 or blob.ndim != 4:
            got = f"{getattr(blob, 'shape', None)} {getattr(blob, 'dtype', type(blob).__name__)}"
            raise DetectorError(f"{self.name} needs an NCHW float32 blob, got {got}")
        if blob.shape[2] % STRIDE or blob.shape[3] % STRIDE or not blob.size:
            # A dynamic-shape model given such a blob has returned the previous call's outputs.
            raise DetectorError(
                f"{self.name} input {'x'.join(map(str, blob.shape))}: height and width must be "
                f"positive multiples of {STRIDE}"
            )
        request = self._request(blob.shape)
        try:
            request.infer({0: np.ascontiguousarray(blob)}, share_inputs=True)
            result = [request.get_output_tensor(i).data.copy() for i in self._order]
        except Exception as exc:
            raise DetectorError(f"{self.name} inference failed: {_why(exc)}") from exc
        # Given an H or W it cannot take, the dynamic-shape model has also returned empty
        # outputs without an error; the check above should keep that from happening.
        for out in result:
            if out.size == 0:
                raise DetectorError(
                    f"{self.name} inference failed: empty output {out.shape} for input "
                    f"{'x'.join(map(str, blob.shape))}"
                )
        return result

    def _request(self, shape: tuple[int, ...]) -> Any:
        request = self._static.get(shape)
        if request is not None:
            return request
        if len(self._static) < self._max_shapes:
            request = self._static[shape] = self._compile(shape, list(shape))
            return request
        if self._dynamic is None:
            self._dynamic = self._compile("dynamic", [*shape[:2], -1, -1])
        return self._dynamic

    def _compile(self, key: tuple[int, ...] | str, dims: list[int]) -> Any:
        started = time.perf_counter()
        try:
            model = self._model.clone()
            model.reshape({self._input: self._ov.PartialShape(dims)})
            compiled = self._core.compile_model(model, "CPU", self._config)
            request = compiled.create_infer_request()
        except Exception as exc:
            raise DetectorError(
                f"cannot compile {self.name} model for input {'x'.join(map(str, dims))} on "
                f"openvino: {_why(exc)}"
            ) from exc
        self.compile_ms[key] = (time.perf_counter() - started) * 1000
        return request


def _why(exc: BaseException) -> str:
    """OpenVINO's multi-line exception text as one line of diagnosis."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."
