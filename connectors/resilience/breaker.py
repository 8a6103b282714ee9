"""Circuit breaker middleware: stop calling a source that keeps failing, and try it again later.

Closed: calls go through; `failures` failures in a row (a source that is down, slow, or answers
garbage: not "not found", not a rejected request) open it. Open: calls are refused at once
(`SourceRefused` "circuit_open") for `reset_s`. Then half-open: one call goes through as a probe;
its success closes the breaker, its failure opens it again. One breaker per source, shared by the
source's threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from adapters.base import NativeRecord
from bus.errors import MalformedAnswer, SourceFault, SourceRefused, SourceTimeout, SourceUnavailable
from connectors.resilience import Proceed, SourceCall

BreakerState = Literal["closed", "open", "half_open"]
# What says "the source is unwell"; SourceRefused is ours, not the source's.
_FAILURES = (SourceUnavailable, SourceTimeout, SourceFault, MalformedAnswer)


class CircuitBreaker:
    def __init__(
        self,
        source: str,
        failures: int = 5,
        reset_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.source = source
        self.threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._current()

    def _current(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.reset_s:
            self._set("half_open")
        return self._state

    def _set(self, state: BreakerState) -> None:
        if state != self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)

    def __call__(self, call: SourceCall, proceed: Proceed) -> NativeRecord:
        self._admit()
        try:
            record = proceed(call)
        except _FAILURES as exc:
            if not isinstance(exc, SourceRefused):
                self._failed()
            else:
                self._release_probe()
            raise
        except BaseException:
            self._release_probe()  # not the source's fault (not found, rejected, a bug)
            raise
        self._succeeded()
        return record

    def _admit(self) -> None:
        with self._lock:
            state = self._current()
            if state == "closed":
                return
            if state == "half_open" and not self._probing:
                self._probing = True
                return
            wait = max(0.0, self.reset_s - (self._clock() - self._opened_at))
        message = (
            f"circuit open after {self.threshold} failures in a row; next try in {wait:.1f} s"
            if state == "open"
            else "circuit half-open: a probe call is under way"
        )
        raise SourceRefused(self.source, message, "circuit_open")

    def _failed(self) -> None:
        with self._lock:
            self._probing = False
            self._failures += 1
            if self._state == "half_open" or self._failures >= self.threshold:
                self._opened_at = self._clock()
                self._set("open")

    def _succeeded(self) -> None:
        with self._lock:
            self._probing = False
            self._failures = 0
            self._set("closed")

    def _release_probe(self) -> None:
        with self._lock:
            self._probing = False
