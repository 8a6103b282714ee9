"""The ledger as the gateway reads it for `GET /v1/audit`: opened on first use, queried in a
thread (the ledger's drivers block), closed with the gateway."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

from bus.audit.ledger import AccessRecord, Ledger
from bus.schemas.common import Model


class AuditAnswer(Model):
    """Who accessed a subject's data: the data subject's right to know (PDP Law 91/2025)."""

    subject: str
    """The subject's pseudonym, as the ledger keeps it (the raw id is never stored)."""
    accesses: list[AccessRecord]


class LedgerAccess:
    def __init__(self, url: str) -> None:
        self._url = url
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def _open(self) -> Ledger:
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger.open(self._url)
            return self._ledger

    async def query(
        self, subject: str, since: datetime | None, until: datetime | None, limit: int
    ) -> list[AccessRecord]:
        def run() -> list[AccessRecord]:
            return self._open().query(subject, since, until, limit)

        return await asyncio.to_thread(run)

    async def released(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The released datasets of a period (Ledger.released), read in a thread."""
        return await asyncio.to_thread(lambda: self._open().released(since, until))

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
