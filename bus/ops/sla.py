"""The service-quality report (`tthc-bus report sla`): per national database and agency, from
the audit ledger's releases, how many datasets were asked, how fast the source answered
(p50/p95/p99 of the found ones), how many failed and how many missed their deadline.

The ledger is the durable record of every lookup (bus/audit), so the report covers any period
and every process, whatever restarted in between. Percentiles are nearest-rank over the
latencies of the period. Nothing personal is in it: agencies, sources and counts.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

DEADLINE_CODES = frozenset({"deadline_exceeded", "timeout"})
ANSWERED = frozenset({"found", "not_found"})


@dataclass(frozen=True)
class SlaRow:
    source: str
    agency: str
    requests: int
    found: int
    not_found: int
    errors: int
    deadline_misses: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1], 3)


def sla_rows(datasets: Iterable[Mapping[str, Any]]) -> list[SlaRow]:
    """Rows per (source, agency), sorted, from the released datasets (Ledger.released)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for item in datasets:
        if item.get("source") in (None, "", "bus"):  # a refusal of the bus itself, not a source
            continue
        key = (str(item["source"]), str(item.get("agency") or "-"))
        groups.setdefault(key, []).append(item)
    rows = []
    for (source, agency), items in sorted(groups.items()):
        outcomes = [str(item.get("outcome")) for item in items]
        latencies = [
            float(item["latency_ms"])
            for item in items
            if item.get("outcome") == "found" and item.get("latency_ms") is not None
        ]
        rows.append(
            SlaRow(
                source=source,
                agency=agency,
                requests=len(items),
                found=outcomes.count("found"),
                not_found=outcomes.count("not_found"),
                errors=sum(1 for o in outcomes if o not in ANSWERED),
                deadline_misses=sum(1 for o in outcomes if o in DEADLINE_CODES),
                p50_ms=percentile(latencies, 0.50),
                p95_ms=percentile(latencies, 0.95),
                p99_ms=percentile(latencies, 0.99),
            )
        )
    return rows


def as_csv(rows: Iterable[SlaRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(SlaRow.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return out.getvalue()
