"""One consumer runtime for every consumer of the bus.

A consumer is declared once, as a `Subscriber`: its topic, the message types it takes (each with
its pydantic model and handler), and what it publishes. The runtime does the rest, the same way
for every consumer: decode by the type header -> handle -> dead-letter on failure -> never raise
(faust, like the Kafka clients, would acknowledge a message whose handler raised and forget it).
The declarations also make the AsyncAPI document of the Kafka interface (`bus.asyncapi`).

Two runners execute subscribers:
- `KafkaRunner`, on the hot path's client (`bus.kafka`, librdkafka): consumes in batches,
  handles up to `concurrency` messages at once, and commits a partition's offset only past
  messages whose handling has finished (at-least-once; consumers are idempotent by message id).
  The request path runs here: faust's per-message machinery cost a third of the worker's CPU.
- `bind_faust`, for consumers that need faust's tables (the aggregator's pending lookups).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bus.codec import H_TYPE, DecodeError, decode, header_map
from bus.errors import exception_site
from bus.kafka import AsyncConsumer
from bus.schemas.envelope import Envelope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Inbound:
    """A consumed record, whichever client read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int
    # True when timestamp_ms is the broker's (LogAppendTime), False: the producer's clock.
    appended: bool = False

    @classmethod
    def from_record(cls, record: Any) -> Inbound:
        """From a `bus.kafka.Record` (or anything with the same attributes)."""
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            tuple(record.headers or ()),
            record.timestamp,
            bool(getattr(record, "appended", False)),
        )

    @classmethod
    def from_faust(cls, event: Any) -> Inbound:
        message = event.message
        headers = message.headers or ()
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        return cls(
            message.topic,
            message.partition,
            message.offset,
            message.key,
            message.value,
            tuple((k, v if isinstance(v, bytes) else str(v).encode()) for k, v in pairs),
            int(message.timestamp * 1000),
        )

    def header_map(self) -> dict[str, str]:
        return header_map(self.headers)

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the producer wrote it (the record's create time)."""
        return (time.time() if now is None else now) - self.timestamp_ms / 1000


class DeadLetters(Protocol):
    async def dead_letter(self, record: Inbound, consumer: str, reason: str) -> None: ...


Handler = Callable[[Any, Inbound], Awaitable[None]]
Refusal = Callable[[Inbound, str], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """One message type a subscriber takes: its model and its handler."""

    model: type[Envelope]
    handle: Handler

    @property
    def type_name(self) -> str:
        return str(self.model.model_fields["type"].default)


@dataclass(frozen=True)
class Publication:
    """A message a subscriber's handlers send, for the AsyncAPI document."""

    topic: str
    model: type[Envelope]
    key: str
    description: str


@dataclass
class Subscriber:
    """A declared consumer: `dispatch` is the whole loop body, the same for every consumer."""

    name: str
    topic: str
    routes: tuple[Route, ...]
    description: str
    publishes: tuple[Publication, ...] = ()
    key: str = "request id"
    concurrency: int = 64
    # Records older than this (by their create time) are dropped unread: after an outage, a
    # backlog of requests whose requesters are long gone must not cost a decode each.
    max_age_s: float | None = None
    on_undecodable: Refusal | None = None
    # A consumer that may lag (nobody waits on it) asks the broker for fuller fetches: up to
    # `fetch_wait_ms` for `fetch_min_bytes`, instead of a fetch per record or two under load.
    fetch_min_bytes: int = 1
    fetch_wait_ms: int | None = None
    _by_type: dict[str, Route] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_type = {route.type_name: route for route in self.routes}

    def route_for(self, headers: Mapping[str, str]) -> Route | str:
        """The route of a record's type header, or the reason there is none."""
        kind = headers.get(H_TYPE)
        if kind is None:
            # A Kafka-native producer may leave the header out: its record is of the first
            # route's type (the router's: a lookup request; a discovery request names its type).
            return self.routes[0]
        route = self._by_type.get(kind or "")
        if route is None:
            return f"header {H_TYPE}: got {kind!r}, expected one of {sorted(self._by_type)}"
        return route

    async def dispatch(self, record: Inbound, dead_letters: DeadLetters) -> None:
        """Decode by type, handle, dead-letter on failure. Never raises."""
        try:
            if self.max_age_s is not None and record.age_s() > self.max_age_s:
                log.debug("%s: dropped a record older than %.0f s", self.name, self.max_age_s)
                return
            headers = record.header_map()
            route = self.route_for(headers)
            if isinstance(route, str):
                await self._undecodable(record, dead_letters, route)
                return
            try:
                message = decode(route.model, record.value, headers)
            except DecodeError as exc:
                await self._undecodable(record, dead_letters, str(exc))
                return
            await route.handle(message, record)
        except Exception as exc:  # the handler's bug: park the message, say where, not what
            site = exception_site(exc)
            log.error("%s: processing failed: %s", self.name, site)
            with contextlib.suppress(Exception):
                await dead_letters.dead_letter(record, self.name, f"internal error: {site}")

    async def _undecodable(self, record: Inbound, dead_letters: DeadLetters, reason: str) -> None:
        await dead_letters.dead_letter(record, self.name, reason)
        if self.on_undecodable is not None:
            await self.on_undecodable(record, reason)


# -- aiokafka runner ----------------------------------------------------------------------------


class PartitionProgress:
    """Offsets of one partition in flight; the commit point moves past finished ones only."""

    __slots__ = ("committed", "done", "next_commit", "pending")

    def __init__(self) -> None:
        self.pending: deque[int] = deque()
        self.done: set[int] = set()
        self.next_commit: int | None = None
        self.committed: int | None = None

    def start(self, offset: int) -> None:
        self.pending.append(offset)

    def finish(self, offset: int) -> None:
        self.done.add(offset)
        pending, done = self.pending, self.done
        while pending and pending[0] in done:
            first = pending.popleft()
            done.discard(first)
            self.next_commit = first + 1

    def due(self) -> int | None:
        """The offset to commit now, if it moved since the last commit."""
        if self.next_commit is None or self.next_commit == self.committed:
            return None
        return self.next_commit


@dataclass
class RunnerSettings:
    fetch_max_wait_ms: int = 500
    max_batch: int = 500
    commit_interval_s: float = 0.2
    drain_timeout_s: float = 5.0
    # Leaving the groups for maintenance waits for the lookups in flight: up to the longest
    # deadline, so that none is handed to another worker half done (and answered twice).
    leave_timeout_s: float = 65.0
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 2_000


class _Lane:
    """One subscriber on its own consumer: fetch, hand out, track, commit."""

    def __init__(
        self,
        subscriber: Subscriber,
        consumer: AsyncConsumer,
        dead_letters: DeadLetters,
        settings: RunnerSettings,
    ) -> None:
        self.subscriber = subscriber
        self.consumer = consumer
        self.dead_letters = dead_letters
        self.settings = settings
        self.slots = asyncio.Semaphore(subscriber.concurrency)
        self.progress: dict[tuple[str, int], PartitionProgress] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.last_commit = 0.0
        self.consumed = 0
        consumer.on_revoke = self._revoked

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        """In the poll thread, during a rebalance: commit what is done before the partitions
        go; what is still in flight will be read again by their next owner (at-least-once)."""
        gone = [key for key in partitions if key in self.progress]
        self.commit(only=gone, wait=True)
        for key in gone:
            self.progress.pop(key, None)

    async def run(self) -> None:
        consumer, settings = self.consumer, self.settings
        while True:
            records = await consumer.getmany(timeout_s=settings.commit_interval_s)
            for record in records:
                key = (record.topic, record.partition)
                progress = self.progress.get(key)
                if progress is None:
                    progress = self.progress[key] = PartitionProgress()
                await self.slots.acquire()
                progress.start(record.offset)
                self.consumed += 1
                task = asyncio.create_task(self._one(progress, record))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if time.monotonic() - self.last_commit >= settings.commit_interval_s:
                self.commit()

    async def _one(self, progress: PartitionProgress, record: Any) -> None:
        try:
            await self.subscriber.dispatch(Inbound.from_record(record), self.dead_letters)
        finally:
            self.slots.release()
            progress.finish(record.offset)

    def commit(self, only: Iterable[tuple[str, int]] | None = None, wait: bool = False) -> None:
        self.last_commit = time.monotonic()
        keys = list(self.progress) if only is None else list(only)
        due = []
        for key in keys:
            progress = self.progress.get(key)
            offset = None if progress is None else progress.due()
            if progress is not None and offset is not None:
                due.append((key, progress, offset))
        if not due:
            return
        try:
            self.consumer.commit([(t, p, offset) for (t, p), _, offset in due], wait=wait)
        except Exception as exc:  # a rebalance in progress: the next owner re-reads, idempotently
            log.warning("%s: commit failed: %s", self.subscriber.name, type(exc).__name__)
            return
        for _, progress, offset in due:
            progress.committed = offset

    async def drain(self, timeout_s: float | None = None) -> None:
        if self.tasks:
            wait = self.settings.drain_timeout_s if timeout_s is None else timeout_s
            await asyncio.wait(set(self.tasks), timeout=wait)
        with contextlib.suppress(Exception):
            self.commit(wait=True)


class KafkaRunner:
    """Runs subscribers on the hot path's client (`bus.kafka`), each on its own consumer in
    group `<group_prefix>.<name>`."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_prefix: str,
        dead_letters: DeadLetters,
        subscribers: Iterable[Subscriber],
        settings: RunnerSettings | None = None,
        client_id: str = "tthc-bus-worker",
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_prefix = group_prefix
        self.dead_letters = dead_letters
        self.subscribers = list(subscribers)
        self.settings = settings or RunnerSettings()
        self.client_id = client_id
        self.lanes: list[_Lane] = []
        self._loops: list[asyncio.Task[None]] = []
        self._running = False
        self._closed = False
        self._switch = asyncio.Lock()
        # Set while the runner has left its groups for maintenance (see `leave`): why.
        self.left: str | None = None

    def group_of(self, subscriber: Subscriber) -> str:
        return f"{self.group_prefix}.{subscriber.name}"

    async def start(self) -> None:
        self._running = True
        for subscriber in self.subscribers:
            consumer = AsyncConsumer(
                self.bootstrap_servers,
                f"{self.client_id}-{subscriber.name}",
                group_id=self.group_of(subscriber),
                fetch_max_wait_ms=subscriber.fetch_wait_ms or self.settings.fetch_max_wait_ms,
                fetch_min_bytes=subscriber.fetch_min_bytes,
                session_timeout_ms=self.settings.session_timeout_ms,
                heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
                max_batch=self.settings.max_batch,
            )
            lane = _Lane(subscriber, consumer, self.dead_letters, self.settings)
            consumer.subscribe([subscriber.topic])
            await consumer.start()
            self.lanes.append(lane)
            loop = asyncio.create_task(self._guarded(lane), name=f"consume-{subscriber.name}")
            self._loops.append(loop)

    async def _guarded(self, lane: _Lane) -> None:
        """A fetch loop that dies would silently stop a consumer: log it, and start over."""
        while True:
            try:
                await lane.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("%s: fetch loop failed: %s", lane.subscriber.name, exception_site(exc))
                await asyncio.sleep(1.0)

    async def leave(self, reason: str) -> None:
        """Maintenance: finish what is in flight (up to `leave_timeout_s`), commit it and leave
        every group, so that the partitions go to the other members and this process can be
        stopped without loss."""
        async with self._switch:
            if self.left is None and self._running and not self._closed:
                self.left = reason
                await self._stop_lanes(self.settings.leave_timeout_s)
                log.warning("%s: left its consumer groups (%s)", self.client_id, reason)

    async def rejoin(self) -> None:
        """Back from maintenance: join the groups again (not once the runner is stopped)."""
        async with self._switch:
            if self.left is not None and not self._closed:
                await self.start()
                self.left = None
                log.warning("%s: joined its consumer groups again", self.client_id)

    async def stop(self) -> None:
        """For good: after a leave in progress (it is waited for), and before any rejoin."""
        async with self._switch:
            self._closed = True
            await self._stop_lanes(self.settings.drain_timeout_s)

    async def _stop_lanes(self, drain_timeout_s: float) -> None:
        self._running = False
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        # Every lane at once: one waiting for its lookups must not keep the others' partitions.
        await asyncio.gather(*(self._close(lane, drain_timeout_s) for lane in self.lanes))
        self._loops.clear()
        self.lanes.clear()

    @staticmethod
    async def _close(lane: _Lane, drain_timeout_s: float) -> None:
        await lane.drain(drain_timeout_s)
        with contextlib.suppress(Exception):
            await lane.consumer.stop()


# -- faust binding ------------------------------------------------------------------------------


def bind_faust(app: Any, subscriber: Subscriber, dead_letters: DeadLetters) -> None:
    """Run `subscriber` as a faust agent (for consumers that use faust tables)."""
    channel = app.topic(subscriber.topic, key_type=bytes, value_type=bytes)

    async def agent(stream: Any) -> None:
        async for event in stream.events():
            await subscriber.dispatch(Inbound.from_faust(event), dead_letters)

    app.agent(channel, name=subscriber.name)(agent)


# -- hosting ------------------------------------------------------------------------------------


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def hosted(*parts: Startable) -> Any:
    """A mode service (what a faust worker runs beside its app) that starts `parts` in order
    and stops them in reverse. Passed to `faust.Worker`, it starts before the faust app."""
    import mode

    class HostedRuntime(mode.Service):
        async def on_start(self) -> None:
            for part in parts:
                await part.start()

        async def on_stop(self) -> None:
            for part in reversed(parts):
                try:
                    await part.stop()
                except Exception as exc:
                    log.error("stopping %s failed: %s", type(part).__name__, exception_site(exc))

    return HostedRuntime()
