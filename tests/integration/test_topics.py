"""Topics are created explicitly, once; a topic the bus cannot work with stops the start."""

from __future__ import annotations

import uuid

import pytest

from bus.topics import AUDIT, SOURCE_RESULT, TopicMismatch, TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


def test_topics_are_created_once(kafka_broker) -> None:  # type: ignore[no-untyped-def]
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    servers = kafka_broker.bootstrap_servers
    assert ensure_topics(servers, [TopicSpec(name, 3)]) == [name]
    assert ensure_topics(servers, [TopicSpec(name, 3)]) == []
    # a topic scaled on purpose (not co-partitioned with anything) is accepted as it is
    assert ensure_topics(servers, [TopicSpec(name, 6)]) == []


def test_a_result_topic_not_co_partitioned_with_the_table_is_refused(kafka_broker) -> None:  # type: ignore[no-untyped-def]
    servers = kafka_broker.bootstrap_servers
    ensure_topics(servers, [TopicSpec(SOURCE_RESULT, 6)])  # what the settings create
    with pytest.raises(TopicMismatch, match=rf"{SOURCE_RESULT} has 6 partitions, expected 4"):
        ensure_topics(servers, [TopicSpec(SOURCE_RESULT, 4)])


def test_an_audit_topic_with_fewer_partitions_than_the_recorder_sends_to_is_refused(
    kafka_broker,  # type: ignore[no-untyped-def]
) -> None:
    servers = kafka_broker.bootstrap_servers
    ensure_topics(servers, [TopicSpec(AUDIT, 6)])
    ensure_topics(servers, [TopicSpec(AUDIT, 4)])  # more partitions than asked for: fine
    with pytest.raises(TopicMismatch, match=rf"{AUDIT} has 6 partitions, expected at least 8"):
        ensure_topics(servers, [TopicSpec(AUDIT, 8)])
