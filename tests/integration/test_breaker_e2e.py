"""A source outage through the whole bus: its circuit breaker opens, the other sources keep
answering, and the breaker closes when the source is back."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from bus.settings import load_settings
from bus.tooling.devstack import DevStack, example_lookup

pytestmark = pytest.mark.integration

SETTINGS = load_settings()


def lookup(stack: DevStack, dataset: str, subject: str) -> dict[str, Any]:
    body = example_lookup(subject) | {"datasets": [dataset], "deadline_ms": 3000}
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    )
    return dict(answer.json())


def sample(stack: DevStack, source: str, n: int) -> list[str]:
    answer = requests.get(
        f"{stack.sandbox_url}/_sandbox/sample", params={"source": source, "n": n}, timeout=10
    )
    return list(answer.json())


def faults(stack: DevStack, source: str, **values: Any) -> None:
    url = f"{stack.sandbox_url}/_sandbox/faults/{source}"
    requests.put(url, json=values, timeout=10).raise_for_status()


def error_codes(reply: dict[str, Any]) -> list[str]:
    return [error["code"] for error in reply.get("errors", [])]


def test_breaker_opens_on_an_outage_leaves_other_sources_alone_and_closes(
    stack: DevStack,
) -> None:
    licence_holders = sample(stack, "licence", 3)
    citizens = sample(stack, "population", 3)
    failures = SETTINGS.source("licence").breaker_failures
    reset_s = SETTINGS.source("licence").breaker_reset_s
    try:
        faults(stack, "licence", outage=True)
        codes: list[str] = []
        for _ in range(failures + 3):
            codes += error_codes(lookup(stack, "licence.driver", licence_holders[0]))
        assert "unavailable" in codes  # the outage itself, before the breaker opened
        assert codes[-1] == "circuit_open"  # then refused without calling the source
        started = time.monotonic()
        refused = lookup(stack, "licence.driver", licence_holders[0])
        assert error_codes(refused) == ["circuit_open"]
        assert time.monotonic() - started < 1.0  # refused at once, not after a timeout
        for personal_id in citizens:  # the population database is not affected
            assert lookup(stack, "population.identity", personal_id)["status"] == "complete"
    finally:
        faults(stack, "licence")
    time.sleep(reset_s + 0.5)
    deadline = time.monotonic() + 10
    while lookup(stack, "licence.driver", licence_holders[1])["status"] != "complete":
        assert time.monotonic() < deadline, "the breaker did not close after the source was back"
        time.sleep(0.5)
    assert lookup(stack, "licence.driver", licence_holders[2])["status"] == "complete"
