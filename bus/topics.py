"""Topic names and their creation. All names live here; nothing else spells a topic."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from bus.errors import BusError

LOOKUP_REQUEST = "tthc.lookup.request"
LOOKUP_REPLY = "tthc.lookup.reply"
SOURCE_RESULT = "tthc.source.result"
DEAD_LETTER = "tthc.deadletter"
AUDIT = "tthc.audit"
STATUS = "tthc.status"
# Sync: each feed's cursor, keyed by source; subscription commands (pause, resume, reset), keyed
# by subscription. Both compacted: the last value per key is the state.
SYNC_CURSORS = "tthc.sync.cursors"
SYNC_CONTROL = "tthc.sync.control"
# Operators' commands to the processes, compacted: maintenance (bus/ops/maintenance.py).
OPS_CONTROL = "tthc.ops.control"

REPLY_PARTITIONS = 8
# The last reply partition is shared by command-line clients; gateways own the others.
CLI_REPLY_PARTITION = REPLY_PARTITIONS - 1


def agency_reply_topic(agency: str) -> str:
    """The reply topic of an agency that talks Kafka directly (`auth.kafka_agencies`): only its
    own replies go there, so that ACLs can keep one agency from reading another's."""
    return f"{LOOKUP_REPLY}.{agency}"


def source_request(source: str) -> str:
    """Requests for one national database, consumed by that source's lookup connector."""
    return f"tthc.source.{source}.request"


def sync_change(source: str) -> str:
    """One national database's normalized change events, keyed by entity id."""
    return f"tthc.sync.{source}.change"


def dlq(subscription: str) -> str:
    """A subscription's dead letters: events past its retry budget, with error and origin."""
    return f"tthc.dlq.{subscription}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def bus_topics(
    sources: list[str],
    partitions: int,
    agencies: list[str] | None = None,
    agency_reply_partitions: int = 1,
    subscriptions: list[str] | None = None,
) -> list[TopicSpec]:
    """Every topic the bus needs, with its partition count and config."""
    short = {"retention.ms": str(24 * 3600 * 1000)}
    specs = [
        # The broker stamps each request as it appends it: the router measures a request's age
        # and the requester's clock skew against a clock it can trust (bus/router.py).
        TopicSpec(LOOKUP_REQUEST, partitions, short | {"message.timestamp.type": "LogAppendTime"}),
        TopicSpec(SOURCE_RESULT, partitions, short),
        TopicSpec(LOOKUP_REPLY, REPLY_PARTITIONS, {"retention.ms": str(3600 * 1000)}),
        TopicSpec(DEAD_LETTER, partitions, {"retention.ms": str(14 * 24 * 3600 * 1000)}),
        TopicSpec(AUDIT, partitions),
        TopicSpec(STATUS, 1, {"cleanup.policy": "compact"}),
        TopicSpec(OPS_CONTROL, 1, {"cleanup.policy": "compact"}),
    ]
    specs += [TopicSpec(source_request(name), partitions, short) for name in sources]
    compacted = {"cleanup.policy": "compact"}
    week = {"retention.ms": str(7 * 24 * 3600 * 1000)}
    specs += [TopicSpec(SYNC_CURSORS, 1, compacted), TopicSpec(SYNC_CONTROL, 1, compacted)]
    specs += [TopicSpec(sync_change(name), partitions, week) for name in sources]
    specs += [
        TopicSpec(dlq(name), 1, {"retention.ms": str(30 * 24 * 3600 * 1000)})
        for name in subscriptions or ()
    ]
    specs += [
        TopicSpec(agency_reply_topic(agency), agency_reply_partitions, {"retention.ms": "3600000"})
        for agency in agencies or ()
    ]
    return specs


class TopicMismatch(BusError):
    """An existing topic does not have the partitions the settings ask for."""


def check_partition_counts(admin: Any, specs: list[TopicSpec]) -> None:
    """Refuse to start on topics the bus cannot work with, naming each: the aggregator's table
    must be co-partitioned with `tthc.source.result` (faust would only fail later, deep in a
    rebalance), the reply topic needs every reply partition, and the audit recorder sends to
    every partition up to kafka.partitions. Other topics may have been scaled on purpose."""
    wanted = {spec.name: spec.partitions for spec in specs if spec.name in _STRICT}
    if not wanted:
        return
    wrong = []
    for topic in admin.describe_topics(list(wanted)):
        name, count = topic["name"], len(topic.get("partitions") or [])
        if topic.get("error_code"):
            wrong.append(f"{name}: metadata error {topic['error_code']}")
        elif name == SOURCE_RESULT and count != wanted[name]:
            wrong.append(f"{name} has {count} partitions, expected {wanted[name]}")
        elif name == LOOKUP_REPLY and count < REPLY_PARTITIONS:
            wrong.append(f"{name} has {count} partitions, expected at least {REPLY_PARTITIONS}")
        elif name == AUDIT and count < wanted[name]:
            wrong.append(f"{name} has {count} partitions, expected at least {wanted[name]}")
    if wrong:
        raise TopicMismatch(
            "existing topics do not match the settings (kafka.partitions): "
            + "; ".join(wrong)
            + ". Use the partition count the topics were created with, or recreate the topics."
        )


