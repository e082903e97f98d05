"""What the benchmarks share: repeated measurements reported as median (min-max)."""

from __future__ import annotations

import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


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
