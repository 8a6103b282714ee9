"""Topics are created explicitly, once, with the partitions the settings name."""

from __future__ import annotations

import uuid

import pytest

from bus.topics import TopicMismatch, TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


def test_topics_are_created_once_and_a_partition_mismatch_is_refused(kafka_broker) -> None:  # type: ignore[no-untyped-def]
    name = f"test.topics.{uuid.uuid4().hex[:8]}"
    servers = kafka_broker.bootstrap_servers
    assert ensure_topics(servers, [TopicSpec(name, 3)]) == [name]
    assert ensure_topics(servers, [TopicSpec(name, 3)]) == []
    with pytest.raises(TopicMismatch, match=rf"{name} has 3 partitions, expected 6"):
        ensure_topics(servers, [TopicSpec(name, 6)])
