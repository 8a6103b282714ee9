"""The router's decisions, without Kafka: a real Policy and a recording outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bus import topics
from bus.aggregator import DONE_RETENTION_S
from bus.policy import Policy
from bus.router import LookupRouter, salvage_reply_address
from bus.schemas import (
    LookupPlan,
    LookupRequest,
    ReplyTo,
    SourceQuery,
)
from tests.unit.recording_outbox import RecordingOutbox

DATASET_SOURCES = {"population.identity": "population", "insurance.card": "insurance"}
IDENTITY = "population.identity"
CARD = "insurance.card"
MAX_DEADLINE_S = 30.0
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACESTATE = "vendor=abc"


@pytest.fixture
def outbox() -> RecordingOutbox:
    return RecordingOutbox()


def make_router(outbox: RecordingOutbox, *, allow_all: bool = True) -> LookupRouter:
    policy = Policy(DATASET_SOURCES, allow_all_agencies=allow_all)
    # The constructor only keeps the app (for register); routing never touches it.
    return LookupRouter(None, policy, outbox, max_deadline_s=MAX_DEADLINE_S)  # type: ignore[arg-type]


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


# -- refusals -------------------------------------------------------------------------------


def only_plan(outbox: RecordingOutbox) -> LookupPlan:
    """The router answered through the aggregator: one plan, no query, no direct reply."""
    assert outbox.replies == []
    [sent] = outbox.sent
    assert sent.topic == topics.SOURCE_RESULT
    assert isinstance(sent.message, LookupPlan)
    assert sent.key == sent.message.request_id
    return sent.message


async def test_passed_deadline_is_answered_through_a_plan_of_errors(
    outbox: RecordingOutbox,
) -> None:
    req = request(
        IDENTITY,
        CARD,
        deadline=datetime.now(UTC) - timedelta(seconds=5),
        reply_to=ReplyTo(partition=1),
    )
    await make_router(outbox).route(req)

    plan = only_plan(outbox)
    assert plan.reply_to == ReplyTo(partition=1)
    assert plan.request_id == req.message_id
    assert plan.traceparent == TRACEPARENT
    assert plan.datasets == [IDENTITY, CARD]
    assert [(e.dataset, e.code, e.retryable) for e in plan.errors] == [
        (IDENTITY, "deadline_exceeded", True),
        (CARD, "deadline_exceeded", True),
    ]


async def test_stale_request_is_dropped_before_the_aggregator_forgets_it(
    outbox: RecordingOutbox,
) -> None:
    stale_after = DONE_RETENTION_S - MAX_DEADLINE_S
    req = request(IDENTITY, deadline=datetime.now(UTC) - timedelta(seconds=stale_after + 1))
    await make_router(outbox).route(req)
    assert outbox.sent == []
    assert outbox.replies == []
    fresh = request(IDENTITY, deadline=datetime.now(UTC) - timedelta(seconds=stale_after - 5))
    await make_router(outbox).route(fresh)
    assert only_plan(outbox).errors[0].code == "deadline_exceeded"


async def test_policy_denial_is_answered_through_a_plan_of_refusals(
    outbox: RecordingOutbox,
) -> None:
    req = request(IDENTITY, CARD, reply_to=ReplyTo(partition=4))
    await make_router(outbox, allow_all=False).route(req)

    plan = only_plan(outbox)
    assert plan.reply_to == ReplyTo(partition=4)
    assert (plan.traceparent, plan.tracestate) == (TRACEPARENT, TRACESTATE)
    assert [(e.dataset, e.code, e.retryable) for e in plan.errors] == [
        (IDENTITY, "not_granted", False),
        (CARD, "not_granted", False),
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
