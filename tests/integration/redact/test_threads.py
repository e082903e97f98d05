"""The detectors on the planner's worker threads: a fresh process whose first inferences run
on three threads at once finishes (OpenVINO's numpy bridge once deadlocked there, hanging the
whole process: see bwv.redact.runtimes._warm_numpy_bridge)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO

_FIRST_INFERENCES_AT_ONCE = """
import threading
import numpy as np
from bwv.redact.detect import FaceDetector, TextDetector

frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
faces = [FaceDetector(1280, 720) for _ in range(2)]
text = TextDetector(1280, 720)
start = threading.Barrier(3)

def detect(detector, region=None):
    start.wait()
    for r in range(6):
        if region:
            text.detect_region(frame, (0, 0, 256 + 32 * r, 160 + 32 * r))
        else:
            detector.detect(frame)

threads = [threading.Thread(target=detect, args=(f,)) for f in faces]
threads.append(threading.Thread(target=detect, args=(text, True)))
for t in threads:
    t.start()
for t in threads:
    t.join()
print("done")
"""


def test_first_inferences_on_three_threads_at_once_do_not_hang() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FIRST_INFERENCES_AT_ONCE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,  # a deadlock never ends; the run itself takes seconds
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "done"
