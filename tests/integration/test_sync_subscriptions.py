"""Subscriptions on the real broker: a webhook sink that fails for a while, refuses an event, is
paused, resumed and reset; the dead letters and their replay; the `dlq` and `sync` commands.

Each test has its own source stream, subscription (hence group and DLQ topic) and app id; the
control and status topics are the real ones, keyed by the test's subscription.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from bus import topics
from bus.codec import encode
from bus.kafka import AsyncProducer
from bus.outbox import H_CONSUMER, H_ORIGIN_OFFSET, H_ORIGIN_PARTITION, H_ORIGIN_TOPIC, H_REASON
from bus.schemas.change import ChangeEvent, change_event_id
from bus.settings import Settings, load_settings
from bus.sync import offsets
from bus.sync.deadletter import H_ATTEMPTS, H_FIRST_FAILED, H_LAST_FAILED, H_PERMANENT
from bus.sync.replay import pending
from bus.sync.sinks import (
    H_BATCH_SIZE,
    H_IDEMPOTENCY_KEY,
    H_SIGNATURE,
    WebhookDelivery,
    verify_signature,
)
from bus.sync.subscription import SubscriptionRunner
from bus.tooling.cli import app

# The runner fixture starts its consumers on the session's loop (the fixtures' loop scope): the
# tests must run on that loop too.
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SECRET = "test-webhook-secret"
PARTITIONS = 3


# -- a real webhook receiver ----------------------------------------------------------------------


@dataclass
class Call:
    key: str
    status: int
    body: bytes
    headers: dict[str, str]
    ids: list[str]  # the event ids it carried (one, or a batch's)


@dataclass
class Receiver:
    """An HTTP server in a thread; `answer(key, call number)` decides each one-event POST's
    status, `answer_batch(event ids, call number)` each batch's."""

    answer: Callable[[str, int], int] = lambda _key, _n: 200
    answer_batch: Callable[[list[str], int], int] = lambda _ids, _n: 200
    calls: list[Call] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)  # answer() may look too
    url: str = ""

    def accepted(self) -> list[str]:
        """The event ids of the POSTs answered 2xx, in the order they came."""
        with self.lock:
            return [i for c in self.calls if 200 <= c.status < 300 for i in c.ids]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            key = self.headers[H_IDEMPOTENCY_KEY]
            batch = self.headers.get(H_BATCH_SIZE) is not None
            ids = [e["message_id"] for e in json.loads(body)["events"]] if batch else [key]
            with state.lock:
                n = len(state.calls)
                status = state.answer_batch(ids, n) if batch else state.answer(key, n)
                state.calls.append(Call(key, status, body, dict(self.headers.items()), ids))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a handler stuck in a failing test must not hold the teardown
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/sync"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# -- the test's own stream and subscription -------------------------------------------------------


@dataclass
class World:
    bootstrap: str
    source: str
    name: str
    app_id: str
    env: dict[str, str]
    settings: Settings

    @property
    def stream(self) -> str:
        return topics.sync_change(self.source)


