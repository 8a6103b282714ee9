"""A worker killed with SIGKILL under load: every lookup accepted around the kill ends in exactly
one answer as the requester sees it. Nothing is lost: requests the dead worker had read but not
committed are read again by its successor (at-least-once), and the client drops any repeat.

The load mixes single-dataset lookups and dossier prefills of four datasets from three sources,
both answered in the worker's process (tests/integration/test_split_workers.py kills a worker
under prefills that take the aggregator's path)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from bus.client import LookupClient
from bus.deadline import deadline_in
from bus.schemas import LookupRequest, LookupResponse
from bus.tooling.devstack import DevStack, example_lookup
from sandbox.population.generator import PopulationGenerator

pytestmark = pytest.mark.integration

RATE_PER_S = 40
BEFORE_KILL_S = 2.0
AFTER_KILL_S = 4.0
# Long enough to outlast the dead member's session timeout and the rebalance that follows.
DEADLINE_MS = 30_000
REPLY_PARTITION = 4  # no gateway of the stack uses it


PREFILL = {
    "procedure_code": "SB.LT-KT-XTT-MT",
    "purpose": "Đăng ký khai tử",
    "datasets": [
        "population.identity",
        "population.residence",
        "civil.events",
        "insurance.participation",
    ],
}


def lookup_request(subject: str, number: int) -> LookupRequest:
    """Every other request a prefill."""
    body = example_lookup(subject) | {"dossier_id": f"CRASH-{number}"}
    if number % 2:
        body |= PREFILL
    body.pop("deadline_ms", None)
    return LookupRequest(producer="crash-test", deadline=deadline_in(DEADLINE_MS), **body)


def check_answer(request: LookupRequest, reply: LookupResponse) -> None:
    """Every dataset answered: found, or not found by a source without such a record."""
    answered = [r.dataset for r in reply.results] + [e.dataset for e in reply.errors]
    assert sorted(answered) == sorted(request.datasets), reply
    assert {e.code for e in reply.errors} <= {"not_found"}, reply
    if request.datasets == ["population.identity"]:
        assert reply.status == "complete", reply


async def test_every_lookup_around_a_worker_kill_gets_exactly_one_answer(
    stack: DevStack, population: PopulationGenerator
) -> None:
    subjects = population.sample(50, rng_seed=81)
    answers: dict[str, list[LookupResponse | None]] = {}
    sent: dict[str, LookupRequest] = {}

    async def one(request: LookupRequest) -> None:
        sent[request.message_id] = request
        reply = await client.lookup(request)
        answers.setdefault(request.message_id, []).append(reply)

    async with LookupClient(
        stack.bootstrap_servers, REPLY_PARTITION, "crash-test", signer=stack.keys.gateway_signer()
    ) as client:
        tasks: list[asyncio.Task[None]] = []
        started = time.monotonic()
        killed = False
        number = 0
        while time.monotonic() - started < BEFORE_KILL_S + AFTER_KILL_S:
            if not killed and time.monotonic() - started >= BEFORE_KILL_S:
                os.killpg(stack.worker_pid, signal.SIGKILL)
                stack.children.pop("worker").process.wait()
                stack.spawn("worker", ["worker"])
                killed = True
            request = lookup_request(subjects[number % len(subjects)], number)
            tasks.append(asyncio.create_task(one(request)))
            number += 1
            await asyncio.sleep(1 / RATE_PER_S)
        await asyncio.gather(*tasks)

    assert len(answers) == number
    assert all(len(got) == 1 for got in answers.values())  # one answer each, as the client sees
    lost = [rid for rid, [reply] in answers.items() if reply is None]
    assert lost == [], f"{len(lost)} of {number} lookups had no reply before their deadline"
    for request_id, [reply] in answers.items():
        assert reply is not None
        check_answer(sent[request_id], reply)
    stack.wait_lookup_ready()
