"""Deadline middleware: each attempt gets the time left, capped by the source's own timeout."""

from __future__ import annotations

from adapters.base import NativeRecord
from bus.errors import SourceTimeout
from connectors.resilience import Proceed, SourceCall

# Below this much time left, an attempt could not finish before the deadline.
MIN_ATTEMPT_S = 0.05
# An attempt ends this much before the deadline's budget, where the connector stops waiting
# for its thread (connectors/lookup.py `_fetch`): the attempt's own error (nothing came, or not
# all of it) then reaches the reply before that backstop's bare "no answer before the deadline".
ATTEMPT_MARGIN_S = 0.05


class DeadlineGuard:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def __call__(self, call: SourceCall, proceed: Proceed) -> NativeRecord:
        remaining = call.deadline.budget()
        if remaining < MIN_ATTEMPT_S:
            raise SourceTimeout(call.source, "request deadline passed before the call")
        call.timeout = min(self.timeout_s, max(remaining - ATTEMPT_MARGIN_S, MIN_ATTEMPT_S))
        return proceed(call)
