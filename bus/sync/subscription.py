"""A subscription's consumer: its change streams delivered to its sink, in order per entity.

One consumer group per subscription, `<worker.app_id>.sync.<name>`, reading
`tthc.sync.<source>.change` of each of its sources. The events of one entity share a Kafka key,
hence a partition; each partition is a `_Lane` that delivers one event at a time, in offset
order. An event that fails holds its lane while it is retried (`bus.sync.retry`); the other
lanes go on. A lane's offset is committed only past events that were delivered, skipped (a type
the subscription does not take) or dead-lettered (`tthc.dlq.<name>`): at-least-once, and the sink
dedupes by the event id.

Records wait in memory per lane only up to `max_buffered` over all lanes: past it the consumer
stops fetching (the poll thread's hand-over is bounded), so a lane held by retries slows the
others only once the buffer is full. The retry budget (attempts x backoff) should stay well
under librdkafka's max.poll.interval.ms (5 min), or the held consumer leaves its group.

Control (`bus.sync.control`): paused, the subscription closes its consumer (it leaves the group,
its committed position stays); resumed, it joins again. A reset closes the consumer, commits
each partition's offset of the reset time for the group (Kafka takes that only once the group
is empty: every member of the subscription closes on the same command), records the reset's id
in its status, and joins again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from prometheus_client import Counter

from bus import topics
from bus.codec import DecodeError, decode
from bus.errors import exception_site
from bus.kafka import AsyncConsumer
from bus.outbox import Outbox
from bus.runtime import Inbound
from bus.schemas.change import ChangeEvent
from bus.schemas.common import utc_now
from bus.settings import EventFilter, Settings, Subscription
from bus.sync import offsets
from bus.sync.control import ControlState, read_states
from bus.sync.deadletter import dead_letter_headers
from bus.sync.retry import (
    GivenUp,
    RetryPolicy,
    deliver_batch_with_retries,
    deliver_with_retries,
)
from bus.sync.sinks import Sink
from bus.sync.status import State, SubscriptionStatus, read_statuses, subscription_key

log = logging.getLogger(__name__)

DELIVERY_THREADS = 8
SYNC_DEAD_LETTERS = Counter(
    "tthc_sync_dead_letters",
    "Change events a subscription gave up on, sent to tthc.dlq.<subscription>.",
    ["subscription"],
)
SYNC_DELIVERED = Counter(
    "tthc_sync_delivered_events", "Change events a subscription delivered.", ["subscription"]
)
COMMIT_INTERVAL_S = 0.2


def group_of(app_id: str, subscription: str) -> str:
    return f"{app_id}.sync.{subscription}"


def replay_group_of(app_id: str, subscription: str) -> str:
    return f"{app_id}.dlq-replay.{subscription}"


def matches(condition: EventFilter, event: ChangeEvent) -> bool:
    """One `where` condition on the event's data; a missing or unreadable value does not match."""
    value = event.data.get(condition.field)
    if value is None:
        return False
    if condition.within_days is None:
        return str(value) in condition.equals
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return False
    reference = event.occurred_at.date() if condition.of == "event" else utc_now().date()
    return 0 <= (reference - day).days <= condition.within_days


def streams_of(subscription: Subscription) -> list[str]:
    return [topics.sync_change(source) for source in subscription.sources]


