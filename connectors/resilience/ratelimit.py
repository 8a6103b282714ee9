"""Rate limit middleware: a token bucket per source, for the quotas national databases impose.

`rate_per_s` calls a second on average, bursts of up to `burst`. A call that finds the bucket
empty waits for its token if that fits in the time it has left, and is refused
(`SourceRefused` "rate_limited") otherwise: waiting past the deadline would serve nobody.
Every attempt takes a token (a retry is a call to the source too).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from adapters.base import NativeRecord
from bus.errors import SourceRefused
from connectors.resilience import Proceed, SourceCall
from connectors.resilience.deadline import MIN_ATTEMPT_S


class RateLimit:
    def __init__(
        self,
        source: str,
        rate_per_s: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.rate = rate_per_s
        self.capacity = float(burst if burst is not None else max(1, round(rate_per_s)))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self, longest_wait: float) -> float | None:
        """Take a token now or in the future: the seconds to wait for it, or None when that would
        be longer than `longest_wait` (nothing is taken then)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate
            if wait > longest_wait:
                return None
            self._tokens -= 1
            return wait

    def __call__(self, call: SourceCall, proceed: Proceed) -> NativeRecord:
        wait = self.reserve(call.deadline.budget() - MIN_ATTEMPT_S)
        if wait is None:
            raise SourceRefused(
                call.source,
                f"rate limit of {self.rate:g} calls/s reached; no token before the deadline",
                "rate_limited",
            )
        if wait > 0:
            self._sleep(wait)
        return proceed(call)
