"""Bulkhead: a cap on the calls in flight to one source, checked before a pool thread is taken.

Calls beyond `concurrency` wait for a thread of the source's pool; beyond `concurrency +
max_waiting` they are refused at once (`SourceRefused` "bulkhead_full"), so that one slow source
cannot hold every request the worker admits, and the others keep being served. `max_waiting`
None means no cap (the deadline bounds the wait). It lives on the event loop (no lock: one
thread enters and leaves it).
"""

from __future__ import annotations

from bus.errors import SourceRefused


class Bulkhead:
    def __init__(self, source: str, concurrency: int, max_waiting: int | None) -> None:
        self.source = source
        self.limit = None if max_waiting is None else concurrency + max_waiting
        self.in_flight = 0

    def enter(self) -> None:
        if self.limit is not None and self.in_flight >= self.limit:
            raise SourceRefused(
                self.source,
                f"{self.in_flight} calls already in flight to this source (limit {self.limit})",
                "bulkhead_full",
            )
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
