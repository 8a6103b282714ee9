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


@pytest.mark.parametrize(("skew_s", "source_ms"), [(-60.0, 0), (60.0, 8000)])
def test_a_requester_whose_clock_is_a_minute_off_gets_its_answer_in_time(
    stack: DevStack, skew_s: float, source_ms: int
) -> None:
    """Behind, its deadline had passed on arrival: without the stamp it was dropped unanswered.
    Ahead, the bus would take up to the longest deadline: with the population database slow
    (8 s) it answered after the requester had stopped waiting; now within the 5 s it gave."""
    [person] = requests.get(f"{stack.sandbox_url}/_sandbox/sample?n=1", timeout=10).json()
    body = {k: v for k, v in example_lookup(person).items() if k != "deadline_ms"}
    faults = f"{stack.sandbox_url}/_sandbox/faults/population"

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

    requests.put(faults, json={"latency_ms": source_ms}, timeout=5).raise_for_status()
    try:
        reply, took = asyncio.run(ask())
    finally:
        requests.put(faults, json={}, timeout=5).raise_for_status()
    assert reply is not None, f"no answer within the 5 s the requester gave (clock {skew_s:+.0f} s)"
    answer = reply.response()
    if source_ms:  # the source is slower than the time given: said so, in time
        assert answer.status == "failed", answer
        assert {e.code for e in answer.errors} <= {"timeout", "deadline_exceeded"}, answer
    else:
        assert answer.status == "complete", answer
    row(
        f"requester clock {skew_s:+.0f} s"
        + (f", database {source_ms / 1000:.0f} s slow" if source_ms else ""),
        "one Kafka-native lookup, 5 s deadline",
        f"answered {answer.status} ({', '.join(e.code for e in answer.errors) or 'found'}) in "
        f"{took * 1000:.0f} ms, within the 5 s given (deadline counted from the broker's stamp)",
    )
