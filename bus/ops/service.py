"""What a gateway runs for operating the bus, started and stopped as one: its status on
tthc.status, the dashboard's board, and the maintenance follower (bus/ops)."""

from __future__ import annotations

import asyncio
from typing import Any

from bus.audit.access import LedgerAccess
from bus.ops.board import StatusBoard
from bus.ops.maintenance import MaintenanceFollower
from bus.ops.parts import gateway_fill
from bus.ops.status import StatusPublisher
from bus.outbox import Outbox
from bus.settings import Settings


class GatewayOps:
    def __init__(self, settings: Settings, client: Any, ledger: LedgerAccess | None) -> None:
        bootstrap = settings.kafka.resolved_bootstrap()
        member = settings.gateway.instance_id
        self._settings = settings
        self._client = client
        self.board = StatusBoard(bootstrap, member, ledger)
        self.maintenance = MaintenanceFollower(bootstrap, member, on_change=self._drain)
        self.status: StatusPublisher | None = None

    def _drain(self, reason: str | None) -> None:
        self._client.admission.draining = reason

    async def start(self, outbox: Outbox) -> None:
        self.status = StatusPublisher(
            lambda topic, key, value: outbox.send_raw(topic, value, [], key=key),
            self._settings.gateway.instance_id,
            "gateway",
            interval_s=self._settings.ops.status_interval_s,
            fill=gateway_fill(self._client),
        )
        await self.status.start()
        await self.board.start()
        await self.maintenance.start()

    async def stop(self) -> None:
        parts = [self.board.stop(), self.maintenance.stop()]
        if self.status is not None:
            parts.append(self.status.stop())
        await asyncio.gather(*parts)
