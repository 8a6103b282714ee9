"""The service-quality rows: counted per source and agency, percentiles nearest-rank over the
found datasets, deadline misses among the errors."""

from __future__ import annotations

from bus.ops.sla import as_csv, percentile, sla_rows


def test_rows_count_per_source_and_agency() -> None:
    datasets = [
        *({"source": "population", "agency": "H26", "outcome": "found", "latency_ms": float(ms)}
          for ms in range(1, 101)),
        {"source": "population", "agency": "H26", "outcome": "not_found"},
        {"source": "population", "agency": "H26", "outcome": "deadline_exceeded"},
        {"source": "licence", "agency": "H26", "outcome": "unavailable"},
        {"source": "population", "agency": "H29", "outcome": "found", "latency_ms": 7.0},
        {"source": "bus", "agency": "H26", "outcome": "purpose_not_allowed"},
    ]  # fmt: skip
    rows = {(r.source, r.agency): r for r in sla_rows(datasets)}
    assert set(rows) == {("licence", "H26"), ("population", "H26"), ("population", "H29")}
    main = rows[("population", "H26")]
    assert (main.requests, main.found, main.not_found, main.errors) == (102, 100, 1, 1)
    assert main.deadline_misses == 1
    assert (main.p50_ms, main.p95_ms, main.p99_ms) == (50.0, 95.0, 99.0)
    licence = rows[("licence", "H26")]
    assert (licence.errors, licence.deadline_misses, licence.p50_ms) == (1, 0, None)
    text = as_csv(sla_rows(datasets))
    assert text.splitlines()[0].startswith("source,agency,requests,found")
    assert "licence,H26,1,0,0,1,0,,," in text


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
