"""Admission control: refuse at once what the bus cannot serve, instead of letting it time out.

Past its capacity a queue only grows, every request in it waits longer, and soon none finishes
before its deadline (congestion collapse). So each client of the bus (the gateway is one) caps
the lookups it has in flight: past the cap a request is refused immediately with `Overloaded`
(the gateway's 503 with Retry-After), and what is admitted is served at full speed. The cap also
bounds the memory a client holds for pending lookups. Requests from clients that do not cap
themselves are shed by the worker, which refuses what waited too long in Kafka (`bus.router`).
"""

from __future__ import annotations

from bus.errors import BusError

DRAIN_RETRY_S = 10.0


class Overloaded(BusError):
    """The bus is past its capacity: ask again after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Admission:
    """A cap on lookups in flight. `admit` before sending, `release` when answered or given up."""

    def __init__(self, max_in_flight: int, retry_after_s: float = 1.0) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused = 0
        # In maintenance (bus/ops/maintenance.py): why; no new lookup, those in flight finish.
        self.draining: str | None = None

    def check(self) -> None:
        """Raise `Overloaded` if a lookup sent now would be refused (nothing is counted)."""
        if self.draining is not None:
            self.refused += 1
            raise Overloaded(
                f"this gateway is in maintenance ({self.draining}): it finishes the lookups in "
                f"flight and takes no new one; retry after {DRAIN_RETRY_S:g} s, or on another "
                "gateway",
                DRAIN_RETRY_S,
            )
        if self.in_flight >= self.max_in_flight:
            self.refused += 1
            raise Overloaded(
                f"{self.in_flight} lookups are in flight, the most this client sends at once "
                f"(max_in_flight); retry after {self.retry_after_s:g} s",
                self.retry_after_s,
            )

    def admit(self) -> None:
        self.check()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
