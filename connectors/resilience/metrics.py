"""Metrics middleware: every call to a source counted by outcome and timed, attempts counted.

Prometheus names follow its conventions (seconds, `_total`); labels are bounded: the source, the
dataset (declared by the adapter) and the outcome (`found` or a `SourceError` code).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from adapters.base import NativeRecord
from bus.errors import SourceError
from connectors.resilience import Proceed, SourceCall
from connectors.resilience.breaker import BreakerState

CALLS = Counter(
    "tthc_source_calls_total",
    "Calls to a national database by outcome (found, or the error code).",
    ["source", "dataset", "outcome"],
)
ATTEMPTS = Counter(
    "tthc_source_attempts_total",
    "Attempts made to a national database, retries included.",
    ["source"],
)
DURATION = Histogram(
    "tthc_source_call_duration_seconds",
    "Time of a call to a national database, retries included.",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BREAKER = Gauge(
    "tthc_source_breaker_open",
    "Circuit breaker of a national database: 0 closed, 0.5 half-open, 1 open.",
    ["source"],
)
_BREAKER_VALUES: dict[BreakerState, float] = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


def record_breaker(source: str, state: BreakerState) -> None:
    BREAKER.labels(source).set(_BREAKER_VALUES[state])


class Metrics:
    def __init__(self, source: str) -> None:
        self.source = source
        self._attempts = ATTEMPTS.labels(source)
        self._duration = DURATION.labels(source)

    def __call__(self, call: SourceCall, proceed: Proceed) -> NativeRecord:
        started = time.perf_counter()
        outcome = "found"
        try:
            return proceed(call)
        except SourceError as exc:
            outcome = exc.code
            raise
        except BaseException:
            outcome = "internal_error"
            raise
        finally:
            self._duration.observe(time.perf_counter() - started)
            self._attempts.inc(call.attempts or 1)
            CALLS.labels(self.source, call.dataset, outcome).inc()
