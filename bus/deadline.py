"""The one place that computes time left before a request's deadline.

A request carries an absolute deadline (an aware datetime on the wire). Everything that waits on
its behalf (the client, the router, a source call and its retries) asks a `Deadline` how much time
is left, and the bus answers a little *before* the deadline (`REPLY_MARGIN_S`), so that the answer
reaches the requester while it still waits: no reply is ever sent after its deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# The bus's own answer for a request whose sources did not answer in time goes out this long
# before the deadline: a produce and a fetch on a loaded broker take a few milliseconds.
REPLY_MARGIN_S = 0.025


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute deadline, as seconds since the epoch (wall clock: it crosses processes)."""

    at: float

    @classmethod
    def of(cls, when: datetime) -> Deadline:
        return cls(when.timestamp())

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.time() + seconds)

    def remaining(self, now: float | None = None) -> float:
        """Seconds left (negative once passed)."""
        return self.at - (time.time() if now is None else now)

    def expired(self, now: float | None = None) -> bool:
        return self.remaining(now) <= 0

    def budget(self, margin: float = REPLY_MARGIN_S) -> float:
        """Seconds a piece of work may take so that its answer still goes out in time."""
        return self.remaining() - margin

    def capped(self, longest: float, now: float | None = None) -> Deadline:
        """This deadline, or `longest` seconds from now if that is sooner."""
        limit = (time.time() if now is None else now) + longest
        return self if self.at <= limit else Deadline(limit)

    def as_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


def deadline_in(milliseconds: int) -> datetime:
    """The wire form of a deadline `milliseconds` from now."""
    return datetime.now(UTC) + timedelta(milliseconds=milliseconds)
