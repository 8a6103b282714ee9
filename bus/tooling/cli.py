"""`tthc-bus`: the command line, and the composition root.

This is the one module of bus/ that wires connectors, adapters and the sandbox together, inside
the commands that need them, so that the rest of bus/ never imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from bus.errors import BusError
from bus.settings import Settings, get_settings
from bus.tooling import exits
from bus.tooling.audit_cli import audit_app, report_app
from bus.tooling.datasets_cli import datasets_command
from bus.tooling.keys_cli import keys_app
from bus.tooling.scaffold import SourceProtocol
from bus.tooling.status_cli import maintenance_command, status_command
from bus.tooling.sync_cli import dlq_app, sync_app
from bus.tooling.topics_cli import topics_app

if TYPE_CHECKING:
    from bus.catalog import Catalog
    from bus.policy import Policy
    from connectors.catalog import LoadedSource

console = Console()
# soft_wrap: an error is one line, whatever the terminal's width (scripts read stderr too).
err_console = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    help="tthc-bus: the data-sharing bus for TTHC systems.",
    epilog=exits.EPILOG,
    no_args_is_help=True,
)
kafka_app = typer.Typer(help="The embedded local Kafka broker.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The simulated national databases.", no_args_is_help=True)
schemas_app = typer.Typer(help="Message schemas.", no_args_is_help=True)
adapter_app = typer.Typer(help="Adapters of the national databases.", no_args_is_help=True)
policy_app = typer.Typer(help="Who may see what: the policy grants.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(schemas_app, name="schemas")
app.add_typer(topics_app, name="topics")
app.add_typer(adapter_app, name="adapter")
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")
app.add_typer(dlq_app, name="dlq")
app.add_typer(sync_app, name="sync")
app.command("status")(status_command)
app.command("maintenance")(maintenance_command)
app.command("datasets")(datasets_command)


@app.callback()
def global_options(
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="TTHC_DEBUG",
            help="When a command fails, show the full traceback (env TTHC_DEBUG=1).",
        ),
    ] = False,
) -> None:
    exits.options.debug = debug


def main() -> None:
    """The console script (and `python -m bus.tooling.cli`): what ends a command is one line on
    stderr and an exit code of `bus.tooling.exits`, the traceback only with --debug."""
    try:
        # standalone: click prints usage errors (exit 2) and maps Ctrl-C to 130 itself.
        app(prog_name="tthc-bus")
    except (Exception, KeyboardInterrupt) as exc:
        code = exits.report(exc, sys.stderr.write)
        sys.exit(code)


def settings_or_exit() -> Settings:
    try:
        return get_settings()
    except BusError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def sources_or_exit(settings: Settings, only: list[str] | None = None) -> dict[str, LoadedSource]:
    """The configured sources, checked against their adapters; exit 2 listing every problem."""
    from connectors.catalog import load_sources

    try:
        return load_sources(settings, only)
    except BusError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def catalog_or_exit(settings: Settings) -> Catalog:
    from connectors.catalog import catalog_of

    return catalog_of(sources_or_exit(settings))


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


# -- kafka -----------------------------------------------------------------------------------


def _local_kafka(settings: Settings) -> Any:
    from bus.tooling.kafka_local import local_kafka_from_settings

    return local_kafka_from_settings(settings.kafka.local)


def _local_cluster(settings: Settings, brokers: int | None = None) -> Any:
    """The local cluster of `brokers` nodes; None: the one a start recorded, if any."""
    from bus.tooling.kafka_local import local_cluster_from_settings

    return local_cluster_from_settings(settings.kafka.local, brokers)


@kafka_app.command("start")
def kafka_start(
    brokers: Annotated[
        int,
        typer.Option(
            "--brokers",
            min=1,
            max=5,
            help="Nodes: 1 is the embedded broker; more, a local KRaft cluster (each node broker "
            "and controller) on the ports above the broker's, topics replicated 3 times.",
        ),
    ] = 1,
) -> None:
    """Start the local broker (fetching Kafka with mvn the first time), or a local cluster."""
    from bus.tooling.kafka_local import KafkaSetupError

    settings = settings_or_exit()
    if settings.kafka.bootstrap_servers:
        console.print(
            f"External cluster configured ({settings.kafka.bootstrap_servers}): nothing to start."
        )
        return
    try:
        broker = _local_kafka(settings) if brokers == 1 else _local_cluster(settings, brokers)
        started = broker.start()
    except KafkaSetupError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    already = "" if started else " (it was already running)"
    console.print(f"Kafka {broker.version} running on {broker.bootstrap_servers}{already}")
    if brokers > 1:
        console.print(
            f"The bus uses it with TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS={broker.bootstrap_servers}",
            soft_wrap=True,
        )


@kafka_app.command("install")
def kafka_install() -> None:
    """Fetch Apache Kafka with mvn into the cache folder (nothing happens if it is cached)."""
    from bus.tooling.kafka_local import KafkaSetupError

    try:
        libs = _local_kafka(settings_or_exit()).ensure_installed()
    except KafkaSetupError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"Kafka jars in {libs}")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local broker, and the local cluster if one was started."""
    settings = settings_or_exit()
    stopped = _local_kafka(settings).stop()
    cluster = _local_cluster(settings)
    if cluster is not None and cluster.stop():
        stopped = True
    console.print("Kafka stopped." if stopped else "Kafka was not running.")


