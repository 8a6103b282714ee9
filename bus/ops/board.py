"""What the gateway's `/dashboard` shows, kept live: the latest of every `tthc.status` key
(read from the start of the compacted topic and followed), every group's lag (asked of the
admin client in a thread, only while someone looks: at most every few seconds, when a snapshot
is asked for; a bus nobody watches pays nothing for it), and the service quality of the last
hour from the audit ledger. `snapshot` is the report of bus/ops/report.py plus the quality rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import confluent_kafka
from prometheus_client import Gauge

from bus import topics
from bus.audit.access import LedgerAccess
from bus.kafka import AsyncConsumer
from bus.ops.report import LagReader, build_report
from bus.ops.sla import sla_rows

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0
FIRST_LAG_WAIT_S = 3.0
# Every group's lag as the gateway last read it (on a scrape, a snapshot or `tthc-bus status`
# alike): the bus's own lag figure, for the consumer-lag alert without a Kafka exporter.
GROUP_LAG = Gauge(
    "tthc_consumer_group_lag_messages",
    "Records behind the partitions' ends, summed over a consumer group's partitions.",
    ["group"],
)
QUALITY_WINDOW = timedelta(hours=1)


class StatusBoard:
    def __init__(self, bootstrap: str, client_id: str, ledger: LedgerAccess | None) -> None:
        self._bootstrap = bootstrap
        self._consumer = AsyncConsumer(bootstrap, f"{client_id}-status-board")
        self._consumer.assign([(topics.STATUS, 0, confluent_kafka.OFFSET_BEGINNING)])
        self._ledger = ledger
        self.records: dict[str, bytes] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self._lag_reader: LagReader | None = None
        self._lags_read_at = -LAG_EVERY_S
        self._lags_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._consumer.start()
        self._tasks = [
            asyncio.create_task(self._follow(), name="status-board"),
        ]

    async def _follow(self) -> None:
        while True:
            for record in await self._consumer.getmany(timeout_s=1.0):
                key = (record.key or b"").decode("utf-8", "replace")
                if record.value is None:
                    self.records.pop(key, None)
                else:
                    self.records[key] = record.value

    def _read_lags(self) -> None:
        if self._lag_reader is None:
            self._lag_reader = LagReader(self._bootstrap)
        groups = self._lag_reader.read()
        for gone in set(self.groups) - set(groups):
            with contextlib.suppress(KeyError):
                GROUP_LAG.remove(gone)
        for group, lag in groups.items():
            GROUP_LAG.labels(group).set(lag["lag"])
        self.groups = groups

    async def _lags(self) -> None:
        try:
            await asyncio.to_thread(self._read_lags)
        except Exception as exc:  # the next snapshot tries again
            log.warning("status board: consumer lag not read: %r", exc)
            # No figure rather than a stale one: an alert on a frozen lag would mislead.
            GROUP_LAG.clear()
            self.groups = {}
        finally:
            self._lags_read_at = asyncio.get_running_loop().time()

    async def fresh_lags(self) -> None:
        """Starts a lag read when the last is older than LAG_EVERY_S; waits for it only when no
        lag has been read yet (a first look), and then FIRST_LAG_WAIT_S at most, so that a slow
        admin answer never holds a snapshot or a scrape."""
        running = self._lags_task is not None and not self._lags_task.done()
        if not running and asyncio.get_running_loop().time() - self._lags_read_at >= LAG_EVERY_S:
            self._lags_task = asyncio.create_task(self._lags(), name="status-board-lags")
            running = True
        if running and not self.groups and self._lags_task is not None:
            with contextlib.suppress(TimeoutError):  # a broker slow to answer: no lag yet
                await asyncio.wait_for(asyncio.shield(self._lags_task), FIRST_LAG_WAIT_S)

    async def snapshot(self) -> dict[str, Any]:
        await self.fresh_lags()
        now = datetime.now(UTC)
        report = build_report(dict(self.records), self.groups, now)
        quality: list[dict[str, Any]] = []
        if self._ledger is not None:
            try:
                released = await self._ledger.released(now - QUALITY_WINDOW, now)
                quality = [asdict(row) for row in sla_rows(released)]
            except Exception as exc:  # the ledger may be elsewhere or down: say so, go on
                report["quality_error"] = f"{type(exc).__name__}: {exc}"[:300]
        report["quality"] = quality
        report["quality_window_s"] = QUALITY_WINDOW.total_seconds()
        return report

    async def stop(self) -> None:
        if self._lags_task is not None:
            self._tasks.append(self._lags_task)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._consumer.stop()
