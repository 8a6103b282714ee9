"""Readiness checks: each names what is wrong, a slow or broken check fails on its own."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from bus.ops import health
from bus.ops.health import breakers, joined, readiness


async def test_every_check_runs_and_each_failure_is_named() -> None:
    consumers = [SimpleNamespace(joined=True), SimpleNamespace(joined=False)]

    async def broken() -> str | None:
        raise RuntimeError("boom")

    ready, results = await readiness(
        {
            "consumers": joined(lambda: consumers),
            "breakers": breakers(lambda: {"insurance": "open", "population": "closed"}),
            "broken": broken,
        }
    )
    assert not ready
    assert results == {
        "consumers": "1 consumer(s) not assigned yet",
        "breakers": "ok",
        "broken": "check failed: RuntimeError",
    }
    consumers[1].joined = True
    assert await readiness({"consumers": joined(lambda: consumers)}) == (True, {"consumers": "ok"})


async def test_all_breakers_open_is_not_ready_and_a_hung_check_times_out(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.05)

    async def hung() -> str | None:
        await asyncio.sleep(10)
        return None

    ready, results = await readiness(
        {"breakers": breakers(lambda: {"insurance": "open", "civil": "open"}), "hung": hung}
    )
    assert not ready
    assert results["breakers"] == "every circuit breaker is open (civil, insurance)"
    assert results["hung"] == "no answer within 0.05 s"
