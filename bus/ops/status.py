"""Every process's status on the compacted `tthc.status`, as Kafka Connect's workers report theirs.

A worker, a gateway and the ledger writer each publish a `ProcessStatus` under the key
`process.<member>` every `ops.status_interval_s` (and a tombstone when they stop cleanly: a
process that vanishes without one shows as not reporting):
what runs in it (its connectors and their state), the circuit breakers, its counters
(requests, results by status, retries, dead letters), the latency percentiles per source over
the last interval, and the last event time of each change stream it touches. `tthc-bus status`
(bus/tooling/status_cli.py) reads the latest record of each key, beside the sync records
(`sync-source.*`, `sync-subscription.*`) and the consumer lag of every group.

The figures come from the process's own Prometheus registry (the same numbers `/metrics`
shows), so there is one place where each is counted. Percentiles are read from the histogram
buckets of the interval, interpolated inside the bucket as Prometheus's `histogram_quantile`
does. Nothing here holds personal data: sources, states, counts and times only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Literal

from prometheus_client import REGISTRY, CollectorRegistry
from pydantic import ConfigDict, Field

from bus import topics
from bus.schemas.common import Model, utc_now

log = logging.getLogger(__name__)

PROCESS_PREFIX = "process."
Kind = Literal["worker", "gateway", "ledger"]
ProcessState = Literal["running", "stopped"]
ConnectorKind = Literal["lookup", "feed", "subscription", "reply-reader", "ledger", "admission"]


def process_key(member: str) -> str:
    return f"{PROCESS_PREFIX}{member}"


class ConnectorState(Model):
    """One thing running in the process, with its state and why (an error, never data)."""

    name: str
    kind: ConnectorKind
    state: str
    healthy: bool
    detail: str | None = None


class SourceStats(Model):
    """One national database as this process sees it, over the last interval (calls, errors,
    percentiles) and now (its breaker)."""

    model_config = ConfigDict(frozen=False)

    breaker: str = "closed"
    calls: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


class ProcessStatus(Model):
    model_config = ConfigDict(frozen=False)

    member: str
    kind: Kind
    state: ProcessState = "running"
    host: str = Field(default_factory=socket.gethostname)
    pid: int = Field(default_factory=os.getpid)
    started_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    interval_s: float
    connectors: list[ConnectorState] = Field(default_factory=list)
    sources: dict[str, SourceStats] = Field(default_factory=dict)
    counters: dict[str, float] = Field(
        default_factory=dict,
        description="Totals since the start: requests, results_<status>, "
        "retries, dead_letters, ...",
    )
    streams: dict[str, datetime | None] = Field(
        default_factory=dict, description="Change stream -> the time of its last event seen."
    )


# -- the Prometheus registry, read ----------------------------------------------------------------


class Reading:
    """One read of a Prometheus registry, by metric family. A publication reads the registry
    once: `registry.collect()` walks every metric (and the process collector's /proc), which
    costs a busy worker far more than looking up the few families the status needs."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._families: dict[str, list[tuple[str, dict[str, str], float]]] = {}
        for family in registry.collect():
            self._families.setdefault(family.name, []).extend(
                (s.name, dict(s.labels), float(s.value)) for s in family.samples
            )

    def samples(self, name: str) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of the family `name` (e.g. `tthc_source_calls`): (sample name, labels,
        value)."""
        return self._families.get(name, [])

    def totals(self, name: str, by: str) -> dict[str, float]:
        """A counter's `_total` summed per value of the label `by`."""
        summed: dict[str, float] = {}
        for sample, labels, value in self.samples(name):
            if sample.endswith("_total"):
                key = labels.get(by, "")
                summed[key] = summed.get(key, 0.0) + value
        return summed

    def buckets(self, name: str, by: str) -> dict[str, list[tuple[float, float]]]:
        """A histogram's cumulative buckets per value of the label `by`: [(le, count), ...]."""
        found: dict[str, list[tuple[float, float]]] = {}
        for sample, labels, value in self.samples(name):
            if sample.endswith("_bucket"):
                found.setdefault(labels.get(by, ""), []).append((float(labels["le"]), value))
        return {key: sorted(rows) for key, rows in found.items()}


def quantile(q: float, rows: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative buckets, as Prometheus's histogram_quantile computes it
    (linear inside the bucket; the highest finite bound if it falls in +Inf); None if empty."""
    if not rows or rows[-1][1] <= 0:
        return None
    total = rows[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in rows:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def delta(
    now: list[tuple[float, float]], before: list[tuple[float, float]] | None
) -> list[tuple[float, float]]:
    """The buckets of the interval between two readings of the same histogram."""
    if not before:
        return now
    previous = dict(before)
    return [(bound, count - previous.get(bound, 0.0)) for bound, count in now]


class SourceWindow:
    """Per-source calls, errors and latency percentiles over the interval since the last read,
    from the source-call metrics of connectors/resilience/metrics.py."""

    def __init__(self) -> None:
        self._buckets: dict[str, list[tuple[float, float]]] = {}
        self._calls: dict[tuple[str, str], float] = {}

    def read(self, reading: Reading) -> dict[str, SourceStats]:
        stats: dict[str, SourceStats] = {}
        calls_now: dict[tuple[str, str], float] = {}
        for sample, labels, value in reading.samples("tthc_source_calls"):
            if sample.endswith("_total"):
                key = (labels["source"], labels["outcome"])
                calls_now[key] = calls_now.get(key, 0.0) + value
        for (source, outcome), value in calls_now.items():
            new = value - self._calls.get((source, outcome), 0.0)
            entry = stats.setdefault(source, SourceStats())
            entry.calls += int(new)
            if outcome not in ("found", "not_found"):
                entry.errors += int(new)
        self._calls = calls_now
        for source, rows in reading.buckets("tthc_source_call_duration_seconds", "source").items():
            window = delta(rows, self._buckets.get(source))
            self._buckets[source] = rows
            entry = stats.setdefault(source, SourceStats())
            for q, field in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
                seconds = quantile(q, window)
                setattr(entry, field, None if seconds is None else round(seconds * 1000, 2))
        breaker_names = {0.0: "closed", 0.5: "half_open", 1.0: "open"}
        for _, labels, value in reading.samples("tthc_source_breaker_open"):
            stats.setdefault(labels["source"], SourceStats()).breaker = breaker_names.get(
                value, str(value)
            )
        return stats


# -- publishing -----------------------------------------------------------------------------------

Send = Callable[[str, bytes, bytes | None], Awaitable[None]]
Fill = Callable[[ProcessStatus, Reading], None]


class StatusPublisher:
    """Publishes the process's status every `interval_s` while it runs (see the module doc).
    `fill` sets the parts only the process knows (its connectors, counters and streams) on the
    status before each publication; the per-source figures are read here."""

    def __init__(
        self,
        send: Send,
        member: str,
        kind: Kind,
        *,
        interval_s: float,
        fill: Fill | None = None,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._send = send
        self._fill = fill
        self._registry = registry
        self._window = SourceWindow()
        self.status = ProcessStatus(member=member, kind=kind, interval_s=interval_s)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ops-status")

    async def _run(self) -> None:
        while True:
            await self.publish()
            await asyncio.sleep(self.status.interval_s)

    async def publish(self) -> None:
        status = self.status
        try:
            reading = Reading(self._registry)
            status.sources = self._window.read(reading)
            if self._fill is not None:
                self._fill(status, reading)
            status.updated_at = utc_now()
            await self._send(
                topics.STATUS,
                process_key(status.member).encode(),
                status.model_dump_json().encode(),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # status is best-effort; the process goes on
            log.warning("status of %s not published: %r", status.member, exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.status.state = "stopped"
        try:  # gone cleanly: its key is removed from the compacted topic
            await self._send(topics.STATUS, process_key(self.status.member).encode(), None)
        except Exception as exc:
            log.warning("status of %s not removed: %r", self.status.member, exc)


def connectors_healthy(connectors: Iterable[ConnectorState]) -> bool:
    return all(connector.healthy for connector in connectors)


def stale(status: ProcessStatus, now: datetime | None = None, missed: float = 3.0) -> bool:
    """A running process not heard from for `missed` intervals: gone, or stuck."""
    now = now or utc_now()
    return status.state == "running" and (
        (now - status.updated_at).total_seconds() > missed * max(status.interval_s, 1.0)
    )


def decode_statuses(records: Mapping[str, bytes]) -> dict[str, ProcessStatus]:
    """The `process.*` records of `tthc.status` (the latest per key) by member."""
    found: dict[str, ProcessStatus] = {}
    for key, value in records.items():
        if not key.startswith(PROCESS_PREFIX):
            continue
        try:
            status = ProcessStatus.model_validate_json(value)
        except ValueError:
            continue
        found[status.member] = status
    return found
