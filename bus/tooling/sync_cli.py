"""`tthc-bus dlq` and `tthc-bus sync`: dead letters, subscription control and stream status; and
the composition of the subscriptions' sinks (the update sink needs an adapter, so it is built
here, in bus/tooling, from the adapter registry).

    tthc-bus dlq list [--json]
    tthc-bus dlq show SUBSCRIPTION [--limit N] [--json]
    tthc-bus dlq replay SUBSCRIPTION [--attempts N]
    tthc-bus sync pause|resume SUBSCRIPTION
    tthc-bus sync reset --to TIME SUBSCRIPTION
    tthc-bus sync status [--json]

Entity ids are masked on screen (`0010******45`); an unknown subscription is one line on stderr
and exit 2, as is any `BusError` (an unreachable broker, a bad sink setting).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from bus import topics
from bus.errors import BusError, SettingsError
from bus.outbox import Outbox
from bus.settings import Settings, Subscription, UpdateSink, WebhookSink, get_settings
from bus.sync import control, offsets, replay, status
from bus.sync.deadletter import DeadLetter
from bus.sync.retry import RetryPolicy
from bus.sync.sinks import Sink, UpdateDelivery, WebhookDelivery
from bus.sync.subscription import SubscriptionRunner, group_of, streams_of
from bus.tooling import exits

EXIT_ERROR = exits.USAGE
# Times typed without an offset are Vietnam's, as in `tthc-bus audit`.
VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")

dlq_app = typer.Typer(help="Dead letters of the subscriptions.", no_args_is_help=True)
sync_app = typer.Typer(help="Sync streams and subscriptions.", no_args_is_help=True)


# -- composition: sinks and the runner ----------------------------------------------------------


def build_sink(settings: Settings, subscription: Subscription) -> Sink:
    """The sink of one subscription: a webhook, or an update through the adapter registry."""
    sink = subscription.sink
    if isinstance(sink, WebhookSink):
        return WebhookDelivery(
            sink.url,
            sink.secret.get_secret_value().encode(),
            timeout_s=sink.timeout_ms / 1000,
            batch_max=sink.batch_max,
        )
    assert isinstance(sink, UpdateSink)
    from connectors.catalog import load_sources

    source = load_sources(settings, [sink.source])[sink.source]
    if sink.operation not in source.adapter_class.update_operations:
        raise SettingsError(
            f"sync.subscriptions[{subscription.name}].sink.operation = {sink.operation!r}: "
            f"{sink.source} accepts {list(source.adapter_class.update_operations)}"
        )
    return UpdateDelivery(
        sink.source, sink.operation, source.new_adapter(), timeout_s=sink.timeout_ms / 1000
    )


def build_sinks(settings: Settings) -> dict[str, Sink]:
    """The sink of every enabled subscription; SettingsError naming each one that is wrong."""
    sinks, problems = {}, []
    for subscription in settings.sync.subscriptions:
        if not subscription.enabled:
            continue
        try:
            sinks[subscription.name] = build_sink(settings, subscription)
        except BusError as exc:
            problems.append(str(exc))
    if problems:
        raise SettingsError("subscriptions: " + "; ".join(problems))
    return sinks


def subscription_runner(settings: Settings, outbox: Outbox | None = None) -> SubscriptionRunner:
    """What a worker runs for the subscriptions: `hosted(outbox, ..., subscription_runner(...))`."""
    return SubscriptionRunner(
        settings.kafka.resolved_bootstrap(),
        settings,
        build_sinks(settings),
        outbox=outbox,
        client_id=f"{settings.worker.app_id}-sync-{os.getpid()}",
    )


# -- helpers ------------------------------------------------------------------------------------


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except BusError as exc:
        Console(stderr=True).print(Text(f"error: {exc}", "red"), soft_wrap=True)
        # Kafka did not answer: not the caller's mistake.
        unreachable = isinstance(exc, offsets.OffsetsError)
        raise typer.Exit(exits.UNREACHABLE if unreachable else EXIT_ERROR) from None


def _settings() -> Settings:
    with _one_line_errors():
        return get_settings()


def _subscription(settings: Settings, name: str) -> Subscription:
    for subscription in settings.sync.subscriptions:
        if subscription.name == name:
            return subscription
    known = [s.name for s in settings.sync.subscriptions]
    Console(stderr=True).print(
        Text(f"error: no subscription {name!r}; configured: {known}", "red"), soft_wrap=True
    )
    raise typer.Exit(EXIT_ERROR)


def mask(entity: str) -> str:
    """An entity id as it may be shown: the first four and last two characters (`0010******45`)
    of a long one, only the last two of a short one."""
    if len(entity) >= 10:
        return entity[:4] + "*" * (len(entity) - 6) + entity[-2:]
    return "*" * max(len(entity) - 2, 0) + entity[-2:]


def _time(value: datetime | None) -> str:
    return value.astimezone(VIETNAM_TIME).isoformat(timespec="seconds") if value else "-"


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        Console(stderr=True).print(
            Text(f"error: --to {text!r}: expected an ISO 8601 time, e.g. 2026-12-01T09:00", "red")
        )
        raise typer.Exit(EXIT_ERROR) from None
    return when if when.tzinfo else when.replace(tzinfo=VIETNAM_TIME)


def _letter_row(letter: DeadLetter) -> dict[str, Any]:
    event = letter.event_or_none()
    return {
        "offset": letter.offset,
        "event_id": event.message_id if event else None,
        "event_type": event.event_type if event else None,
        "entity": mask(event.entity) if event else None,
        "attempts": letter.attempts,
        "replays": letter.replays,
        "permanent": letter.permanent,
        "origin": f"{letter.origin[0]}[{letter.origin[1]}]@{letter.origin[2]}",
        "last_failed": letter.last_failed.isoformat() if letter.last_failed else None,
        "error": letter.reason,
    }


# -- dlq ----------------------------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Dead letters per subscription: pending (not replayed yet) and kept in the topic."""
    settings = _settings()
    bootstrap = settings.kafka.resolved_bootstrap()
    with _one_line_errors():
        found = [
            replay.counts(bootstrap, settings.worker.app_id, s.name)
            for s in settings.sync.subscriptions
        ]
    if json_out:
        typer.echo(json.dumps([c.__dict__ for c in found], indent=2))
        return
    table = Table(title="Dead letters")
    for column in ("subscription", "pending", "in topic", "topic"):
        table.add_column(column)
    for count in found:
        table.add_row(
            count.subscription, str(count.pending), str(count.total), topics.dlq(count.subscription)
        )
    Console().print(table)