@kafka_app.command("status")
def kafka_status(
    json_out: Annotated[bool, typer.Option("--json", help="The status as JSON.")] = False,
) -> None:
    """Show whether the broker runs (the local one, or the external cluster answers), and where.

    Exit code: 0 running (the broker, or every node of the local cluster), 7 not running or
    not reachable."""
    from rich.table import Table
    from rich.text import Text

    from bus.tooling.topics_cli import broker_problem

    settings = settings_or_exit()
    status: dict[str, Any]
    if settings.kafka.bootstrap_servers:
        # Not ours to start or stop: running means it answers.
        problem = broker_problem(settings.kafka.bootstrap_servers)
        status = {
            "mode": "external",
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "running": problem is None,
            "error": problem,
        }
    else:
        status = {"mode": "local", **_local_kafka(settings).status()}
    # The local cluster (`kafka start --brokers N`), if one was started: every node.
    cluster = None if settings.kafka.bootstrap_servers else _local_cluster(settings)
    nodes: dict[str, Any] | None = cluster.status() if cluster is not None else None
    if json_out:
        typer.echo(json.dumps(status | ({"cluster": nodes} if nodes else {}), indent=2))
    else:
        table = Table(title="Kafka broker", show_header=False)
        table.add_column("", style="bold")
        table.add_column("", overflow="fold")
        for name, value in status.items():
            if isinstance(value, bool):
                shown = Text("yes") if value else Text("no", "red")
            else:
                shown = Text("-" if value is None else str(value))
            table.add_row(name.replace("_", " "), shown)
        console.print(table)
        if nodes:
            console.print(_cluster_table(nodes))
    if not status["running"] and not (nodes and nodes["running"]):
        why = f": {status['error']}" if status.get("error") else ""
        err_console.print(
            Text(f"error: no broker answers at {status['bootstrap_servers']}{why}", "red")
        )
        raise typer.Exit(exits.UNREACHABLE)


