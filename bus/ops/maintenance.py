"""Maintenance mode: an operator drains a process before stopping it.

`tthc-bus maintenance on|off [--member M] [--reason R]` writes `maintenance.<member>` (or
`maintenance.*`, every process) to the compacted `tthc.ops.control`. Every gateway and worker
follows the topic from its start: a member's own record overrides the one for all. In
maintenance a gateway takes no new lookup (503 problem+json with Retry-After, as when it is
over capacity, saying why) while those in flight finish, and its `/readyz` answers 503 so that
a load balancer sends no more. A worker leaves the consumer groups of its lookup path (router,
lookup connectors, ledger writer) once the messages in flight are handled and committed, so that
their partitions move to the other workers, and its `/readyz` answers 503; its change feeds and
subscriptions go on (they resume from their cursors wherever they run next), as does the
aggregator of fan-out lookups. Back from maintenance it joins the groups again. `/healthz`
stays 200: the process is alive. `maintenance.*` drains every process: the bus then answers
no lookup until it is turned off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import confluent_kafka
import orjson

from bus import topics
from bus.kafka import AsyncConsumer
from bus.sync import offsets

log = logging.getLogger(__name__)

PREFIX = "maintenance."
EVERY = "*"


def maintenance_key(member: str | None) -> str:
    return f"{PREFIX}{member or EVERY}"


def set_maintenance(bootstrap: str, member: str | None, on: bool, reason: str) -> None:
    """Put `member` (None: every process) in maintenance, or take it out."""
    value = {"on": on, "reason": reason, "at": datetime.now(UTC).isoformat()}
    offsets.produce(bootstrap, topics.OPS_CONTROL, maintenance_key(member), orjson.dumps(value))


class MaintenanceFollower:
    """Follows `tthc.ops.control` for one member; `reason` is set while it is in maintenance,
    and `on_change(reason)` hears of each change."""

    def __init__(
        self,
        bootstrap: str,
        member: str,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.member = member
        self.reason: str | None = None
        self._on_change = on_change
        self._records: dict[str, dict[str, object]] = {}
        self._consumer = AsyncConsumer(bootstrap, f"{member}-ops-control")
        self._consumer.assign([(topics.OPS_CONTROL, 0, confluent_kafka.OFFSET_BEGINNING)])
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow(), name="ops-control")

    async def _follow(self) -> None:
        while True:
            for record in await self._consumer.getmany(timeout_s=1.0):
                key = (record.key or b"").decode("utf-8", "replace")
                if key not in (maintenance_key(self.member), maintenance_key(None)):
                    continue
                try:
                    self._records[key] = dict(orjson.loads(record.value or b"{}"))
                except (orjson.JSONDecodeError, TypeError, ValueError):
                    log.warning(
                        "%s@%s: not a maintenance record", topics.OPS_CONTROL, record.offset
                    )
                    continue
                self._apply()

    def _apply(self) -> None:
        own = self._records.get(maintenance_key(self.member))
        chosen = own if own is not None else self._records.get(maintenance_key(None))
        reason = None
        if chosen is not None and chosen.get("on"):
            reason = str(chosen.get("reason") or "maintenance")
        if reason != self.reason:
            self.reason = reason
            log.warning("%s: %s", self.member, f"in maintenance: {reason}" if reason else "back")
            if self._on_change is not None:
                self._on_change(reason)

    async def check(self) -> str | None:
        """A readiness check (bus/ops/health.py): not ready while in maintenance."""
        return None if self.reason is None else f"in maintenance: {self.reason}"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


class Leaves(Protocol):
    async def leave(self, reason: str) -> None: ...

    async def rejoin(self) -> None: ...


def drain_on_maintenance(runner: Leaves) -> Callable[[str | None], None]:
    """A worker's `on_change`: in maintenance its runner leaves its consumer groups (the
    lookups in flight finish, their offsets are committed, the partitions go to the other
    workers); back, it joins them again."""
    pending: set[asyncio.Task[None]] = set()

    def on_change(reason: str | None) -> None:
        switch = runner.leave(reason) if reason is not None else runner.rejoin()
        task = asyncio.ensure_future(switch)
        pending.add(task)  # held, so that the switch is not collected half-way
        task.add_done_callback(done)

    def done(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("maintenance: the switch failed: %r", task.exception())

    return on_change
