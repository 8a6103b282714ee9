"""Latency percentiles and the summary of one load run.

Percentiles are nearest-rank over the sorted list of recorded latencies: exact, and ordered by
construction (p50 <= p95 <= p99 <= max), which is what comparing two runs needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PERCENTILES = (50.0, 95.0, 99.0)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of an empty sample: no request completed successfully")
    if not 0.0 < q <= 100.0:
        raise ValueError(f"percentile q={q!r}: expected 0 < q <= 100")
    rank = math.ceil(q / 100.0 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99, max and mean in milliseconds; all None when nothing was recorded."""
    keys = [f"p{int(q)}" for q in PERCENTILES]
    if not latencies_ms:
        return {**dict.fromkeys(keys), "max": None, "mean": None}
    ordered = sorted(latencies_ms)
    summary: dict[str, float | None] = {
        key: round(percentile(ordered, q), 3) for key, q in zip(keys, PERCENTILES, strict=True)
    }
    summary["max"] = round(ordered[-1], 3)
    summary["mean"] = round(sum(ordered) / len(ordered), 3)
    return summary


def linear_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope dy/dx of ``(x, y)`` points; None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if var_x == 0:
        return None
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return cov / var_x


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is zero."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def difference(minuend: Any, subtrahend: Any) -> float | None:
    """minuend - subtrahend rounded to the microsecond, or None when either is missing."""
    if minuend is None or subtrahend is None:
        return None
    return round(float(minuend) - float(subtrahend), 3)