class _Lane:
    """One partition: its records in offset order, delivered one batch at a time (a batch is
    one record unless the sink takes more, `Sink.batch_max`)."""

    def __init__(
        self,
        key: tuple[str, int],
        deliver: Callable[[list[Inbound], _Lane], Awaitable[None]],
        batch_max: int = 1,
    ) -> None:
        self.key = key
        self.records: deque[Inbound] = deque()
        self.done: int | None = None  # the next offset to commit
        self.committed: int | None = None
        self.held = False  # its first record has failed at least once
        self.last_added: int | None = None
        self.in_flight = 0  # the first records, in the sink now
        self.rewound = False  # the partition was read again from before what is in flight
        self.batch_max = batch_max
        self._deliver = deliver
        self._wake = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"lane-{key[0]}-{key[1]}")

    def add(self, record: Inbound) -> None:
        # An offset at or before the last one taken: the consumer reads the partition again
        # from there (a poll that straddled a rebalance, see bus.kafka.AsyncConsumer). Drop
        # what waits from that offset on; it comes again, in order, after this record.
        if self.last_added is not None and record.offset <= self.last_added:
            self._rewind(record.offset)
        self.last_added = record.offset
        self.records.append(record)
        self._wake.set()

    def _rewind(self, offset: int) -> None:
        waiting = list(self.records)
        kept: deque[Inbound] = deque(waiting[: self.in_flight])  # they finish, then come again
        if self.in_flight:
            self.rewound = True
        kept.extend(r for r in waiting[self.in_flight :] if r.offset < offset)
        self.records = kept
        if self.done is not None and self.done > offset:
            self.done = offset

    async def _run(self) -> None:
        while True:
            while self.records:
                batch = list(itertools.islice(self.records, self.batch_max))
                self.in_flight, self.rewound = len(batch), False
                try:
                    await self._deliver(batch, self)
                except Exception as exc:  # a bug: hold the partition rather than skip the event
                    log.error("lane %s[%s]: %s", *self.key, exception_site(exc))
                    await asyncio.sleep(1.0)
                    continue
                finally:
                    self.in_flight = 0
                for _ in batch:
                    self.records.popleft()
                self.held = False
                if not self.rewound:  # else the records before it come again first
                    self.done = batch[-1].offset + 1
            self._wake.clear()
            await self._wake.wait()

    def due(self) -> int | None:
        return self.done if self.done is not None and self.done != self.committed else None


