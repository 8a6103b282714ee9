"""The scaling scenario: the same closed loop against 1 worker process, then 2.

Both through the gateway and with the Kafka-native client (when the stack has Kafka). The stack
is scaled in place (``StackEndpoints.scale_workers``: the dev stack starts ``worker-2`` in the
same consumer group and waits until both workers hold partitions and lookups complete), and put
back to the number of workers it had afterwards. On a machine of 2 shared cores a second process
cannot add a core, so there is no target: the factor is recorded.
"""

from __future__ import annotations

import os
from typing import Any

from bench import goals
from bench.common import (
    NO_KAFKA,
    ScenarioOptions,
    StackEndpoints,
    error_notes,
    load_spec,
    optional_run,
    params,
    run_load,
    skipped_notes,
)
from bench.stats import ratio

WORKER_COUNTS = (1, 2)


def _label(workers: int) -> str:
    return f"{workers} worker" + ("s" if workers > 1 else "")


def scaling(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    scale = stack.need("scale_workers")
    before = len(stack.workers) or 1
    runs: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    no_kafka = None if stack.bootstrap_servers else NO_KAFKA
    try:
        for workers in WORKER_COUNTS:
            scaled = stack.with_workers(tuple(scale(workers)))
            label = _label(workers)
            runs[f"bus, {label}"] = run_load(load_spec(scaled, "bus", "closed", options))
            optional_run(
                runs,
                skipped,
                f"kafka, {label}",
                lambda scaled=scaled: load_spec(scaled, "kafka", "closed", options),  # type: ignore[misc]
                unavailable=no_kafka,
            )
    finally:
        scale(before)
    figures: dict[str, Any] = {}
    for path in ("bus", "kafka"):
        per_count = [runs.get(f"{path}, {_label(n)}") for n in WORKER_COUNTS]
        rates = [None if run is None else run["throughput_per_s"] for run in per_count]
        for workers, rate in zip(WORKER_COUNTS, rates, strict=True):
            figures[f"{path}_{workers}w_lookups_per_s"] = rate
        factor = ratio(rates[-1], rates[0])
        figures[f"{path}_scaling_factor"] = None if factor is None else round(factor, 3)
        for workers, run in zip(WORKER_COUNTS, per_count, strict=True):
            cpu = None if run is None else run.get("cpu")
            figures[f"{path}_{workers}w_cpu_ms_per_lookup"] = (
                None if cpu is None else cpu["bus_ms_per_lookup"]
            )
    cores = os.cpu_count()
    reason = (
        f"no target: {cores} cores shared by broker, sandbox, gateway, workers and load "
        "generator, so a second worker process adds no core; recorded only"
    )
    return {
        "params": {
            **params(options, "warmup_s", "duration_s", "concurrency"),
            "workers": list(WORKER_COUNTS),
        },
        "runs": runs,
        "figures": figures,
        "goals": [
            goals.recorded_only(
                "lookups/s with 2 workers / 1, through the gateway",
                "bus_scaling_factor",
                figures,
                reason,
            ),
            goals.recorded_only(
                "lookups/s with 2 workers / 1, Kafka-native",
                "kafka_scaling_factor",
                figures,
                skipped.get("kafka, 1 worker") or reason,
            ),
        ],
        "notes": [
            f"workers scaled in place from {before} to each of {list(WORKER_COUNTS)} and back to "
            f"{before}; each count waits until every worker holds partitions of the lookup "
            "request topic and lookups complete",
            *skipped_notes(skipped),
            *error_notes(runs),
        ],
    }
