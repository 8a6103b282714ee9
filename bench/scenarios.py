"""The four scenarios. Each measures the bus beside a baseline taken in the same run.

A scenario gets the running stack's endpoints and the resolved options, and returns its
``params``, ``runs`` (load summaries), ``figures``, ``goals`` and ``notes``; the runner adds the
machine, the commit and the timestamps, prints and saves.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import goals
from bench.kafka_pipe import measure_raw_pipe
from bench.loadgen import LoadProcess, LoadSpec, Mode, Target, run_in_process
from bench.memory import memory_summary, sample_rss
from bench.profiling import RATE_HZ, ProfileSession
from bench.stats import difference, ratio

SUBJECT_SAMPLE = 1000
SYNC_BUS_PATH_NOTE = "bus path: not built yet (sync streams issue)"
PROFILE_NOTE = (
    f"profiled: py-spy paused the bus's processes {RATE_HZ} times a second during the bus run, "
    "so its figures are below an unprofiled run's"
)


@dataclass(frozen=True)
class StackEndpoints:
    """Where the running stack answers; a scenario asks only for what it needs."""

    gateway_url: str | None = None
    sandbox_url: str | None = None
    bootstrap_servers: str | None = None
    worker_pid: int | None = None
    gateway_pid: int | None = None
    partitions: int = 6

    def need(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this scenario needs the stack's {name}, which is not set")
        return value


@dataclass(frozen=True)
class ScenarioOptions:
    """Options after defaults: ``quick`` picks the few-second profile."""

    quick: bool = False
    warmup_s: float = 5.0
    duration_s: float = 30.0
    concurrency: int = 32
    rate: float = 100.0
    soak_minutes: float = 10.0
    events: int = 200_000
    sample_interval_s: float = 1.0
    # With --profile: where the py-spy files go, ``<results dir>/<stamp>`` (+ ``-worker...``).
    profile_prefix: Path | None = None


FULL = ScenarioOptions()
QUICK = ScenarioOptions(
    quick=True,
    warmup_s=0.5,
    duration_s=2.0,
    concurrency=8,
    rate=50.0,
    soak_minutes=0.1,
    events=5_000,
)
# The memory soak runs at moderate concurrency, not the throughput scenario's.
MEMORY_CONCURRENCY = {False: 16, True: 4}


def resolve_options(name: str, quick: bool, **overrides: Any) -> ScenarioOptions:
    """The profile of scenario ``name`` for ``quick``, with every override that is not None."""
    base = QUICK if quick else FULL
    if name == "memory":
        base = replace(base, concurrency=MEMORY_CONCURRENCY[quick])
    chosen = {key: value for key, value in overrides.items() if value is not None}
    return replace(base, **chosen)


def fetch_subjects(sandbox_url: str, n: int = SUBJECT_SAMPLE) -> tuple[str, ...]:
    """Existing personal ids, from the sandbox's sample endpoint."""
    url = f"{sandbox_url.rstrip('/')}/_sandbox/sample?n={n}"
    with urllib.request.urlopen(url, timeout=10) as response:
        subjects = json.load(response)
    if not subjects or not all(isinstance(item, str) for item in subjects):
        raise ValueError(f"GET {url}: expected a non-empty JSON list of ids, got {subjects!r:.200}")
    return tuple(subjects)


def _spec(stack: StackEndpoints, target: Target, mode: Mode, options: ScenarioOptions) -> LoadSpec:
    base_url = stack.need("gateway_url" if target == "bus" else "sandbox_url")
    return LoadSpec(
        target=target,
        base_url=base_url,
        subjects=fetch_subjects(stack.need("sandbox_url")),
        mode=mode,
        concurrency=options.concurrency,
        rate=options.rate,
        warmup_s=options.warmup_s,
        duration_s=options.duration_s,
    )


def _profile_session(
    stack: StackEndpoints, options: ScenarioOptions, duration_s: float
) -> ProfileSession | None:
    """py-spy on the worker (and the gateway if its pid is known), if the run is profiled."""
    if options.profile_prefix is None:
        return None
    targets = {"worker": stack.need("worker_pid")}
    if stack.gateway_pid is not None:
        targets["gateway"] = stack.gateway_pid
    return ProfileSession(targets, duration_s, options.profile_prefix)


