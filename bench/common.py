"""What every scenario shares: the stack's endpoints, the options, and the load runs' plumbing."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.loadgen import ZEEP_THREADS, LoadProcess, LoadSpec, Mode, Target, run_in_process
from bench.profiling import RATE_HZ, ProfileSession

SUBJECT_SAMPLE = 1000
# Closed-loop clients of a capacity run, at least (below the gateway's and the client's
# admission caps of 256 in flight, and queueing less than the worker's 1-s shedding threshold).
CAPACITY_CONCURRENCY = 64
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
    worker_pid: int | None = None  # the first worker
    gateway_pid: int | None = None
    partitions: int = 6
    worker_pids: tuple[int, ...] = ()  # every worker; empty: just worker_pid
    sandbox_pid: int | None = None
    broker_pid: int | None = None  # None: an external cluster, or not known
    ledger_pid: int | None = None  # None: the workers write the audit ledger themselves
    # Runs this many worker processes (starting or stopping some) and returns their pids, once
    # every one is assigned; None when the stack cannot be scaled from here.
    scale_workers: Callable[[int], tuple[int, ...]] | None = None
    # The API key the gateway runs are sent with (Authorization: Bearer), an agency's of role
    # lookup (loadgen.AGENCY's); and the key Kafka-native runs sign their requests with (the
    # gateway's: any agency, replies on the shared reply topic). None: sent without.
    api_key: str | None = field(default=None, repr=False)
    gateway_key: str | None = field(default=None, repr=False)
    # Restarts the gateway and every worker with the audit trail on (True), off (False), or as
    # the stack's own settings say (None); returns (gateway pid, worker pids) once lookups
    # complete again. None when the stack cannot be restarted from here.
    restart_bus: Callable[[bool | None], tuple[int, tuple[int, ...]]] | None = None
    # The stack's endpoints as they are now (after a restart, say); None: these are final.
    current: Callable[[], StackEndpoints] | None = None

    def need(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"this scenario needs the stack's {name}, which is not set")
        return value

    @property
    def workers(self) -> tuple[int, ...]:
        if self.worker_pids:
            return self.worker_pids
        return () if self.worker_pid is None else (self.worker_pid,)

    def with_workers(self, pids: tuple[int, ...]) -> StackEndpoints:
        return replace(self, worker_pids=pids, worker_pid=pids[0] if pids else None)

    def with_bus(self, gateway_pid: int, worker_pids: tuple[int, ...]) -> StackEndpoints:
        """The same stack after its gateway and workers were restarted (new pids)."""
        return replace(self.with_workers(worker_pids), gateway_pid=gateway_pid)

    def processes(self) -> tuple[dict[str, int], tuple[str, ...]]:
        """name -> pid of the stack's processes, and the names of those whose pid is unknown."""
        named: dict[str, int | None] = {"gateway": self.gateway_pid}
        workers = self.workers
        if not workers:
            named["worker"] = None
        for number, pid in enumerate(workers, start=1):
            named["worker" if number == 1 else f"worker-{number}"] = pid
        named["broker"] = self.broker_pid
        named["sandbox"] = self.sandbox_pid
        if self.ledger_pid is not None:  # else the workers write the ledger: nothing unknown
            named["ledger"] = self.ledger_pid
        known = {name: pid for name, pid in named.items() if pid is not None}
        return known, tuple(name for name, pid in named.items() if pid is None)


@dataclass(frozen=True)
class ScenarioOptions:
    """Options after defaults: ``quick`` picks the few-second profile."""

    quick: bool = False
    warmup_s: float = 5.0
    duration_s: float = 30.0
    concurrency: int = 32
    # Open-loop rate; None: derived from the capacity measured in the same run.
    rate: float | None = None
    soak_minutes: float = 10.0
    events: int = 200_000
    sample_interval_s: float = 1.0
    # The closed loop through the gateway that measures capacity (lookup-overhead, overload).
    capacity_s: float = 10.0
    # overload: the recovery run at half the capacity, and the Kafka-native overload.
    recovery_s: float = 10.0
    kafka_overload_s: float = 10.0
    # With --profile: where the py-spy files go, ``<results dir>/<stamp>`` (+ ``-worker...``).
    profile_prefix: Path | None = None


FULL = ScenarioOptions()
QUICK = ScenarioOptions(
    quick=True,
    warmup_s=0.5,
    duration_s=2.0,
    concurrency=8,
    soak_minutes=0.1,
    events=5_000,
    capacity_s=2.0,
    recovery_s=4.0,
    kafka_overload_s=2.0,
)
# Per scenario, what differs from the profile above: {quick: {field: value}}.
SCENARIO_DEFAULTS: dict[str, dict[bool, dict[str, Any]]] = {
    # The memory soak runs at moderate concurrency, not the throughput scenario's.
    "memory": {False: {"concurrency": 16}, True: {"concurrency": 4}},
    # --duration is the overload's length.
    "overload": {False: {"duration_s": 60.0}, True: {"duration_s": 3.0}},
    "scaling": {False: {"duration_s": 20.0}, True: {}},
}


def resolve_options(name: str, quick: bool, **overrides: Any) -> ScenarioOptions:
    """The profile of scenario ``name`` for ``quick``, with every override that is not None."""
    base = replace(QUICK if quick else FULL, **SCENARIO_DEFAULTS.get(name, {}).get(quick, {}))
    chosen = {key: value for key, value in overrides.items() if value is not None}
    return replace(base, **chosen)


