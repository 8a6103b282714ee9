"""`tthc-bus topics list|describe`: every topic the bus uses, what is on it and who uses it.

Partitions and configs come from the declarations (`bus.topics.bus_topics`, the same ones
`topics create` creates); the message types, producers and consumers of the lookup path from the
AsyncAPI document of the worker's declared consumers (`bus.asyncapi`, what `schemas export`
writes). Topics outside the lookup path (status, control, sync, audit) have no such declaration:
their roles are written below, next to the table of docs/architecture.md. `describe` adds what
the broker has, when it can be reached: partitions, leaders, end offsets and configs.
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import confluent_kafka
import typer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AdminClient,
    ConfigResource,
)
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bus import topics
from bus.kafka import common_config
from bus.tooling import exits

if TYPE_CHECKING:
    from bus.settings import Settings

topics_app = typer.Typer(help="Kafka topics of the bus.", no_args_is_help=True)

LIVE_TIMEOUT_S = 5.0
# librdkafka writes its own log lines to stderr; a command's error is one line of its own.
_LIBRDKAFKA = logging.getLogger("tthc_bus.cli.librdkafka")
_LIBRDKAFKA.addHandler(logging.NullHandler())
_LIBRDKAFKA.propagate = False


def quiet_config(bootstrap: str, client_id: str) -> dict[str, Any]:
    """A short-lived client's config; librdkafka's log lines only with --debug."""
    config = common_config(bootstrap, client_id)
    if not exits.options.debug:
        config["logger"] = _LIBRDKAFKA
    return config


def broker_problem(bootstrap: str, timeout_s: float = LIVE_TIMEOUT_S) -> str | None:
    """None if the cluster answers a metadata request within `timeout_s`; else why not."""
    admin = AdminClient(quiet_config(bootstrap, "tthc-bus-cli-admin"))
    try:
        admin.list_topics(timeout=max(timeout_s, 0.1))
    except confluent_kafka.KafkaException as exc:
        return exits.kafka_text(exc)
    return None


# -- what the bus declares -------------------------------------------------------------------


@dataclass
class TopicInfo:
    name: str
    partitions: int
    replication: int
    cleanup_policy: str
    retention_ms: int | None  # None: the broker's default (log.retention.*), or compacted only
    key: str
    messages: list[str] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    description: str = ""
    config: dict[str, str] = field(default_factory=dict)  # what `topics create` sets

    @property
    def retention(self) -> str:
        if self.retention_ms is not None:
            return _duration(self.retention_ms)
        return "by key" if self.cleanup_policy == "compact" else "broker default"


@dataclass
class _Roles:
    key: str = ""
    messages: list[str] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    description: str = ""

    def add(self, other: _Roles) -> None:
        self.key = self.key or other.key
        self.description = self.description or other.description
        for mine, theirs in (
            (self.messages, other.messages),
            (self.producers, other.producers),
            (self.consumers, other.consumers),
        ):
            mine.extend(item for item in theirs if item not in mine)


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} ms"


_CLIENTS = "clients (gateways, tthc-bus lookup)"


def _declared_roles(settings: Settings) -> dict[str, _Roles]:
    """Who sends and receives what, from the AsyncAPI document of the worker's consumers."""
    from bus.asyncapi import asyncapi_document
    from bus.tooling.cli import compose_worker

    document = asyncapi_document(compose_worker(settings).subscribers)
    messages = document["components"]["messages"]
    roles: dict[str, _Roles] = {}
    for channel in document["channels"].values():
        roles.setdefault(channel["address"], _Roles(description=channel.get("description", "")))
    for name, operation in document["operations"].items():
        if name.endswith(".dead-letter"):  # every consumer: said once, in the static roles
            continue
        channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
        entry = roles.setdefault(channel["address"], _Roles())
        actor = name.split(".", 1)[0]  # operations are named `<subscriber>.<action>...`
        actor = _CLIENTS if actor == "client" else actor
        who = entry.producers if operation["action"] == "send" else entry.consumers
        if actor not in who:
            who.append(actor)
        for ref in operation["messages"]:
            message = ref["$ref"].rsplit("/", 1)[1]
            if message not in entry.messages:
                entry.messages.append(message)
            key = messages[message].get("bindings", {}).get("kafka", {}).get("key", {})
            entry.key = entry.key or str(key.get("description", ""))
    return roles


