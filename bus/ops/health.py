"""Liveness and readiness, the same on every process that serves HTTP.

`/healthz` says the process is alive (it answers). `/readyz` says it can do its work: the broker
answers, its consumers have joined their groups (an assignment came, even an empty one), and not
every circuit breaker is open; each check names what is wrong, as JSON, with 503 when one
fails. The checks are small async callables returning None when fine, else the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 3.0


async def readiness(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """Every check run at once: whether all pass, and each one's "ok" or reason."""

    async def run(check: Check) -> str | None:
        try:
            return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except TimeoutError:
            return f"no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as exc:  # a check that fails says so; it does not take the probe down
            return f"check failed: {type(exc).__name__}"

    names = list(checks)
    reasons = await asyncio.gather(*(run(checks[name]) for name in names))
    results = {name: reason or "ok" for name, reason in zip(names, reasons, strict=True)}
    return all(reason is None for reason in reasons), results


def joined(consumers: Callable[[], Iterable[Any]]) -> Check:
    """The group consumers have had an assignment (they joined; the broker answered them)."""

    async def check() -> str | None:
        waiting = [c for c in consumers() if not getattr(c, "joined", True)]
        return f"{len(waiting)} consumer(s) not assigned yet" if waiting else None

    return check


def breakers(states: Callable[[], Mapping[str, str]]) -> Check:
    """Not every source's breaker open: with all open the process can answer nothing."""

    async def check() -> str | None:
        current = states()
        if current and all(state == "open" for state in current.values()):
            return f"every circuit breaker is open ({', '.join(sorted(current))})"
        return None

    return check
