"""Synchronous looks at Kafka for the control plane: the latest value per key of a compacted
topic, partition offsets, a group's committed offsets, offsets by time, and an offset reset.

All of it is short-lived confluent-kafka clients, none joining a group: the `sync` and `dlq`
commands call these directly, the running subscription in a thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import confluent_kafka

from bus.errors import BusError
from bus.kafka import _transient, common_config

TopicPartition = tuple[str, int]
TIMEOUT_S = 10.0
T = TypeVar("T")


class OffsetsError(BusError):
    """Kafka did not answer a control-plane question (the message says which)."""


def _consumer(bootstrap: str, group: str | None = None) -> confluent_kafka.Consumer:
    config = common_config(bootstrap, "tthc-bus-sync-admin") | {
        "group.id": group or f"tthc-bus-sync-admin-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    return confluent_kafka.Consumer(config)


def _patient(call: Callable[[], T], what: str, wait_s: float = 30.0) -> T:
    """`call`, tried again while Kafka's error is transient (a new topic's leader election)."""
    ends = time.monotonic() + wait_s
    while True:
        try:
            return call()
        except confluent_kafka.KafkaException as exc:
            if not _transient(exc.args[0]) or time.monotonic() > ends:
                raise OffsetsError(f"{what}: {exc.args[0]}") from None
            time.sleep(0.2)


def _watermarks(consumer: confluent_kafka.Consumer, topic: str, partition: int) -> tuple[int, int]:
    tp = confluent_kafka.TopicPartition(topic, partition)
    low, high = _patient(
        lambda: consumer.get_watermark_offsets(tp, timeout=TIMEOUT_S),
        f"{topic}[{partition}]: watermarks",
    )
    return int(low), int(high)


def partitions_of(consumer: confluent_kafka.Consumer, topic: str) -> list[int]:
    """The partitions of `topic`; [] if it does not exist."""
    metadata = consumer.list_topics(topic, timeout=TIMEOUT_S)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        return []
    return sorted(described.partitions)


def watermarks(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, tuple[int, int]]:
    """(low, high) offsets of every partition of `topics` (missing topics: none)."""
    consumer = _consumer(bootstrap)
    try:
        marks = {}
        for topic in topics:
            for partition in partitions_of(consumer, topic):
                marks[(topic, partition)] = _watermarks(consumer, topic, partition)
        return marks
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, *, start: Mapping[int, int] | None = None) -> list[Any]:
    """Every record of `topic` from `start` (partition -> offset; default: the beginning) to
    the end offsets seen when it was called, as confluent messages in offset order per
    partition."""
    consumer = _consumer(bootstrap)
    try:
        ends = {}
        assignment = []
        for partition in partitions_of(consumer, topic):
            low, high = _watermarks(consumer, topic, partition)
            first = max(low, (start or {}).get(partition, low))
            if first < high:
                ends[partition] = high
                assignment.append(confluent_kafka.TopicPartition(topic, partition, first))
        if not assignment:
            return []
        consumer.assign(assignment)
        messages: list[Any] = []
        done: set[int] = set()
        while len(done) < len(ends):
            message = consumer.poll(TIMEOUT_S)
            if message is None:
                raise OffsetsError(f"{topic}: no record within {TIMEOUT_S:g} s before its end")
            error = message.error()
            partition = int(message.partition() or 0)
            if error is not None:
                if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    done.add(partition)
                    continue
                raise OffsetsError(f"{topic}: {error.str()}")
            offset = int(message.offset() or 0)
            if offset >= ends[partition]:
                done.add(partition)
                continue
            messages.append(message)
            if offset + 1 >= ends[partition]:
                done.add(partition)
        return messages
    finally:
        consumer.close()


def last_record_times(bootstrap: str, topics: Iterable[str]) -> dict[str, datetime | None]:
    """Per topic, the time of its newest record (the latest of each partition's last one)."""
    latest: dict[str, datetime | None] = {}
    for topic in topics:
        ends = watermarks(bootstrap, [topic])
        start = {p: high - 1 for (_, p), (low, high) in ends.items() if high > low}
        stamps = [m.timestamp()[1] for m in read_all(bootstrap, topic, start=start)]
        latest[topic] = datetime.fromtimestamp(max(stamps) / 1000, tz=UTC) if stamps else None
    return latest


def read_latest(bootstrap: str, topic: str, *, key_prefix: str = "") -> dict[str, bytes]:
    """The last value of each key (starting with `key_prefix`) of a compacted topic; a key whose
    last record is a tombstone is absent."""
    latest: dict[str, bytes] = {}
    for message in read_all(bootstrap, topic):
        key = (message.key() or b"").decode("utf-8", "replace")
        if not key.startswith(key_prefix):
            continue
        value = message.value()
        if value is None:
            latest.pop(key, None)
        else:
            latest[key] = value
    return latest


def committed(
    bootstrap: str, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The offsets `group` committed (None: nothing committed for that partition)."""
    wanted = [confluent_kafka.TopicPartition(t, p) for t, p in partitions]
    if not wanted:
        return {}
    consumer = _consumer(bootstrap, group)
    try:
        answer = _patient(
            lambda: consumer.committed(wanted, timeout=TIMEOUT_S), f"group {group}: committed"
        )
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in answer}


def offsets_at(bootstrap: str, topics: Iterable[str], when: datetime) -> dict[TopicPartition, int]:
    """For each partition, the offset of the first record written at or after `when` (the end
    offset if there is none)."""
    consumer = _consumer(bootstrap)
    try:
        millis = int(when.timestamp() * 1000)
        wanted = [
            confluent_kafka.TopicPartition(topic, partition, millis)
            for topic in topics
            for partition in partitions_of(consumer, topic)
        ]
        if not wanted:
            return {}
        found = _patient(
            lambda: consumer.offsets_for_times(wanted, timeout=TIMEOUT_S), "offsets by time"
        )
        offsets = {}
        for tp in found:
            offset = tp.offset
            if offset < 0:  # no record that late: the end
                _, offset = _watermarks(consumer, tp.topic, tp.partition)
            offsets[(tp.topic, tp.partition)] = int(offset)
        return offsets
    finally:
        consumer.close()


def commit_offsets(bootstrap: str, group: str, offsets: Mapping[TopicPartition, int]) -> None:
    """Commit `offsets` for `group` from outside it. Kafka takes this only while the group has
    no member (KafkaException otherwise, as for kafka-consumer-groups --reset-offsets)."""
    if not offsets:
        return
    consumer = _consumer(bootstrap, group)
    try:
        consumer.commit(
            offsets=[confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            asynchronous=False,
        )
    except confluent_kafka.KafkaException as exc:
        raise OffsetsError(f"group {group}: commit: {exc.args[0]}") from None
    finally:
        consumer.close()


def produce(bootstrap: str, topic: str, key: str, value: bytes | None) -> None:
    """One record, acknowledged by the broker (acks=all) before it returns."""
    producer = confluent_kafka.Producer(
        common_config(bootstrap, "tthc-bus-sync-admin") | {"acks": "all"}
    )
    errors: list[Any] = []
    producer.produce(topic, value, key=key.encode(), on_delivery=lambda e, _m: errors.append(e))
    left = producer.flush(TIMEOUT_S)
    if left or (errors and errors[0] is not None):
        raise OffsetsError(f"{topic}: not acknowledged: {errors[0] if errors else 'timed out'}")