def _static_roles(settings: Settings) -> dict[str, _Roles]:
    """The topics no consumer declaration describes (docs/architecture.md, "Topics")."""
    roles = {
        topics.AUDIT: _Roles(
            key="request id (the router picks the partition)",
            messages=["AuditEvent"],
            producers=["gateway", "lookup-router", "lookup-aggregator"],
            consumers=["audit-ledger"],
            description="Audit events: who asked for whose data, and what was released; stored "
            "by the ledger writer (`tthc-bus ledger`, or a worker with audit.ledger_writer).",
        ),
        topics.DEAD_LETTER: _Roles(
            key="the original key",
            messages=["DeadLetter"],
            producers=["every consumer", "feed connectors"],
            consumers=["operators"],
            description="Records a consumer could not process, with headers saying where they "
            "came from and why.",
        ),
        topics.STATUS: _Roles(
            key="process.<member>, sync-source.<source>, sync-subscription.<name>",
            messages=["ProcessStatus", "feed status", "SubscriptionStatus"],
            producers=["workers", "gateways", "ledger writers", "feeds", "subscriptions"],
            consumers=["tthc-bus status", "tthc-bus sync status", "gateway /dashboard"],
            description="The latest status of every process, feed and subscription (compacted).",
        ),
        topics.OPS_CONTROL: _Roles(
            key="maintenance.<member> or maintenance.*",
            messages=["maintenance record"],
            producers=["tthc-bus maintenance"],
            consumers=["gateways", "workers"],
            description="Operators' commands to the processes (compacted).",
        ),
        topics.SYNC_CURSORS: _Roles(
            key="source",
            messages=["feed cursor"],
            producers=["feed connectors"],
            consumers=["feed connectors"],
            description="Each feed's cursor, where its next poll starts (compacted); read by "
            "the group that decides which worker polls.",
        ),
        topics.SYNC_CONTROL: _Roles(
            key="subscription",
            messages=["ControlState"],
            producers=["tthc-bus sync"],
            consumers=["subscriptions"],
            description="Each subscription's desired state (compacted).",
        ),
    }
    for source in settings.sources:
        readers = [s.name for s in settings.sync.subscriptions if source in s.sources]
        roles[topics.sync_change(source)] = _Roles(
            key="entity id",
            messages=["ChangeEvent"],
            producers=[f"feed connector {source}"],
            consumers=[f"subscription {name}" for name in readers],
            description=f"Normalized change events of {source}.",
        )
    for subscription in settings.sync.subscriptions:
        roles[topics.dlq(subscription.name)] = _Roles(
            key="the original key",
            messages=["ChangeEvent"],
            producers=[f"subscription {subscription.name}"],
            consumers=["tthc-bus dlq"],
            description=f"Dead letters of subscription {subscription.name}: the events it gave "
            "up on, the error in their headers (docs/subscriptions.md).",
        )
    for agency in settings.auth.kafka_agencies:
        roles[topics.agency_reply_topic(agency)] = _Roles(
            key="request id",
            messages=["LookupResponse"],
            producers=["lookup-router", "lookup-aggregator"],
            consumers=[f"{agency}'s clients (tthc-bus lookup)"],
            description=f"Replies to {agency} only (auth.kafka_agencies), for ACLs per agency.",
        )
    return roles


