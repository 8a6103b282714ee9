"""The overload scenario: twice the capacity, then half of it; what the bus does past its limit.

1. Capacity: a closed loop through the gateway (``capacity_s``, the scenario's concurrency).
2. Overload: an open loop at 2x that capacity (or ``--rate``) for ``--duration``, no warm-up.
   Goodput (successful lookups/s) against the capacity; refusals (HTTP 503): how many, how fast
   (latency from the scheduled start), whether each carried an integer Retry-After and was
   problem+json; replies after their deadline (an answer later than ``deadline_ms`` after the
   request's scheduled start); the other errors by kind; RSS of the gateway and the workers at
   the start, peak and end of the overload.
3. Recovery: in the same load process, right after the overload's last scheduled request, an
   open loop at half the capacity for ``recovery_s``: the time from the end of the overload to
   the first one-second span (slid in 0.1-s steps, by scheduled start) in which every request
   succeeded.
4. The same overload, shorter (``kafka_overload_s``), through the Kafka-native client at 2x its
   own closed-loop capacity: goodput, and refusals (the client's ``Overloaded``, or a ``failed``
   reply with error ``overloaded``) with their latency.
"""

from __future__ import annotations

from typing import Any

from bench import goals
from bench.common import (
    NO_KAFKA,
    ScenarioOptions,
    StackEndpoints,
    capacity_concurrency,
    capacity_spec,
    error_notes,
    load_spec,
    params,
    profile_session,
    run_load,
    skipped_notes,
    with_profile,
)
from bench.loadgen import LoadProcess
from bench.memory import rss_over_window, sample_rss_many
from bench.stats import ratio

OVERLOAD_FACTOR = 2.0
RECOVERY_FACTOR = 0.5
RSS_INTERVAL_S = 0.5
NO_REFUSAL = "no refusal in the overload run"
# Goodput above this multiple of the capacity: the capacity run did not saturate the bus.
UNSATURATED = 1.1


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def path_figures(
    prefix: str, capacity: dict[str, Any], run: dict[str, Any], rate: float
) -> dict[str, Any]:
    """Goodput, refusals, late replies and other errors of one overload run."""
    refusals = run["refusal_latency_ms"]
    other = {k: v for k, v in run["error_kinds"].items() if not k.startswith("refused")}
    return {
        f"{prefix}capacity_per_s": capacity["throughput_per_s"],
        f"{prefix}offered_per_s": rate,
        f"{prefix}goodput_per_s": run["goodput_per_s"],
        f"{prefix}goodput_ratio": _round(ratio(run["goodput_per_s"], capacity["throughput_per_s"])),
        f"{prefix}refused": run["refused"],
        f"{prefix}refused_share": _round(ratio(run["refused"], run["requests"])),
        f"{prefix}refusal_p50_ms": refusals["p50"],
        f"{prefix}refusal_p99_ms": refusals["p99"],
        f"{prefix}refusal_p99_from_send_ms": run["refusal_latency_from_send_ms"]["p99"],
        f"{prefix}late_replies": run["late_replies"],
        f"{prefix}other_errors": sum(other.values()),
        f"{prefix}send_lag_p99_ms": run["send_lag_ms"]["p99"],
    }


def _http_overload(
    stack: StackEndpoints, options: ScenarioOptions, capacity: float
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], dict[str, Any] | None]:
    """The overload and recovery runs (one load process), RSS over the overload, the profile."""
    rate = options.rate or round(OVERLOAD_FACTOR * capacity, 1)
    spec = load_spec(
        stack,
        "bus",
        "open",
        options,
        rate=rate,
        warmup_s=0.0,
        recovery_rate=round(RECOVERY_FACTOR * capacity, 1),
        recovery_s=options.recovery_s,
    )
    pids, _ = stack.processes()
    watched = {name: pid for name, pid in pids.items() if name in ("gateway",) or "worker" in name}
    session = profile_session(stack, options, spec.duration_s)
    with LoadProcess(spec) as load:
        if session is not None:
            session.start(load.window_started)
        try:
            samples = sample_rss_many(watched, lambda: not load.done(), RSS_INTERVAL_S)
            result = load.result()
        finally:
            profile = None if session is None else session.finish()
    run = result.summary()
    window = result.window_monotonic
    rss = rss_over_window(samples, *window) if window is not None and samples else {}
    return run, result.recovery_summary(), rss, profile


