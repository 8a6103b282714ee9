"""What a worker and a gateway put in their status (bus/ops/status.py): the parts only the
composed process knows, its lookup and feed connectors, subscriptions and counters. The parts
are taken as they are (duck-typed): the core imports nothing of connectors/."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bus import topics
from bus.ops.status import ConnectorState, Fill, ProcessStatus, Reading

# States in which a part is doing its job (or waiting its turn) rather than failing.
FEED_OK = frozenset({"starting", "standby", "running", "stopped"})
SUBSCRIPTION_OK = frozenset({"starting", "running", "paused", "resetting", "stopped"})


def worker_fill(
    lookups: Mapping[str, Any], feeds: Any, subscriptions: Any, runner: Any = None
) -> Fill:
    """`lookups`: source -> LookupConnector; `feeds`: FeedConnectors; `subscriptions`:
    SubscriptionRunner; `runner`: the KafkaRunner of the lookup path (its `left`)."""

    def fill(status: ProcessStatus, reading: Reading) -> None:
        parts: list[ConnectorState] = []
        left = getattr(runner, "left", None)
        if left is not None:  # in maintenance: not a failure, but worth seeing
            parts.append(
                ConnectorState(
                    name="lookups", kind="admission", state="drained", healthy=True,
                    detail=f"left its consumer groups: {left}",
                )
            )  # fmt: skip
        for source in lookups:
            breaker = status.sources[source].breaker if source in status.sources else "closed"
            parts.append(
                ConnectorState(
                    name=source,
                    kind="lookup",
                    state=f"breaker {breaker}",
                    healthy=breaker != "open",
                    detail="the circuit breaker is open: calls fail fast"
                    if breaker == "open"
                    else None,
                )
            )
        streams: dict[str, Any] = {}
        for source, connector in feeds.connectors.items():
            feed = connector.status
            parts.append(
                ConnectorState(
                    name=source,
                    kind="feed",
                    state=feed.state,
                    healthy=feed.state in FEED_OK,
                    detail=feed.error,
                )
            )
            streams[topics.sync_change(source)] = feed.last_event_time
        dlq = 0
        for name, consumer in subscriptions.consumers.items():
            sub = consumer.status
            dlq += sub.dead_lettered
            parts.append(
                ConnectorState(
                    name=name,
                    kind="subscription",
                    state=sub.state,
                    healthy=sub.state in SUBSCRIPTION_OK and sub.retrying == 0,
                    detail=sub.last_error if sub.retrying else None,
                )
            )
        status.connectors = parts
        status.streams = streams
        results = reading.totals("tthc_worker_lookups", "status")
        calls = sum(reading.totals("tthc_source_calls", "source").values())
        attempts = sum(reading.totals("tthc_source_attempts", "source").values())
        status.counters = {
            "requests": sum(results.values()),
            **{f"results_{name}": value for name, value in sorted(results.items())},
            "source_calls": calls,
            "retries": max(attempts - calls, 0.0),
            "dead_letters": sum(reading.totals("tthc_dead_letters", "consumer").values()),
            "subscription_dead_letters": float(dlq),
        }

    return fill


def gateway_fill(client: Any) -> Fill:
    """`client`: the gateway's LookupClient (its reply reader)."""

    def fill(status: ProcessStatus, reading: Reading) -> None:
        healthy = bool(client.healthy)
        status.connectors = [
            ConnectorState(
                name="replies",
                kind="reply-reader",
                state="running" if healthy else "stopped",
                healthy=healthy,
                detail=None if healthy else "the reply reader stopped",
            )
        ]
        draining = client.admission.draining
        if draining is not None:  # in maintenance: not a failure, but worth seeing
            status.connectors.append(
                ConnectorState(
                    name="lookups", kind="admission", state="draining", healthy=True,
                    detail=draining,
                )
            )  # fmt: skip
        results = reading.totals("tthc_gateway_lookups", "status")
        refused = reading.totals("tthc_gateway_refused", "reason")
        status.counters = {
            "requests": sum(results.values()) + sum(refused.values()),
            **{f"results_{name}": value for name, value in sorted(results.items())},
            **{f"refused_{name}": value for name, value in sorted(refused.items())},
            "in_flight": float(client.in_flight),
        }

    return fill


def ledger_fill(writer: Any = None) -> Fill:
    """The audit ledger writer's process: it runs one consumer, its dead letters counted;
    `writer` (the LedgerWriter) says whether the ledger takes writes."""

    def fill(status: ProcessStatus, reading: Reading) -> None:
        unavailable = getattr(writer, "unavailable", None)
        status.connectors = [
            ConnectorState(
                name="audit-ledger",
                kind="ledger",
                state="waiting for the ledger" if unavailable else "running",
                healthy=unavailable is None,
                detail=unavailable,
            )
        ]
        dead_letters = reading.totals("tthc_dead_letters", "consumer")
        status.counters = {"dead_letters": sum(dead_letters.values())}

    return fill
