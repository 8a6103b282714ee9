"""The scenarios. Each measures the bus beside a baseline taken in the same run.

A scenario gets the running stack's endpoints and the resolved options, and returns its
``params``, ``runs`` (load summaries), ``figures``, ``goals`` and ``notes``; the runner adds the
machine, the commit and the timestamps, prints and saves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench import goals
from bench.audit_cost import audit_cost
from bench.common import (
    NO_KAFKA,
    ScenarioOptions,
    StackEndpoints,
    capacity_concurrency,
    capacity_spec,
    cpu_goal_reason,
    error_notes,
    fetch_subjects,
    load_spec,
    optional_run,
    params,
    profile_session,
    profiled_run,
    resolve_options,
    run_load,
    skipped_notes,
    with_profile,
)
from bench.kafka_pipe import measure_raw_pipe
from bench.loadgen import ZEEP_THREADS, LoadProcess
from bench.memory import memory_summary, sample_rss
from bench.overload import overload
from bench.prefill import prefill_throughput
from bench.scaling import scaling
from bench.stats import difference, ratio
from bench.sync_path import measure_bus_sync_path

# The bus path's backlog: at most this many events (its rate, not its size, is compared).
SYNC_BUS_EVENTS = 20_000
# Events per webhook POST at most on the batched run of the bus path (the sink's batch_max).
SYNC_BATCH_MAX = 100

__all__ = [
    "KAFKA_ONLY",
    "PROFILABLE",
    "SCENARIOS",
    "ScenarioOptions",
    "StackEndpoints",
    "fetch_subjects",
    "resolve_options",
]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _throughput(run: dict[str, Any] | None) -> float | None:
    return None if run is None else run["throughput_per_s"]


def _errors(run: dict[str, Any] | None) -> int | None:
    return None if run is None else run["errors"]


def _cpu_sum(run: dict[str, Any] | None) -> float | None:
    cpu = None if run is None else run.get("cpu")
    return None if cpu is None else cpu["bus_ms_per_lookup"]


def lookup_throughput(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """Closed loop at the same concurrency: against the sandbox as raw HTTP (the floor) and with
    a plain zeep client (what an agency writes without the bus), then through the gateway and
    with the Kafka-native client (the bus). CPU per lookup of every process in each window."""
    runs: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    runs["direct"] = run_load(load_spec(stack, "direct", "closed", options))
    zeep = optional_run(runs, skipped, "zeep", lambda: load_spec(stack, "zeep", "closed", options))
    bus, profile = profiled_run(stack, load_spec(stack, "bus", "closed", options), options)
    runs["bus"] = bus
    kafka = optional_run(
        runs,
        skipped,
        "kafka",
        lambda: load_spec(stack, "kafka", "closed", options),
        unavailable=None if stack.bootstrap_servers else NO_KAFKA,
    )
    direct = runs["direct"]
    figures = {
        "bus_lookups_per_s": bus["throughput_per_s"],
        "kafka_lookups_per_s": _throughput(kafka),
        "direct_lookups_per_s": direct["throughput_per_s"],
        "zeep_lookups_per_s": _throughput(zeep),
        "efficiency": _rounded(ratio(bus["throughput_per_s"], direct["throughput_per_s"])),
        "bus_vs_zeep": _rounded(ratio(bus["throughput_per_s"], _throughput(zeep))),
        "kafka_vs_direct": _rounded(ratio(_throughput(kafka), direct["throughput_per_s"])),
        "kafka_vs_zeep": _rounded(ratio(_throughput(kafka), _throughput(zeep))),
        "bus_errors": bus["errors"],
        "kafka_errors": _errors(kafka),
        "direct_errors": direct["errors"],
        "zeep_errors": _errors(zeep),
        "bus_cpu_ms_per_lookup": _cpu_sum(bus),
        "kafka_cpu_ms_per_lookup": _cpu_sum(kafka),
    }
    zeep_missing = skipped.get("zeep") if zeep is None else None
    kafka_missing = skipped.get("kafka") if kafka is None else None
    outcome = {
        "params": {
            **params(options, "warmup_s", "duration_s", "concurrency"),
            "zeep_threads": ZEEP_THREADS,
        },
        "runs": runs,
        "figures": figures,
        "goals": [
            goals.THROUGHPUT_MIN.evaluate(figures),
            goals.THROUGHPUT.evaluate(figures),
            goals.ZERO_ERRORS.evaluate(figures),
            goals.EFFICIENCY.evaluate(figures),
            goals.BEATS_ZEEP.evaluate(figures, not_applicable=zeep_missing),
            goals.KAFKA_ZERO_ERRORS.evaluate(figures, not_applicable=kafka_missing),
            goals.CPU_BUS.evaluate(figures, not_applicable=cpu_goal_reason(bus)),
            goals.CPU_KAFKA.evaluate(figures, not_applicable=cpu_goal_reason(kafka, kafka_missing)),
        ],
        "notes": [
            *skipped_notes(skipped),
            f"zeep: one zeep.Client shared by {ZEEP_THREADS} threads, each a closed-loop client; "
            f"the other runs have {options.concurrency} closed-loop clients",
            *error_notes(runs),
        ],
    }
    return with_profile(outcome, profile)


def lookup_overhead(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """Open loop at half the capacity measured first (or at ``--rate``): the bus's latency minus
    the direct one's, at the same rate."""
    runs: dict[str, dict[str, Any]] = {}
    rate = options.rate
    capacity: float | None = None
    if rate is None:
        runs["capacity"] = run_load(capacity_spec(stack, options, "bus"))
        capacity = runs["capacity"]["throughput_per_s"]
        rate = round(capacity / 2.0, 1)
    if not rate or rate <= 0:
        raise RuntimeError(
            f"lookup-overhead: the capacity run through the gateway completed no lookup "
            f"({runs['capacity']['error_kinds']}): no rate to run the open loop at"
        )
    open_options = replace(options, rate=rate)
    runs["direct"] = run_load(load_spec(stack, "direct", "open", open_options))
    runs["bus"], profile = profiled_run(
        stack, load_spec(stack, "bus", "open", open_options), open_options
    )
    bus, direct = runs["bus"]["latency_ms"], runs["direct"]["latency_ms"]
    figures = {
        "capacity_per_s": capacity,
        "rate_per_s": rate,
        "added_p50_ms": difference(bus["p50"], direct["p50"]),
        "added_p99_ms": difference(bus["p99"], direct["p99"]),
        "bus_errors": runs["bus"]["errors"],
        "direct_errors": runs["direct"]["errors"],
    }
    rate_note = (
        f"open loop at {rate:g}/s: half the {capacity:g}/s the gateway sustained in a "
        f"{options.capacity_s:g}-s closed loop x{capacity_concurrency(options)} just before"
        if capacity is not None
        else f"open loop at {rate:g}/s, as given by --rate (no capacity run)"
    )
    outcome = {
        "params": {
            **params(options, "warmup_s", "duration_s", "capacity_s"),
            "rate": rate,
            "rate_from": "capacity" if capacity is not None else "--rate",
            "capacity_concurrency": capacity_concurrency(options),
        },
        "runs": runs,
        "figures": figures,
        "goals": [g.evaluate(figures) for g in (goals.ADDED_P50, goals.ADDED_P99)],
        "notes": [rate_note, *error_notes(runs)],
    }
    return with_profile(outcome, profile)


