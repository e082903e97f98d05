"""The dock agent as a real process: enrolled with ``bwv dock enroll`` and run as
``bwv dock run``, with clips put on its docked cameras the way a camera writes them."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from bwv.services.samples import make_sample_clip
from docks import DockConfig, status
from tests.support import REPO
from tests.support.cli import bwv_process
from tests.support.ingestserver import IngestServer

CHUNK = 256 * 1024  # small tus chunks, so an interrupted upload has acknowledged bytes to keep


@dataclasses.dataclass(frozen=True)
class CameraFile:
    """A clip put on a docked camera, with what the test knows about it before any upload."""

    path: Path
    sha256: str
    size: int
    dock: DockProcess

    @property
    def marker(self) -> Path:
        return self.path.with_name(self.path.name + ".done")


def put_clip(
    dock: DockProcess,
    bay: Path,
    number: int,
    *,
    size: int = 0,
    playable: bool = False,
    seed: int | None = None,
) -> CameraFile:
    """Write a finished clip into ``bay`` the way a camera does: the file, then its ``.done``.

    ``playable`` makes a real H.264/AAC sample clip; otherwise ``size`` random bytes (stored by
    the service as ``unplayable``, which is all a fault test needs, and fast).
    """
    folder = bay / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bay.name}_{number:04d}.MP4"
    tmp = folder / f".{path.name}.writing"  # hidden: the watcher ignores it until renamed
    if playable:
        if seed is None:  # a seed of its own where the caller needs clips that surely differ
            seed = zlib.crc32(str(path).encode()) % 97
        make_sample_clip(tmp, seconds=1, seed=seed)
    else:
        tmp.write_bytes(random.Random(f"{bay}/{number}").randbytes(size))
    os.replace(tmp, path)
    path.with_name(path.name + ".done").touch()
    data = path.read_bytes()
    return CameraFile(path, hashlib.sha256(data).hexdigest(), len(data), dock)


class DockProcess:
    """One dock: enrolled with ``bwv dock enroll``, run as ``bwv dock run`` in a subprocess."""

    def __init__(
        self,
        server: IngestServer,
        root: Path,
        name: str,
        *,
        bays: int = 2,
        max_rate: float | None = None,
        parallel: int | None = None,
    ) -> None:
        self.server = server
        self.name = name
        self.state = root / name / "state"
        self.bays = [root / name / f"BAY{i + 1}" for i in range(bays)]
        for bay in self.bays:
            bay.mkdir(parents=True)
            (bay / "CAMERA").write_text(f"CAM-{name}-{bay.name}\n")
        self.max_rate = max_rate
        self.parallel = parallel
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.exit_codes: list[int] = []
        self._enroll()

    def _enroll(self) -> None:
        token = self.server.enroll(self.name)
        bwv_process(
            "dock",
            "enroll",
            "--state",
            str(self.state),
            "--url",
            self.server.url,
            "--name",
            self.name,
            "--token",
            token,
            "--service-key",
            self.server.service_key,
            "--ca-file",
            str(self.server.ca),
            check=True,
            timeout=60,
        )
        # `bwv dock run` has no --chunk-size: set it in the dock's own configuration file.
        config = DockConfig.load(self.state)
        dataclasses.replace(config, chunk_size=CHUNK).save()

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "dock already running"
        command = [sys.executable, "-m", "cli", "dock", "run", "--state", str(self.state)]
        for bay in self.bays:
            command += ["--bay", str(bay)]
        command += ["--settle", "0.2", "--poll", "0.2"]
        if self.max_rate is not None:
            command += ["--max-rate", str(self.max_rate)]
        if self.parallel is not None:
            command += ["--parallel", str(self.parallel)]
        log = self.state.parent / f"dock-run-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no clean-up at all, as a crash or a power cut would leave the dock."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.exit_codes.append(self.process.wait())

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM: the agent finishes its chunk, prints its report and exits."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"dock {self.name} did not stop on SIGTERM\n{self.log_tail()}")
        code = self.process.returncode
        self.exit_codes.append(code)
        return code

    def log_tail(self, lines: int = 25) -> str:
        if not self.logs:
            return f"--- dock {self.name}: never started"
        text_ = self.logs[-1].read_text(errors="replace").splitlines()[-lines:]
        return f"--- dock {self.name} ({self.logs[-1].name}):\n" + "\n".join(text_)

    def status(self) -> list[dict[str, Any]]:
        return status(self.state)

    def row(self, camera_file: CameraFile) -> dict[str, Any]:
        rows = [r for r in self.status() if r["path"] == str(camera_file.path)]
        assert len(rows) == 1, f"{camera_file.path}: {len(rows)} queue rows"
        return rows[0]

    def upload_urls(self) -> dict[str, str | None]:
        """The tus upload URL the dock's queue holds for each clip path."""
        with contextlib.closing(sqlite3.connect(self.state / "queue.sqlite3")) as conn:
            return dict(conn.execute("SELECT path, upload_url FROM clips").fetchall())

    def receipts(self) -> dict[str, dict[str, Any]]:
        """``receipts.jsonl`` by SHA-256. A torn last line (the dock was killed while writing it)
        is skipped: its camera file cannot have been wiped, the line was not yet fsynced."""
        path = self.state / "receipts.jsonl"
        found: dict[str, dict[str, Any]] = {}
        if not path.exists():
            return found
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                found[entry["sha256"]] = entry
        return found
