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
from typing import Annotated, Any

import confluent_kafka
import typer
from rich.console import Console
from rich.table import Table

from bus.ops.report import status_report
from bus.sync import offsets
from bus.tooling import exits

EXIT_UNHEALTHY = exits.ERROR
EXIT_UNREACHABLE = exits.UNREACHABLE


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
    console, errors = Console(), Console(stderr=True, soft_wrap=True)
    while True:
        try:
            report = status_report(settings)
        except (confluent_kafka.KafkaException, offsets.OffsetsError, RuntimeError) as exc:
            bootstrap = settings.kafka.resolved_bootstrap()
            why = exits.kafka_text(exc)
            errors.print(f"error: the broker at {bootstrap} cannot be reached: {why}", markup=False)
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


def maintenance_command(
    state: Annotated[str, typer.Argument(help="on or off.")],
    member: Annotated[
        str | None,
        typer.Option(help="One process, by its member name (`tthc-bus status`); default: all."),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, shown to refused clients.")] = "maintenance",
) -> None:
    """Drain a process before stopping it (bus/ops/maintenance.py): a gateway takes no new
    lookup (503 with Retry-After) and finishes those in flight; /readyz answers 503."""
    from bus.ops.maintenance import set_maintenance
    from bus.tooling.cli import settings_or_exit

    if state not in ("on", "off"):
        raise typer.BadParameter(f"expected on or off, got {state!r}", param_hint="STATE")
    settings = settings_or_exit()
    try:
        set_maintenance(settings.kafka.resolved_bootstrap(), member, state == "on", reason)
    except offsets.OffsetsError as exc:
        Console(stderr=True).print(f"error: {exc}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    who = member or "every process"
    Console().print(f"maintenance {state} for {who}")
