"""The router's decisions, without Kafka: a real Policy and a recording outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bus import topics
from bus.catalog import Catalog
from bus.policy import Policy
from bus.router import LookupRouter, salvage_reply_address
from bus.runtime import Inbound
from bus.schemas import (
    DatasetError,
    DatasetResult,
    LookupPlan,
    LookupRequest,
    LookupResponse,
    Provenance,
    ReplyTo,
    SourceQuery,
    SourceResult,
)
from bus.schemas.citizen import Citizen
from tests.unit.recording_outbox import RecordingOutbox

CATALOG = Catalog.of(
    {
        "population": [("identity", "personal_id", Citizen)],
        "insurance": [("card", "personal_id", Citizen)],
    }
)
IDENTITY = "population.identity"
CARD = "insurance.card"
MAX_DEADLINE_S = 30.0
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACESTATE = "vendor=abc"


@pytest.fixture
def outbox() -> RecordingOutbox:
    return RecordingOutbox()


def make_router(outbox: RecordingOutbox, *, allow_all: bool = True) -> LookupRouter:
    """A router with no source in its process: every lookup is fanned out."""
    policy = Policy(CATALOG, allow_all_agencies=allow_all)
    return LookupRouter(policy, outbox, max_deadline_s=MAX_DEADLINE_S)  # type: ignore[arg-type]


def request(
    *datasets: str,
    deadline: datetime | None = None,
    reply_to: ReplyTo | None = None,
) -> LookupRequest:
    return LookupRequest(
        requester={"agency_code": "UBND-HN", "system": "dvc-hanoi", "officer": "Phạm D"},
        procedure_code="1.001234",
        dossier_id="HS-1",
        purpose="Xác minh nhân thân",
        legal_basis="Nghị định 194/2025/NĐ-CP",
        subject={"personal_id": "001090000001"},
        datasets=list(datasets or (IDENTITY,)),
        deadline=deadline or datetime.now(UTC) + timedelta(seconds=10),
        reply_to=reply_to,
        traceparent=TRACEPARENT,
        tracestate=TRACESTATE,
    )


# -- fan-out --------------------------------------------------------------------------------


async def test_allowed_request_sends_plan_then_one_query_per_dataset(
    outbox: RecordingOutbox,
) -> None:
    req = request(IDENTITY, CARD, reply_to=ReplyTo(partition=2))
    await make_router(outbox).route(req)

    assert outbox.replies == []
    assert [s.topic for s in outbox.sent] == [
        topics.SOURCE_RESULT,
        "tthc.source.population.request",
        "tthc.source.insurance.request",
    ]
    assert {s.key for s in outbox.sent} == {req.message_id}
    assert {s.partition for s in outbox.sent} == {None}  # keyed: the request id picks it

    plan = outbox.sent[0].message
    assert isinstance(plan, LookupPlan)
    assert (plan.request_id, plan.correlation_id) == (req.message_id, req.message_id)
    assert plan.producer == "test-outbox"
    assert plan.datasets == [IDENTITY, CARD]
    assert plan.deadline == req.deadline
    assert plan.reply_to == ReplyTo(partition=2)
    assert plan.errors == []
    assert (plan.traceparent, plan.tracestate) == (TRACEPARENT, TRACESTATE)

    queries = [s.message for s in outbox.sent[1:]]
    assert all(isinstance(q, SourceQuery) for q in queries)
    assert [q.dataset for q in queries] == [IDENTITY, CARD]
    for q in queries:
        assert (q.request_id, q.correlation_id) == (req.message_id, req.message_id)
        assert q.deadline == req.deadline
        assert q.subject == req.subject
        assert q.requester_agency == "UBND-HN"
        assert q.fields is None  # allow_all grants whole datasets
        assert (q.traceparent, q.tracestate) == (TRACEPARENT, TRACESTATE)


async def test_unknown_dataset_is_planned_as_refused_and_not_queried(
    outbox: RecordingOutbox,
) -> None:
    req = request(IDENTITY, "land.parcel")
    await make_router(outbox).route(req)

    plan, *queries = [s.message for s in outbox.sent]
    assert isinstance(plan, LookupPlan)
    assert plan.datasets == [IDENTITY, "land.parcel"]
    assert [(e.dataset, e.code) for e in plan.errors] == [("land.parcel", "unknown_dataset")]
    assert [q.dataset for q in queries] == [IDENTITY]


async def test_deadline_beyond_max_is_cut_to_now_plus_max(outbox: RecordingOutbox) -> None:
    req = request(IDENTITY, deadline=datetime.now(UTC) + timedelta(hours=1))
    before = datetime.now(UTC)
    await make_router(outbox).route(req)
    after = datetime.now(UTC)

    max_deadline = timedelta(seconds=MAX_DEADLINE_S)
    deadlines = {s.message.deadline for s in outbox.sent}
    assert len(outbox.sent) == 2
    assert len(deadlines) == 1  # plan and query agree
    [deadline] = deadlines
    assert before + max_deadline <= deadline <= after + max_deadline


async def test_deadline_within_max_is_kept(outbox: RecordingOutbox) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=MAX_DEADLINE_S / 2)
    await make_router(outbox).route(request(IDENTITY, deadline=deadline))
    assert {s.message.deadline for s in outbox.sent} == {deadline}


# -- the direct path: a single dataset whose source runs in this worker ----------------------


class FakeSource:
    """A lookup connector in the same process: records the queries, answers as told."""

    def __init__(self, outcome: str = "found") -> None:
        self.outcome = outcome
        self.queries: list[SourceQuery] = []

    async def answer(self, query: SourceQuery) -> SourceResult:
        self.queries.append(query)
        if self.outcome == "found":
            provenance = Provenance(
                source="population", fetched_at=datetime.now(UTC), latency_ms=1.0
            )
            result = DatasetResult(dataset=query.dataset, data={"a": 1}, provenance=provenance)
            return SourceResult(
                request_id=query.request_id, dataset=query.dataset, outcome="found", result=result
            )
        error = DatasetError(
            dataset=query.dataset,
            source="population",
            code="not_found",
            message="01",
            retryable=False,
        )
        return SourceResult(
            request_id=query.request_id, dataset=query.dataset, outcome="not_found", error=error
        )


def local_router(outbox: RecordingOutbox, source: FakeSource, **kwargs: Any) -> LookupRouter:
    policy = Policy(CATALOG, allow_all_agencies=kwargs.pop("allow_all", True))
    return LookupRouter(
        policy, outbox, max_deadline_s=MAX_DEADLINE_S, local={"population": source}, **kwargs
    )  # type: ignore[arg-type]


def only_reply(outbox: RecordingOutbox) -> tuple[ReplyTo | None, LookupResponse]:
    """The router answered itself: one reply, nothing to the aggregator or the sources."""
    assert outbox.sent == []
    [(reply_to, reply)] = outbox.replies
    return reply_to, reply


async def test_single_local_dataset_is_answered_directly_without_the_aggregator(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    req = request(IDENTITY, reply_to=ReplyTo(partition=3))
    await local_router(outbox, source).route(req)

    [query] = source.queries
    assert (query.request_id, query.dataset, query.subject) == (
        req.message_id,
        IDENTITY,
        req.subject,
    )
    assert query.deadline == req.deadline
    reply_to, reply = only_reply(outbox)
    assert reply_to == ReplyTo(partition=3)
    assert (reply.request_id, reply.correlation_id) == (req.message_id, req.message_id)
    assert reply.status == "complete"
    assert [r.data for r in reply.results] == [{"a": 1}]
    assert (reply.traceparent, reply.tracestate) == (TRACEPARENT, TRACESTATE)


async def test_source_not_found_is_a_direct_not_found_reply(outbox: RecordingOutbox) -> None:
    await local_router(outbox, FakeSource("not_found")).route(request(IDENTITY))
    _, reply = only_reply(outbox)
    assert reply.status == "not_found"
    assert [(e.dataset, e.code) for e in reply.errors] == [(IDENTITY, "not_found")]


async def test_a_repeated_delivery_is_answered_once(outbox: RecordingOutbox) -> None:
    source = FakeSource()
    router = local_router(outbox, source)
    req = request(IDENTITY)
    for _ in range(3):
        await router.route(req)
    assert len(source.queries) == 1
    assert len(outbox.replies) == 1


async def test_several_datasets_fan_out_even_with_a_local_source(outbox: RecordingOutbox) -> None:
    source = FakeSource()
    await local_router(outbox, source).route(request(IDENTITY, CARD))
    assert source.queries == []
    assert [s.topic for s in outbox.sent] == [
        topics.SOURCE_RESULT,
        "tthc.source.population.request",
        "tthc.source.insurance.request",
    ]


async def test_passed_deadline_is_dropped_the_requester_has_answered_itself(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    req = request(IDENTITY, deadline=datetime.now(UTC) - timedelta(seconds=1))
    await local_router(outbox, source).route(req)
    assert (source.queries, outbox.sent, outbox.replies) == ([], [], [])


async def test_a_request_that_waited_too_long_in_kafka_is_refused_as_overloaded(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    router = local_router(outbox, source, max_queue_s=0.5)
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    await router.route(request(IDENTITY, deadline=soon), queued_s=1.7)

    assert source.queries == []
    _, reply = only_reply(outbox)
    assert reply.status == "failed"
    [error] = reply.errors
    assert (error.code, error.retryable) == ("overloaded", True)
    assert "1700 ms" in error.message
    assert reply.retry_after_ms == 2000
    assert router.refused_overloaded == 1


async def test_a_backlog_whose_deadlines_are_far_is_served(outbox: RecordingOutbox) -> None:
    """After an outage the successor reads requests that waited long but can still be served."""
    source = FakeSource()
    far = datetime.now(UTC) + timedelta(seconds=20)
    await local_router(outbox, source, max_queue_s=0.5).route(
        request(IDENTITY, deadline=far), queued_s=8
    )
    _, reply = only_reply(outbox)
    assert reply.status == "complete"


async def test_policy_denial_is_answered_directly(outbox: RecordingOutbox) -> None:
    source = FakeSource()
    req = request(IDENTITY, CARD, reply_to=ReplyTo(partition=4))
    await local_router(outbox, source, allow_all=False).route(req)

    assert source.queries == []
    reply_to, reply = only_reply(outbox)
    assert reply_to == ReplyTo(partition=4)
    assert reply.status == "denied"
    assert (reply.traceparent, reply.tracestate) == (TRACEPARENT, TRACESTATE)
    assert [(e.dataset, e.code, e.retryable) for e in reply.errors] == [
        (IDENTITY, "not_granted", False),
        (CARD, "not_granted", False),
    ]


async def test_invalid_request_with_a_reply_address_gets_a_failed_reply(
    outbox: RecordingOutbox,
) -> None:
    data = json.loads(request(IDENTITY, reply_to=ReplyTo(partition=6)).model_dump_json())
    del data["purpose"]
    record = Inbound("tthc.lookup.request", 0, 7, b"k", json.dumps(data).encode(), (), 0)
    router = local_router(outbox, FakeSource())
    await router.refuse_invalid(record, "invalid lookup.request: purpose: Field required")
    await router.refuse_invalid(record, "invalid lookup.request: purpose: Field required")

    reply_to, reply = only_reply(outbox)
    assert reply_to == ReplyTo(partition=6)
    assert reply.request_id == data["message_id"]
    assert reply.status == "failed"
    assert [(e.code, e.message) for e in reply.errors] == [
        ("invalid_request", "invalid lookup.request: purpose: Field required")
    ]


# -- salvage_reply_address ------------------------------------------------------------------


def test_salvage_returns_the_id_and_reply_to_of_an_invalid_request() -> None:
    body = json.dumps(
        {"message_id": "abc123", "reply_to": {"partition": 3}, "datasets": "not a list"}
    ).encode()
    assert salvage_reply_address(body) == ("abc123", ReplyTo(partition=3))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            json.dumps(
                {"message_id": "a", "reply_to": {"topic": "tthc.audit", "partition": 0}}
            ).encode(),
            id="other-topic",
        ),
        pytest.param(
            json.dumps({"message_id": "a", "reply_to": {"partition": 8}}).encode(),
            id="partition-too-high",
        ),
        pytest.param(
            json.dumps({"message_id": "a", "reply_to": {"partition": -1}}).encode(),
            id="partition-negative",
        ),
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(b"[1, 2]", id="json-list"),
        pytest.param(b'"text"', id="json-string"),
        pytest.param(json.dumps({"reply_to": {"partition": 0}}).encode(), id="missing-id"),
        pytest.param(json.dumps({"message_id": "a"}).encode(), id="missing-reply-to"),
        pytest.param(
            json.dumps({"message_id": "a", "reply_to": None}).encode(), id="null-reply-to"
        ),
        pytest.param(
            json.dumps({"message_id": 42, "reply_to": {"partition": 0}}).encode(),
            id="numeric-id",
        ),
        pytest.param(
            json.dumps({"message_id": "", "reply_to": {"partition": 0}}).encode(), id="empty-id"
        ),
        pytest.param(
            json.dumps({"message_id": "x" * 65, "reply_to": {"partition": 0}}).encode(),
            id="id-too-long",
        ),
    ],
)
def test_salvage_returns_none_without_a_valid_address(body: bytes | None) -> None:
    assert salvage_reply_address(body) is None


def test_recent_ids_forget_expired_ids_and_stay_bounded() -> None:
    from bus.router import RECENT_GRACE_S, RecentIds

    recent = RecentIds(limit=1000)
    now = 1_000_000.0
    for n in range(RecentIds.PRUNE_EVERY):
        assert recent.first_time(f"old-{n}", until=now, now=now)
    assert not recent.first_time("old-1", until=now, now=now)  # a repeat, while remembered
    later = now + RECENT_GRACE_S + 1
    for n in range(RecentIds.PRUNE_EVERY):
        recent.first_time(f"new-{n}", until=later, now=later)
    assert len(recent) == RecentIds.PRUNE_EVERY  # the expired ones are gone
    assert recent.first_time("old-1", until=later, now=later)
    for n in range(3000):
        recent.first_time(f"many-{n}", until=later + 100, now=later)
    assert len(recent) <= 1000