def _bus_sync_run(stack: StackEndpoints, events: int, batch_max: int) -> dict[str, Any]:
    try:
        return measure_bus_sync_path(stack, events, batch_max)
    except Exception as exc:  # reported, not raised: the raw pipe's figures still stand
        return {
            "batch_max": batch_max,
            "complete": False,
            "events": 0,
            "expected": events,
            "elapsed_s": None,
            "events_per_s": None,
            "duplicates": None,
            "cpu": None,
            "error": f"{type(exc).__name__}: {str(exc)[:500]}",
        }


def _cpu_ms(run: dict[str, Any], process: str) -> float | None:
    cpu = run.get("cpu")
    if not cpu:
        return None
    value = cpu["processes"].get(process, {}).get("ms_per_lookup")
    return None if value is None else float(value)


def _incomplete(run: dict[str, Any], what: str) -> str | None:
    if run["complete"]:
        return None
    text = f"{what}: {run['events']} of {run['expected']} events reached the sink"
    return text + (f" ({run['error']})" if run.get("error") else "")


def sync_throughput(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """A raw consume -> transform -> produce pipe over a backlog (the baseline), then the bus's
    path over a backlog of its own (bench/sync_path.py): feed -> event -> subscription -> sink,
    once with one webhook POST per event and once with batches of up to SYNC_BATCH_MAX."""
    bootstrap = stack.need("bootstrap_servers")
    baseline = asyncio.run(measure_raw_pipe(bootstrap, options.events, stack.partitions))
    bus_events = min(options.events, SYNC_BUS_EVENTS)
    bus = _bus_sync_run(stack, bus_events, 1)
    batched = _bus_sync_run(stack, bus_events, SYNC_BATCH_MAX)
    raw_rate = baseline["events_per_s"]
    figures = {
        "raw_pipe_events": baseline["events"],
        "raw_pipe_elapsed_s": baseline["elapsed_s"],
        "raw_pipe_events_per_s": raw_rate,
        "bus_events": bus["events"],
        "bus_elapsed_s": bus["elapsed_s"],
        "bus_events_per_s": bus["events_per_s"],
        "bus_duplicates": bus["duplicates"],
        "bus_worker_cpu_ms_per_event": _cpu_ms(bus, "worker"),
        "bus_sandbox_cpu_ms_per_event": _cpu_ms(bus, "sandbox"),
        "sync_ratio": _rounded(ratio(bus["events_per_s"] if bus["complete"] else None, raw_rate)),
        "batched_events": batched["events"],
        "batched_events_per_s": batched["events_per_s"],
        "batched_duplicates": batched["duplicates"],
        "batched_worker_cpu_ms_per_event": _cpu_ms(batched, "worker"),
        "batched_sandbox_cpu_ms_per_event": _cpu_ms(batched, "sandbox"),
        "sync_batched_ratio": _rounded(
            ratio(batched["events_per_s"] if batched["complete"] else None, raw_rate)
        ),
    }
    incomplete = _incomplete(bus, "bus path")
    incomplete_batched = _incomplete(batched, f"bus path, batches of {SYNC_BATCH_MAX}")
    notes = [
        f"raw pipe: {baseline['events']} events consume -> rename -> produce on aiokafka "
        "(acks=all, offsets after the acks); bus: "
        f"{bus_events} population changes, SOAP feed pages -> ChangeEvent -> "
        "tthc.sync.<source>.change -> subscription -> a signed webhook POST per event, then "
        f"per batch of up to {SYNC_BATCH_MAX} events (sink batch_max)",
        "cpu ms/event: the sync stack's worker (the whole bus path but the broker) and its "
        "sandbox (the simulated database generating and rendering the feed), first to last "
        "delivery",
        *([incomplete] if incomplete else []),
        *([incomplete_batched] if incomplete_batched else []),
    ]
    return {
        "params": {
            **params(options, "events"),
            "bus_events": bus_events,
            "batch_max": SYNC_BATCH_MAX,
        },
        "sync": {"raw_pipe": baseline, "bus": bus, "bus_batched": batched},
        "figures": figures,
        "goals": [
            goals.SYNC_RATIO.evaluate(figures, not_applicable=incomplete),
            goals.SYNC_BATCHED_RATIO.evaluate(figures, not_applicable=incomplete_batched),
        ],
        "notes": notes,
    }


def memory(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """Worker RSS every second under a closed-loop soak at moderate concurrency."""
    worker_pid = stack.need("worker_pid")
    soak_options = replace(options, warmup_s=0.0, duration_s=options.soak_minutes * 60.0)
    spec = load_spec(stack, "bus", "closed", soak_options)
    session = profile_session(stack, options, spec.duration_s)
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
            **params(options, "soak_minutes", "sample_interval_s"),
            "concurrency": spec.concurrency,
        },
        "runs": {"bus": run},
        "memory": rss,
        "figures": figures,
        "goals": [goals.MEMORY_FLAT.evaluate(figures, not_applicable=reason)],
        "notes": [reason] if reason else [],
    }
    return with_profile(outcome, profile)