def _cluster_table(cluster: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(
        "node",
        "bootstrap",
        "pid",
        "running",
        "RSS MB",
        "data dir",
        title=f"Local Kafka cluster ({cluster['brokers']} nodes, {cluster['bootstrap_servers']})",
    )
    for node in cluster["nodes"]:
        table.add_row(
            str(node["node_id"]),
            node["bootstrap_servers"],
            str(node["pid"] or "-"),
            "yes" if node["running"] else "[red]no[/red]",
            str(node["rss_mb"] or "-"),
            node["data_dir"],
        )
    return table


# -- topics ----------------------------------------------------------------------------------


def create_topics(settings: Settings) -> list[str]:
    from bus.topics import bus_topics, ensure_topics

    specs = bus_topics(
        sorted(settings.sources),
        settings.kafka.partitions,
        settings.auth.kafka_agencies,
        settings.auth.reply_topic_partitions,
        [subscription.name for subscription in settings.sync.subscriptions],
    )
    try:
        return ensure_topics(
            settings.kafka.resolved_bootstrap(), specs, settings.kafka.replication_factor
        )
    except BusError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@topics_app.command("create")
def topics_create() -> None:
    """Create the bus's topics that do not exist yet."""
    created = create_topics(settings_or_exit())
    console.print(f"created: {created}" if created else "all topics exist")


# -- sandbox ---------------------------------------------------------------------------------


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
    count: Annotated[int | None, typer.Option(help="Citizens to serve.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the synthetic data.")] = None,
) -> None:
    """Serve every sandbox national database (see `tthc-bus sandbox sources`), with the faults
    of `[sandbox.faults.<source>]` from the start."""
    from sandbox.server import serve

    cfg = settings_or_exit().sandbox
    try:
        serve(
            cfg.host,
            port or cfg.port,
            count or cfg.count,
            cfg.seed if seed is None else seed,
            cfg.faults,
            cfg.changes_backlog,
            cfg.changes_rate,
            cfg.state_file,
        )
    except ValueError as exc:  # faults for an unknown source, or a wrong fault value
        err_console.print(f"[red]sandbox.faults: {exc}[/red]")
        raise typer.Exit(2) from None


@sandbox_app.command("sample")
def sandbox_sample(
    source: Annotated[str, typer.Option(help="Sandbox database.")] = "population",
    n: Annotated[int, typer.Option("-n", help="How many ids.")] = 5,
) -> None:
    """Print subjects a sandbox database holds (same seed and count as `serve`): personal ids, or
    enterprise codes for business registration."""
    from sandbox.registry import discover
    from sandbox.world import World

    sources = discover()
    if source not in sources:
        err_console.print(f"[red]--source: got {source!r}, expected one of {sorted(sources)}[/red]")
        raise typer.Exit(2)
    cfg = settings_or_exit().sandbox
    for subject in sources[source](World(cfg.count, cfg.seed)).sample(n):
        print(subject)


@sandbox_app.command("sources")
def sandbox_sources() -> None:
    """List the simulated national databases and what they are asked by."""
    from sandbox.registry import discover

    for name, cls in discover().items():
        print(f"{name:<12} {cls.subject:<16} {cls.description}")


# -- adapter ---------------------------------------------------------------------------------


@adapter_app.command("new")
def adapter_new(
    name: Annotated[str, typer.Argument(help="The new source, a lowercase identifier.")],
    protocol: Annotated[
        SourceProtocol,
        typer.Option(help="How the national database is asked.", case_sensitive=False),
    ],
    write_settings: Annotated[
        bool,
        typer.Option("--write-settings", help="Append its settings block to settings.toml."),
    ] = False,
) -> None:
    """Write a new national database: its adapter (with its schema), mapping, sandbox stub and
    tests, which pass the contract suite as written; print its settings block and what next."""
    from bus.settings import PROJECT_ROOT
    from bus.tooling.scaffold import ScaffoldError, new_source

    settings = settings_or_exit()
    try:
        done = new_source(
            PROJECT_ROOT,
            name,
            protocol,
            sandbox_url=f"http://{settings.sandbox.host}:{settings.sandbox.port}",
            configured=settings.sources,
            write_settings=write_settings,
        )
    except ScaffoldError as exc:
        err_console.print(f"{exc}", style="red", markup=False, highlight=False)
        raise typer.Exit(2) from None
    print(done.report())


# -- worker ----------------------------------------------------------------------------------


