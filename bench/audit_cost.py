"""The audit-cost scenario: lookup throughput with the audit trail on, then off, in one run.

The same closed loop through the gateway (population.identity, procedure 1.004222) twice: first
with the audit trail on, then off (``TTHC_BUS_AUDIT__ENABLED=false`` for the gateway and every
worker). Before each window the gateway and the workers are restarted with the setting
(``StackEndpoints.restart_bus``: stop them, start them again, wait until every worker holds
partitions and a lookup completes), so both windows run on freshly started bus processes, on the
same broker and sandbox. At the end the stack is restarted once more as its own settings say
(the audit trail on, by default), whatever happened before.

The audit trail's whole cost is in the difference: the gateway's and the worker's audit events on
``tthc.audit``, acknowledged before each reply, and the ledger writer in the worker (not run with
the trail off). The events on ``tthc.audit`` are counted around each run (from its end offsets):
none should be written with the trail off.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench import goals
from bench.common import (
    ScenarioOptions,
    StackEndpoints,
    cpu_goal_reason,
    error_notes,
    load_spec,
    params,
    run_load,
)
from bench.stats import difference, ratio
from bus import topics

WINDOWS = (("audit on", True), ("audit off", False))


def audit_events(bootstrap_servers: str | None) -> int | None:
    """Records ever written to ``tthc.audit`` (the sum of its partitions' end offsets), or None
    without a broker or the topic."""
    if not bootstrap_servers:
        return None
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, client_id="tthc-bench-audit-count"
        )
    except KafkaError:
        return None
    try:
        partitions = consumer.partitions_for_topic(topics.AUDIT)
        if not partitions:
            return None
        ends = consumer.end_offsets([TopicPartition(topics.AUDIT, p) for p in partitions])
        return int(sum(ends.values()))
    except KafkaError:
        return None
    finally:
        with contextlib.suppress(Exception):
            consumer.close()


def _cpu(run: dict[str, Any] | None) -> float | None:
    cpu = None if run is None else run.get("cpu")
    return None if cpu is None else cpu["bus_ms_per_lookup"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def audit_cost(stack: StackEndpoints, options: ScenarioOptions) -> dict[str, Any]:
    restart = stack.need("restart_bus")
    runs: dict[str, dict[str, Any]] = {}
    events: dict[str, int | None] = {}
    try:
        for name, enabled in WINDOWS:
            restarted = stack.with_bus(*restart(enabled))
            before = audit_events(stack.bootstrap_servers)
            runs[name] = run_load(load_spec(restarted, "bus", "closed", options))
            after = audit_events(stack.bootstrap_servers)
            events[name] = _int(difference(after, before))
    finally:
        restart(None)
    on, off = runs["audit on"], runs["audit off"]
    figures: dict[str, Any] = {
        "audit_on_lookups_per_s": on["throughput_per_s"],
        "audit_off_lookups_per_s": off["throughput_per_s"],
        "audit_on_vs_off": _round(ratio(on["throughput_per_s"], off["throughput_per_s"])),
        "audit_on_cpu_ms_per_lookup": _cpu(on),
        "audit_off_cpu_ms_per_lookup": _cpu(off),
        "audit_cpu_ms_per_lookup_added": _round(difference(_cpu(on), _cpu(off))),
        "audit_on_errors": on["errors"],
        "audit_off_errors": off["errors"],
        "audit_on_p50_ms": on["latency_ms"]["p50"],
        "audit_off_p50_ms": off["latency_ms"]["p50"],
        "audit_on_events": events["audit on"],
        "audit_off_events": events["audit off"],
    }
    not_off = (
        f"the audit trail was not off: {figures['audit_off_events']} events on {topics.AUDIT} "
        "during the off run"
        if figures["audit_off_events"]
        else None
    )
    no_events = (
        f"no event on {topics.AUDIT} during the on run: the trail was not on"
        if figures["audit_on_events"] == 0
        else None
    )
    wrong = not_off or no_events
    return {
        "params": {
            **params(options, "warmup_s", "duration_s", "concurrency"),
            "order": [name for name, _ in WINDOWS],
        },
        "runs": runs,
        "figures": figures,
        "goals": [
            goals.AUDIT_RATIO.evaluate(figures, not_applicable=wrong),
            goals.AUDIT_ZERO_ERRORS.evaluate(figures),
            goals.AUDIT_OFF_ZERO_ERRORS.evaluate(figures),
            goals.recorded_only(
                "bus CPU per lookup added by the audit trail",
                "audit_cpu_ms_per_lookup_added",
                figures,
                cpu_goal_reason(on) or cpu_goal_reason(off) or "no target: recorded only",
            ),
        ],
        "notes": [
            f"closed loop x{options.concurrency} through the gateway, population.identity: "
            f"{' first, then '.join(runs)}; the gateway and workers restarted before each run "
            f"(TTHC_BUS_AUDIT__ENABLED), and once more at the end as the stack's settings say",
            f"audit events: records written to {topics.AUDIT} during each run, warm-up included",
            *([wrong] if wrong else []),
            *error_notes(runs),
        ],
    }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