_STRICT = (SOURCE_RESULT, LOOKUP_REPLY, AUDIT)

# Replicas of a topic on a cluster of this many brokers or more: one broker may be lost, and
# with min.insync.replicas 2 (acks=all) no acknowledged write lives on one broker alone.
CLUSTER_REPLICAS = 3
CLUSTER_MIN_INSYNC = 2


@dataclass(frozen=True)
class Replication:
    factor: int
    # Topic configs that go with the factor (the spec's own configs win).
    config: dict[str, str] = field(default_factory=dict)


def replication_for(brokers: int, least: int = 1) -> Replication:
    """How a new topic is replicated on a cluster of `brokers`: at least `least` replicas
    (kafka.replication_factor), min(3, brokers) on its own. With 3 or more, a write needs 2 in
    sync and a replica out of sync is never elected leader (it would drop what it missed)."""
    factor = max(least, min(CLUSTER_REPLICAS, brokers))
    if factor < CLUSTER_REPLICAS:
        return Replication(factor)
    return Replication(
        factor,
        {
            "min.insync.replicas": str(CLUSTER_MIN_INSYNC),
            "unclean.leader.election.enable": "false",
        },
    )


def cluster_replication(bootstrap_servers: str, least: int = 1) -> Replication:
    """`replication_for` the brokers the cluster has now (asked with the admin client)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="tthc-bus-admin")
    try:
        return replication_for(_broker_count(admin), least)
    finally:
        admin.close()


def _broker_count(admin: Any) -> int:
    return len(admin.describe_cluster().get("brokers") or ()) or 1


def ensure_topics(
    bootstrap_servers: str, specs: list[TopicSpec], replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Topics are created before any worker starts: faust does not create the source topics of its
    agents, and a topic auto-created by a producer gets the broker's default partition count,
    which would break the co-partitioning the aggregator's table relies on. Each is replicated
    as `replication_for` says for the brokers the cluster has (`replication_factor` the least).
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="tthc-bus-admin")
    try:
        existing = set(admin.list_topics())
        check_partition_counts(admin, [spec for spec in specs if spec.name in existing])
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            replication = replication_for(_broker_count(admin), replication_factor)
            # Another process may create them between our list and our create.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [
                        NewTopic(
                            s.name,
                            s.partitions,
                            replication.factor,
                            topic_configs=replication.config | s.config,
                        )
                        for s in missing
                    ]
                )
        align_configs(bootstrap_servers, [spec for spec in specs if spec.name in existing])
        return [spec.name for spec in missing]
    finally:
        admin.close()


# Configs the bus relies on, set on a topic made before the bus asked for them (an upgrade):
# the router trusts a request's stamp only when the broker wrote it (bus/router.py).
_ALIGNED = ("message.timestamp.type",)


def align_configs(bootstrap_servers: str, existing: list[TopicSpec]) -> list[str]:
    """Set the `_ALIGNED` configs of existing topics to their specs' values, each key alone
    (incremental: every other config of the topic stays as it is); return the topics changed."""
    import confluent_kafka
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    wanted = {
        spec.name: {k: v for k, v in spec.config.items() if k in _ALIGNED} for spec in existing
    }
    wanted = {name: config for name, config in wanted.items() if config}
    if not wanted:
        return []
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "client.id": "tthc-bus-admin"})
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in wanted]
    changed = []
    for resource, future in admin.describe_configs(resources).items():
        current = future.result(timeout=30)
        differs = {
            key: value
            for key, value in wanted[resource.name].items()
            if key not in current or current[key].value != value
        }
        if not differs:
            continue
        entries = [
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in differs.items()
        ]
        update = ConfigResource(ResourceType.TOPIC, resource.name, incremental_configs=entries)
        try:
            admin.incremental_alter_configs([update])[update].result(timeout=30)
        except confluent_kafka.KafkaException as exc:
            raise TopicMismatch(
                f"{resource.name}: could not set {sorted(differs)}: {exc.args[0]}"
            ) from None
        changed.append(resource.name)
    return changed
