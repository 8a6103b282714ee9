"""Past its capacity the bus refuses early, and keeps serving what it admitted.

A gateway with a small `gateway.max_in_flight` in front of a slow source: the lookups it admits
complete; the others are refused at once (long before the source could have answered) with 503
problem+json and Retry-After, instead of queueing until their deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from bus.tooling.devstack import DevStack, example_lookup
from bus.tooling.kafka_local import free_port
from sandbox.population.generator import PopulationGenerator

pytestmark = pytest.mark.integration

CAP = 3
SOURCE_LATENCY_MS = 1500


@pytest.fixture
def small_gateway(stack: DevStack) -> Iterator[str]:
    port = free_port()
    stack.spawn(
        "gateway-small",
        ["gateway"],
        extra_env={
            "TTHC_BUS_GATEWAY__PORT": str(port),
            "TTHC_BUS_GATEWAY__MAX_IN_FLIGHT": str(CAP),
            "TTHC_BUS_GATEWAY__REPLY_PARTITION": "5",
            "TTHC_BUS_GATEWAY__INSTANCE_ID": "gateway-small",
        },
    )
    url = f"http://127.0.0.1:{port}"
    stack.wait_http("gateway-small", f"{url}/healthz")
    try:
        yield url
    finally:
        stack.stop_child("gateway-small")


@pytest.fixture
def slow_source(stack: DevStack) -> Iterator[None]:
    faults = f"{stack.sandbox_url}/_sandbox/faults"
    requests.put(faults, json={"latency_ms": SOURCE_LATENCY_MS}, timeout=5).raise_for_status()
    try:
        yield
    finally:
        requests.put(faults, json={}, timeout=5).raise_for_status()


def timed_post(
    url: str, body: dict[str, object], headers: dict[str, str]
) -> tuple[requests.Response, float]:
    started = time.monotonic()
    answer = requests.post(f"{url}/v1/lookups", json=body, headers=headers, timeout=30)
    return answer, time.monotonic() - started


def test_past_the_in_flight_cap_lookups_are_refused_at_once_and_the_rest_complete(
    stack: DevStack, population: PopulationGenerator, small_gateway: str, slow_source: None
) -> None:
    subjects = population.sample(4 * CAP, rng_seed=71)
    bodies = [example_lookup(s) | {"deadline_ms": 10_000} for s in subjects]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(
            pool.map(lambda b: timed_post(small_gateway, b, stack.keys.headers()), bodies)
        )

    refused = [(a, t) for a, t in answers if a.status_code == 503]
    served = [(a, t) for a, t in answers if a.status_code == 200]
    assert len(refused) + len(served) == len(answers), [a.status_code for a, _ in answers]
    assert 1 <= len(served) <= CAP + 1  # a refused slot may free up while the others arrive
    assert len(refused) >= len(answers) - CAP - 1
    assert all(a.json()["status"] == "complete" for a, _ in served)
    for answer, elapsed in refused:
        assert answer.headers["content-type"] == "application/problem+json"
        assert int(answer.headers["Retry-After"]) >= 1
        problem = answer.json()
        assert problem["status"] == 503
        assert "max_in_flight" in problem["detail"]
        # Refused without waiting for the source: well before it could have answered.
        assert elapsed < SOURCE_LATENCY_MS / 1000

    # Once the admitted lookups are done, the gateway takes new ones again.
    answer, _ = timed_post(small_gateway, bodies[0], stack.keys.headers())
    assert answer.status_code == 200
