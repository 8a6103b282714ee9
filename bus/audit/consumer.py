"""`LedgerWriter`: the consumer that stores `tthc.audit` in the audit ledger.

One chain per partition (`tthc.audit-3`), rows in offset order, and an offset committed only
once its event is stored (at-least-once; the ledger skips an event it already holds).

How it keeps order while batching: the runner (`bus.runtime.KafkaRunner`) starts one task per
record in offset order, and `on_event` queues its event before its first `await`, so a
partition's events are queued in offset order. One flusher takes whatever is queued, writes it
in a thread (one transaction per chain), and only then lets the handlers return: their offsets
become committable only past stored events. Writes happen one batch after the other, in one
thread, so a chain is appended to in queue order. While a batch is written the next one gathers
(group commit), up to `max_batch`, which is also the runner's concurrency for this subscriber.

When the database is unavailable the batch is tried again with a backoff, for as long as it
takes: the handlers wait, their offsets stay uncommitted, Kafka keeps the events. An event the
ledger refuses for good (not for being unavailable) is tried alone, and only that one fails its
handler, which the runtime dead-letters (kept in `tthc.deadletter`, offset then committed).

Run it with `hosted(..., writer, runner)`: the runner stops first and drains into a writer that
still writes. What is not stored when the writer stops is left uncommitted, never acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from bus import topics
from bus.audit.ledger import LedgerUnavailable
from bus.errors import exception_site
from bus.runtime import Inbound, Route, Subscriber
from bus.schemas.audit import AuditEvent

log = logging.getLogger(__name__)

FETCH_MIN_BYTES = 256 * 1024
FETCH_WAIT_MS = 250


class EventStore(Protocol):
    """What the writer needs of a `bus.audit.ledger.Ledger`."""

    def append(self, chain: str, events: Sequence[AuditEvent]) -> int: ...


def chain_of(record: Inbound) -> str:
    """The ledger chain of a record: its topic and partition."""
    return f"{record.topic}-{record.partition}"


@dataclass(slots=True)
class _Queued:
    chain: str
    offset: int
    event: AuditEvent
    stored: asyncio.Future[None] = field(repr=False)


class _Stopping(Exception):
    """The writer stops while the ledger is unavailable: leave the batch unacknowledged."""


class LedgerWriter:
    name = "audit-ledger"

    def __init__(
        self,
        ledger: EventStore,
        *,
        topic: str = topics.AUDIT,
        max_batch: int = 500,
        retry_first_s: float = 0.2,
        retry_max_s: float = 10.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._ledger = ledger
        self._topic = topic
        self._max_batch = max_batch
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._stop_timeout_s = stop_timeout_s
        self._queue: list[_Queued] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._flusher: asyncio.Task[None] | None = None
        # One thread: the ledger's writes in the order they were taken, off the event loop.
        self._thread: ThreadPoolExecutor | None = None
        self.stored = 0
        self.duplicates = 0  # found already stored: redeliveries, or a batch tried again
        self.refused = 0  # refused for good by the ledger, dead-lettered
        self.unavailable: str | None = None  # why, while writes wait for the ledger

    def subscriber(self) -> Subscriber:
        return Subscriber(
            name=self.name,
            topic=self._topic,
            routes=(Route(AuditEvent, self.on_event),),
            description="Audit events, stored hash-chained in the audit ledger, one chain per "
            "partition, in offset order.",
            key="request id",
            # Up to a batch in flight; order is kept by queueing before the first await.
            concurrency=self._max_batch,
            # Nobody waits on the ledger (the reply waits for the broker's ack): fetch events
            # by the hundred, not one lookup's at a time.
            fetch_min_bytes=FETCH_MIN_BYTES,
            fetch_wait_ms=FETCH_WAIT_MS,
        )

    async def check(self) -> str | None:
        """A readiness check (bus/ops/health.py): not ready while the ledger refuses writes."""
        if self.unavailable is None:
            return None
        return f"the ledger is unavailable: {self.unavailable}"

    async def start(self) -> None:
        self._stopping = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-ledger")
        self._flusher = asyncio.create_task(self._flush_forever(), name="audit-ledger-flusher")

    async def stop(self) -> None:
        """Store what is queued, unless the ledger is unavailable; then stop."""
        self._stopping = True
        self._wake.set()
        if self._flusher is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._flusher, self._stop_timeout_s)
            self._flusher = None
        if self._thread is not None:
            self._thread.shutdown(wait=False)
            self._thread = None

    async def on_event(self, event: AuditEvent, record: Inbound) -> None:
        """Queue the event (no await before: offset order), return once it is stored."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(chain_of(record), record.offset, event, stored))
        self._wake.set()
        await stored

    # -- flushing -------------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._store(batch)
                except _Stopping:
                    return
            if self._stopping:
                return

    async def _store(self, batch: list[_Queued]) -> None:
        try:
            await self._write_until_stored(batch)
        except (_Stopping, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.error(
                "audit ledger refused a batch of %d events (%s); storing them one by one",
                len(batch),
                exception_site(exc),
            )
            await self._store_one_by_one(batch)
            return
        for queued in batch:
            _settle(queued.stored)

    async def _store_one_by_one(self, batch: list[_Queued]) -> None:
        """Isolate the event the ledger refuses: only its handler fails (dead-lettered)."""
        for queued in batch:
            try:
                await self._write_until_stored([queued])
            except (_Stopping, asyncio.CancelledError):
                raise
            except Exception as exc:
                self.refused += 1
                log.error(
                    "audit ledger refused an event of %s: %s", queued.chain, exception_site(exc)
                )
                if not queued.stored.done():
                    queued.stored.set_exception(exc)
                continue
            _settle(queued.stored)

    async def _write_until_stored(self, batch: list[_Queued]) -> None:
        """Write the batch in the ledger's thread; while the ledger is unavailable, try again
        with a growing pause (the handlers wait: nothing is committed meanwhile)."""
        loop = asyncio.get_running_loop()
        pause = self._retry_first_s
        while True:
            try:
                await loop.run_in_executor(self._thread, self._write, batch)
                self.unavailable = None
                return
            except LedgerUnavailable as exc:
                self.unavailable = f"{type(exc).__name__}: {exc}"[:300]
                if self._stopping:
                    log.warning(
                        "audit ledger unavailable while stopping: %d events left uncommitted, "
                        "to be read again",
                        len(batch),
                    )
                    raise _Stopping from None
                log.warning("audit ledger unavailable, again in %.1f s: %s", pause, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._retry_max_s)

    def _write(self, batch: Sequence[_Queued]) -> None:
        """In the ledger's thread: one append (one transaction) per chain, in offset order
        (the queue order already; sorting makes a batch immune to a handler that started late)."""
        chains: dict[str, list[_Queued]] = {}
        for queued in batch:
            chains.setdefault(queued.chain, []).append(queued)
        for chain, queue in chains.items():
            events = [queued.event for queued in sorted(queue, key=lambda q: q.offset)]
            stored = self._ledger.append(chain, events)
            self.stored += stored
            self.duplicates += len(events) - stored


def _settle(stored: asyncio.Future[None]) -> None:
    if not stored.done():  # its handler may have been cancelled meanwhile
        stored.set_result(None)
