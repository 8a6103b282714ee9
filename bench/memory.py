"""Resident memory of one process (the worker), sampled while a load runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil

from bench.stats import linear_slope

MB = 1024 * 1024


def sample_rss(
    pid: int, keep_going: Callable[[], bool], interval_s: float = 1.0
) -> list[tuple[float, float]]:
    """``(seconds since start, RSS in MB)`` of ``pid`` every ``interval_s`` while ``keep_going()``.

    Stops early (keeping what it has) when the process exits.
    """
    process = psutil.Process(pid)
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    next_at = started
    while True:
        try:
            rss = process.memory_info().rss
        except psutil.NoSuchProcess:
            break
        samples.append((round(time.monotonic() - started, 3), round(rss / MB, 3)))
        if not keep_going():
            break
        next_at += interval_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    return samples


def memory_summary(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """Start, peak and end RSS, and the slope (MB/min) over the second half of the run."""
    if not samples:
        raise ValueError("no memory sample: the process was gone before the first one")
    half = samples[-1][0] / 2.0
    second_half = [(t / 60.0, mb) for t, mb in samples if t >= half]
    slope = linear_slope(second_half)
    return {
        "samples": len(samples),
        "start_mb": samples[0][1],
        "peak_mb": max(mb for _, mb in samples),
        "end_mb": samples[-1][1],
        "slope_mb_per_min": None if slope is None else round(slope, 3),
        "series": [list(sample) for sample in samples],
    }
