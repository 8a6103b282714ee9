"""Kafka-native clients: requests produced straight to `tthc.lookup.request`.

Every request ends in exactly one reply, repeats included; a request that names a reply
destination outside the bus's reply topic is refused, so personal data cannot be sent elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bus import topics
from bus.client import deadline_in
from bus.codec import encode
from bus.schemas import LookupRequest
from bus.tooling.devstack import DEMO_AGENCY, DevStack, example_lookup
from sandbox.population.generator import PopulationGenerator

pytestmark = pytest.mark.integration

TEST_PARTITION = 6  # a reply partition no gateway of the stack uses


@pytest.fixture
def replies(stack: DevStack) -> Iterator[KafkaConsumer]:
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers)
    partition = TopicPartition(topics.LOOKUP_REPLY, TEST_PARTITION)
    consumer.assign([partition])
    consumer.seek_to_end(partition)
    consumer.position(partition)
    yield consumer
    consumer.close()


def produce(stack: DevStack, *bodies: tuple[bytes, list[tuple[str, bytes]]]) -> None:
    """Each body signed as the stack's gateway signs (for agency DEMO_AGENCY)."""
    signer = stack.keys.gateway_signer()
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    for body, headers in bodies:
        signed = [*headers, *signer.headers(DEMO_AGENCY, body)]
        producer.send(topics.LOOKUP_REQUEST, value=body, headers=signed).get(timeout=10)
    producer.close()


def collect(consumer: KafkaConsumer, request_id: str, seconds: float) -> list[dict[str, Any]]:
    found = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for records in consumer.poll(timeout_ms=200).values():
            found += [
                r for r in (json.loads(x.value) for x in records) if r["request_id"] == request_id
            ]
    return found


def request_for(subject: str, **changes: Any) -> LookupRequest:
    body = {key: value for key, value in example_lookup(subject).items() if key != "deadline_ms"}
    defaults = {
        "producer": "test",
        "deadline": deadline_in(3000),
        "reply_to": {"partition": TEST_PARTITION},
    }
    return LookupRequest(**defaults | body | changes)


def test_a_repeated_request_gets_exactly_one_reply(
    stack: DevStack, population: PopulationGenerator, replies: KafkaConsumer
) -> None:
    request = request_for(population.sample(1, rng_seed=41)[0])
    message = encode(request)
    produce(stack, message, message, message)
    got = collect(replies, request.message_id, seconds=4)
    assert [reply["status"] for reply in got] == ["complete"]


def test_invalid_request_with_reply_address_gets_a_failed_reply_naming_the_field(
    stack: DevStack, replies: KafkaConsumer
) -> None:
    data = json.loads(request_for("001090000001").model_dump_json())
    del data["purpose"]
    produce(stack, (json.dumps(data).encode(), [("tthc-type", b"lookup.request")]))
    [reply] = collect(replies, data["message_id"], seconds=4)
    assert reply["status"] == "failed"
    [error] = reply["errors"]
    assert error["code"] == "invalid_request"
    assert "purpose" in error["message"]


def test_reply_to_outside_the_reply_topic_is_refused(
    stack: DevStack, population: PopulationGenerator
) -> None:
    data = json.loads(request_for(population.sample(1, rng_seed=43)[0]).model_dump_json())
    data["reply_to"] = {"topic": "some.other.agency.topic", "partition": 0}
    key = f"evil-{data['message_id']}".encode()
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    producer.send(topics.LOOKUP_REQUEST, key=key, value=json.dumps(data).encode()).get(timeout=10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers)
    partitions = [
        TopicPartition(topics.DEAD_LETTER, p)
        for p in consumer.partitions_for_topic(topics.DEAD_LETTER) or []
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    reasons = []
    end = time.monotonic() + 20
    while not reasons and time.monotonic() < end:
        for records in consumer.poll(timeout_ms=300).values():
            reasons += [
                dict(r.headers)["tthc-dlq-reason"].decode() for r in records if r.key == key
            ]
    consumer.close()
    assert reasons and "reply_to.topic" in reasons[0]
    assert "some.other.agency.topic" not in topics_of(stack)


def topics_of(stack: DevStack) -> set[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_a_request_that_queued_too_long_is_refused_as_overloaded_at_once(
    stack: DevStack, population: PopulationGenerator, replies: KafkaConsumer
) -> None:
    """A backlog in Kafka (the bus past its capacity, for clients that do not cap themselves) is
    shed: a request that waited longer than worker.max_queue_ms, with less time left than it
    waited, gets an explicit, retryable refusal instead of being served late."""
    # A real backlog: the worker stopped (SIGSTOP, within its session timeout) while the request
    # waits 2.5 s in the topic; the broker stamps it (LogAppendTime), so no producer can fake
    # its age. Resumed, the worker finds it queued 2.5 s with 1.5 s left: refused.
    request = request_for(population.sample(1, rng_seed=47)[0], deadline=deadline_in(4000))
    body, headers = encode(request)
    headers = [*headers, *stack.keys.gateway_signer().headers(DEMO_AGENCY, body)]
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    os.kill(stack.worker_pid, signal.SIGSTOP)
    try:
        producer.send(topics.LOOKUP_REQUEST, value=body, headers=headers).get(timeout=10)
        time.sleep(2.5)
    finally:
        os.kill(stack.worker_pid, signal.SIGCONT)
    producer.close()

    [reply] = collect(replies, request.message_id, seconds=6)
    assert reply["status"] == "failed"
    [error] = reply["errors"]
    assert (error["code"], error["retryable"]) == ("overloaded", True)
    assert "waited" in error["message"]
    assert reply["retry_after_ms"] >= 1000
