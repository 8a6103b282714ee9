"""The aggregator's state machine, without Kafka: a dict stands in for the faust table, a
recording outbox for the producer, and a fake clock for `time.time`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bus import aggregator, topics
from bus.aggregator import (
    DONE_RETENTION_S,
    EXPIRY_RESEND_S,
    ORPHAN_TTL_S,
    SCAN_INTERVAL_S,
    LookupAggregator,
)
from bus.outbox import Outbox
from bus.schemas import (
    DatasetError,
    DatasetResult,
    LookupExpiry,
    LookupPlan,
    LookupResponse,
    Provenance,
    ReplyTo,
    SourceResult,
)
from tests.unit.recording_outbox import RecordingOutbox, Sent

REQUEST_ID = "req-1"
IDENTITY = "population.identity"
CARD = "insurance.card"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
T0 = 1_767_261_600.0  # 2026-01-01T10:00:00Z


# -- fakes ----------------------------------------------------------------------------------


class FakeTable(dict[str, Any]):
    """What the aggregator uses of a faust table: get, set, del, items."""


class FakeApp:
    def Table(self, *args: Any, **kwargs: Any) -> FakeTable:  # noqa: N802 (faust's name)
        return FakeTable()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replaces the `time` module the aggregator sees (not the global `time.time`)."""
    fake = Clock(T0)
    monkeypatch.setattr(aggregator, "time", SimpleNamespace(time=fake.time))
    return fake


@pytest.fixture
def outbox() -> RecordingOutbox:
    return RecordingOutbox()


@pytest.fixture
def agg(outbox: RecordingOutbox, clock: Clock) -> LookupAggregator:
    return LookupAggregator(FakeApp(), outbox, partitions=4)  # type: ignore[arg-type]


# -- messages -------------------------------------------------------------------------------


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def plan(
    *datasets: str,
    deadline: float = T0 + 30,
    reply_to: ReplyTo | None = None,
    errors: list[DatasetError] | None = None,
) -> LookupPlan:
    return LookupPlan(
        correlation_id=REQUEST_ID,
        request_id=REQUEST_ID,
        producer="test-router",
        datasets=list(datasets or (IDENTITY,)),
        deadline=at(deadline),
        reply_to=reply_to,
        errors=errors or [],
        traceparent=TRACEPARENT,
    )


def found(dataset: str = IDENTITY, data: dict[str, Any] | None = None) -> SourceResult:
    return SourceResult(
        correlation_id=REQUEST_ID,
        request_id=REQUEST_ID,
        producer="test-connector",
        dataset=dataset,
        outcome="found",
        result=DatasetResult(
            dataset=dataset,
            data=data if data is not None else {"full_name": "Nguyễn Văn A"},
            provenance=Provenance(
                source=dataset.split(".", 1)[0], fetched_at=at(T0), latency_ms=12.5
            ),
        ),
    )


def error(dataset: str, code: str, *, retryable: bool = False) -> DatasetError:
    return DatasetError(
        dataset=dataset,
        source=dataset.split(".", 1)[0],
        code=code,
        message=f"{code} for {dataset}",
        retryable=retryable,
    )


def failed(dataset: str, code: str = "not_found") -> SourceResult:
    return SourceResult(
        correlation_id=REQUEST_ID,
        request_id=REQUEST_ID,
        producer="test-connector",
        dataset=dataset,
        outcome="not_found" if code == "not_found" else "error",
        error=error(dataset, code, retryable=code != "not_found"),
    )


def expiry(request_id: str = REQUEST_ID) -> LookupExpiry:
    return LookupExpiry(request_id=request_id, producer="test-outbox")


def only_reply(outbox: RecordingOutbox) -> tuple[ReplyTo | None, LookupResponse]:
    assert len(outbox.replies) == 1, outbox.replies
    return outbox.replies[0]


def is_done_marker(entry: Any) -> bool:
    return entry is not None and entry["done"] is True and entry["plan"] is None


# -- ordering and duplicates ----------------------------------------------------------------


