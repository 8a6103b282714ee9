"""A requester whose clock is a minute off, on the real bus: the broker stamps each request as
it appends it (LogAppendTime on tthc.lookup.request), and the router counts the deadline from
that stamp with the time the requester meant to give. Before, a clock a minute behind made
every deadline pass on arrival: the lookup was dropped and the requester saw nothing."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from bus.client import LookupClient
from bus.deadline import Deadline, deadline_in
from bus.schemas import LookupRequest
from bus.settings import PROJECT_ROOT
from bus.tooling.devstack import DEMO_AGENCY, DevStack, example_lookup

pytestmark = pytest.mark.integration

FAULTS = PROJECT_ROOT / ".run" / "faults" / "clients.jsonl"


def row(fault: str, load: str, measured: str) -> None:
    FAULTS.parent.mkdir(parents=True, exist_ok=True)
    line = {"fault": fault, "load": load, "measured": measured, "lost": 0, "duplicated": 0}
    with Path(FAULTS).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("skew_s", [-60.0, 60.0])
def test_a_requester_whose_clock_is_a_minute_off_gets_its_answer_in_time(
    stack: DevStack, skew_s: float
) -> None:
    [person] = requests.get(f"{stack.sandbox_url}/_sandbox/sample?n=1", timeout=10).json()
    body = {k: v for k, v in example_lookup(person).items() if k != "deadline_ms"}

    async def ask() -> tuple[Any, float]:
        client = LookupClient.for_agency(
            stack.bootstrap_servers, stack.keys.agencies[DEMO_AGENCY], DEMO_AGENCY, "skewed"
        )
        async with client:
            request = LookupRequest(
                **body, producer="skewed", deadline=deadline_in(5000), reply_to=client.reply_to
            )
            # Its clock is skew_s off: its time and its deadline are, by as much.
            shift = timedelta(seconds=skew_s)
            request = request.model_copy(
                update={"time": request.time + shift, "deadline": request.deadline + shift}
            )
            started = time.monotonic()
            # It waits the 5 s it gave, by its own (consistent) clock.
            reply = await client.exchange_message(request, Deadline.after(5.0))
            return reply, time.monotonic() - started

    reply, took = asyncio.run(ask())
    assert reply is not None, f"no answer within the 5 s the requester gave (clock {skew_s:+.0f} s)"
    answer = reply.response()
    assert answer.status == "complete", answer
    row(
        f"requester clock {skew_s:+.0f} s",
        "one Kafka-native lookup, 5 s deadline",
        f"answered {answer.status} in {took * 1000:.0f} ms (deadline counted from the broker's "
        "stamp)",
    )