@pytest.fixture
def world(
    kafka_broker: Any,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> World:
    """Parametrized indirectly with the webhook's `batch_max` (1 unless given)."""
    batch_max = getattr(request, "param", 1)
    tag = uuid.uuid4().hex[:8]
    bootstrap = kafka_broker.bootstrap_servers
    source, name, app_id = f"t{tag}", f"sub-{tag}", f"test-{tag}"
    subscription = {
        "name": name,
        "sources": [source],
        "event_types": ["CitizenDeceased", "ResidenceChanged"],
        "sink": {
            "kind": "webhook",
            "url": receiver.url,
            "secret": SECRET,
            "timeout_ms": 2000,
            "batch_max": batch_max,
        },
        "max_attempts": 8,
        "backoff_first_ms": 40,
        "backoff_max_ms": 200,
    }
    env = {
        "TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "TTHC_BUS_WORKER__APP_ID": app_id,
        "TTHC_BUS_SYNC__SUBSCRIPTIONS": json.dumps([subscription]),
        "TTHC_BUS_SYNC__FEEDS__SOURCES": json.dumps([source]),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    topics.ensure_topics(
        bootstrap,
        [
            topics.TopicSpec(topics.sync_change(source), PARTITIONS),
            topics.TopicSpec(topics.dlq(name), 1),
            topics.TopicSpec(topics.SYNC_CONTROL, 1, {"cleanup.policy": "compact"}),
            topics.TopicSpec(topics.STATUS, 1, {"cleanup.policy": "compact"}),
        ],
    )
    return World(bootstrap, source, name, app_id, env, load_settings())


ENTITIES = ["001089012345", "079201004567", "031188000123", "001300009876"]


def change(
    world: World, sequence: int, entity: str, event_type: str = "CitizenDeceased"
) -> ChangeEvent:
    data: dict[str, object] = {
        "CitizenDeceased": {
            "death_registration_id": f"KT-{sequence}",
            "date_of_death": "2026-11-30",
            "registered_on": "2026-12-01",
        },
        "ResidenceChanged": {
            "kind": "permanent",
            "action": "removed",
            "effective_on": "2026-12-01",
        },
        "MarriageRegistered": {
            "marriage_registration_id": f"KH-{sequence}",
            "spouse_personal_id": "001089000001",
            "registered_on": "2026-12-01",
        },
    }[event_type]
    return ChangeEvent(
        message_id=change_event_id(world.source, sequence),
        source=world.source,
        sequence=sequence,
        event_type=event_type,  # type: ignore[arg-type]
        entity=entity,
        entity_kind="personal_id",
        occurred_at=datetime(2026, 12, 1, 9, 0, tzinfo=UTC) + timedelta(seconds=sequence),
        native_kind="TEST",
        data=data,
    )


async def produce(world: World, events: list[ChangeEvent], raw: list[bytes] = ()) -> None:  # type: ignore[assignment]
    producer = AsyncProducer(world.bootstrap, "test-sync-producer")
    await producer.start()
    try:
        for event in events:
            body, headers = encode(event)
            await producer.send(world.stream, body, key=event.entity.encode(), headers=headers)
        for value in raw:
            await producer.send(world.stream, value, key=b"garbage", headers=[])
    finally:
        await producer.stop()


@pytest.fixture
async def runner(world: World) -> AsyncIterator[SubscriptionRunner]:
    running = new_runner(world)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


def new_runner(world: World) -> SubscriptionRunner:
    sink = world.settings.sync.subscriptions[0].sink
    webhook = WebhookDelivery(
        sink.url,  # type: ignore[union-attr]
        SECRET.encode(),
        timeout_s=2,
        batch_max=sink.batch_max,  # type: ignore[union-attr]
    )
    return SubscriptionRunner(
        world.bootstrap, world.settings, {world.name: webhook}, status_interval_s=0.2
    )


async def until(check: Callable[[], bool], timeout_s: float = 30, what: str = "") -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.05)


def run_cli(*args: str) -> Any:
    """A command, on a terminal wide enough for its tables."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


async def cli(*args: str) -> Any:
    """A command run beside the test's runner (in a thread: a command runs its own loop)."""
    return await asyncio.to_thread(run_cli, *args)


def in_order_per_entity(receiver: Receiver, events: list[ChangeEvent]) -> None:
    entity_of = {e.message_id: e.entity for e in events}
    for entity in {e.entity for e in events}:
        seen = [k for k in receiver.accepted() if entity_of.get(k) == entity]
        wanted = [e.message_id for e in events if e.entity == entity and e.message_id in seen]
        assert seen == wanted, f"out of order for entity #{ENTITIES.index(entity)}"


# -- the tests ------------------------------------------------------------------------------------


async def test_a_webhook_that_fails_for_a_while_receives_every_event_once_in_order_per_entity(
    world: World, receiver: Receiver, runner: SubscriptionRunner
) -> None:
    receiver.answer = lambda _key, n: 503 if n < 8 else 200
    events = [
        change(world, n, ENTITIES[n % 4], "ResidenceChanged" if n % 3 else "CitizenDeceased")
        for n in range(1, 25)
    ]
    unwanted = change(world, 99, ENTITIES[0], "MarriageRegistered")
    await produce(world, [*events[:12], unwanted, *events[12:]], raw=[b"{not json"])

    wanted = {e.message_id for e in events}
    await until(lambda: set(receiver.accepted()) >= wanted)
    await until(lambda: len(pending(world.bootstrap, world.app_id, world.name)) == 1)

    assert sorted(receiver.accepted()) == sorted(wanted)  # each exactly once, nothing else
    assert any(c.status == 503 for c in receiver.calls)
    in_order_per_entity(receiver, events)
    for call in receiver.calls:
        assert verify_signature(call.body, SECRET.encode(), call.headers[H_SIGNATURE])
        assert call.headers["X-Tthc-Event-Type"] in ("CitizenDeceased", "ResidenceChanged")
    [garbage] = pending(world.bootstrap, world.app_id, world.name)
    assert garbage.reason.startswith("undecodable: ") and garbage.attempts == 0
    assert garbage.value == b"{not json" and garbage.key == b"garbage"

    # Everything is committed: a runner started again on the group delivers nothing more.
    await runner.stop()
    calls = len(receiver.calls)
    again = new_runner(world)
    await again.start()
    try:
        await asyncio.sleep(1.5)
    finally:
        await again.stop()
    assert len(receiver.calls) == calls


@pytest.mark.parametrize("world", [8], indirect=True)
async def test_a_batching_webhook_that_fails_for_a_while_receives_every_event_once_in_order(
    world: World, receiver: Receiver, runner: SubscriptionRunner
) -> None:
    receiver.answer_batch = lambda _ids, n: 503 if n < 4 else 200
    events = [
        change(world, n, ENTITIES[n % 4], "ResidenceChanged" if n % 3 else "CitizenDeceased")
        for n in range(1, 61)
    ]
    unwanted = change(world, 99, ENTITIES[0], "MarriageRegistered")
    await produce(world, [*events[:30], unwanted, *events[30:]])

    wanted = {e.message_id for e in events}
    await until(lambda: set(receiver.accepted()) >= wanted)
    assert sorted(receiver.accepted()) == sorted(wanted)  # each exactly once, nothing else
    in_order_per_entity(receiver, events)
    batches = [c for c in receiver.calls if H_BATCH_SIZE in c.headers]
    assert batches and max(len(c.ids) for c in receiver.calls) > 1
    assert all(len(c.ids) <= 8 for c in receiver.calls)
    assert any(c.status == 503 for c in batches)
    for call in batches:
        assert verify_signature(call.body, SECRET.encode(), call.headers[H_SIGNATURE])
        assert call.headers[H_BATCH_SIZE] == str(len(call.ids))
        assert call.key.startswith("batch-")
    # A batch tried again is the same batch: the same key for the same events.
    keys: dict[tuple[str, ...], set[str]] = {}
    for call in batches:
        keys.setdefault(tuple(call.ids), set()).add(call.key)
    assert all(len(found) == 1 for found in keys.values())


@pytest.mark.parametrize("world", [8], indirect=True)
async def test_a_batch_the_sink_refuses_goes_one_by_one_and_only_the_refused_event_is_dead_lettered(
    world: World, receiver: Receiver, runner: SubscriptionRunner
) -> None:
    refused = change(world, 5, ENTITIES[1])
    receiver.answer_batch = lambda ids, _n: 422 if refused.message_id in ids else 200
    receiver.answer = lambda key, _n: 422 if key == refused.message_id else 200
    events = [change(world, n, ENTITIES[n % 2]) for n in range(1, 21)]
    await produce(world, events)

    others = {e.message_id for e in events} - {refused.message_id}
    await until(lambda: set(receiver.accepted()) == others)
    await until(lambda: len(pending(world.bootstrap, world.app_id, world.name)) == 1)
    assert sorted(receiver.accepted()) == sorted(others)
    in_order_per_entity(receiver, events)
    [letter] = pending(world.bootstrap, world.app_id, world.name)
    assert letter.event().message_id == refused.message_id
    assert letter.reason == f"webhook {receiver.url}: HTTP 422 Unprocessable Entity"


async def test_an_event_being_retried_holds_its_partition_and_no_other(
    world: World, receiver: Receiver, runner: SubscriptionRunner
) -> None:
    events = [change(world, n, ENTITIES[n % 4]) for n in range(1, 17)]
    await produce(world, events)
    partition_of = {
        m.value() and ChangeEvent.model_validate_json(m.value()).message_id: m.partition()
        for m in offsets.read_all(world.bootstrap, world.stream)
    }
    held = events[0]
    elsewhere = {
        e.message_id for e in events if partition_of[e.message_id] != partition_of[held.message_id]
    }
    assert elsewhere, "the entities all landed in one partition"

    def answer(key: str, _n: int) -> int:
        # The held event fails until every event of the other partitions has been delivered: a
        # held partition that stopped the others would never let it through.
        if key == held.message_id and not elsewhere <= set(receiver.accepted()):
            return 503
        return 200

    receiver.answer = answer
    await until(lambda: set(receiver.accepted()) == {e.message_id for e in events})
    assert next(c.status for c in receiver.calls if c.key == held.message_id) == 503
    same = [
        e.message_id for e in events if partition_of[e.message_id] == partition_of[held.message_id]
    ]
    accepted = receiver.accepted()
    assert [k for k in accepted if k in same] == same  # its partition waited for it, in order
    assert pending(world.bootstrap, world.app_id, world.name) == []


async def test_a_refused_event_is_dead_lettered_with_its_error_and_origin_and_replay_delivers_it(
    world: World, receiver: Receiver, runner: SubscriptionRunner
) -> None:
    refused = change(world, 3, ENTITIES[1])
    fixed = threading.Event()
    receiver.answer = lambda key, _n: (
        422 if key == refused.message_id and not fixed.is_set() else 200
    )
    events = [change(world, n, ENTITIES[n % 2]) for n in range(1, 9)]
    await produce(world, events)

    others = {e.message_id for e in events} - {refused.message_id}
    await until(lambda: set(receiver.accepted()) == others)
    await until(lambda: len(pending(world.bootstrap, world.app_id, world.name)) == 1)
    in_order_per_entity(receiver, events)  # the refused one did not hold its entity's next ones
    [letter] = offsets.read_all(world.bootstrap, topics.dlq(world.name))
    headers = {k: v.decode() for k, v in letter.headers()}
    assert headers[H_REASON] == f"webhook {receiver.url}: HTTP 422 Unprocessable Entity"
    assert headers[H_PERMANENT] == "true" and headers[H_ATTEMPTS] == "1"
    assert headers[H_ORIGIN_TOPIC] == world.stream and headers[H_CONSUMER] == world.name
    assert int(headers[H_ORIGIN_PARTITION]) in range(PARTITIONS)
    assert int(headers[H_ORIGIN_OFFSET]) >= 0
    assert headers[H_FIRST_FAILED] <= headers[H_LAST_FAILED]
    assert headers["tthc-type"] == "sync.change"  # the original headers are kept
    assert letter.key() == ENTITIES[1].encode()
    assert ChangeEvent.model_validate_json(letter.value()).message_id == refused.message_id

    listed = await cli("dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert {"subscription": world.name, "pending": 1, "total": 1} in json.loads(listed.output)
    shown = await cli("dlq", "show", world.name)
    assert shown.exit_code == 0, shown.output
    assert refused.message_id in shown.output and "CitizenDeceased" in shown.output
    assert "0792******67" in shown.output and ENTITIES[1] not in shown.output
    assert "HTTP 422" in shown.output

    # Replayed while the sink still refuses it: it stays pending, reported.
    failed = await cli("dlq", "replay", world.name)
    assert failed.exit_code == 1, failed.output
    assert "0 delivered, 1 failed" in failed.output and "HTTP 422" in failed.output
    [still] = pending(world.bootstrap, world.app_id, world.name)
    assert still.replays == 1 and still.event().message_id == refused.message_id

    fixed.set()
    replayed = await cli("dlq", "replay", world.name)
    assert replayed.exit_code == 0, replayed.output
    assert "1 delivered, 0 failed" in replayed.output
    assert receiver.accepted().count(refused.message_id) == 1
    assert pending(world.bootstrap, world.app_id, world.name) == []
    again = await cli("dlq", "replay", world.name)
    assert "no dead letter pending" in again.output
    assert receiver.accepted().count(refused.message_id) == 1


async def test_pause_stops_delivery_resume_continues_and_reset_delivers_again_from_a_time(
    world: World, receiver: Receiver, runner: SubscriptionRunner
) -> None:
    consumer = runner.consumers[world.name]
    first = [change(world, n, ENTITIES[n % 4]) for n in range(1, 7)]
    await produce(world, first)
    await until(lambda: len(receiver.accepted()) == len(first))

    paused = await cli("sync", "pause", world.name)
    assert paused.exit_code == 0 and f"{world.name}: paused" in paused.output
    await until(lambda: consumer.status.state == "paused")
    await asyncio.sleep(0.3)  # let the clock move past the first events' timestamps
    middle = datetime.now(UTC)
    second = [change(world, n, ENTITIES[n % 4]) for n in range(7, 13)]
    await produce(world, second)
    await asyncio.sleep(1.5)
    assert len(receiver.accepted()) == len(first)  # nothing delivered while paused

    connector = {"state": "polling", "cursor": "c-42", "last_event_time": None, "error": None}
    offsets.produce(
        world.bootstrap,
        topics.STATUS,
        f"sync-source.{world.source}",
        json.dumps(connector).encode(),
    )
    status = await cli("sync", "status", "--json")
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    [row] = [s for s in report["subscriptions"] if s["subscription"] == world.name]
    assert row["paused"] and row["lag"] == len(second) and row["state"] == "paused"
    [stream] = [s for s in report["streams"] if s["topic"] == world.stream]
    assert stream["events"] == len(first) + len(second) and stream["last_event_time"]
    assert report["sources"][world.source] == connector
    table = await cli("sync", "status")
    assert table.exit_code == 0 and world.name in table.output and "paused" in table.output

    resumed = await cli("sync", "resume", world.name)
    assert resumed.exit_code == 0, resumed.output
    await until(lambda: len(receiver.accepted()) == len(first) + len(second))
    in_order_per_entity(receiver, first + second)

    reset = await cli("sync", "reset", "--to", middle.isoformat(), world.name)
    assert reset.exit_code == 0, reset.output
    total = len(first) + 2 * len(second)
    await until(lambda: len(receiver.accepted()) == total)
    again = receiver.accepted()[len(first) + len(second) :]
    assert sorted(again) == sorted(e.message_id for e in second)  # from that time, not before
    await until(lambda: consumer.status.state == "running")

    # The reset is done once: a restart does not deliver again.
    await runner.stop()
    restarted = new_runner(world)
    await restarted.start()
    try:
        await asyncio.sleep(1.5)
        assert restarted.consumers[world.name].status.state == "running"
    finally:
        await restarted.stop()
    assert len(receiver.accepted()) == total


async def test_an_unknown_subscription_is_one_line_and_exit_2(world: World) -> None:
    for args in (
        ("dlq", "show", "nope"),
        ("dlq", "replay", "nope"),
        ("sync", "pause", "nope"),
        ("sync", "reset", "--to", "2026-12-01T09:00", "nope"),
    ):
        result = await cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "no subscription 'nope'" in result.output
        assert world.name in result.output