# One dataset of each national database: (dataset, its sandbox source, the kind of subject).
SOURCE_DATASETS = (
    ("population.identity", "population", "personal_id"),
    ("insurance.participation", "insurance", "personal_id"),
    ("enterprise.profile", "enterprise", "enterprise_code"),
    ("civil.marital_status", "civil", "personal_id"),
    ("licence.driver", "licence", "personal_id"),
)


def datasets_throughput(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    """Closed loop through the gateway for one dataset of each national database, one after the
    other at the same concurrency; each beside population.identity, measured in the same run."""
    runs: dict[str, dict[str, Any]] = {}
    for dataset, source, kind in SOURCE_DATASETS:
        spec = load_spec(
            stack,
            "bus",
            "closed",
            options,
            subjects=fetch_subjects(stack.need("sandbox_url"), source=source),
            dataset=dataset,
            subject_kind=kind,
        )
        runs[dataset] = run_load(spec)
    base = runs["population.identity"]["throughput_per_s"]
    figures: dict[str, Any] = {}
    for dataset, run in runs.items():
        figures[f"{dataset} lookups/s"] = run["throughput_per_s"]
        figures[f"{dataset} vs population.identity"] = _rounded(
            ratio(run["throughput_per_s"], base)
        )
        figures[f"{dataset} bus CPU ms/lookup"] = _cpu_sum(run)
        figures[f"{dataset} errors"] = run["errors"]
    return {
        "params": params(options, "warmup_s", "duration_s", "concurrency"),
        "runs": runs,
        "figures": figures,
        "goals": [],
        "notes": [
            "one dataset of each source, each a closed loop through the gateway; the sandbox "
            "serves all five from one process, so a dataset's figure includes its source's cost",
            *error_notes(runs),
        ],
    }


Scenario = Callable[[StackEndpoints, ScenarioOptions], dict[str, Any]]
SCENARIOS: dict[str, Scenario] = {
    "lookup-throughput": lookup_throughput,
    "lookup-overhead": lookup_overhead,
    "datasets-throughput": datasets_throughput,
    "prefill-throughput": prefill_throughput,
    "audit-cost": audit_cost,
    "overload": overload,
    "scaling": scaling,
    "sync-throughput": sync_throughput,
    "memory": memory,
}
# Scenarios that need only a Kafka broker, not the whole stack.
KAFKA_ONLY = frozenset({"sync-throughput"})
# Scenarios with a bus load run that --profile can sample.
PROFILABLE = frozenset(
    {"lookup-throughput", "lookup-overhead", "overload", "memory", "prefill-throughput"}
)
