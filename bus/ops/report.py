"""The operator's view of the bus, as data: every process's status (bus/ops/status.py), the
feeds' and subscriptions' records, and every consumer group's lag, with what is unhealthy.

`tthc-bus status` prints it (bus/tooling/status_cli.py) and the gateway's `/dashboard` shows it
live (bus/ops/board.py). Unhealthy: a process not heard from for three of its intervals, a
connector failing (a feed backing off, a breaker open, a subscription retrying, the gateway's
reply reader stopped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient

from bus import topics
from bus.kafka import common_config
from bus.ops.status import ProcessStatus, decode_statuses, stale
from bus.settings import Settings
from bus.sync import offsets
from bus.sync.status import SOURCE_PREFIX, SUBSCRIPTION_PREFIX

# A process not heard from for this long is no longer shown (it is gone, not failing).
FORGET_AFTER_S = 600.0


class LagReader:
    """Every consumer group's committed offsets against the partitions' ends: its lag. One
    admin client and one offsets consumer, kept for as long as the reader is; each `read` asks
    for all the groups' offsets at once and for the ends of their topics' partitions once."""

    def __init__(self, bootstrap: str, timeout_s: float = 10.0) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._admin = AdminClient(common_config(bootstrap, "tthc-bus-status"))

    def read(self) -> dict[str, dict[str, Any]]:
        timeout_s = self._timeout_s
        listed = self._admin.list_consumer_groups(request_timeout=timeout_s)
        groups = sorted(g.group_id for g in listed.result(timeout=timeout_s).valid)
        asked = {
            group: self._admin.list_consumer_group_offsets(
                [confluent_kafka.ConsumerGroupTopicPartitions(group)], request_timeout=timeout_s
            )[group]
            for group in groups
        }
        committed: dict[str, dict[tuple[str, int], int]] = {}
        for group, future in asked.items():
            try:
                answer = future.result(timeout=timeout_s)
            except confluent_kafka.KafkaException:  # gone meanwhile, or its coordinator moving
                continue  # one group's trouble must not blank every other's lag
            found = {
                (tp.topic, tp.partition): tp.offset
                for tp in answer.topic_partitions
                if tp.offset >= 0
            }
            if found:
                committed[group] = found
        marks = offsets.watermarks(
            self._bootstrap, sorted({t for found in committed.values() for t, _ in found})
        )
        return {
            group: {
                "topics": sorted({t for t, _ in found}),
                "lag": sum(max(marks[tp][1] - at, 0) for tp, at in found.items() if tp in marks),
            }
            for group, found in committed.items()
        }


def group_lags(bootstrap: str, timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """Every consumer group's lag, read once (see LagReader)."""
    return LagReader(bootstrap, timeout_s).read()


def status_report(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """What `tthc-bus status` shows, as data (its `--json`): read from the broker now."""
    bootstrap = settings.kafka.resolved_bootstrap()
    records = offsets.read_latest(bootstrap, topics.STATUS)
    return build_report(records, group_lags(bootstrap), now)


def build_report(
    records: Mapping[str, bytes],
    groups: Mapping[str, dict[str, Any]],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report over the latest `tthc.status` records (key -> value) and the groups' lags."""
    now = now or datetime.now(UTC)
    processes = [
        p
        for p in decode_statuses(records).values()
        if (now - p.updated_at).total_seconds() <= FORGET_AFTER_S
    ]
    problems: list[str] = []
    rows = []
    for process in sorted(processes, key=lambda p: (p.kind, p.member)):
        age = (now - process.updated_at).total_seconds()
        failing = [c for c in process.connectors if not c.healthy]
        if stale(process, now):
            problems.append(f"{process.kind} {process.member}: not reporting for {age:.0f} s")
        for part in failing:
            detail = f" ({part.detail})" if part.detail else ""
            problems.append(f"{process.member}: {part.kind} {part.name}: {part.state}{detail}")
        rows.append(_process_row(process, age, not stale(process, now) and not failing))
    sources = _sources([p for p in processes if not stale(p, now)])
    subscriptions = {
        key.removeprefix(SUBSCRIPTION_PREFIX): json.loads(value)
        for key, value in records.items()
        if key.startswith(SUBSCRIPTION_PREFIX)
    }
    feeds = {
        key.removeprefix(SOURCE_PREFIX): json.loads(value)
        for key, value in records.items()
        if key.startswith(SOURCE_PREFIX)
    }
    return {
        "time": now.isoformat(),
        "healthy": not problems,
        "problems": problems,
        "processes": rows,
        "sources": sources,
        "feeds": feeds,
        "subscriptions": subscriptions,
        "groups": dict(groups),
    }


def _process_row(process: ProcessStatus, age: float, healthy: bool) -> dict[str, Any]:
    return {
        "member": process.member,
        "kind": process.kind,
        "host": process.host,
        "pid": process.pid,
        "healthy": healthy,
        "age_s": round(age, 1),
        "started_at": process.started_at.isoformat(),
        "connectors": [c.model_dump(mode="json") for c in process.connectors],
        "counters": process.counters,
        "streams": {k: v.isoformat() if v else None for k, v in process.streams.items()},
    }


def _sources(processes: list[ProcessStatus]) -> dict[str, dict[str, Any]]:
    """Per national database, over every worker reporting: calls and errors of the last
    interval, the worst breaker and percentiles, and whether its connectors are healthy."""
    merged: dict[str, dict[str, Any]] = {}
    for process in processes:
        if process.kind != "worker" or process.state != "running":
            continue
        for name, stats in process.sources.items():
            entry = merged.setdefault(
                name, {"calls": 0, "errors": 0, "breaker": "closed", "healthy": True}
            )
            entry["calls"] += stats.calls
            entry["errors"] += stats.errors
            if stats.breaker != "closed":
                entry["breaker"] = stats.breaker
            for field in ("p50_ms", "p95_ms", "p99_ms"):
                value = getattr(stats, field)
                if value is not None:
                    entry[field] = max(entry.get(field) or 0.0, value)
        for part in process.connectors:
            if part.kind in ("lookup", "feed"):
                entry = merged.setdefault(
                    part.name, {"calls": 0, "errors": 0, "breaker": "closed", "healthy": True}
                )
                entry[part.kind] = part.state
                entry["healthy"] = entry["healthy"] and part.healthy
                if not part.healthy and part.detail:
                    entry["error"] = part.detail
    return dict(sorted(merged.items()))


def _connectors(connectors: list[dict[str, Any]]) -> str:
    """Per kind, how many are fine, and each that is not by name and state."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for connector in connectors:
        kinds.setdefault(connector["kind"], []).append(connector)
    shown = []
    for kind, parts in kinds.items():
        failing = [f"{p['name']} {p['state']}" for p in parts if not p["healthy"]]
        text = f"{kind} {len(parts) - len(failing)} ok"
        shown.append(text + (f" ([red]{', '.join(failing)}[/red])" if failing else ""))
    return ", ".join(shown)
