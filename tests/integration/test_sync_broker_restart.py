"""A broker restart in the middle of a stream loses nothing.

Deaths are recorded in the civil-status sandbox before, while and after a real broker is
stopped and started again on its data (a broker and a stack of this module's own, so that the
restart disturbs no other test): every change reaches `tthc.sync.civil.change`
(the feed connector backs off while the broker is away and resumes from its cursor), and the
subscription `death-removes-residence` delivers every one of them to population, whose own
lookup then shows each residence removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bus.settings import load_settings
from bus.tooling.devstack import DevStack
from tests.conftest import Broker, local_broker
from tests.integration.conftest import SANDBOX_COUNT
from tests.integration.test_sync_feeds import check_stream, wait_for
from tests.integration.test_sync_flows import eventually, lookup

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    yield from local_broker(tmp_path_factory)


@pytest.fixture(scope="module")
def own_stack(own_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    settings = load_settings(kafka={"bootstrap_servers": own_broker.bootstrap_servers})
    with DevStack(
        settings, workdir=tmp_path_factory.mktemp("restart-stack"), sandbox_count=SANDBOX_COUNT
    ) as running:
        yield running


def record_deaths(stack: DevStack, people: list[str]) -> list[tuple[str, int]]:
    """Record each death; (person, its civil sequence) for those not dead already."""
    recorded = []
    for person in people:
        body: dict[str, Any] = {"personal_id": person, "date_of_death": "2026-11-27"}
        answer = requests.post(
            f"{stack.sandbox_url}/_sandbox/record/civil/death", json=body, timeout=10
        )
        if answer.status_code == 400 and "already" in answer.text:
            continue
        assert answer.status_code == 201, answer.text
        recorded.append((person, int(answer.json()["sequence"])))
    return recorded


def test_a_broker_restart_mid_stream_loses_no_change_and_no_delivery(
    own_stack: DevStack, own_broker: Broker
) -> None:
    stack, kafka_broker = own_stack, own_broker
    params: dict[str, Any] = {"source": "population", "n": 60, "seed": 77}
    people = requests.get(f"{stack.sandbox_url}/_sandbox/sample", params=params, timeout=10).json()
    with_residence = [
        p for p in people if lookup(stack, p, "population.residence").get("permanent_address")
    ]
    assert len(with_residence) >= 30
    before = record_deaths(stack, with_residence[:10])
    wait_for(stack, "civil", before[-1][1])
    kafka_broker.stop()
    try:
        during = record_deaths(stack, with_residence[10:20])  # nowhere to produce them now
        time.sleep(3)  # the connector tries, fails and backs off
    finally:
        kafka_broker.start()
    after = record_deaths(stack, with_residence[20:30])
    recorded = before + during + after
    reads = wait_for(stack, "civil", recorded[-1][1], timeout=120)
    check_stream("civil", reads, recorded[-1][1])

    def removed_everywhere() -> bool:
        return not any(
            lookup(stack, person, "population.residence").get("permanent_address")
            for person, _ in recorded
        )

    eventually("every death reaches population", removed_everywhere, 120)
    stack.wait_lookup_ready()
