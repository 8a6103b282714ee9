"""The figures a process reports on tthc.status: percentiles from histogram buckets as
Prometheus computes them, per-source windows between two reports, and staleness."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bus.ops.status import ProcessStatus, Reading, SourceWindow, quantile, stale
from bus.schemas.common import utc_now


def test_a_quantile_is_interpolated_inside_its_bucket() -> None:
    rows = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, rows) == pytest.approx(0.01)
    assert quantile(0.7, rows) == pytest.approx(0.01 + 0.09 * (20 / 40))
    assert quantile(0.99, rows) == pytest.approx(0.1 + 0.9 * (9 / 10))
    assert quantile(0.5, [(0.01, 0.0), (float("inf"), 0.0)]) is None
    # in the +Inf bucket: the highest finite bound, as histogram_quantile answers
    assert quantile(0.99, [(0.5, 1.0), (float("inf"), 10.0)]) == 0.5


def test_a_source_window_counts_only_what_happened_since_the_last_read() -> None:
    registry = CollectorRegistry()
    calls = Counter("tthc_source_calls", "", ["source", "dataset", "outcome"], registry=registry)
    duration = Histogram(
        "tthc_source_call_duration_seconds",
        "",
        ["source"],
        buckets=(0.01, 0.1, 1.0),
        registry=registry,
    )
    breaker = Gauge("tthc_source_breaker_open", "", ["source"], registry=registry)
    window = SourceWindow()
    for _ in range(9):
        calls.labels("insurance", "participation", "found").inc()
        duration.labels("insurance").observe(0.005)
    calls.labels("insurance", "participation", "unavailable").inc()
    duration.labels("insurance").observe(0.5)
    breaker.labels("insurance").set(0.0)
    first = window.read(Reading(registry))["insurance"]
    assert (first.calls, first.errors, first.breaker) == (10, 1, "closed")
    assert first.p50_ms is not None and first.p50_ms <= 10

    duration.labels("insurance").observe(0.05)
    calls.labels("insurance", "participation", "timeout").inc()
    breaker.labels("insurance").set(1.0)
    second = window.read(Reading(registry))["insurance"]
    assert (second.calls, second.errors, second.breaker) == (1, 1, "open")
    assert second.p50_ms is not None and 10 < second.p50_ms <= 100  # the one call of the window


def test_a_running_process_not_heard_from_for_three_intervals_is_stale() -> None:
    now = utc_now()
    status = ProcessStatus(member="worker-1", kind="worker", interval_s=3.0)
    status.updated_at = now - timedelta(seconds=8)
    assert not stale(status, now)
    status.updated_at = now - timedelta(seconds=10)
    assert stale(status, now)
