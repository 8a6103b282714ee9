"""The retry budget around one delivery: tenacity, jittered exponential backoff.

The n-th pause is a random time between half and all of `min(backoff_max, backoff_first *
2**(n-1))` ("equal jitter"): it doubles like plain exponential backoff, and subscribers that
failed together do not all come back at the same instant, even once the cap is reached. A
permanent failure (`DeliveryFailed.permanent`) is not retried; past `max_attempts` the event is
given up, for the dead-letter queue.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from bus.schemas.change import ChangeEvent
from bus.schemas.common import utc_now
from bus.settings import Subscription
from bus.sync.sinks import DeliveryFailed, Sink


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    first_s: float
    max_s: float

    @classmethod
    def of(cls, subscription: Subscription) -> RetryPolicy:
        return cls(
            subscription.max_attempts,
            subscription.backoff_first_ms / 1000,
            max(subscription.backoff_max_ms, subscription.backoff_first_ms) / 1000,
        )

    def pause_s(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """The pause after the `failures`-th failure in a row (1, 2, ...)."""
        ceiling: float = min(self.max_s, self.first_s * 2.0 ** (failures - 1))
        return ceiling * (0.5 + 0.5 * rand())


class _EqualJitter(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.policy.pause_s(int(retry_state.attempt_number))


@dataclass(frozen=True)
class GivenUp:
    """A delivery that failed for good: what the dead letter says."""

    reason: str
    attempts: int
    permanent: bool
    first_failed: datetime
    last_failed: datetime


Blocking = Callable[[Callable[[], None]], Awaitable[None]]


async def _in_thread(call: Callable[[], None]) -> None:
    await asyncio.to_thread(call)


async def deliver_with_retries(
    sink: Sink,
    event: ChangeEvent,
    policy: RetryPolicy,
    run: Blocking = _in_thread,
    *,
    on_failure: Callable[[str], None] | None = None,
) -> GivenUp | None:
    """Deliver `event`, retrying what may succeed later; None once delivered, else why not.
    `run` calls the blocking sink (in a thread pool); `on_failure` hears of each failed try.
    Cancellation stops the retries at once."""
    return await _with_retries(lambda: sink.deliver(event), policy, run, on_failure)


async def deliver_batch_with_retries(
    sink: Sink,
    events: Sequence[ChangeEvent],
    policy: RetryPolicy,
    run: Blocking = _in_thread,
    *,
    on_failure: Callable[[str], None] | None = None,
) -> GivenUp | None:
    """`deliver_with_retries` for several events in one delivery (`Sink.deliver_batch`)."""
    return await _with_retries(lambda: sink.deliver_batch(events), policy, run, on_failure)


async def _with_retries(
    send: Callable[[], None],
    policy: RetryPolicy,
    run: Blocking,
    on_failure: Callable[[str], None] | None,
) -> GivenUp | None:
    failures: list[tuple[datetime, DeliveryFailed]] = []

    async def attempt() -> None:
        try:
            await run(send)
        except DeliveryFailed as exc:
            failures.append((utc_now(), exc))
            if on_failure is not None:
                on_failure(exc.reason)
            raise

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=_EqualJitter(policy),
        retry=retry_if_exception(lambda exc: isinstance(exc, DeliveryFailed) and not exc.permanent),
        reraise=True,
    )
    try:
        await retrying(attempt)
    except DeliveryFailed as last:
        return GivenUp(
            reason=last.reason,
            attempts=len(failures),
            permanent=last.permanent,
            first_failed=failures[0][0],
            last_failed=failures[-1][0],
        )
    return None
