"""Retry middleware: tenacity, jittered exponential backoff, never an attempt past the deadline.

Only retryable source errors are retried, and not the bus's own refusals (`SourceRefused`: an
open breaker or a spent quota would refuse again at once).
"""

from __future__ import annotations

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from adapters.base import NativeRecord
from bus.errors import SourceError, SourceRefused
from connectors.resilience import Proceed, SourceCall
from connectors.resilience.deadline import MIN_ATTEMPT_S


class StopAtDeadline(stop_base):
    """Stop when the coming backoff would leave less than one attempt's time before the
    deadline of the call (the first argument): no attempt starts too late."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        call: SourceCall = retry_state.args[0]
        return call.deadline.budget() - retry_state.upcoming_sleep < MIN_ATTEMPT_S


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, SourceError) and exc.retryable and not isinstance(exc, SourceRefused)


class Retry:
    def __init__(self, retries: int, backoff_s: float, max_backoff_s: float = 1.0) -> None:
        # One Retrying for every call (tenacity keeps per-call state per thread): building one
        # per call was 2 % of the worker's CPU.
        self._retrying = Retrying(
            stop=stop_after_attempt(retries + 1) | StopAtDeadline(),
            wait=wait_random_exponential(multiplier=backoff_s, max=max_backoff_s),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )

    def __call__(self, call: SourceCall, proceed: Proceed) -> NativeRecord:
        def attempt(current: SourceCall) -> NativeRecord:
            current.attempts += 1
            return proceed(current)

        return self._retrying(attempt, call)
