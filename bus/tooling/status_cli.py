"""`tthc-bus status`: every process, source, subscription and consumer group at a glance.

It reads the latest record of each key of the compacted `tthc.status` (the processes'
`process.*` statuses, bus/ops/status.py; the feeds' `sync-source.*` and the subscriptions'
`sync-subscription.*`) and the lag of every consumer group (the admin client), and flags what
is unhealthy: a process not heard from for three of its intervals, a connector failing (a feed
backing off, a breaker open, a subscription retrying, the gateway's reply reader stopped). The
exit code is 0 when all is healthy, 1 when something is not (for scripts and probes), 7 when
the broker cannot be reached.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import confluent_kafka
import typer
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.table import Table

from bus import topics
from bus.kafka import common_config
from bus.ops.status import ProcessStatus, decode_statuses, stale
from bus.settings import Settings
from bus.sync import offsets
from bus.sync.status import SOURCE_PREFIX, SUBSCRIPTION_PREFIX

# A process not heard from for this long is no longer shown (it is gone, not failing).
FORGET_AFTER_S = 600.0
EXIT_UNHEALTHY = 1
EXIT_UNREACHABLE = 7


def group_lags(bootstrap: str, timeout_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """Every consumer group's committed offsets against the partitions' ends: its lag."""
    admin = AdminClient(common_config(bootstrap, "tthc-bus-status"))
    listed = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
    groups = sorted(g.group_id for g in listed.valid)
    lags: dict[str, dict[str, Any]] = {}
    for group in groups:
        request = [confluent_kafka.ConsumerGroupTopicPartitions(group)]
        answer = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in answer[group].result(timeout=timeout_s).topic_partitions
            if tp.offset >= 0
        }
        if not committed:
            continue
        marks = offsets.watermarks(bootstrap, sorted({t for t, _ in committed}))
        lag = sum(max(marks[tp][1] - offset, 0) for tp, offset in committed.items() if tp in marks)
        lags[group] = {"topics": sorted({t for t, _ in committed}), "lag": lag}
    return lags


def status_report(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """What `tthc-bus status` shows, as data (its `--json`)."""
    now = now or datetime.now(UTC)
    bootstrap = settings.kafka.resolved_bootstrap()
    records = offsets.read_latest(bootstrap, topics.STATUS)
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
        "groups": group_lags(bootstrap),
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


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


def print_report(report: dict[str, Any], console: Console) -> None:
    flag = {True: "[green]ok[/green]", False: "[red]UNHEALTHY[/red]"}
    table = Table(title="Processes")
    for column in ("member", "kind", "health", "seen", "connectors", "requests", "dead letters"):
        table.add_column(column, overflow="fold")
    for row in report["processes"]:
        parts = ", ".join(f"{c['kind']} {c['name']}: {c['state']}" for c in row["connectors"])
        counters = row["counters"]
        table.add_row(
            row["member"],
            row["kind"],
            flag[row["healthy"]],
            f"{row['age_s']:g} s ago",
            parts or "-",
            f"{counters.get('requests', 0):g}",
            f"{counters.get('dead_letters', 0) + counters.get('subscription_dead_letters', 0):g}",
        )
    console.print(table)
    sources = Table(title="National databases (last interval, over every worker)")
    for column in ("source", "health", "breaker", "feed", "calls", "errors", "p50 ms", "p99 ms"):
        sources.add_column(column, overflow="fold")
    for name, entry in report["sources"].items():
        sources.add_row(
            name,
            flag[entry["healthy"]],
            entry["breaker"],
            entry.get("feed", "-"),
            str(entry["calls"]),
            str(entry["errors"]),
            _ms(entry.get("p50_ms")),
            _ms(entry.get("p99_ms")),
        )
    console.print(sources)
    groups = Table(title="Consumer groups")
    for column in ("group", "lag", "topics"):
        groups.add_column(column, overflow="fold")
    for name, group in report["groups"].items():
        groups.add_row(name, str(group["lag"]), ", ".join(group["topics"]))
    console.print(groups)
    if report["problems"]:
        console.print("[red]unhealthy:[/red]")
        for problem in report["problems"]:
            console.print(f"  - {problem}")
    else:
        console.print("[green]all healthy[/green]")


def status_command(
    json_out: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    watch: Annotated[
        float | None, typer.Option("--watch", help="Print again every so many seconds.")
    ] = None,
) -> None:
    """Every process, national database and consumer group, and what is unhealthy.

    Exit code: 0 all healthy, 1 something is not, 7 the broker cannot be reached."""
    from bus.tooling.cli import settings_or_exit

    settings = settings_or_exit()
    console, errors = Console(), Console(stderr=True)
    while True:
        try:
            report = status_report(settings)
        except (confluent_kafka.KafkaException, offsets.OffsetsError, RuntimeError) as exc:
            bootstrap = settings.kafka.resolved_bootstrap()
            errors.print(f"error: the broker at {bootstrap} cannot be reached: {exc}")
            raise typer.Exit(EXIT_UNREACHABLE) from None
        if json_out:
            typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            if watch:
                console.clear()
            print_report(report, console)
        if not watch:
            raise typer.Exit(0 if report["healthy"] else EXIT_UNHEALTHY)
        time.sleep(watch)
