"""Sync source connectors: each national database's change feed, polled, normalized, produced.

One `FeedConnector` per database: it asks the adapter for the changes after its cursor
(`Adapter.changes`, in the database's own protocol), makes a `ChangeEvent` of each (the source's
change mapper, `mappings/changes/<source>.py`), produces them to `tthc.sync.<source>.change`
keyed by entity (acks=all, an idempotent producer: one entity's events stay in order), and only
once every one is acknowledged writes the cursor after them to the compacted `tthc.sync.cursors`
(key: the source). A connector restarted before that write reads the page again: the same
changes, the same event ids (`<source>.<sequence>`), which every subscriber's idempotency key
drops. A change its mapper cannot read goes to `tthc.deadletter` with its origin (source and
sequence) and the reason, and the feed goes on: nothing is lost, nothing blocks the stream.

When the database fails, polling backs off (doubling from `sync.feeds.backoff_first_ms` to
`backoff_max_ms`) and the connector's state says `backing_off` with the error, in
`tthc.status` under `sync-source.<source>`.

Whatever the number of workers, one polls each feed: every worker's `FeedConnectors` joins one
consumer group on the cursors topic, which has a single partition, and the member that holds it
polls every feed (as Kafka Connect hands a task to one worker). It reads every cursor from the
start of the topic before it polls; a worker that loses the partition stops polling at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import confluent_kafka
import orjson
from prometheus_client import Counter
from pydantic import ValidationError

from adapters.base import Adapter, ChangePage, NativeChange
from bus import topics
from bus.codec import encode
from bus.errors import MappingError, SourceError
from bus.kafka import AsyncProducer, KafkaSendError, common_config
from bus.outbox import H_CONSUMER, H_REASON, H_TIME
from bus.schemas.change import ChangeEvent, change_event_id
from bus.settings import SyncSourceSettings
from mappings.changes import ChangeMapper, mapper_for

log = logging.getLogger(__name__)

H_ORIGIN_SOURCE = "tthc-dlq-origin-source"
H_ORIGIN_SEQUENCE = "tthc-dlq-origin-sequence"
STATUS_PREFIX = "sync-source."
STATUS_EVERY_S = 5.0
# An adapter call for a page may take this long before it counts as failed.
PAGE_TIMEOUT_S = 30.0

State = Literal["starting", "standby", "running", "backing_off", "stopped"]

FEED_EVENTS = Counter(
    "tthc_sync_feed_changes",
    "Changes read from a national database's feed and put on its stream (or dead-lettered).",
    ["source"],
)
FEED_FAILURES = Counter(
    "tthc_sync_feed_failures", "Feed polls that failed and backed off.", ["source"]
)


def has_feed(adapter: Adapter) -> bool:
    """Whether the adapter's database serves a change feed (its class overrides `changes`)."""
    return type(adapter).changes is not Adapter.changes


@dataclass
class ConnectorStatus:
    """What `tthc-bus sync status` (and the ops view) shows of one feed's connector."""

    source: str
    state: State = "starting"
    cursor: str | None = None
    events: int = 0
    dead_letters: int = 0
    last_event_time: datetime | None = None
    error: str | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to(self, state: State, error: str | None = None) -> bool:
        """Move to `state`; True if that changed anything worth publishing at once."""
        changed = state != self.state or error != self.error
        if state != self.state:
            self.since = datetime.now(UTC)
        self.state, self.error = state, error
        return changed

    def record(self, worker: str) -> dict[str, Any]:
        return {
            "source": self.source,
            "state": self.state,
            "cursor": self.cursor,
            "events": self.events,
            "dead_letters": self.dead_letters,
            "last_event_time": self.last_event_time.isoformat() if self.last_event_time else None,
            "error": self.error,
            "since": self.since.isoformat(),
            "worker": worker,
            "time": datetime.now(UTC).isoformat(),
        }


