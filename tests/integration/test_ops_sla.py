"""`tthc-bus report sla` counts a known set of lookups: made through the gateway, stored by the
ledger writer, reported per national database and agency as a table and as CSV."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import requests

from bus.tooling.devstack import DEMO_AGENCY, DevStack, example_lookup
from sandbox.population.generator import PopulationGenerator

pytestmark = pytest.mark.integration

FOUND, NOT_FOUND = 5, 2


def report(stack: DevStack, since: datetime, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bus.tooling.cli", "report", "sla", "--since", since.isoformat(),
         *extra],
        env=stack.env() | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def test_the_sla_report_counts_a_known_set_of_lookups(
    stack: DevStack, population: PopulationGenerator
) -> None:
    since = datetime.now(UTC)
    known = population.sample(FOUND, rng_seed=77)
    taken = set(population.sample(50))
    unknown = [
        candidate
        for candidate in (f"0010911{n:05d}" for n in range(99999))
        if candidate not in taken and population.find(candidate) is None
    ][:NOT_FOUND]
    for subject in [*known, *unknown]:
        answer = requests.post(
            f"{stack.gateway_url}/v1/lookups",
            json=example_lookup(subject),
            headers=stack.keys.headers(),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    wanted = {"requests": FOUND + NOT_FOUND, "found": FOUND, "not_found": NOT_FOUND}
    deadline = time.monotonic() + 60
    while True:  # the ledger writer stores the releases a moment after the replies
        done = report(stack, since, "--csv")
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        mine = [r for r in rows if r["source"] == "population" and r["agency"] == DEMO_AGENCY]
        if mine and int(mine[0]["requests"]) >= wanted["requests"]:
            break
        assert time.monotonic() < deadline, f"not in the ledger within 60 s: {rows}"
        time.sleep(1)
    [row] = mine
    assert {key: int(row[key]) for key in wanted} == wanted
    assert int(row["errors"]) == int(row["deadline_misses"]) == 0
    p50, p95, p99 = (float(row[key]) for key in ("p50_ms", "p95_ms", "p99_ms"))
    assert 0 < p50 <= p95 <= p99

    table = report(stack, since)
    assert table.returncode == 0, table.stderr
    assert "population" in table.stdout and DEMO_AGENCY in table.stdout