def policy_or_exit(settings: Settings, catalog: Catalog) -> Policy:
    """The policy, checked against the procedure and dataset catalogues; exit 2 naming every
    problem."""
    from bus.policy import Policy
    from bus.procedures import load_procedures

    try:
        procedures = load_procedures(settings.lookup, catalog)
        return Policy(catalog, procedures, settings.policy.grants).check()
    except BusError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def ledger_writer_or_exit(settings: Settings) -> Any:
    """The consumer that stores tthc.audit into the ledger of `audit.ledger_url`."""
    from bus.audit.consumer import LedgerWriter
    from bus.audit.ledger import Ledger

    try:
        return LedgerWriter(Ledger.open(settings.audit.ledger_url))
    except BusError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def ledger() -> None:
    """Store tthc.audit into the ledger, on its own (when `audit.ledger_writer` is off); serve
    /healthz, /readyz and /metrics on `ops.ledger_web_port`."""
    from bus.ops.health import joined
    from bus.ops.parts import ledger_fill
    from bus.ops.status import StatusPublisher
    from bus.ops.web import OpsPages
    from bus.outbox import Outbox
    from bus.runtime import KafkaRunner

    settings = settings_or_exit()
    setup_logging()
    bootstrap = settings.kafka.resolved_bootstrap()
    writer = ledger_writer_or_exit(settings)
    outbox = Outbox(bootstrap, producer_name=f"ledger-{os.getpid()}")
    runner = KafkaRunner(
        bootstrap,
        group_prefix=settings.worker.app_id,
        dead_letters=outbox,
        subscribers=[writer.subscriber()],
        client_id=f"ledger-{os.getpid()}",
    )

    member = f"ledger-{os.getpid()}"
    status = StatusPublisher(
        lambda topic, key, value: outbox.send_raw(topic, value, [], key=key),
        member,
        "ledger",
        interval_s=settings.ops.status_interval_s,
        fill=ledger_fill(writer),
    )
    pages = OpsPages(
        settings.ops.ledger_web_host,
        settings.ops.ledger_web_port,
        {
            "broker": outbox.reachable,
            "consumers": joined(lambda: [lane.consumer for lane in runner.lanes]),
            "ledger": writer.check,
        },
    )

    async def run() -> None:
        started: list[Any] = []
        try:
            for part in [outbox, writer, runner, status, pages]:
                await part.start()
                started.append(part)  # a part that fails to start (a port taken) unwinds these
            await asyncio.Event().wait()  # until Ctrl-C or SIGTERM
        finally:
            for part in reversed(started):
                await part.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@dataclass
class ComposedWorker:
    faust_app: Any
    runtime: Any
    subscribers: list[Any]