class _Session:
    """One membership of the group: a consumer, its fetch loop and its lanes."""

    def __init__(self, owner: SubscriptionConsumer) -> None:
        self.owner = owner
        self.consumer = AsyncConsumer(
            owner.bootstrap,
            owner.client_id,
            group_id=owner.group,
            fetch_max_wait_ms=owner.fetch_max_wait_ms,
            session_timeout_ms=owner.session_timeout_ms,
            heartbeat_interval_ms=max(500, owner.session_timeout_ms // 5),
            max_batch=500,
        )
        self.consumer.on_revoke = self._revoked
        self.lanes: dict[tuple[str, int], _Lane] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fetching: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.consumer.subscribe(self.owner.streams)
        await self.consumer.start()
        self.fetching = asyncio.create_task(self._fetch(), name=f"sync-{self.owner.name}")

    def _revoked(self, partitions: list[tuple[str, int]]) -> None:
        """In the poll thread, during a rebalance: commit what is done, then drop the lanes
        (what they still hold is read again by the next owner)."""
        gone = [key for key in partitions if key in self.lanes]
        due = [(key, self.lanes[key].due()) for key in gone]
        commits = [(t, p, offset) for (t, p), offset in due if offset is not None]
        if commits:
            self.consumer.commit(commits, wait=True)
        if self.loop is not None and gone:
            self.loop.call_soon_threadsafe(self._drop, gone)

    def _drop(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            lane = self.lanes.pop(key, None)
            if lane is not None:
                lane.task.cancel()

    def buffered(self) -> int:
        return sum(len(lane.records) for lane in self.lanes.values())

    async def _fetch(self) -> None:
        owner, last_commit = self.owner, 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if self.buffered() >= owner.max_buffered:
                    await asyncio.sleep(0.05)  # lanes are behind: let Kafka keep the records
                else:
                    for record in await self.consumer.getmany(timeout_s=COMMIT_INTERVAL_S):
                        self._lane(record.topic, record.partition).add(Inbound.from_record(record))
                if loop.time() - last_commit >= COMMIT_INTERVAL_S:
                    last_commit = loop.time()
                    self.commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dead fetch loop would silently stop the subscription
                log.error("subscription %s: fetch loop: %s", owner.name, exception_site(exc))
                await asyncio.sleep(1.0)

    def _lane(self, topic: str, partition: int) -> _Lane:
        lane = self.lanes.get((topic, partition))
        if lane is None:
            lane = self.lanes[(topic, partition)] = _Lane(
                (topic, partition), self.owner.handle, self.owner.sink.batch_max
            )
        return lane

    def commit(self) -> None:
        due = [(lane, lane.due()) for lane in self.lanes.values()]
        commits = [(lane, offset) for lane, offset in due if offset is not None]
        if not commits:
            return
        self.consumer.commit([(*lane.key, offset) for lane, offset in commits])
        for lane, offset in commits:
            lane.committed = offset

    async def stop(self) -> None:
        """Stop delivering: abandon retries (their events were not committed: read again), commit
        what is done, leave the group."""
        if self.fetching is not None:
            self.fetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.fetching
        lanes = list(self.lanes.values())
        for lane in lanes:
            lane.task.cancel()
        for lane in lanes:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await lane.task
        self.commit()
        await self.consumer.stop()  # sends the queued commits, synchronously, then leaves
        self.lanes.clear()

    def retrying(self) -> int:
        return sum(1 for lane in self.lanes.values() if lane.held)


class SubscriptionConsumer:
    """One subscription: delivery sessions started and stopped by its control state."""

    def __init__(
        self,
        subscription: Subscription,
        sink: Sink,
        *,
        bootstrap: str,
        app_id: str,
        outbox: Outbox,
        client_id: str,
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 500,
        max_buffered: int = 2_000,
        reset_timeout_s: float = 60.0,
    ) -> None:
        self.subscription = subscription
        self.name = subscription.name
        self.sink = sink
        self.bootstrap = bootstrap
        self.group = group_of(app_id, subscription.name)
        self.streams = streams_of(subscription)
        self.outbox = outbox
        self.client_id = client_id
        self.session_timeout_ms = session_timeout_ms
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.max_buffered = max_buffered
        self.reset_timeout_s = reset_timeout_s
        self.policy = RetryPolicy.of(subscription)
        self.types = frozenset(subscription.event_types)
        self.status = SubscriptionStatus(subscription=self.name, state="starting", member=client_id)
        self.control = ControlState(subscription=self.name)
        self._session: _Session | None = None
        self._lock = asyncio.Lock()
        self._pool = ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix=f"sink-{self.name}")
        self._dirty = True

    # -- control ----------------------------------------------------------------------------

    async def apply(self, state: ControlState) -> None:
        """Bring the subscription to `state`: pause, resume, reset (each reset id once)."""
        async with self._lock:
            reset = state.reset
            if reset is not None and reset.id != self.status.reset_applied:
                await self._stop_session()
                await self._set_state("resetting")
                await self._reset(reset.id, reset.to)
            self.control = state
            if state.paused:
                await self._stop_session()
                await self._set_state("paused")
            elif self._session is None:
                session = _Session(self)
                await session.start()
                self._session = session
                await self._set_state("running")

    async def _reset(self, reset_id: str, to: Any) -> None:
        wanted = await asyncio.to_thread(offsets.offsets_at, self.bootstrap, self.streams, to)
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.reset_timeout_s
        while True:
            try:
                await asyncio.to_thread(offsets.commit_offsets, self.bootstrap, self.group, wanted)
                break
            except offsets.OffsetsError as exc:  # the group has members yet: they close too
                statuses, _ = await asyncio.to_thread(read_statuses, self.bootstrap)
                done = statuses.get(self.name)
                if done is not None and done.reset_applied == reset_id:
                    break  # another member applied it and joined again
                if loop.time() > ends:
                    self.status.last_error = f"reset not applied: {exc}"[:500]
                    log.error("subscription %s: reset not applied: %s", self.name, exc)
                    return
                await asyncio.sleep(0.5)
        self.status.reset_applied = reset_id
        log.info("subscription %s: reset to %s", self.name, to.isoformat())

    async def _stop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.stop()

    async def _set_state(self, state: State) -> None:
        self.status.state = state
        await self.publish_status()

    async def publish_status(self, *, only_if_changed: bool = False) -> None:
        if only_if_changed and not self._dirty:
            return
        self.status.retrying = self._session.retrying() if self._session is not None else 0
        self.status.updated_at = utc_now()
        self._dirty = False
        try:
            await self.outbox.send_raw(
                topics.STATUS,
                self.status.model_dump_json().encode(),
                [],
                key=subscription_key(self.name).encode(),
            )
        except Exception as exc:  # status is best-effort; delivery goes on
            log.warning("subscription %s: status not published: %s", self.name, exc)

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_session()
            await self._set_state("stopped")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.sink.close()

    # -- delivery ---------------------------------------------------------------------------

    async def handle(self, records: list[Inbound], lane: _Lane) -> None:
        """Deliver a lane's batch of records (or skip them, or dead-letter them); return only
        when each one is done."""
        self._dirty = True
        wanted: list[tuple[Inbound, ChangeEvent]] = []
        for record in records:
            try:
                event = decode(ChangeEvent, record.value, record.header_map())
            except DecodeError as exc:
                now = utc_now()
                await self._dead_letter(record, GivenUp(f"undecodable: {exc}", 0, True, now, now))
                continue
            if (self.types and event.event_type not in self.types) or not self._wanted(event):
                self.status.skipped += 1
                continue
            wanted.append((record, event))
        if len(wanted) > 1:
            given_up = await deliver_batch_with_retries(
                self.sink,
                [event for _, event in wanted],
                self.policy,
                self._run_blocking,
                on_failure=lambda reason: self._failed(lane, reason),
            )
            if given_up is None:
                for _, event in wanted:
                    self._delivered(event)
                return
            if not given_up.permanent:  # the budget is spent on the batch: each is given up
                for record, _ in wanted:
                    await self._dead_letter(record, given_up)
                return
            # The sink refused the batch: one at a time, to find the event(s) it refuses.
        for record, event in wanted:
            await self._deliver_one(record, event, lane)

    def _wanted(self, event: ChangeEvent) -> bool:
        """Whether the event's data meets every `where` condition of the subscription."""
        return all(matches(condition, event) for condition in self.subscription.where)

    async def _deliver_one(self, record: Inbound, event: ChangeEvent, lane: _Lane) -> None:
        given_up = await deliver_with_retries(
            self.sink,
            event,
            self.policy,
            self._run_blocking,
            on_failure=lambda reason: self._failed(lane, reason),
        )
        if given_up is None:
            self._delivered(event)
        else:
            await self._dead_letter(record, given_up)

    def _failed(self, lane: _Lane, reason: str) -> None:
        lane.held = True
        self.status.last_error = reason

    def _delivered(self, event: ChangeEvent) -> None:
        self.status.delivered += 1
        SYNC_DELIVERED.labels(self.name).inc()
        self.status.last_delivered_event_time = event.occurred_at
        self.status.last_delivered_at = utc_now()

    async def _run_blocking(self, call: Callable[[], None]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def _dead_letter(self, record: Inbound, failure: GivenUp) -> None:
        """Send to the DLQ; if Kafka does not take it, hold the partition and try again."""
        headers = dead_letter_headers(record, self.name, failure)
        pause = 0.5
        while True:
            try:
                await self.outbox.send_raw(
                    topics.dlq(self.name), record.value, headers, key=record.key
                )
                break
            except Exception as exc:
                log.error("subscription %s: DLQ not written: %s", self.name, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
        self.status.dead_lettered += 1
        SYNC_DEAD_LETTERS.labels(self.name).inc()
        self.status.last_error = failure.reason
        log.warning(
            "subscription %s: dead-lettered %s[%s]@%s after %d attempt(s): %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            failure.attempts,
            failure.reason[:300],
        )


class SubscriptionRunner:
    """Every enabled subscription of the settings, each on its own consumer group, obeying
    `tthc.sync.control`. `sinks`: subscription name -> its sink (bus/tooling builds them); a
    subscription without a sink is not run. `outbox`: the worker's producer (for DLQ and status
    records); without one the runner starts its own."""

    def __init__(
        self,
        bootstrap: str,
        settings: Settings,
        sinks: Mapping[str, Sink],
        *,
        outbox: Outbox | None = None,
        client_id: str | None = None,
        status_interval_s: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.settings = settings
        self.client_id = client_id or f"{settings.worker.app_id}-sync-{os.getpid()}"
        self._own_outbox = outbox is None
        self.outbox = outbox or Outbox(bootstrap, producer_name=self.client_id)
        self.status_interval_s = status_interval_s
        self.consumers: dict[str, SubscriptionConsumer] = {
            subscription.name: SubscriptionConsumer(
                subscription,
                sinks[subscription.name],
                bootstrap=bootstrap,
                app_id=settings.worker.app_id,
                outbox=self.outbox,
                client_id=f"{self.client_id}-{subscription.name}",
                session_timeout_ms=settings.worker.session_timeout_ms,
                fetch_max_wait_ms=settings.worker.fetch_max_wait_ms,
            )
            for subscription in settings.sync.subscriptions
            if subscription.enabled and subscription.name in sinks
        }
        self._control: AsyncConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._applying: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def start(self) -> None:
        if self._own_outbox:
            await self.outbox.start()
        if not self.consumers:
            return
        marks = await asyncio.to_thread(offsets.watermarks, self.bootstrap, [topics.SYNC_CONTROL])
        states = await asyncio.to_thread(read_states, self.bootstrap)
        statuses, _ = await asyncio.to_thread(read_statuses, self.bootstrap)
        for name, consumer in self.consumers.items():
            known = statuses.get(name)
            consumer.status.reset_applied = known.reset_applied if known else None
            await consumer.apply(states.get(name) or ControlState(subscription=name))
        # Commands from here on: from the end offset seen before the states were read (a
        # command read twice is applied once: the same state again changes nothing).
        control = self._control = AsyncConsumer(self.bootstrap, f"{self.client_id}-control")
        start = marks.get((topics.SYNC_CONTROL, 0), (0, 0))[1]
        control.assign([(topics.SYNC_CONTROL, 0, start)])
        await control.start()
        self._tasks = [
            asyncio.create_task(self._follow_control(control), name="sync-control"),
            asyncio.create_task(self._publish_statuses(), name="sync-status"),
        ]

    async def _follow_control(self, control: AsyncConsumer) -> None:
        while True:
            for record in await control.getmany(timeout_s=1.0):
                consumer = self.consumers.get((record.key or b"").decode("utf-8", "replace"))
                if consumer is None or record.value is None:
                    continue
                try:
                    state = ControlState.decode(record.value)
                except ValueError:
                    log.warning("tthc.sync.control@%s: not a control state", record.offset)
                    continue
                task = asyncio.create_task(self._apply(consumer, state))
                self._applying.add(task)
                task.add_done_callback(self._applying.discard)

    @staticmethod
    async def _apply(consumer: SubscriptionConsumer, state: ControlState) -> None:
        try:
            await consumer.apply(state)
        except Exception as exc:
            log.error("subscription %s: command failed: %s", consumer.name, exception_site(exc))

    async def _publish_statuses(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval_s)
            for consumer in self.consumers.values():
                await consumer.publish_status(only_if_changed=True)

    async def stop(self) -> None:
        """Stop every subscription (what is delivered is committed); a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        for task in [*self._tasks, *self._applying]:
            task.cancel()
        for task in [*self._tasks, *self._applying]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._control is not None:
            await self._control.stop()
            self._control = None
        for consumer in self.consumers.values():
            try:
                await consumer.stop()
            except Exception as exc:
                log.error("subscription %s: stop: %s", consumer.name, exception_site(exc))
        if self._own_outbox:
            await self.outbox.stop()

    def names(self) -> Sequence[str]:
        return list(self.consumers)
