"""Run one scenario: start what it needs, measure, print the tables, save the JSON."""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench.loadgen import AGENCY
from bench.report import RESULTS_DIR, render, stamp_of, write_json
from bench.scenarios import KAFKA_ONLY, PROFILABLE, SCENARIOS, StackEndpoints, resolve_options
from bus.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:
    from bus.tooling.devstack import DevStack

AUDIT_ENV = "TTHC_BUS_AUDIT__ENABLED"
# The lookup scenarios' stack polls no change feed and runs no subscription: their work would
# be noise in the lookup figures, and their streams and cursors belong to the broker's other
# stacks (sync-throughput starts a stack of its own, bench/sync_path.py).
NO_SYNC_ENV = {"TTHC_BUS_SYNC__FEEDS__SOURCES": "[]", "TTHC_BUS_SYNC__SUBSCRIPTIONS": "[]"}


def git_commit(cwd: Path = PROJECT_ROOT) -> str:
    """``git rev-parse HEAD``, or "unknown" outside a repository or before the first commit."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def load_average() -> float | None:
    """The machine's 1-minute load average (other jobs sharing the cores show here)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine(settings: Settings) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka_version": settings.kafka.local.version,
        "kafka_external": settings.kafka.bootstrap_servers is not None,
    }


def restart_bus(stack: DevStack, audit: bool | None) -> tuple[int, tuple[int, ...]]:
    """Stop the gateway and every worker, start them again with the audit trail on (True), off
    (False) or as the stack's environment and settings say (None), and wait until every worker
    holds partitions and a lookup through the new gateway completes.

    Returns the new (gateway pid, worker pids). The ports, data dirs and keys stay the same.
    """
    workers = len(stack.worker_names) or 1
    audit_env = {} if audit is None else {AUDIT_ENV: "true" if audit else "false"}
    stack.stop_child("gateway")
    for name in reversed(stack.worker_names):
        stack.stop_child(name)
    stack.worker_env.pop(AUDIT_ENV, None)
    stack.worker_env.update(audit_env)
    for number in range(1, workers + 1):
        stack.spawn_worker(number)
    stack.spawn("gateway", ["gateway"], extra_env=audit_env)
    stack.wait_http("gateway", f"{stack.gateway_url}/healthz")
    stack.wait_workers_assigned(workers)  # and then a complete lookup through the gateway
    return stack.children["gateway"].process.pid, tuple(stack.worker_pids)


def endpoints_of(stack: DevStack, settings: Settings) -> StackEndpoints:
    """Where ``stack`` answers now (its gateway's and workers' pids change when restarted)."""
    return StackEndpoints(
        gateway_url=stack.gateway_url,
        sandbox_url=stack.sandbox_url,
        bootstrap_servers=stack.bootstrap_servers,
        worker_pid=stack.worker_pid,
        gateway_pid=stack.children["gateway"].process.pid,
        partitions=settings.kafka.partitions,
        worker_pids=tuple(stack.worker_pids),
        sandbox_pid=stack.sandbox_pid,
        broker_pid=stack.broker_pid,
        ledger_pid=stack.ledger_pid,
        scale_workers=lambda count: tuple(stack.scale_workers(count)),
        api_key=stack.keys.agencies[AGENCY],
        gateway_key=stack.keys.gateway,
        restart_bus=lambda audit: restart_bus(stack, audit),
        current=lambda: endpoints_of(stack, settings),
    )


@contextmanager
def started_stack(settings: Settings, workers: int = 1) -> Iterator[StackEndpoints]:
    """The whole local stack (Kafka, sandbox, ``workers`` workers, gateway) for the run."""
    from bus.tooling.devstack import DevStack  # imported only when a stack is needed

    with (
        tempfile.TemporaryDirectory(prefix="tthc-bench-") as workdir,
        DevStack(
            settings, workdir=Path(workdir), workers=workers, worker_env=dict(NO_SYNC_ENV)
        ) as stack,
    ):
        yield endpoints_of(stack, settings)


# A stack just started runs cold: the broker's JIT compiles for a minute or more (it
# spent twice the CPU per lookup then), and Python's caches fill. Production runs warm.
STACK_WARMUP_S = 60.0


def warm_up(stack: StackEndpoints, seconds: float = STACK_WARMUP_S) -> None:
    """Closed-loop lookups through the gateway for `seconds`, not recorded."""
    from bench.common import fetch_subjects
    from bench.loadgen import LoadSpec, run_in_process

    assert stack.gateway_url is not None and stack.sandbox_url is not None
    spec = LoadSpec(
        target="bus",
        base_url=stack.gateway_url,
        subjects=fetch_subjects(stack.sandbox_url),
        concurrency=32,
        warmup_s=0.0,
        duration_s=seconds,
        api_key=stack.api_key,
    )
    run_in_process(spec)


@contextmanager
def _endpoints(
    name: str, settings: Settings, stack: StackEndpoints | None, bootstrap_servers: str | None
) -> Iterator[StackEndpoints]:
    bootstrap = bootstrap_servers or settings.kafka.bootstrap_servers
    if stack is not None:
        yield stack
    elif name in KAFKA_ONLY and bootstrap:
        yield StackEndpoints(bootstrap_servers=bootstrap, partitions=settings.kafka.partitions)
    else:
        with started_stack(settings) as started:
            yield started


def run_scenario(
    name: str,
    *,
    quick: bool = False,
    duration_s: float | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    soak_minutes: float | None = None,
    events: int | None = None,
    profile: bool = False,
    bootstrap_servers: str | None = None,
    stack: StackEndpoints | None = None,
    results_dir: Path | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run scenario ``name``, print its tables, write its JSON; return the result.

    ``stack`` uses already running endpoints instead of starting ``bus.tooling.devstack.DevStack``
    (the scaling scenario needs its ``scale_workers``);
    ``bootstrap_servers`` (or settings' kafka.bootstrap_servers) lets the Kafka-only scenario
    run against an existing broker without the rest of the stack. ``profile`` samples the
    worker (and the gateway) with py-spy during the bus run's measured window, keeps the raw
    files beside the result JSON and adds their summary as ``result["profile"]``.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown bench scenario {name!r}; expected one of {sorted(SCENARIOS)}")
    if profile and name not in PROFILABLE:
        raise ValueError(
            f"--profile needs a bus load run: one of {sorted(PROFILABLE)}, not {name!r}"
        )
    settings = get_settings()
    started_at = datetime.now(UTC)
    profile_prefix = (results_dir or RESULTS_DIR) / stamp_of(started_at) if profile else None
    options = resolve_options(
        name,
        quick,
        duration_s=duration_s,
        concurrency=concurrency,
        rate=rate,
        soak_minutes=soak_minutes,
        events=events,
        profile_prefix=profile_prefix,
    )
    load_before = load_average()
    with _endpoints(name, settings, stack, bootstrap_servers) as endpoints:
        if stack is None and not quick and endpoints.gateway_url is not None:
            warm_up(endpoints)
        clock = time.perf_counter()
        outcome = SCENARIOS[name](endpoints, options)
        elapsed_s = round(time.perf_counter() - clock, 3)
    result = {
        "scenario": name,
        "quick": quick,
        "started_at": started_at.isoformat(),
        "elapsed_s": elapsed_s,
        "machine": {**machine(settings), "load_avg_1m": [load_before, load_average()]},
        "git_commit": git_commit(),
        **outcome,
    }
    result["result_file"] = str(write_json(result, results_dir))
    render(result, console)
    return result