def compose_worker(settings: Settings) -> ComposedWorker:
    """The faust app (the aggregator and its table) and the service beside it: the outbox, and
    the runner of the router and of one lookup connector per source."""
    from bus.aggregator import LookupAggregator
    from bus.audit.pseudonym import Pseudonymizer
    from bus.audit.recorder import AuditRecorder
    from bus.auth import Keyring
    from bus.ops.health import breakers, joined
    from bus.ops.maintenance import MaintenanceFollower, drain_on_maintenance
    from bus.ops.parts import worker_fill
    from bus.ops.status import StatusPublisher
    from bus.outbox import Outbox
    from bus.requesters import RequesterCheck
    from bus.router import LookupRouter
    from bus.runtime import KafkaRunner, RunnerSettings, hosted
    from bus.streams import add_ops_pages, create_app
    from bus.tooling.sync_cli import subscription_runner
    from connectors.lookup import LookupConnector
    from connectors.sync import FeedConnectors

    bootstrap = settings.kafka.resolved_bootstrap()
    name = f"worker-{os.getpid()}"
    faust_app = create_app(settings)
    outbox = Outbox(bootstrap, producer_name=name)
    catalog = catalog_or_exit(settings)
    loaded = sources_or_exit(settings, settings.worker.sources)
    connectors = {
        name: LookupConnector(name, source.settings, source.new_adapter(), outbox)
        for name, source in loaded.items()
    }
    policy = policy_or_exit(settings, catalog)
    try:
        requesters = RequesterCheck(
            Keyring.from_settings(settings.auth),
            settings.auth.kafka_agencies,
            settings.auth.reply_topic_partitions,
        )
        audit = AuditRecorder(
            outbox,
            Pseudonymizer.from_settings(settings.audit),
            enabled=settings.audit.enabled,
            timeout_s=settings.audit.write_timeout_ms / 1000,
            partitions=settings.kafka.partitions,
        )
    except BusError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    router = LookupRouter(
        policy,
        outbox,
        requesters=requesters,
        audit=audit,
        max_deadline_s=settings.lookup.max_deadline_ms / 1000,
        local=connectors,
        max_queue_s=settings.worker.max_queue_ms / 1000,
        concurrency=settings.worker.concurrency,
    )
    aggregator = LookupAggregator(faust_app, outbox, settings.kafka.partitions, audit)
    aggregator.register()
    direct = [router.subscriber(), *(c.subscriber(outbox) for c in connectors.values())]
    writers = []
    if settings.audit.enabled and settings.audit.ledger_writer:
        writers.append(ledger_writer_or_exit(settings))
        direct += [writer.subscriber() for writer in writers]
    runner = KafkaRunner(
        bootstrap,
        group_prefix=settings.worker.app_id,
        dead_letters=outbox,
        subscribers=direct,
        settings=RunnerSettings(
            fetch_max_wait_ms=settings.worker.fetch_max_wait_ms,
            session_timeout_ms=settings.worker.session_timeout_ms,
            leave_timeout_s=settings.lookup.max_deadline_ms / 1000 + 5,
        ),
        client_id=name,
    )
    feeds = FeedConnectors(
        bootstrap,
        settings.worker.app_id,
        {
            source: loaded_source.new_adapter()
            for source, loaded_source in sources_or_exit(
                settings, settings.sync.feeds.sources
            ).items()
        },
        settings.sync.feeds,
        name,
    )
    try:
        subscriptions = subscription_runner(settings, outbox)
    except BusError as exc:  # a sink naming a database or operation that does not exist
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    status = StatusPublisher(
        lambda topic, key, value: outbox.send_raw(topic, value, [], key=key),
        name,
        "worker",
        interval_s=settings.ops.status_interval_s,
        fill=worker_fill(connectors, feeds, subscriptions, runner),
    )
    maintenance = MaintenanceFollower(bootstrap, name, on_change=drain_on_maintenance(runner))
    add_ops_pages(
        faust_app,
        {
            "maintenance": maintenance.check,
            "broker": outbox.reachable,
            "consumers": joined(lambda: [lane.consumer for lane in runner.lanes]),
            "breakers": breakers(lambda: {s: c.breaker.state for s, c in connectors.items()}),
        },
    )
    # The runner stops before the writers, so that what it consumed is stored before they stop.
    runtime = hosted(
        outbox, *writers, runner, *connectors.values(), feeds, subscriptions, status, maintenance
    )
    return ComposedWorker(faust_app, runtime, [*direct, aggregator.subscriber()])


