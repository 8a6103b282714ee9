"""The sync source connectors end to end: each sandbox database's change feed, polled by the
stack's worker over real HTTP/SOAP, reaches `tthc.sync.<source>.change` on the real broker as
normalized events whose ids come from the source's own sequence, keyed by entity, in order; a
connector restarted (its worker killed) resumes from its cursor with no loss and no new ids.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import confluent_kafka
import orjson
import pytest
import requests

from bus import topics
from bus.codec import decode
from bus.schemas.change import ChangeEvent
from bus.tooling.devstack import DevStack

pytestmark = pytest.mark.integration

SOURCES = ("civil", "population", "insurance", "licence", "enterprise")


@dataclass(frozen=True)
class Read:
    event: ChangeEvent
    key: str
    partition: int
    offset: int


def head(stack: DevStack, source: str) -> int:
    """The last sequence of a sandbox database's change log."""
    answer = requests.get(
        f"{stack.sandbox_url}/_sandbox/changes/{source}",
        params={"after": 10**9, "limit": 1},
        timeout=10,
    )
    answer.raise_for_status()
    return int(answer.json()["head"])


def read_all(bootstrap: str, topic: str) -> list[Read]:
    """Every record of `topic`, from the start to the end it had when asked."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "sync-feeds-test", "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        ends: dict[int, int] = {}
        parts = []
        for number in metadata.partitions:
            part = confluent_kafka.TopicPartition(topic, number)
            low, high = watermarks(consumer, part)
            if high > low:
                ends[number] = high
                parts.append(confluent_kafka.TopicPartition(topic, number, low))
        consumer.assign(parts)
        found: list[Read] = []
        deadline = time.monotonic() + 60
        while ends and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            headers = {k: (v or b"").decode() for k, v in message.headers() or []}
            event = decode(ChangeEvent, message.value(), headers)
            partition, offset = message.partition(), message.offset()
            found.append(Read(event, message.key().decode(), partition, offset))
            if offset + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
        assert not ends, f"{topic}: not read to the end: {ends}"
        return found
    finally:
        consumer.close()


def watermarks(consumer: confluent_kafka.Consumer, part: Any) -> tuple[int, int]:
    """A partition's offsets, waiting out a leader election (after a broker restart)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            low, high = consumer.get_watermark_offsets(part, timeout=10)
            return int(low), int(high)
        except confluent_kafka.KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_for(stack: DevStack, source: str, sequence: int, timeout: float = 90.0) -> list[Read]:
    """Read the stream until it holds the event of `sequence`."""
    wanted = f"{source}.{sequence}"
    deadline = time.monotonic() + timeout
    while True:
        reads = read_all(stack.bootstrap_servers, topics.sync_change(source))
        if any(read.event.message_id == wanted for read in reads):
            return reads
        if time.monotonic() > deadline:
            have = max((read.event.sequence for read in reads), default=0)
            raise AssertionError(f"{wanted} not on the stream in {timeout:.0f} s (last: {have})")
        time.sleep(1)


def check_stream(source: str, reads: list[Read], upto: int, head_now: int | None = None) -> None:
    """No change lost, none made up, repeats identical, each entity's events in order: the
    stream holds every change from 1 to at least `upto`, and nothing past the log's head
    `head_now` (the log may have grown while the stream was read: the subscriptions' updates
    append to population and insurance)."""
    by_id: dict[str, ChangeEvent] = {}
    for read in reads:
        event = read.event
        assert event.message_id == f"{source}.{event.sequence}"
        assert read.key == event.entity
        seen = by_id.setdefault(event.message_id, event)
        assert seen.model_dump(exclude={"time", "producer"}) == event.model_dump(
            exclude={"time", "producer"}
        ), "a change read twice must give the same event"
        event.typed()  # its data fits its type
    sequences = {event.sequence for event in by_id.values()}
    reached = max(sequences, default=0)
    assert upto <= reached <= (upto if head_now is None else head_now)
    assert sequences == set(range(1, reached + 1))  # every native kind maps to an event today
    per_entity: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for read in reads:
        per_entity[read.key].append((read.offset, read.event.sequence))
    for entity_reads in per_entity.values():
        by_offset = [sequence for _, sequence in sorted(entity_reads)]
        firsts = list(dict.fromkeys(by_offset))  # a re-read page repeats, in the same order
        assert firsts == sorted(firsts), "one entity's events out of order"


def test_every_feed_reaches_its_stream_normalized_in_order_with_ids_from_its_sequence(
    stack: DevStack,
) -> None:
    for source in SOURCES:
        last = head(stack, source)
        assert last > 0, f"{source}: the sandbox feed is empty"
        reads = wait_for(stack, source, last)
        check_stream(source, reads, last, head(stack, source))


def test_a_connector_killed_mid_stream_resumes_from_its_cursor_without_loss_or_new_ids(
    stack: DevStack,
) -> None:
    civil = stack.sandbox_url + "/_sandbox/record/civil"
    sample = requests.get(
        f"{stack.sandbox_url}/_sandbox/sample", params={"n": 30, "seed": 404}, timeout=10
    ).json()

    def record_deaths(people: list[str]) -> int:
        sequence = 0
        for person in people:
            body: dict[str, Any] = {"personal_id": person, "date_of_death": "2026-11-30"}
            answer = requests.post(f"{civil}/death", json=body, timeout=10)
            if answer.status_code == 400 and "already" in answer.text:
                continue  # the world has this one dead already
            assert answer.status_code == 201, answer.text
            sequence = int(answer.json()["sequence"])
        return sequence

    before = record_deaths(sample[:10])
    wait_for(stack, "civil", before)
    os.killpg(stack.worker_pid, signal.SIGKILL)  # no clean stop: no last cursor write
    stack.children.pop("worker").process.wait()
    after = record_deaths(sample[10:])  # recorded while no connector runs
    stack.spawn_worker(1)
    stack.wait_lookup_ready()
    reads = wait_for(stack, "civil", after)
    check_stream("civil", reads, after, head(stack, "civil"))
    cursors = read_cursor(stack.bootstrap_servers, "civil")
    assert int(cursors) >= after


def read_cursor(bootstrap: str, source: str) -> str:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "sync-cursor-test",
            "enable.auto.commit": False,
        }
    )
    try:
        part = confluent_kafka.TopicPartition(topics.SYNC_CURSORS, 0)
        low, high = consumer.get_watermark_offsets(part, timeout=10)
        consumer.assign([confluent_kafka.TopicPartition(topics.SYNC_CURSORS, 0, low)])
        cursor = ""
        while True:
            message = consumer.poll(2)
            if message is None:
                break
            if message.error() is None and message.key() == source.encode():
                cursor = orjson.loads(message.value())["cursor"]
            if message.offset() + 1 >= high:
                break
        return cursor
    finally:
        consumer.close()
