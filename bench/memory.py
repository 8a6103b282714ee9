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


def sample_rss_many(
    pids: dict[str, int], keep_going: Callable[[], bool], interval_s: float = 0.5
) -> list[tuple[float, dict[str, float]]]:
    """``(time.monotonic(), {name: RSS in MB})`` of every pid each ``interval_s`` while
    ``keep_going()``. ``time.monotonic`` is the machine's one monotonic clock, so the samples
    can be cut to a window another process timed. A process that exits drops out."""
    processes = {name: psutil.Process(pid) for name, pid in pids.items()}
    samples: list[tuple[float, dict[str, float]]] = []
    next_at = time.monotonic()
    while processes:
        sample: dict[str, float] = {}
        for name, process in list(processes.items()):
            try:
                sample[name] = round(process.memory_info().rss / MB, 3)
            except psutil.NoSuchProcess:
                del processes[name]
        samples.append((time.monotonic(), sample))
        if not keep_going():
            break
        next_at += interval_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    return samples


def rss_over_window(
    samples: list[tuple[float, dict[str, float]]], start: float, end: float
) -> dict[str, dict[str, float | None]]:
    """Per process: RSS at the window's start (last sample at or before it), its peak and its
    end (last sample at or before the end) in MB, and growth = peak - start."""
    names = {name for _, sample in samples for name in sample}
    summary: dict[str, dict[str, float | None]] = {}
    for name in sorted(names):
        series = [(t, sample[name]) for t, sample in samples if name in sample]
        before = [mb for t, mb in series if t <= start]
        inside = [mb for t, mb in series if start <= t <= end]
        upto_end = [mb for t, mb in series if t <= end]
        first = before[-1] if before else (inside[0] if inside else None)
        last = upto_end[-1] if upto_end else None
        peak = max([*inside, *([first] if first is not None else [])], default=None)
        summary[name] = {
            "start_mb": first,
            "peak_mb": peak,
            "end_mb": last,
            "growth_mb": None if peak is None or first is None else round(peak - first, 3),
            "samples": len(inside),
        }
    return summary