@app.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="faust log level.")] = "warn",
) -> None:
    """Run a worker: router, lookup connectors, and the aggregator of fan-out lookups."""
    from faust.worker import Worker

    class BusWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # mode leaves the root logger at DEBUG and filters in the handler, so every
            # library's debug call still builds a LogRecord: about 10% of the worker's CPU.
            logger.setLevel(level)

    settings = settings_or_exit()
    create_topics(settings)
    composed = compose_worker(settings)
    worker = BusWorker(composed.faust_app, composed.runtime, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()


# -- gateway ---------------------------------------------------------------------------------


@app.command()
def gateway(
    port: Annotated[int | None, typer.Option(help="Port (default: settings).")] = None,
) -> None:
    """Run the HTTP gateway."""
    import uvicorn

    from bus.gateway import create_gateway_asgi

    settings = settings_or_exit()
    create_topics(settings)
    try:
        asgi = create_gateway_asgi(settings, catalog_or_exit(settings))
    except BusError as exc:  # e.g. the procedure catalogue names an unknown dataset
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    uvicorn.run(
        asgi,
        host=settings.gateway.host,
        port=port or settings.gateway.port,
        log_level="warning",
        access_log=False,
    )


# -- lookup ----------------------------------------------------------------------------------


@app.command()
def lookup(
    subject: Annotated[
        str,
        typer.Option(
            help="Personal id (12 digits), or enterprise code (10 digits, or 10-NNN for a "
            "branch): anything that is not an enterprise code is checked as a personal id."
        ),
    ],
    procedure: Annotated[str, typer.Option(help="TTHC procedure code.")],
    purpose: Annotated[str, typer.Option(help="Why: one of the purposes the procedure allows.")],
    key: Annotated[
        str,
        typer.Option(
            envvar="TTHC_API_KEY",
            help="The agency's API key (tthc-bus keys new AGENCY); the agency must be listed in "
            "auth.kafka_agencies, its replies come on its own topic.",
            show_default=False,
        ),
    ],
    agency: Annotated[
        str, typer.Option(envvar="TTHC_AGENCY", help="The agency the key belongs to.")
    ],
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="Dataset, e.g. population.identity; none: the procedure's datasets."),
    ] = None,
    legal_basis: Annotated[str, typer.Option(help="Legal basis.")] = "Decree 194/2025/ND-CP",
    officer: Annotated[str, typer.Option(help="Officer handling the dossier.")] = "cli-user",
    dossier: Annotated[str, typer.Option(help="Dossier id.")] = "CLI-DOSSIER",
    deadline_ms: Annotated[
        int, typer.Option(min=100, help="Time allowed, in ms (as lookup.default_deadline_ms).")
    ] = 5000,
) -> None:
    """Look up a subject over Kafka, as a Kafka-native client of an agency, and print the reply.

    Exit code: 0 complete or partial, 3 not found, 4 denied, 5 failed, 6 no reply before the
    deadline (or deadline_exceeded only), 7 the broker cannot be reached, 2 an invalid request."""
    from bus.client import AsyncBusClient, BusUnavailable
    from bus.tooling.topics_cli import broker_problem

    settings = settings_or_exit()
    bootstrap = settings.kafka.resolved_bootstrap()
    # The library's client: the request is checked as the gateway checks it (the same rules
    # and messages: InvalidLookup, exit 2) before it is sent.
    client = AsyncBusClient(bootstrap, key=key, agency=agency, system="tthc-bus-cli")
    # Asked first: the client would tell an unreachable broker only after its start (30 s) or
    # the deadline, with librdkafka's own lines on stderr.
    problem = broker_problem(bootstrap, min(deadline_ms / 1000, 5.0))
    if problem is not None:
        raise BusUnavailable(f"the broker at {bootstrap} does not answer: {problem}")

    async def run() -> Any:
        async with client:
            return await client.lookup(
                subject=subject,
                procedure=procedure,
                purpose=purpose,
                legal_basis=legal_basis,
                dossier_id=dossier,
                officer=officer,
                datasets=dataset or None,
                deadline_ms=deadline_ms,
            )

    reply = asyncio.run(run())  # NoReply: exit 6, InvalidLookup: exit 2 (bus/tooling/exits.py)
    print(reply.model_dump_json(indent=2))
    code = exits.lookup_exit(reply.status, [error.code for error in reply.errors])
    if code != exits.OK:
        # The reply is on stdout for scripts; the verdict is one line on stderr.
        errors = "; ".join(f"{e.dataset}: {e.code}: {e.message}" for e in reply.errors)
        retry = f" (ask again in {reply.retry_after_ms} ms)" if reply.retry_after_ms else ""
        err_console.print(exits.one_line(f"{reply.status}: {errors}{retry}"), markup=False)
    raise typer.Exit(code)