async def test_plan_then_result_replies_once_complete_and_leaves_done_marker(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_plan(plan(IDENTITY))
    assert outbox.replies == []
    await agg.on_result(found(IDENTITY, {"full_name": "Nguyễn Văn A", "sex": "1"}))

    _, reply = only_reply(outbox)
    assert reply.status == "complete"
    assert (reply.request_id, reply.correlation_id) == (REQUEST_ID, REQUEST_ID)
    assert reply.producer == "test-outbox"
    assert reply.traceparent == TRACEPARENT
    [result] = reply.results
    assert result.dataset == IDENTITY
    assert result.data == {"full_name": "Nguyễn Văn A", "sex": "1"}
    assert result.provenance.source == "population"
    assert result.provenance.latency_ms == 12.5
    assert reply.errors == []
    assert is_done_marker(agg.table[REQUEST_ID])
    assert agg.table[REQUEST_ID]["results"] == {}  # the data is not kept after the reply


async def test_result_before_plan_waits_for_the_plan(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_result(found(IDENTITY))
    assert outbox.replies == []
    assert agg.table[REQUEST_ID]["plan"] is None
    assert IDENTITY in agg.table[REQUEST_ID]["results"]

    await agg.on_plan(plan(IDENTITY))
    _, reply = only_reply(outbox)
    assert reply.status == "complete"
    assert [r.dataset for r in reply.results] == [IDENTITY]
    assert is_done_marker(agg.table[REQUEST_ID])


async def test_repeated_result_and_plan_after_the_reply_send_nothing(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_plan(plan(IDENTITY))
    await agg.on_result(found(IDENTITY))
    assert len(outbox.replies) == 1

    await agg.on_result(found(IDENTITY))
    await agg.on_plan(plan(IDENTITY))
    await agg.on_result(failed(IDENTITY, "source_unavailable"))
    assert len(outbox.replies) == 1
    assert is_done_marker(agg.table[REQUEST_ID])


async def test_repeated_result_before_the_reply_keeps_the_first(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_plan(plan(IDENTITY, CARD))
    await agg.on_result(found(IDENTITY, {"v": 1}))
    await agg.on_result(failed(IDENTITY, "source_unavailable"))  # a later, different outcome
    await agg.on_result(found(CARD))

    _, reply = only_reply(outbox)
    assert reply.status == "complete"
    assert [r.data for r in reply.results if r.dataset == IDENTITY] == [{"v": 1}]


# -- status ---------------------------------------------------------------------------------


async def test_one_found_one_not_found_is_partial(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_plan(plan(IDENTITY, CARD))
    await agg.on_result(found(IDENTITY))
    assert outbox.replies == []  # still waiting for the card
    await agg.on_result(failed(CARD, "not_found"))

    _, reply = only_reply(outbox)
    assert reply.status == "partial"
    assert [r.dataset for r in reply.results] == [IDENTITY]
    assert [(e.dataset, e.code) for e in reply.errors] == [(CARD, "not_found")]


async def test_both_not_found_is_not_found(agg: LookupAggregator, outbox: RecordingOutbox) -> None:
    await agg.on_plan(plan(IDENTITY, CARD))
    await agg.on_result(failed(CARD, "not_found"))
    await agg.on_result(failed(IDENTITY, "not_found"))

    _, reply = only_reply(outbox)
    assert reply.status == "not_found"
    assert reply.results == []
    # errors are in plan order, not arrival order
    assert [e.dataset for e in reply.errors] == [IDENTITY, CARD]


async def test_an_error_without_results_is_failed(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_plan(plan(IDENTITY, CARD))
    await agg.on_result(failed(IDENTITY, "not_found"))
    await agg.on_result(failed(CARD, "source_unavailable"))

    _, reply = only_reply(outbox)
    assert reply.status == "failed"
    assert {e.code for e in reply.errors} == {"not_found", "source_unavailable"}


async def test_plan_refusals_count_as_errors(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    refused = error("land.parcel", "unknown_dataset")
    await agg.on_plan(plan(IDENTITY, "land.parcel", errors=[refused]))
    assert outbox.replies == []  # the refused dataset needs no answer, the granted one does
    await agg.on_result(found(IDENTITY))

    _, reply = only_reply(outbox)
    assert reply.status == "partial"
    assert [r.dataset for r in reply.results] == [IDENTITY]
    assert reply.errors == [refused]


async def test_plan_with_every_dataset_refused_replies_at_once(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    refused = error(IDENTITY, "not_granted")
    await agg.on_plan(plan(IDENTITY, errors=[refused]))

    _, reply = only_reply(outbox)
    assert reply.status == "denied"
    assert reply.errors == [refused]


# -- deadlines and clean-up -----------------------------------------------------------------


async def test_expiry_after_deadline_answers_missing_dataset_as_deadline_exceeded(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_plan(plan(IDENTITY, CARD, deadline=T0 + 5))
    await agg.on_result(found(IDENTITY))
    clock.now = T0 + 6
    await agg.on_expiry(expiry())

    _, reply = only_reply(outbox)
    assert reply.status == "partial"
    [err] = reply.errors
    assert (err.dataset, err.source, err.code, err.retryable) == (
        CARD,
        "insurance",
        "deadline_exceeded",
        True,
    )
    assert is_done_marker(agg.table[REQUEST_ID])

    await agg.on_result(found(CARD))  # the late answer changes nothing
    assert len(outbox.replies) == 1


async def test_expiry_at_exactly_the_deadline_answers(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_plan(plan(IDENTITY, deadline=T0 + 5))
    clock.now = T0 + 5
    await agg.on_expiry(expiry())

    _, reply = only_reply(outbox)
    assert reply.status == "failed"
    assert [e.code for e in reply.errors] == ["deadline_exceeded"]


async def test_expiry_before_deadline_does_nothing(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_plan(plan(IDENTITY, CARD, deadline=T0 + 30))
    await agg.on_result(found(IDENTITY))
    before = agg.table[REQUEST_ID]
    clock.now = T0 + 10
    await agg.on_expiry(expiry())

    assert outbox.replies == []
    assert agg.table[REQUEST_ID] == before
    assert CARD not in agg.table[REQUEST_ID]["errors"]


async def test_expiry_of_an_unknown_request_does_nothing(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_expiry(expiry("nobody"))
    assert outbox.replies == []
    assert "nobody" not in agg.table


async def test_done_marker_older_than_retention_is_deleted_on_expiry(
    agg: LookupAggregator, clock: Clock
) -> None:
    await agg.on_plan(plan(IDENTITY))
    await agg.on_result(found(IDENTITY))
    clock.now = T0 + DONE_RETENTION_S
    await agg.on_expiry(expiry())
    assert REQUEST_ID not in agg.table


async def test_done_marker_younger_than_retention_is_kept_on_expiry(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_plan(plan(IDENTITY))
    await agg.on_result(found(IDENTITY))
    clock.now = T0 + DONE_RETENTION_S - 1
    await agg.on_expiry(expiry())

    assert is_done_marker(agg.table[REQUEST_ID])
    await agg.on_result(found(IDENTITY))  # still deduplicated
    assert len(outbox.replies) == 1


async def test_orphan_results_older_than_ttl_are_deleted_on_expiry(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_result(found(IDENTITY))
    clock.now = T0 + ORPHAN_TTL_S
    await agg.on_expiry(expiry())

    assert REQUEST_ID not in agg.table
    assert outbox.replies == []


async def test_orphan_results_younger_than_ttl_are_kept_on_expiry(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_result(found(IDENTITY))
    clock.now = T0 + ORPHAN_TTL_S - 1
    await agg.on_expiry(expiry())

    assert IDENTITY in agg.table[REQUEST_ID]["results"]
    await agg.on_plan(plan(IDENTITY, deadline=T0 + 600))
    assert len(outbox.replies) == 1


# -- where the reply goes -------------------------------------------------------------------


async def test_reply_goes_to_the_plans_reply_to(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_plan(plan(IDENTITY, reply_to=ReplyTo(partition=3)))
    await agg.on_result(found(IDENTITY))

    reply_to, _ = only_reply(outbox)
    assert reply_to == ReplyTo(topic=topics.LOOKUP_REPLY, partition=3)


async def test_reply_without_reply_to_still_replies(
    agg: LookupAggregator, outbox: RecordingOutbox
) -> None:
    await agg.on_plan(plan(IDENTITY, reply_to=None))
    await agg.on_result(found(IDENTITY))

    reply_to, reply = only_reply(outbox)
    assert reply_to is None
    assert reply.status == "complete"


class FakeProducer:
    """What the Outbox uses of `bus.kafka.AsyncProducer`: `send` returns the delivery future."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []

    def send(self, topic: str, value: bytes, **kwargs: Any) -> Any:
        self.log.append({"topic": topic, "value": value, **kwargs})
        delivery = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery


@pytest.mark.parametrize(
    ("reply_to", "partition"), [(None, None), (ReplyTo(partition=5), 5)], ids=["none", "p5"]
)
async def test_real_outbox_reply_destination(
    clock: Clock, reply_to: ReplyTo | None, partition: int | None
) -> None:
    """Through the real Outbox: without reply_to the reply is keyed by request id on the reply
    topic (Kafka picks the partition); with it, it goes to the asked partition."""
    producer = FakeProducer()
    outbox = Outbox.over(producer, "test-outbox")
    agg = LookupAggregator(FakeApp(), outbox, partitions=4)  # type: ignore[arg-type]
    await agg.on_plan(plan(IDENTITY, reply_to=reply_to))
    await agg.on_result(found(IDENTITY))

    [sent] = producer.log
    assert sent["topic"] == topics.LOOKUP_REPLY
    assert sent["key"] == REQUEST_ID.encode()
    assert sent["partition"] == partition
    assert LookupResponse.model_validate_json(sent["value"]).status == "complete"


async def test_failed_reply_send_still_marks_done(
    agg: LookupAggregator, outbox: RecordingOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    outbox.fail_reply = True
    await agg.on_plan(plan(IDENTITY))
    await agg.on_result(found(IDENTITY))  # must not raise

    assert is_done_marker(agg.table[REQUEST_ID])
    assert "not sent" in caplog.text

    outbox.fail_reply = False
    await agg.on_result(found(IDENTITY))
    await agg.on_plan(plan(IDENTITY))
    assert outbox.replies == []  # no retry


# -- the timer ------------------------------------------------------------------------------


def expiries(outbox: RecordingOutbox) -> list[Sent]:
    return [s for s in outbox.sent if isinstance(s.message, LookupExpiry)]


async def test_tick_sends_expiry_for_a_due_entry_once(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_plan(plan(IDENTITY, deadline=T0 + 5))
    agg._last_scan = T0  # no scan: the heap alone
    clock.now = T0 + 4
    await agg._tick()
    assert expiries(outbox) == []

    clock.now = T0 + 5
    await agg._tick()
    [sent] = expiries(outbox)
    assert sent.topic == topics.SOURCE_RESULT
    assert sent.key == REQUEST_ID
    assert sent.message.request_id == REQUEST_ID
    assert sent.message.producer == "test-outbox"

    clock.now = T0 + 6
    await agg._tick()
    assert len(expiries(outbox)) == 1


async def test_tick_does_not_resend_within_resend_window_even_when_scanning(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    await agg.on_plan(plan(IDENTITY, deadline=T0 + 5))
    clock.now = T0 + SCAN_INTERVAL_S
    await agg._tick()  # the heap and the scan both find it: one expiry
    assert len(expiries(outbox)) == 1

    agg._last_scan = 0.0  # force another scan within the resend window
    clock.now = T0 + SCAN_INTERVAL_S + EXPIRY_RESEND_S - 1
    await agg._tick()
    assert len(expiries(outbox)) == 1

    agg._last_scan = 0.0  # the expiry was lost: resent once the window has passed
    clock.now = T0 + SCAN_INTERVAL_S + EXPIRY_RESEND_S
    await agg._tick()
    assert len(expiries(outbox)) == 2


async def test_tick_scan_finds_entries_recovered_from_the_changelog(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    """Entries this process never saw arrive (not in its heap) are found by the scan."""
    agg.table["late"] = {
        "done": False,
        "t": T0,
        "plan": plan(IDENTITY, deadline=T0 + 1).model_dump(mode="json"),
        "results": {},
        "errors": {},
    }
    agg.table["waiting"] = {
        "done": False,
        "t": T0,
        "plan": plan(IDENTITY, deadline=T0 + 3600).model_dump(mode="json"),
        "results": {},
        "errors": {},
    }
    agg.table["old-done"] = {"done": True, "t": T0 - DONE_RETENTION_S, "plan": None}
    agg.table["orphan"] = {"done": False, "t": T0 - ORPHAN_TTL_S, "plan": None}
    clock.now = T0 + 2
    await agg._tick()
    assert sorted(s.key for s in expiries(outbox)) == ["late", "old-done", "orphan"]


async def test_expiry_reopens_the_resend_window(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    """Processing an expiry forgets that it was sent, so an entry still pending can get
    another one later."""
    await agg.on_plan(plan(IDENTITY, deadline=T0 + 5))
    agg._last_scan = T0
    clock.now = T0 + 5
    await agg._tick()
    assert REQUEST_ID in agg._expiry_sent
    await agg.on_expiry(expiry())
    assert REQUEST_ID not in agg._expiry_sent


async def test_an_answered_lookup_sends_no_expiry_at_its_deadline(
    agg: LookupAggregator, outbox: RecordingOutbox, clock: Clock
) -> None:
    """The deadline stays in the heap after the reply; the tick must not wake a done entry."""
    await agg.on_plan(plan(IDENTITY, deadline=T0 + 5))
    await agg.on_result(found(IDENTITY))
    assert len(outbox.replies) == 1
    agg._last_scan = T0
    clock.now = T0 + 6
    await agg._tick()
    assert expiries(outbox) == []
