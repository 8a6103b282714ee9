"""The goals printed next to the figures: met, not met, or n/a. No test asserts them."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

_COMPARE = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Goal:
    """``figures[figure] <op> target``, e.g. efficiency >= 0.5."""

    name: str
    figure: str
    op: Literal[">=", "<="]
    target: float
    unit: str = ""

    def evaluate(
        self, figures: Mapping[str, Any], not_applicable: str | None = None
    ) -> dict[str, Any]:
        """The goal's row: n/a when the figure is missing or the run cannot judge it."""
        value = figures.get(self.figure)
        if not_applicable is not None or value is None:
            status = "n/a"
        else:
            status = "met" if _COMPARE[self.op](value, self.target) else "not met"
        return {
            "goal": self.name,
            "figure": self.figure,
            "target": f"{self.op} {self.target:g}{self.unit}",
            "value": value,
            "status": status,
            "reason": not_applicable,
        }


EFFICIENCY = Goal("bus throughput / direct throughput", "efficiency", ">=", 0.5)
THROUGHPUT = Goal(
    "bus lookups/s (1.6 M/day-volume in < 15 min)", "bus_lookups_per_s", ">=", 1800, "/s"
)
ZERO_ERRORS = Goal("bus errors at that throughput", "bus_errors", "<=", 0)
ADDED_P50 = Goal("bus added latency p50", "added_p50_ms", "<=", 5, " ms")
ADDED_P99 = Goal("bus added latency p99", "added_p99_ms", "<=", 25, " ms")
SYNC_RATIO = Goal("bus sync events/s / raw pipe events/s", "sync_ratio", ">=", 0.5)
MEMORY_FLAT = Goal(
    "worker memory flat (second-half slope, 10-min soak)", "slope_mb_per_min", "<=", 1.0, " MB/min"
)
FLAT_SOAK_MINUTES = 10.0