# -- policy ----------------------------------------------------------------------------------


@policy_app.command("check")
def policy_check(
    agency: Annotated[str, typer.Option(help="The requesting agency's code.")],
    procedure: Annotated[str, typer.Option(help="TTHC procedure code.")],
    dataset: Annotated[str, typer.Option(help="Dataset, e.g. population.identity.")],
    purpose: Annotated[
        str | None, typer.Option(help="The purpose a request would state (checked if given).")
    ] = None,
) -> None:
    """Explain what the policy decides for an agency, a procedure and a dataset, and why."""
    settings = settings_or_exit()
    policy = policy_or_exit(settings, catalog_or_exit(settings))
    answer = policy.explain(agency, procedure, dataset, purpose)
    verdict = "[green]granted[/green]" if answer.allowed else f"[red]denied[/red] ({answer.code})"
    console.print(f"{agency} / {procedure} / {dataset}: {verdict}")
    for reason in answer.reasons:
        console.print(f"  - {reason}")
    raise typer.Exit(exits.OK if answer.allowed else exits.DENIED)


# -- schemas ---------------------------------------------------------------------------------


@schemas_app.command("export")
def schemas_export(directory: Path) -> None:
    """Write the JSON Schema of every message and record type into DIRECTORY."""
    from bus import schemas

    directory.mkdir(parents=True, exist_ok=True)
    names = [
        "LookupRequest",
        "LookupResponse",
        "Citizen",
        "SourceQuery",
        "SourceResult",
        "LookupPlan",
        "LookupExpiry",
    ]
    for name in names:
        model = getattr(schemas, name)
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2, ensure_ascii=False) + "\n")
        console.print(f"wrote {path}")
    from bus.asyncapi import asyncapi_document

    path = directory / "asyncapi.json"
    subscribers = compose_worker(settings_or_exit()).subscribers
    document = asyncapi_document(subscribers)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {path} (AsyncAPI {document['asyncapi']}: the Kafka interface)")


# -- dev -------------------------------------------------------------------------------------


@app.command()
def dev(
    workdir: Annotated[
        Path | None, typer.Option(help="Folder of the children's logs (default: .run).")
    ] = None,
) -> None:
    """Start everything locally (broker, sandbox, worker, gateway) until Ctrl-C.

    Ports and data folders come from the settings (`TTHC_BUS_*`). SIGINT, SIGTERM and SIGHUP
    stop everything this command started, also while it is still starting.
    """
    from bus.tooling.devstack import DevStack, Interrupted, StopSignals

    settings = settings_or_exit()
    setup_logging("WARNING")
    with StopSignals() as signals:
        try:
            console.print("Starting Kafka, the sandbox, a worker and the gateway ...")
            stack = DevStack(settings, workdir=workdir, fixed_ports=True, signals=signals)
            with stack:
                stack.print_banner(console)
                stack.wait()
        except Interrupted as exc:
            # Stopped before it was running (DevStack.start has stopped what it started).
            _say_error(f"interrupted by {signal_name(exc.signum)} while starting; stopped")
            raise typer.Exit(128 + exc.signum) from None
        except BusError as exc:
            _say_error(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None


def signal_name(signum: int) -> str:
    import signal

    return signal.Signals(signum).name


def _say_error(text: str) -> None:
    """After SIGHUP the terminal may be gone: printing must not fail the command."""
    import contextlib

    with contextlib.suppress(OSError, ValueError):
        err_console.print(text)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Run a benchmark scenario (`python -m bench --help` lists them and their options).

    The harness lives above the bus: it is started as its own program, never imported here.
    """
    import subprocess

    done = subprocess.run([sys.executable, "-m", "bench", *ctx.args], check=False)
    raise typer.Exit(done.returncode)


if __name__ == "__main__":
    main()
