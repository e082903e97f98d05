"""What the benchmarks share: repeated measurements reported as median (min-max)."""

from __future__ import annotations

import platform
import statistics
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Measure:
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, fmt: Callable[[float], str]) -> str:
        if len(self.values) < 2:
            return ""
        return f" ({fmt(min(self.values))}-{fmt(max(self.values))})"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def version(dist: str) -> str:
    """An installed distribution's version, for the machine line of a report."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def first_line(command: list[str]) -> str:
    """The first line a tool prints about itself (e.g. ``ffmpeg -version``)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    text = done.stdout or done.stderr
    return text.splitlines()[0] if text else "?"


@contextmanager
def maybe_postgres(enabled: bool) -> Iterator[Any]:
    """A throwaway PostgreSQL server for the run (tests/support/pgserver.py), or None."""
    if not enabled:
        yield None
        return
    from tests.support.pgserver import postgres_server

    with postgres_server() as server:
        yield server
