"""The resilience middleware around adapter calls: breaker, rate limit, bulkhead, retry, chain."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.base import NativeRecord
from bus.deadline import Deadline
from bus.errors import SourceNotFound, SourceRefused, SourceTimeout, SourceUnavailable
from bus.schemas.lookup import Subject
from connectors.resilience import SourceCall, chain
from connectors.resilience.breaker import CircuitBreaker
from connectors.resilience.bulkhead import Bulkhead
from connectors.resilience.deadline import DeadlineGuard
from connectors.resilience.ratelimit import RateLimit
from connectors.resilience.retry import Retry

RECORD = NativeRecord("population", "identity", {"SoDinhDanh": "001090000001"}, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def call(seconds: float = 5.0) -> SourceCall:
    return SourceCall(
        "population",
        "identity",
        Subject(personal_id="001090000001"),
        Deadline.after(seconds),
        "req-1",
        "H26",
    )


def failing(*errors: Exception) -> Any:
    """A terminal that raises `errors` in turn, then answers."""
    pending = list(errors)
    calls: list[SourceCall] = []

    def terminal(current: SourceCall) -> NativeRecord:
        calls.append(current)
        if pending:
            raise pending.pop(0)
        return RECORD

    terminal.calls = calls  # type: ignore[attr-defined]
    return terminal


def test_breaker_opens_after_failures_in_a_row_and_refuses_without_calling() -> None:
    clock = Clock()
    breaker = CircuitBreaker("population", failures=3, reset_s=5, clock=clock)
    terminal = failing(*[SourceUnavailable("population", "down")] * 3)
    for _ in range(3):
        with pytest.raises(SourceUnavailable):
            breaker(call(), terminal)
    assert breaker.state == "open"
    with pytest.raises(SourceRefused) as refused:
        breaker(call(), terminal)
    assert refused.value.code == "circuit_open"
    assert len(terminal.calls) == 3  # the refused call never reached the source


def test_breaker_probes_after_the_reset_time_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker("population", failures=1, reset_s=5, clock=clock)
    with pytest.raises(SourceTimeout):
        breaker(call(), failing(SourceTimeout("population", "slow")))
    clock.now += 5
    assert breaker.state == "half_open"
    assert breaker(call(), failing()) is RECORD
    assert breaker.state == "closed"


def test_a_failed_probe_opens_the_breaker_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker("population", failures=1, reset_s=5, clock=clock)
    down = SourceUnavailable("population", "down")
    with pytest.raises(SourceUnavailable):
        breaker(call(), failing(down))
    clock.now += 5
    with pytest.raises(SourceUnavailable):
        breaker(call(), failing(down))
    assert breaker.state == "open"


def test_not_found_does_not_count_as_a_failure() -> None:
    breaker = CircuitBreaker("population", failures=2, reset_s=5, clock=Clock())
    for _ in range(5):
        with pytest.raises(SourceNotFound):
            breaker(call(), failing(SourceNotFound("population", "01")))
    assert breaker.state == "closed"


def test_rate_limit_waits_for_a_token_when_the_deadline_allows() -> None:
    clock, slept = Clock(), []
    limit = RateLimit("population", rate_per_s=10, burst=1, clock=clock, sleep=slept.append)
    limit(call(), failing())
    limit(call(), failing())
    assert slept == [pytest.approx(0.1)]


def test_rate_limit_refuses_when_no_token_comes_before_the_deadline() -> None:
    limit = RateLimit("population", rate_per_s=0.1, burst=1, clock=Clock(), sleep=lambda _: None)
    limit(call(), failing())
    with pytest.raises(SourceRefused) as refused:
        limit(call(seconds=1.0), failing())
    assert refused.value.code == "rate_limited"


def test_bulkhead_refuses_beyond_concurrency_and_waiting() -> None:
    bulkhead = Bulkhead("population", concurrency=2, max_waiting=1)
    for _ in range(3):
        bulkhead.enter()
    with pytest.raises(SourceRefused) as refused:
        bulkhead.enter()
    assert refused.value.code == "bulkhead_full"
    bulkhead.leave()
    bulkhead.enter()  # room again


def test_retry_does_not_retry_the_bus_own_refusals() -> None:
    terminal = failing(SourceRefused("population", "open", "circuit_open"))
    with pytest.raises(SourceRefused):
        Retry(retries=3, backoff_s=0)(call(), terminal)
    assert len(terminal.calls) == 1


def test_chain_gives_each_attempt_the_time_left_capped_by_the_source_timeout() -> None:
    terminal = failing(SourceUnavailable("population", "503"))
    run = chain([Retry(retries=2, backoff_s=0), DeadlineGuard(timeout_s=1.5)], terminal)
    assert run(call(seconds=10)) is RECORD
    assert [c.timeout for c in terminal.calls] == [1.5, 1.5]
    assert terminal.calls[-1].attempts == 2


def test_deadline_guard_refuses_an_attempt_with_no_time_left() -> None:
    with pytest.raises(SourceTimeout):
        DeadlineGuard(timeout_s=3)(call(seconds=0.01), failing())


def test_bulkhead_without_a_cap_lets_a_backlog_wait() -> None:
    bulkhead = Bulkhead("population", concurrency=2, max_waiting=None)
    for _ in range(1000):
        bulkhead.enter()
    assert bulkhead.in_flight == 1000