@dlq_app.command("show")
def dlq_show(
    subscription: str,
    limit: Annotated[int, typer.Option(min=1, help="Dead letters shown at most.")] = 20,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The pending dead letters of a subscription: event id, type, masked entity, the error."""
    settings = _settings()
    _subscription(settings, subscription)
    with _one_line_errors():
        letters = replay.pending(
            settings.kafka.resolved_bootstrap(), settings.worker.app_id, subscription
        )
    rows = [_letter_row(letter) for letter in letters[:limit]]
    if json_out:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{topics.dlq(subscription)}: {len(letters)} pending")
    for column in ("offset", "event id", "type", "entity", "tries", "last failed", "error"):
        table.add_column(column, overflow="fold")
    for row, letter in zip(rows, letters, strict=False):
        table.add_row(
            str(row["offset"]),
            row["event_id"] or "-",
            row["event_type"] or "-",
            row["entity"] or "-",
            str(row["attempts"]),
            _time(letter.last_failed),
            row["error"],
        )
    Console().print(table)
    if len(letters) > limit:
        Console().print(f"... and {len(letters) - limit} more (--limit)")


@dlq_app.command("replay")
def dlq_replay(
    subscription: str,
    attempts: Annotated[
        int, typer.Option(min=1, max=100, help="Tries per dead letter, with the backoff.")
    ] = 1,
) -> None:
    """Deliver the pending dead letters again; those that fail again stay pending."""
    settings = _settings()
    chosen = _subscription(settings, subscription)
    bootstrap = settings.kafka.resolved_bootstrap()
    with _one_line_errors():
        sink = build_sink(settings, chosen)
        letters = replay.pending(bootstrap, settings.worker.app_id, subscription)
    if not letters:
        Console().print(f"{subscription}: no dead letter pending")
        sink.close()
        return
    policy = RetryPolicy(attempts, chosen.backoff_first_ms / 1000, chosen.backoff_max_ms / 1000)

    async def run() -> replay.ReplayReport:
        outbox = Outbox(bootstrap, producer_name=f"{settings.worker.app_id}-dlq-replay")
        await outbox.start()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        try:
            with Progress(*columns, console=Console(stderr=True)) as bar:
                task = bar.add_task(f"replaying {subscription}", total=len(letters))
                return await replay.replay(
                    bootstrap,
                    settings.worker.app_id,
                    subscription,
                    sink,
                    outbox,
                    policy,
                    letters,
                    lambda _letter, _error: bar.advance(task),
                )
        finally:
            await outbox.stop()
            sink.close()

    with _one_line_errors():
        report = asyncio.run(run())
    console = Console()
    console.print(f"{subscription}: {len(report.delivered)} delivered, {len(report.failed)} failed")
    for letter, reason in report.failed:
        row = _letter_row(letter)
        console.print(f"  failed: {row['event_id'] or f'offset {letter.offset}'}: {reason}")
    if report.failed:
        raise typer.Exit(exits.ERROR)


# -- sync ---------------------------------------------------------------------------------------


def _command(name: str, command: control.Command, reset_to: datetime | None = None) -> None:
    settings = _settings()
    _subscription(settings, name)
    with _one_line_errors():
        state = control.issue(settings.kafka.resolved_bootstrap(), name, command, reset_to=reset_to)
    said = {"pause": "paused", "resume": "resumed", "reset": "reset"}[command]
    more = f" to {_time(reset_to)}" if reset_to else ""
    paused = " (paused: it delivers once resumed)" if command == "reset" and state.paused else ""
    Console().print(f"{name}: {said}{more}{paused}")


@sync_app.command("pause")
def sync_pause(subscription: str) -> None:
    """Stop delivering; the position is kept."""
    _command(subscription, "pause")


@sync_app.command("resume")
def sync_resume(subscription: str) -> None:
    """Deliver again from the position kept."""
    _command(subscription, "resume")


@sync_app.command("reset")
def sync_reset(
    subscription: str,
    to: Annotated[str, typer.Option("--to", help="ISO time; without an offset: Vietnam's.")],
) -> None:
    """Deliver again every event written from TIME on."""
    _command(subscription, "reset", _parse_time(to))


def status_report(settings: Settings) -> dict[str, Any]:
    """What `sync status` shows, as data."""
    bootstrap = settings.kafka.resolved_bootstrap()
    subscriptions = settings.sync.subscriptions
    sources = set(settings.sync.feeds.sources or settings.sources)
    sources |= {source for s in subscriptions for source in s.sources}
    streams = [topics.sync_change(source) for source in sorted(sources)]
    marks = offsets.watermarks(bootstrap, streams)
    last = offsets.last_record_times(bootstrap, [t for t in streams if _has(marks, t)])
    states = control.read_states(bootstrap)
    statuses, source_status = status.read_statuses(bootstrap)
    report: dict[str, Any] = {"streams": [], "subscriptions": [], "sources": source_status}
    for topic in streams:
        ends = {p: high for (t, p), (_, high) in marks.items() if t == topic}
        report["streams"].append(
            {
                "topic": topic,
                "exists": bool(ends),
                "end_offsets": ends,
                "events": sum(high - marks[(topic, p)][0] for p, high in ends.items()),
                "last_event_time": _iso(last.get(topic)),
            }
        )
    for subscription in subscriptions:
        group = group_of(settings.worker.app_id, subscription.name)
        parts = [tp for tp in marks if tp[0] in streams_of(subscription)]
        done = offsets.committed(bootstrap, group, parts)
        lag = sum(marks[tp][1] - (done.get(tp) or marks[tp][0]) for tp in parts)
        state = states.get(subscription.name)
        known = statuses.get(subscription.name)
        dlq = replay.counts(bootstrap, settings.worker.app_id, subscription.name)
        report["subscriptions"].append(
            {
                "subscription": subscription.name,
                "group": group,
                "enabled": subscription.enabled,
                "paused": bool(state and state.paused),
                "committed": {f"{t}[{p}]": o for (t, p), o in sorted(done.items())},
                "lag": lag,
                "dlq_pending": dlq.pending,
                "state": known.state if known else None,
                "delivered": known.delivered if known else None,
                "last_delivered_event_time": _iso(known.last_delivered_event_time)
                if known
                else None,
                "last_error": known.last_error if known else None,
                "status_updated_at": _iso(known.updated_at) if known else None,
            }
        )
    return report


def _has(marks: dict[tuple[str, int], tuple[int, int]], topic: str) -> bool:
    return any(t == topic for t, _ in marks)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


@sync_app.command("status")
def sync_status(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each change stream's end offsets and last event; each subscription's position and lag."""
    settings = _settings()
    with _one_line_errors():
        report = status_report(settings)
    if json_out:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    console = Console()
    streams = Table(title="Change streams")
    for column in ("topic", "events", "end offsets", "last event", "connector"):
        streams.add_column(column, overflow="fold")
    for stream in report["streams"]:
        source = stream["topic"].split(".")[2]
        connector = report["sources"].get(source)
        streams.add_row(
            stream["topic"],
            str(stream["events"]) if stream["exists"] else "(no topic)",
            " ".join(f"{p}:{o}" for p, o in sorted(stream["end_offsets"].items())) or "-",
            _shown(stream["last_event_time"]),
            _connector(connector),
        )
    console.print(streams)
    table = Table(title="Subscriptions")
    for column in ("subscription", "state", "lag", "dlq", "delivered", "last delivered", "error"):
        table.add_column(column, overflow="fold")
    for row in report["subscriptions"]:
        state = "paused" if row["paused"] else (row["state"] or "not running")
        if not row["enabled"]:
            state = "disabled"
        table.add_row(
            row["subscription"],
            state,
            str(row["lag"]),
            str(row["dlq_pending"]),
            "-" if row["delivered"] is None else str(row["delivered"]),
            _shown(row["last_delivered_event_time"]),
            row["last_error"] or "",
        )
    console.print(table)


def _shown(iso: str | None) -> str:
    return _time(datetime.fromisoformat(iso)) if iso else "-"


def _connector(record: Any) -> str:
    if not isinstance(record, dict):
        return "-"
    parts = [str(record.get("state", "?"))]
    if record.get("last_event_time"):
        parts.append(f"last {record['last_event_time']}")
    if record.get("error"):
        parts.append(f"error: {record['error']}")
    return ", ".join(parts)