def _profiled_bus_run(
    stack: StackEndpoints, spec: LoadSpec, options: ScenarioOptions
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The bus run, with py-spy over its measured window when the run is profiled."""
    session = _profile_session(stack, options, spec.duration_s)
    if session is None:
        return run_in_process(spec).summary(), None
    with LoadProcess(spec) as load:
        session.start(load.window_started)
        try:
            run = load.result().summary()
        finally:
            profile = session.finish()
    return run, profile


def _direct_then_bus(
    stack: StackEndpoints, mode: Mode, options: ScenarioOptions
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None]:
    """The baseline first, then the bus: same generator, same load. Also the bus's profile."""
    direct = run_in_process(_spec(stack, "direct", mode, options)).summary()
    bus, profile = _profiled_bus_run(stack, _spec(stack, "bus", mode, options), options)
    return {"direct": direct, "bus": bus}, profile


def _with_profile(outcome: dict[str, Any], profile: dict[str, Any] | None) -> dict[str, Any]:
    if profile is not None:
        outcome["profile"] = profile
        outcome["notes"].append(PROFILE_NOTE)
    return outcome


def _params(options: ScenarioOptions, *keys: str) -> dict[str, Any]:
    values = asdict(options)
    return {key: values[key] for key in ("quick", *keys)}


def lookup_throughput(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """Closed loop at the same concurrency against the sandbox (direct) and the gateway (bus)."""
    runs, profile = _direct_then_bus(stack, "closed", options)
    bus, direct = runs["bus"], runs["direct"]
    efficiency = ratio(bus["throughput_per_s"], direct["throughput_per_s"])
    figures = {
        "bus_lookups_per_s": bus["throughput_per_s"],
        "direct_lookups_per_s": direct["throughput_per_s"],
        "efficiency": None if efficiency is None else round(efficiency, 3),
        "bus_errors": bus["errors"],
        "direct_errors": direct["errors"],
    }
    outcome = {
        "params": _params(options, "warmup_s", "duration_s", "concurrency"),
        "runs": runs,
        "figures": figures,
        "goals": [
            g.evaluate(figures) for g in (goals.EFFICIENCY, goals.THROUGHPUT, goals.ZERO_ERRORS)
        ],
        "notes": [],
    }
    return _with_profile(outcome, profile)


def lookup_overhead(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """Open loop at a fixed rate below saturation; the bus's latency minus the direct one's."""
    runs, profile = _direct_then_bus(stack, "open", options)
    bus, direct = runs["bus"]["latency_ms"], runs["direct"]["latency_ms"]
    figures = {
        "added_p50_ms": difference(bus["p50"], direct["p50"]),
        "added_p99_ms": difference(bus["p99"], direct["p99"]),
        "bus_errors": runs["bus"]["errors"],
        "direct_errors": runs["direct"]["errors"],
    }
    notes = [
        f"{target} run had {run['errors']} errors: {run['error_kinds']}"
        for target, run in runs.items()
        if run["errors"]
    ]
    outcome = {
        "params": _params(options, "warmup_s", "duration_s", "rate"),
        "runs": runs,
        "figures": figures,
        "goals": [g.evaluate(figures) for g in (goals.ADDED_P50, goals.ADDED_P99)],
        "notes": notes,
    }
    return _with_profile(outcome, profile)


def measure_bus_sync_path(stack: StackEndpoints, events: int) -> dict[str, Any] | None:
    """The bus's sync stream over the same backlog. TODO(sync streams issue): build it.

    When the sync source/sink connectors exist: produce the same backlog of native change events
    to the source connector's input, time the bus until ``events`` normalized events are on
    ``tthc.sync.<source>.change``, and return ``{"events", "elapsed_s", "events_per_s"}``.
    """
    return None


def sync_throughput(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """A raw consume -> transform -> produce pipe over a backlog (baseline); the bus path later."""
    bootstrap = stack.need("bootstrap_servers")
    baseline = asyncio.run(measure_raw_pipe(bootstrap, options.events, stack.partitions))
    bus = measure_bus_sync_path(stack, options.events)
    bus_rate = None if bus is None else bus["events_per_s"]
    sync_ratio = ratio(bus_rate, baseline["events_per_s"])
    figures = {
        "raw_pipe_events": baseline["events"],
        "raw_pipe_elapsed_s": baseline["elapsed_s"],
        "raw_pipe_events_per_s": baseline["events_per_s"],
        "bus_events_per_s": bus_rate,
        "sync_ratio": None if sync_ratio is None else round(sync_ratio, 3),
    }
    not_built = SYNC_BUS_PATH_NOTE if bus is None else None
    return {
        "params": _params(options, "events"),
        "sync": {"raw_pipe": baseline, "bus": bus if bus is not None else SYNC_BUS_PATH_NOTE},
        "figures": figures,
        "goals": [goals.SYNC_RATIO.evaluate(figures, not_applicable=not_built)],
        "notes": [not_built] if not_built else [],
    }


def memory(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """Worker RSS every second under a closed-loop soak at moderate concurrency."""
    worker_pid = stack.need("worker_pid")
    soak_options = replace(options, warmup_s=0.0, duration_s=options.soak_minutes * 60.0)
    spec = _spec(stack, "bus", "closed", soak_options)
    session = _profile_session(stack, options, spec.duration_s)
    with LoadProcess(spec) as load:
        if session is not None:
            session.start(load.window_started)
        try:
            samples = sample_rss(worker_pid, lambda: not load.done(), options.sample_interval_s)
            run = load.result().summary()
        finally:
            profile = None if session is None else session.finish()
    rss = memory_summary(samples)
    figures = {key: rss[key] for key in ("start_mb", "peak_mb", "end_mb", "slope_mb_per_min")}
    short = options.soak_minutes < goals.FLAT_SOAK_MINUTES
    reason = (
        f"soak of {options.soak_minutes:g} min < {goals.FLAT_SOAK_MINUTES:g} min" if short else None
    )
    outcome = {
        "params": {
            **_params(options, "soak_minutes", "sample_interval_s"),
            "concurrency": spec.concurrency,
        },
        "runs": {"bus": run},
        "memory": rss,
        "figures": figures,
        "goals": [goals.MEMORY_FLAT.evaluate(figures, not_applicable=reason)],
        "notes": [reason] if reason else [],
    }
    return _with_profile(outcome, profile)


Scenario = Callable[[StackEndpoints, ScenarioOptions], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {
    "lookup-throughput": lookup_throughput,
    "lookup-overhead": lookup_overhead,
    "sync-throughput": sync_throughput,
    "memory": memory,
}
# Scenarios that need only a Kafka broker, not the whole stack.
KAFKA_ONLY = frozenset({"sync-throughput"})
# Scenarios with a bus load run that --profile can sample.
PROFILABLE = frozenset({"lookup-throughput", "lookup-overhead", "memory"})
