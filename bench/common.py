"""What the benchmarks share: repeated measurements reported as median (min-max)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field


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