def declared_topics(settings: Settings) -> list[TopicInfo]:
    """Every topic the bus creates (`topics create`), with what is on it and who uses it."""
    specs = topics.bus_topics(
        sorted(settings.sources),
        settings.kafka.partitions,
        settings.auth.kafka_agencies,
        settings.auth.reply_topic_partitions,
        [subscription.name for subscription in settings.sync.subscriptions],
    )
    declared = _declared_roles(settings)
    static = _static_roles(settings)
    found = []
    for spec in specs:
        roles = _Roles()
        roles.add(declared.get(spec.name, _Roles()))
        roles.add(static.get(spec.name, _Roles()))
        retention = spec.config.get("retention.ms")
        found.append(
            TopicInfo(
                name=spec.name,
                partitions=spec.partitions,
                replication=settings.kafka.replication_factor,
                cleanup_policy=spec.config.get("cleanup.policy", "delete"),
                retention_ms=int(retention) if retention is not None else None,
                key=roles.key or "-",
                messages=roles.messages,
                producers=roles.producers,
                consumers=roles.consumers,
                description=roles.description,
                config=dict(spec.config),
            )
        )
    return found


def _as_json(info: TopicInfo) -> dict[str, Any]:
    return asdict(info) | {"retention": info.retention}


def _settings() -> Settings:
    from bus.tooling.cli import settings_or_exit

    return settings_or_exit()


@topics_app.command("list")
def topics_list(
    json_out: Annotated[bool, typer.Option("--json", help="The topics as JSON.")] = False,
) -> None:
    """Every topic of the bus: partitions, replication, cleanup, retention, key, messages, and
    who writes and reads it (as declared; `describe` asks the broker)."""
    found = declared_topics(_settings())
    if json_out:
        typer.echo(json.dumps([_as_json(info) for info in found], indent=2, ensure_ascii=False))
        return
    table = Table(title="Topics of the bus")
    table.add_column("topic", no_wrap=True)
    for column in ("parts", "repl", "cleanup", "retention", "key", "messages"):
        table.add_column(column, overflow="fold")
    table.add_column("written by -> read by", overflow="fold")
    for info in found:
        table.add_row(
            info.name,
            str(info.partitions),
            str(info.replication),
            info.cleanup_policy,
            info.retention,
            info.key,
            ", ".join(info.messages) or "-",
            f"{_short(info.producers)} -> {_short(info.consumers)}",
        )
    Console().print(table)


def _short(names: list[str]) -> str:
    """Names for a table cell: a family of three or more (`lookup-connector-civil`, ...,
    `subscription a`, ...) as one entry; `describe` names each."""
    families: dict[str, list[str]] = {}
    for name in names:
        cut = name.find(" ") if " " in name else name.rfind("-")
        families.setdefault(name[: cut + 1] if cut > 0 else name, []).append(name)
    shown = []
    for family, members in families.items():
        if len(members) >= 3:
            shown.append(f"{family}* ({len(members)})")
        else:
            shown.extend(members)
    return ", ".join(shown) or "-"


# -- what the broker has ---------------------------------------------------------------------


@dataclass
class LivePartition:
    partition: int
    leader: int
    replicas: list[int]
    in_sync: list[int]
    start_offset: int
    end_offset: int


@dataclass
class LiveTopic:
    exists: bool
    partitions: list[LivePartition] = field(default_factory=list)
    configs: dict[str, str] = field(default_factory=dict)  # what differs from the defaults


def live_topic(bootstrap: str, name: str, timeout_s: float = LIVE_TIMEOUT_S) -> LiveTopic:
    """What the broker has of `name` (KafkaException when it cannot be asked)."""
    admin = AdminClient(quiet_config(bootstrap, "tthc-bus-cli-admin"))
    metadata = admin.list_topics(topic=name, timeout=timeout_s)
    described = metadata.topics.get(name)
    if described is None or described.error is not None:
        return LiveTopic(exists=False)
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(
        timeout=timeout_s
    )
    configs = {
        key: str(entry.value)
        for key, entry in sorted(entries.items())
        if not entry.is_default or key in ("cleanup.policy", "retention.ms")
    }
    consumer = confluent_kafka.Consumer(
        quiet_config(bootstrap, "tthc-bus-cli-offsets") | {"group.id": "tthc-bus-cli-unused"}
    )
    try:
        partitions = []
        for number, partition in sorted(described.partitions.items()):
            low, high = consumer.get_watermark_offsets(
                confluent_kafka.TopicPartition(name, number), timeout=timeout_s
            )
            partitions.append(
                LivePartition(
                    number,
                    partition.leader,
                    list(partition.replicas),
                    list(partition.isrs),
                    int(low),
                    int(high),
                )
            )
    finally:
        consumer.close()
    return LiveTopic(exists=True, partitions=partitions, configs=configs)