class CursorStore:
    """The cursors topic, read by the group that decides who polls (see the module doc).

    A thread polls the group's consumer: on assignment it reads the partition from its start,
    keeping the last cursor per source, and is `ready` once it reached the end it saw at
    assignment; on revocation it is no longer the owner. `generation` changes with each, so a
    connector can tell that the ground moved under a page.
    """

    def __init__(self, bootstrap_servers: str, group_id: str, client_id: str) -> None:
        self._config = common_config(bootstrap_servers, client_id) | {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 2_000,
            "enable.partition.eof": True,
        }
        self.cursors: dict[str, str] = {}
        self.generation = 0
        self._owner = False
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self._consumer: confluent_kafka.Consumer | None = None

    def start(self) -> None:
        self._consumer = confluent_kafka.Consumer(self._config)
        self._consumer.subscribe(
            [topics.SYNC_CURSORS], on_assign=self._assigned, on_revoke=self._revoked
        )
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="sync-cursors", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
        self._consumer = None

    def owns(self, generation: int | None = None) -> bool:
        """Whether this worker polls the feeds now (and still in `generation`)."""
        with self._lock:
            owner = self._owner and self._ready.is_set()
            return owner and (generation is None or generation == self.generation)

    async def wait_owner(self, poll_s: float = 0.5) -> int:
        """Wait until this worker polls the feeds; its generation."""
        while not self.owns():
            await asyncio.sleep(poll_s)
        return self.generation

    def cursor(self, source: str) -> str | None:
        with self._lock:
            return self.cursors.get(source)

    def remember(self, source: str, cursor: str) -> None:
        """A cursor this worker wrote (acknowledged): known before it is read back."""
        with self._lock:
            self.cursors[source] = cursor

    # -- in the poll thread ---------------------------------------------------------------------

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        with self._lock:
            self.generation += 1
            self._owner = bool(partitions)
            self._ready.clear()
            self.cursors = {}
        if not partitions:
            return
        # From the start every time; `ready` comes with the partition's end-of-file event
        # (also for an empty partition). No watermark call here: on a topic whose leader is
        # still being elected it raises, and this runs inside the consumer's poll.
        for partition in partitions:
            partition.offset = confluent_kafka.OFFSET_BEGINNING
        consumer.assign(partitions)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        with self._lock:
            self.generation += 1
            self._owner = False
            self._ready.clear()

    def _poll(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while self._running:
            try:
                message = consumer.poll(0.2)
            except RuntimeError:  # closed under us while stopping
                return
            except confluent_kafka.KafkaException as exc:  # e.g. in a rebalance callback
                log.warning("sync cursors: %s; polling on", exc.args[0] if exc.args else exc)
                time.sleep(0.5)
                continue
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    self._ready.set()
                continue
            key, value = message.key(), message.value()
            if key and value:
                try:
                    cursor = orjson.loads(value)["cursor"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    log.error("sync cursors: unreadable record at offset %s", message.offset())
                    continue
                with self._lock:
                    self.cursors[key.decode()] = str(cursor)


class FeedConnector:
    """One database's change feed -> `tthc.sync.<source>.change` (see the module doc)."""

    def __init__(
        self,
        source: str,
        adapter: Adapter,
        mapper: ChangeMapper,
        producer: AsyncProducer,
        store: CursorStore,
        settings: SyncSourceSettings,
        worker: str,
        pool: ThreadPoolExecutor,
    ) -> None:
        self.source = source
        self.topic = topics.sync_change(source)
        self.status = ConnectorStatus(source)
        self._adapter = adapter
        self._mapper = mapper
        self._producer = producer
        self._store = store
        self._settings = settings
        self._worker = worker
        self._pool = pool
        self._published = 0.0

    async def run(self) -> None:
        """Poll until cancelled. While one page is produced, the next is already asked for
        (from the cursor after it): the database renders it while this worker maps and
        produces, instead of each waiting for the other. The cursor still moves only once a
        page is acknowledged, and the page read ahead is used only if it starts there."""
        backoff = self._settings.backoff_first_ms / 1000
        ahead: tuple[str, asyncio.Task[ChangePage]] | None = None
        try:
            while True:
                if not self._store.owns():
                    _drop(ahead)
                    ahead = None
                    self._set("standby")
                    generation = await self._store.wait_owner()
                else:
                    generation = self._store.generation
                cursor = self._store.cursor(self.source)
                self.status.cursor = cursor
                try:
                    if ahead is not None and ahead[0] == cursor:
                        page = await ahead[1]
                    else:
                        _drop(ahead)
                        page = await self._page(cursor)
                    ahead = None
                    if page.more and page.changes:
                        ahead = (page.cursor, asyncio.create_task(self._page(page.cursor)))
                    await self._produce(page)
                except (TimeoutError, SourceError, KafkaSendError, OSError) as exc:
                    _drop(ahead)
                    ahead = None
                    FEED_FAILURES.labels(self.source).inc()
                    self._set("backing_off", _reason(exc))
                    log.warning(
                        "%s feed: %s; next poll in %.1f s", self.source, _reason(exc), backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self._settings.backoff_max_ms / 1000)
                    continue
                backoff = self._settings.backoff_first_ms / 1000
                if not self._store.owns(generation):
                    _drop(ahead)
                    ahead = None
                    continue  # another worker polls now, from the last cursor written
                if page.changes:
                    await self._commit(page.cursor)
                self._set("running")
                if not page.more:
                    await asyncio.sleep(self._settings.poll_interval_ms / 1000)
        finally:
            _drop(ahead)

    async def _page(self, cursor: str | None) -> ChangePage:
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(
            self._pool,
            lambda: self._adapter.changes(cursor, self._settings.page_size, timeout=PAGE_TIMEOUT_S),
        )
        return await asyncio.wait_for(call, PAGE_TIMEOUT_S + 5)

    async def _produce(self, page: ChangePage) -> None:
        """Every change of the page acknowledged by the broker (or dead-lettered)."""
        pending = []
        for change in page.changes:
            try:
                event = self.event_of(change)
            except MappingError as exc:
                pending.append(self._dead_letter(change, str(exc)))
                continue
            if event is None:
                continue  # a kind the bus does not carry
            body, headers = encode(event)
            pending.append(
                self._producer.send(self.topic, body, key=event.entity.encode(), headers=headers)
            )
            self.status.last_event_time = event.occurred_at
        await asyncio.gather(*pending)
        self.status.events += len(page.changes)
        FEED_EVENTS.labels(self.source).inc(len(page.changes))

    def event_of(self, change: NativeChange) -> ChangeEvent | None:
        """The normalized event of a native change; None for a kind the bus does not carry;
        MappingError (naming the field, never the value) when it cannot be read."""
        normalized = self._mapper(change.kind, change.entity, change.data)
        if normalized is None:
            return None
        try:
            return ChangeEvent(
                message_id=change_event_id(self.source, change.sequence),
                producer=self._worker,
                source=self.source,
                sequence=change.sequence,
                event_type=normalized.event_type,
                entity=normalized.entity,
                entity_kind=normalized.entity_kind,
                occurred_at=change.occurred_at,
                native_kind=change.kind,
                data=normalized.data,
            )
        except ValidationError as exc:  # name the fields only: the values may be personal data
            where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
            raise MappingError(
                where or "event", None, "a value the event's schema accepts"
            ) from None

    def _dead_letter(self, change: NativeChange, reason: str) -> asyncio.Future[None]:
        self.status.dead_letters += 1
        log.warning("%s feed: change %s dead-lettered: %s", self.source, change.sequence, reason)
        value = orjson.dumps(
            {
                "source": change.source,
                "sequence": change.sequence,
                "kind": change.kind,
                "entity": change.entity,
                "occurred_at": change.occurred_at.isoformat(),
                "data": change.data,
            },
            default=str,
        )
        headers = [
            (H_ORIGIN_SOURCE, self.source.encode()),
            (H_ORIGIN_SEQUENCE, str(change.sequence).encode()),
            (H_REASON, reason[:2000].encode()),
            (H_CONSUMER, f"sync-source.{self.source}".encode()),
            (H_TIME, str(int(time.time() * 1000)).encode()),
        ]
        return self._producer.send(
            topics.DEAD_LETTER, value, key=change.entity.encode(), headers=headers
        )

    async def _commit(self, cursor: str) -> None:
        value = orjson.dumps({"cursor": cursor, "time": datetime.now(UTC).isoformat()})
        await self._producer.send(topics.SYNC_CURSORS, value, key=self.source.encode())
        self._store.remember(self.source, cursor)
        self.status.cursor = cursor

    def _set(self, state: State, error: str | None = None) -> None:
        changed = self.status.to(state, error)
        now = time.monotonic()
        if changed or now - self._published >= STATUS_EVERY_S:
            self._published = now
            self.publish_status()

    def publish_status(self) -> None:
        value = orjson.dumps(self.status.record(self._worker))
        future = self._producer.send(
            topics.STATUS, value, key=f"{STATUS_PREFIX}{self.source}".encode()
        )
        future.add_done_callback(_ignore_failure)


_Ahead = tuple[str, asyncio.Task[ChangePage]]


def _drop(ahead: _Ahead | None) -> None:
    """Cancel a page read ahead that will not be used (its failure, if any, is not news)."""
    if ahead is not None:
        ahead[1].cancel()
        ahead[1].add_done_callback(_ignore_page)


def _ignore_page(task: asyncio.Task[ChangePage]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "never retrieved" warning


def _ignore_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("sync status not published: %s", future.exception())


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no page within {PAGE_TIMEOUT_S:.0f} s"
    return f"{type(exc).__name__}: {exc}"[:500]


class FeedConnectors:
    """Every feed connector of a worker, with their cursor store and producer."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_prefix: str,
        adapters: Mapping[str, Adapter],
        settings: SyncSourceSettings,
        worker: str,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._store = CursorStore(
            bootstrap_servers, f"{group_prefix}.sync-sources", f"{worker}-sync-cursors"
        )
        self._producer = AsyncProducer(bootstrap_servers, f"{worker}-sync", idempotent=True)
        self._pool = ThreadPoolExecutor(
            # Two per feed: the page being read, and the next one read ahead.
            max_workers=max(2, 2 * len(adapters)),
            thread_name_prefix="sync-feed",
        )
        self.connectors: dict[str, FeedConnector] = {}
        for source, adapter in adapters.items():
            mapper = mapper_for(adapter.name)
            if mapper is None or not has_feed(adapter):
                log.info("%s: no change feed or no change mapper; not polled", source)
                continue
            self.connectors[source] = FeedConnector(
                source, adapter, mapper, self._producer, self._store, settings, worker, self._pool
            )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def store(self) -> CursorStore:
        return self._store

    async def start(self) -> None:
        if not self.connectors:  # nothing to poll: stay out of the group that decides who polls
            return
        await self._producer.start()
        self._store.start()
        for source, connector in self.connectors.items():
            task = asyncio.create_task(self._guarded(connector), name=f"sync-feed-{source}")
            self._tasks.append(task)

    async def _guarded(self, connector: FeedConnector) -> None:
        """A loop that dies would silently stop a feed: log it, and start over."""
        while True:
            try:
                await connector.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                connector.status.to("backing_off", _reason(exc))
                log.exception("%s feed: connector failed, restarting", connector.source)
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if not self.connectors:
            self._pool.shutdown(wait=False)
            return
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for connector in self.connectors.values():
            connector.status.to("stopped")
            connector.publish_status()
        await self._producer.stop()
        await asyncio.get_running_loop().run_in_executor(None, self._store.stop)
        self._pool.shutdown(wait=False)
