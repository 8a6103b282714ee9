"""A request topic made before the bus asked for LogAppendTime (an upgraded cluster) gets it
at the next start, and keeps its other configs: the router's clock-skew handling needs it."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType  # type: ignore[attr-defined]

from bus import topics

pytestmark = pytest.mark.integration


def configs(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return {k: v.value for k, v in admin.describe_configs([resource])[resource].result(30).items()}


def test_an_existing_topic_gets_the_brokers_timestamps_and_keeps_the_rest(kafka_broker) -> None:  # type: ignore[no-untyped-def]
    bootstrap = kafka_broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    name = f"test.align.{uuid.uuid4().hex[:8]}"
    created = NewTopic(name, 1, 1, config={"retention.ms": "4242000"})
    admin.create_topics([created])[name].result(30)
    assert configs(admin, name)["message.timestamp.type"] == "CreateTime"

    spec = topics.TopicSpec(name, 1, {"message.timestamp.type": "LogAppendTime"})
    assert topics.ensure_topics(bootstrap, [spec]) == []  # nothing created: it exists
    after = configs(admin, name)
    assert after["message.timestamp.type"] == "LogAppendTime"
    assert after["retention.ms"] == "4242000"  # set by hand before, still so
    assert topics.align_configs(bootstrap, [spec]) == []  # already aligned: nothing changed
