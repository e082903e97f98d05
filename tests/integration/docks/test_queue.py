"""The dock's queue survives the process being killed (kill -9) in the middle of a transition:
the kill needs a process of its own."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from docks.queue import ClipQueue
from tests.support import REPO


def test_queue_transition_survives_kill_9(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from docks.queue import ClipQueue\n"
        "q = ClipQueue.open(Path(sys.argv[1]))\n"
        "c = q.add(bay='b', camera='c', path=Path('/b/A.MP4'), size=5, mtime_ns=1)\n"
        "q.mark_hashed(c.id, 'cd' * 32)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, check=False)
    assert done.returncode == -signal.SIGKILL
    with ClipQueue.open(tmp_path) as queue:
        assert [(c.state, c.sha256) for c in queue.list()] == [("hashed", "cd" * 32)]
