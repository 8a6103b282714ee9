"""The goals printed next to the figures: met, not met, or n/a. No test asserts them."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

_COMPARE = {">=": operator.ge, "<=": operator.le}
NOT_MEASURED = "figure not measured in this run"


@dataclass(frozen=True)
class Goal:
    """``figures[figure] <op> target``, e.g. efficiency >= 0.5."""

    name: str
    figure: str
    op: Literal[">=", "<="]
    target: float
    unit: str = ""

    def evaluate(
        self,
        figures: Mapping[str, Any],
        not_applicable: str | None = None,
        not_met: str | None = None,
    ) -> dict[str, Any]:
        """The goal's row: n/a (with a reason) when the figure is missing or the run cannot
        judge it; ``not_met`` fails it with a reason when the figure is missing because the
        bus fell short (say, it never recovered within the run)."""
        value = figures.get(self.figure)
        reason = not_applicable
        if not_applicable is not None:
            status = "n/a"
        elif not_met is not None:
            status, reason = "not met", not_met
        elif value is None:
            status, reason = "n/a", NOT_MEASURED
        else:
            status = "met" if _COMPARE[self.op](value, self.target) else "not met"
        return {
            "goal": self.name,
            "figure": self.figure,
            "target": f"{self.op} {self.target:g}{self.unit}",
            "value": value,
            "status": status,
            "reason": reason,
        }


def recorded_only(
    name: str, figure: str, figures: Mapping[str, Any], reason: str
) -> dict[str, Any]:
    """A row for a figure that has no target: always n/a, saying why."""
    return {
        "goal": name,
        "figure": figure,
        "target": "none",
        "value": figures.get(figure),
        "status": "n/a",
        "reason": reason,
    }


# lookup-throughput
THROUGHPUT_MIN = Goal("bus lookups/s through the gateway", "bus_lookups_per_s", ">=", 600, "/s")
THROUGHPUT = Goal(
    "aim: bus lookups/s (1.6 M/day-volume in < 15 min)", "bus_lookups_per_s", ">=", 1800, "/s"
)
EFFICIENCY = Goal("bus throughput / direct throughput", "efficiency", ">=", 0.5)
BEATS_ZEEP = Goal("bus throughput / plain zeep client throughput", "bus_vs_zeep", ">=", 1.0)
ZERO_ERRORS = Goal("bus errors at that throughput", "bus_errors", "<=", 0)
KAFKA_ZERO_ERRORS = Goal("Kafka-native client errors at its throughput", "kafka_errors", "<=", 0)
CPU_BUS = Goal(
    "bus CPU per lookup, gateway + workers + broker + ledger (gateway run)",
    "bus_cpu_ms_per_lookup",
    "<=",
    2.5,
    " ms",
)
CPU_KAFKA = Goal(
    "bus CPU per lookup, gateway + workers + broker + ledger (Kafka-native run)",
    "kafka_cpu_ms_per_lookup",
    "<=",
    2.5,
    " ms",
)
# lookup-overhead
ADDED_P50 = Goal("bus added latency p50", "added_p50_ms", "<=", 5, " ms")
ADDED_P99 = Goal("bus added latency p99", "added_p99_ms", "<=", 25, " ms")
# overload
GOODPUT = Goal("goodput at 2x capacity / capacity", "goodput_ratio", ">=", 0.8)
REFUSAL_P99 = Goal("refusal (503) latency p99", "refusal_p99_ms", "<=", 50, " ms")
RETRY_AFTER = Goal("refusals without Retry-After", "refusals_without_retry_after", "<=", 0)
LATE_REPLIES = Goal("replies after their deadline", "late_replies", "<=", 0)
RECOVERY = Goal(
    "recovery: end of overload to the first second with 100 % success", "recovery_s", "<=", 5, " s"
)
# sync-throughput, memory
SYNC_RATIO = Goal("bus sync events/s / raw pipe events/s", "sync_ratio", ">=", 0.5)
SYNC_BATCHED_RATIO = Goal(
    "bus sync events/s, webhook batches / raw pipe events/s", "sync_batched_ratio", ">=", 0.5
)
MEMORY_FLAT = Goal(
    "worker memory flat (second-half slope, 10-min soak)", "slope_mb_per_min", "<=", 1.0, " MB/min"
)
FLAT_SOAK_MINUTES = 10.0
# prefill-throughput
PREFILL_RATIO = Goal(
    "prefill (4 sources, one request) lookups/s / single-source lookups/s",
    "prefill_vs_single",
    ">=",
    0.5,
)
SINGLE_ZERO_ERRORS = Goal("single-source lookup errors", "single_errors", "<=", 0)
PREFILL_ZERO_ERRORS = Goal(
    "prefill errors (partial / not_found for want of a record are not errors)",
    "prefill_errors",
    "<=",
    0,
)
# audit-cost
AUDIT_RATIO = Goal("lookups/s with the audit trail on / off", "audit_on_vs_off", ">=", 0.8)
AUDIT_ZERO_ERRORS = Goal("errors with the audit trail on", "audit_on_errors", "<=", 0)
AUDIT_OFF_ZERO_ERRORS = Goal("errors with the audit trail off", "audit_off_errors", "<=", 0)