def overload(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    runs: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    runs["capacity"] = run_load(capacity_spec(stack, options, "bus"))
    capacity = runs["capacity"]["throughput_per_s"]
    if capacity <= 0:
        raise RuntimeError(
            "overload: the capacity run through the gateway completed no lookup "
            f"({runs['capacity']['error_kinds']}): nothing to overload"
        )
    run, recovery, rss, profile = _http_overload(stack, options, capacity)
    runs["overload"] = run
    if recovery is not None:
        runs["recovery"] = recovery
    figures = path_figures("", runs["capacity"], run, run["rate_per_s"])
    figures["refusals_without_retry_after"] = run["refusals_without_retry_after"]
    figures["refusals_not_problem_json"] = run["refusals_not_problem_json"]
    for name, entry in rss.items():
        figures[f"{name}_rss_start_mb"] = entry["start_mb"]
        figures[f"{name}_rss_peak_mb"] = entry["peak_mb"]
        figures[f"{name}_rss_end_mb"] = entry["end_mb"]
        figures[f"{name}_rss_growth_mb"] = entry["growth_mb"]
    figures["recovery_rate_per_s"] = None if recovery is None else recovery["rate_per_s"]
    figures["recovery_s"] = None if recovery is None else recovery["first_clean_second_s"]
    kafka = _kafka_overload(stack, options, runs, skipped)
    if kafka is not None:
        figures.update(kafka)

    refused = run["refused"] > 0
    never_recovered = (
        f"no 1-s span with 100 % success within the {options.recovery_s:g}-s recovery run"
        if recovery is not None and recovery["first_clean_second_s"] is None
        else None
    )
    notes = [
        f"capacity {capacity:g}/s: closed loop x{capacity_concurrency(options)} through the "
        "gateway for "
        f"{options.capacity_s:g} s; overload at {run['rate_per_s']:g}/s for "
        f"{options.duration_s:g} s, then recovery at {figures['recovery_rate_per_s']}/s for "
        f"{options.recovery_s:g} s in the same load process",
        "latencies (refusals too) from each request's scheduled start; late reply: an answer "
        f"later than the deadline ({run['deadline_ms']} ms) after it; the HTTP client gives up "
        "1 s after the deadline (error 'timeout')",
        "goodput: complete answers within their deadline, per second; "
        "RSS growth: peak - start over the overload window",
        *skipped_notes(skipped),
        *error_notes({k: v for k, v in runs.items() if k != "capacity"}),
    ]
    for prefix, label in (("", "gateway"), ("kafka_", "Kafka-native")):
        goodput_ratio = figures.get(f"{prefix}goodput_ratio")
        if goodput_ratio is not None and goodput_ratio > UNSATURATED:
            notes.append(
                f"{label}: goodput {goodput_ratio:g}x the measured capacity: the capacity run "
                f"(closed loop x{capacity_concurrency(options)}, {options.capacity_s:g} s) "
                "underestimated the bus (too short, too few clients, or other load on the "
                "machine), so the offered rate was less than twice what it can do"
            )
    if options.quick:
        notes.append("quick: the recovery run is shorter than the 5-s goal's usual 10 s")
    outcome = {
        "params": {
            **params(options, "duration_s", "capacity_s", "recovery_s", "kafka_overload_s"),
            "capacity_concurrency": capacity_concurrency(options),
            "overload_factor": OVERLOAD_FACTOR if options.rate is None else None,
            "overload_rate": run["rate_per_s"],
            "recovery_factor": RECOVERY_FACTOR,
        },
        "runs": runs,
        "figures": figures,
        "rss": rss,
        "goals": [
            goals.GOODPUT.evaluate(figures),
            goals.REFUSAL_P99.evaluate(figures, not_applicable=None if refused else NO_REFUSAL),
            goals.RETRY_AFTER.evaluate(figures, not_applicable=None if refused else NO_REFUSAL),
            goals.LATE_REPLIES.evaluate(figures),
            goals.RECOVERY.evaluate(figures, not_met=never_recovered),
        ],
        "notes": notes,
    }
    return with_profile(outcome, profile)


def _kafka_overload(
    stack: StackEndpoints,
    options: ScenarioOptions,
    runs: dict[str, dict[str, Any]],
    skipped: dict[str, str],
) -> dict[str, Any] | None:
    """Capacity of the Kafka-native client, then 2x that for ``kafka_overload_s``."""
    if not stack.bootstrap_servers:
        skipped["kafka overload"] = NO_KAFKA
        return None
    try:
        capacity = run_load(capacity_spec(stack, options, "kafka"))
        runs["kafka capacity"] = capacity
        if capacity["throughput_per_s"] <= 0:
            skipped["kafka overload"] = (
                f"the Kafka-native capacity run completed no lookup: {capacity['error_kinds']}"
            )
            return None
        rate = round(OVERLOAD_FACTOR * capacity["throughput_per_s"], 1)
        spec = load_spec(
            stack,
            "kafka",
            "open",
            options,
            rate=rate,
            warmup_s=0.0,
            duration_s=options.kafka_overload_s,
        )
        run = run_load(spec)
    except Exception as exc:
        skipped["kafka overload"] = f"failed: {type(exc).__name__}: {exc}"
        return None
    runs["kafka overload"] = run
    return path_figures("kafka_", capacity, run, rate)