def params(options: ScenarioOptions, *keys: str) -> dict[str, Any]:
    values = asdict(options)
    return {key: values[key] for key in ("quick", *keys)}


def fetch_subjects(
    sandbox_url: str, n: int = SUBJECT_SAMPLE, source: str = "population"
) -> tuple[str, ...]:
    """Subjects a sandbox database holds (personal ids, or enterprise codes), from its sample."""
    url = f"{sandbox_url.rstrip('/')}/_sandbox/sample?n={n}&source={source}"
    with urllib.request.urlopen(url, timeout=10) as response:
        subjects = json.load(response)
    if not subjects or not all(isinstance(item, str) for item in subjects):
        raise ValueError(f"GET {url}: expected a non-empty JSON list of ids, got {subjects!r:.200}")
    return tuple(subjects)


_ADDRESS = {"bus": "gateway_url", "kafka": "bootstrap_servers"}


def load_spec(
    stack: StackEndpoints,
    target: Target,
    mode: Mode,
    options: ScenarioOptions,
    **overrides: Any,
) -> LoadSpec:
    """The scenario's load against ``target``; every run samples the stack's CPU in its window.

    The zeep baseline runs its ``ZEEP_THREADS`` threads, one client each, whatever the
    concurrency of the other runs.
    """
    pids, unknown = stack.processes()
    fields: dict[str, Any] = {
        "target": target,
        "base_url": stack.need(_ADDRESS.get(target, "sandbox_url")),
        "subjects": fetch_subjects(stack.need("sandbox_url")),
        "mode": mode,
        "concurrency": ZEEP_THREADS if target == "zeep" else options.concurrency,
        "warmup_s": options.warmup_s,
        "duration_s": options.duration_s,
        "cpu_pids": pids,
        "cpu_unknown": unknown,
        "api_key": stack.api_key,
        "signing_key": stack.gateway_key,
    }
    if options.rate is not None:
        fields["rate"] = options.rate
    fields.update(overrides)
    return LoadSpec(**fields)


def run_load(spec: LoadSpec) -> dict[str, Any]:
    """One load in its own process; its summary."""
    return run_in_process(spec).summary()


NO_KAFKA = "the stack has no Kafka bootstrap servers: no Kafka-native run"


def optional_run(
    runs: dict[str, dict[str, Any]],
    skipped: dict[str, str],
    name: str,
    spec: Callable[[], LoadSpec],
    unavailable: str | None = None,
) -> dict[str, Any] | None:
    """Run ``name`` unless ``unavailable`` says why not; a run that fails is recorded as
    skipped, with its error, so the figures it feeds are n/a instead of the scenario failing."""
    if unavailable is not None:
        skipped[name] = unavailable
        return None
    try:
        summary = run_load(spec())
    except Exception as exc:
        skipped[name] = f"failed: {type(exc).__name__}: {exc}"
        return None
    runs[name] = summary
    return summary


def capacity_concurrency(options: ScenarioOptions) -> int:
    return max(options.concurrency, CAPACITY_CONCURRENCY)


def capacity_spec(stack: StackEndpoints, options: ScenarioOptions, target: Target) -> LoadSpec:
    """The closed loop that measures capacity for ``capacity_s``: enough clients to saturate
    the bus (a few clients would measure their own round trips, not what the bus can do)."""
    return load_spec(
        stack,
        target,
        "closed",
        options,
        duration_s=options.capacity_s,
        concurrency=capacity_concurrency(options),
    )


def skipped_notes(skipped: dict[str, str]) -> list[str]:
    return [f"{name} run not made: {reason}" for name, reason in skipped.items()]


def error_notes(runs: dict[str, dict[str, Any]]) -> list[str]:
    return [
        f"{name} run had {run['errors']} errors: {run['error_kinds']}"
        for name, run in runs.items()
        if run["errors"]
    ]


def profile_session(
    stack: StackEndpoints, options: ScenarioOptions, duration_s: float
) -> ProfileSession | None:
    """py-spy on the workers (and the gateway if its pid is known), if the run is profiled."""
    if options.profile_prefix is None:
        return None
    workers = stack.workers
    if not workers:
        stack.need("worker_pid")
    targets = {
        "worker" if number == 1 else f"worker-{number}": pid
        for number, pid in enumerate(workers, start=1)
    }
    if stack.gateway_pid is not None:
        targets["gateway"] = stack.gateway_pid
    return ProfileSession(targets, duration_s, options.profile_prefix)


def profiled_run(
    stack: StackEndpoints, spec: LoadSpec, options: ScenarioOptions
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A bus run, with py-spy over its measured window when the run is profiled."""
    session = profile_session(stack, options, spec.duration_s)
    if session is None:
        return run_load(spec), None
    with LoadProcess(spec) as load:
        session.start(load.window_started)
        try:
            run = load.result().summary()
        finally:
            profile = session.finish()
    return run, profile


def with_profile(outcome: dict[str, Any], profile: dict[str, Any] | None) -> dict[str, Any]:
    if profile is not None:
        outcome["profile"] = profile
        outcome["notes"].append(PROFILE_NOTE)
    return outcome


def cpu_goal_reason(run: dict[str, Any] | None, skipped: str | None = None) -> str | None:
    """Why a run's bus CPU sum is n/a, or None when it is there."""
    if run is None:
        return skipped or "run not made"
    cpu = run.get("cpu")
    if cpu is None:
        return "no CPU figures: the stack's pids are not known"
    if cpu["bus_ms_per_lookup"] is None:
        return f"CPU of {', '.join(cpu['bus_sum_unknown'])} not known (no pid, or no lookup)"
    return None
