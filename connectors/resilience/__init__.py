"""Resilience around every adapter call, as small composable middleware (as Dramatiq does it).

A call to a national database is a `SourceCall` passed down a chain; each middleware may act
before and after the rest of the chain (`proceed`), and the last link is the adapter itself.
The lookup connector builds the chain once per source (`build_chain`), outermost first:

    metrics -> retry -> circuit breaker -> rate limit -> deadline -> adapter.fetch

- metrics (metrics.py) count every call and its outcome and time it, retries included;
- retry (retry.py) retries retryable errors with jittered backoff, never past the deadline;
- the circuit breaker (breaker.py) fails fast while the source keeps failing, per source;
- the rate limit (ratelimit.py) keeps to the source's quota, per source;
- the deadline (deadline.py) gives each attempt the time left, and none when there is none.

The bulkhead (bulkhead.py) sits on the asyncio side, before a pool thread is taken: it refuses a
call when too many already wait for the same source, so one slow source cannot take the worker's
whole capacity. Each middleware is a class with one method, `__call__(call, proceed)`; adding one
is adding a module and a line in `build_chain`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from adapters.base import NativeRecord
from bus.deadline import Deadline
from bus.schemas.lookup import Subject


@dataclass(slots=True)
class SourceCall:
    """One request for one dataset from one source, as it goes down the chain."""

    source: str
    dataset: str  # the adapter's own dataset name (without the source prefix)
    subject: Subject
    deadline: Deadline
    request_id: str
    requester_agency: str
    timeout: float = 0.0  # set by the deadline middleware for each attempt
    attempts: int = 0
    notes: dict[str, str] = field(default_factory=dict)


Proceed = Callable[[SourceCall], NativeRecord]


class Middleware(Protocol):
    def __call__(self, call: SourceCall, proceed: Proceed) -> NativeRecord: ...


def chain(middlewares: Sequence[Middleware], terminal: Proceed) -> Proceed:
    """One function running `middlewares` (outermost first) around `terminal`."""
    proceed = terminal
    for middleware in reversed(middlewares):
        proceed = _link(middleware, proceed)
    return proceed


def _link(middleware: Middleware, proceed: Proceed) -> Proceed:
    def run(call: SourceCall) -> NativeRecord:
        return middleware(call, proceed)

    return run