def find_topic(found: list[TopicInfo], name: str) -> TopicInfo:
    """The declared topic `name`; exit 2 naming the closest one otherwise."""
    for info in found:
        if info.name == name:
            return info
    names = [info.name for info in found]
    closest = difflib.get_close_matches(name, names, n=1, cutoff=0.0)
    hint = f"did you mean {closest[0]}?" if closest else "none is declared"
    Console(stderr=True).print(
        Text(f"error: no topic {name!r} in the bus; {hint} (tthc-bus topics list)", "red"),
        soft_wrap=True,
    )
    raise typer.Exit(exits.USAGE)


@topics_app.command("describe")
def topics_describe(
    name: Annotated[str, typer.Argument(help="The topic, e.g. tthc.lookup.request.")],
    json_out: Annotated[bool, typer.Option("--json", help="The topic as JSON.")] = False,
) -> None:
    """One topic in detail: what the bus declares, and what the broker has of it (partitions,
    leaders, end offsets, configs). Exit 7 after the declared part if the broker cannot be
    reached."""
    settings = _settings()
    info = find_topic(declared_topics(settings), name)
    bootstrap = settings.kafka.resolved_bootstrap()
    live: LiveTopic | None = None
    problem = broker_problem(bootstrap)
    if problem is None:
        try:
            live = live_topic(bootstrap, name)
        except confluent_kafka.KafkaException as exc:
            problem = exits.kafka_text(exc)
    if json_out:
        body = _as_json(info) | {"live": asdict(live) if live is not None else None}
        if problem is not None:
            body["live_error"] = f"the broker at {bootstrap} cannot be reached: {problem}"
        typer.echo(json.dumps(body, indent=2, ensure_ascii=False))
    else:
        _print_topic(info, live, bootstrap)
    if problem is not None:
        Console(stderr=True).print(
            Text(f"error: the broker at {bootstrap} cannot be reached: {problem}", "red"),
            soft_wrap=True,
        )
        raise typer.Exit(exits.UNREACHABLE)


def _print_topic(info: TopicInfo, live: LiveTopic | None, bootstrap: str) -> None:
    console = Console()
    table = Table(title=info.name, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    rows = [
        ("about", info.description or "-"),
        ("partitions", str(info.partitions)),
        ("replication", str(info.replication)),
        ("cleanup policy", info.cleanup_policy),
        ("retention", info.retention),
        ("key", info.key),
        ("messages", ", ".join(info.messages) or "-"),
        ("written by", ", ".join(info.producers) or "-"),
        ("read by", ", ".join(info.consumers) or "-"),
        ("created with", ", ".join(f"{k}={v}" for k, v in info.config.items()) or "-"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    if live is None:
        return
    if not live.exists:
        console.print(f"On the broker ({bootstrap}): not created yet (tthc-bus topics create)")
        return
    offsets = Table(title=f"On the broker ({bootstrap}): {len(live.partitions)} partitions")
    for column in ("partition", "leader", "replicas", "in sync", "start", "end"):
        offsets.add_column(column, justify="right")
    for partition in live.partitions:
        offsets.add_row(
            str(partition.partition),
            str(partition.leader),
            ",".join(map(str, partition.replicas)),
            ",".join(map(str, partition.in_sync)),
            str(partition.start_offset),
            str(partition.end_offset),
        )
    console.print(offsets)
    configs = Table(title="Configs (cleanup, retention, and those not at Kafka's defaults)")
    configs.add_column("config")
    configs.add_column("value", overflow="fold")
    for key, value in live.configs.items():
        configs.add_row(key, value)
    console.print(configs)
