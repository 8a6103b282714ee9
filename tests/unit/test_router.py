"""The router's decisions, without Kafka: a real Policy and a recording outbox."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bus import topics
from bus.audit.pseudonym import Pseudonymizer
from bus.audit.recorder import AuditRecorder
from bus.auth import Keyring, RequestSigner, generate_key
from bus.catalog import Catalog
from bus.policy import Policy
from bus.procedures import Procedure, ProcedureCatalogue
from bus.requesters import RequesterCheck
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
from bus.settings import Grant
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
AGENCY = "H26.22"
PROCEDURE = "1.004222"
PURPOSE = "Xác minh nhân thân"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACESTATE = "vendor=abc"


@pytest.fixture
def outbox() -> RecordingOutbox:
    return RecordingOutbox()


GRANT = Grant(agency=AGENCY, procedures=[PROCEDURE], datasets={IDENTITY: "*", CARD: "*"})
PROCEDURES = ProcedureCatalogue(
    [
        Procedure(
            code=PROCEDURE,
            name="Xác minh nhân thân",
            legal_basis="Nghị định 194/2025/NĐ-CP",
            datasets=[IDENTITY],
            purposes=[PURPOSE],
        )
    ]
)
# Keys at a low scrypt cost: the suite derives them in microseconds.
TEST_COST = 2**4
GATEWAY = generate_key("BUS", ["gateway"], "test gateway", n=TEST_COST)
SIGNER = RequestSigner(GATEWAY.key, n=TEST_COST)
KEYRING = Keyring([GATEWAY.record])


def audit_recorder(audit_outbox: RecordingOutbox | None = None) -> AuditRecorder:
    return AuditRecorder(
        audit_outbox or RecordingOutbox(),
        Pseudonymizer(b"test-key"),  # type: ignore[arg-type]
    )


def router_parts(allow_all: bool, audit: AuditRecorder | None) -> dict[str, Any]:
    grants = [GRANT] if allow_all else []
    return {
        "requesters": RequesterCheck(KEYRING, [AGENCY]),
        "audit": audit or audit_recorder(),
        "policy": Policy(CATALOG, PROCEDURES, grants),
    }


async def route(router: LookupRouter, req: LookupRequest, **kwargs: Any) -> None:
    """As the router gets it from Kafka: signed by the gateway."""
    body = req.model_dump_json().encode()
    headers = tuple(SIGNER.headers(req.requester.agency_code, body))
    await router.route(req, headers=headers, value=body, **kwargs)


def make_router(
    outbox: RecordingOutbox, *, allow_all: bool = True, audit: AuditRecorder | None = None
) -> LookupRouter:
    """A router with no source in its process: every lookup is fanned out."""
    parts = router_parts(allow_all, audit)
    return LookupRouter(
        parts.pop("policy"),
        outbox,  # type: ignore[arg-type]
        max_deadline_s=MAX_DEADLINE_S,
        **parts,
    )


def request(
    *datasets: str,
    deadline: datetime | None = None,
    reply_to: ReplyTo | None = None,
    sent: datetime | None = None,
) -> LookupRequest:
    return LookupRequest(
        **({"time": sent} if sent is not None else {}),
        requester={"agency_code": AGENCY, "system": "dvc-hanoi", "officer": "Phạm D"},
        procedure_code=PROCEDURE,
        dossier_id="HS-1",
        purpose=PURPOSE,
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
    await route(make_router(outbox), req)

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
        assert q.requester_agency == AGENCY
        assert q.fields is None  # allow_all grants whole datasets
        assert (q.traceparent, q.tracestate) == (TRACEPARENT, TRACESTATE)


async def test_unknown_dataset_is_planned_as_refused_and_not_queried(
    outbox: RecordingOutbox,
) -> None:
    req = request(IDENTITY, "land.parcel")
    await route(make_router(outbox), req)

    plan, *queries = [s.message for s in outbox.sent]
    assert isinstance(plan, LookupPlan)
    assert plan.datasets == [IDENTITY, "land.parcel"]
    assert [(e.dataset, e.code) for e in plan.errors] == [("land.parcel", "unknown_dataset")]
    assert [q.dataset for q in queries] == [IDENTITY]


async def test_deadline_beyond_max_is_cut_to_now_plus_max(outbox: RecordingOutbox) -> None:
    req = request(IDENTITY, deadline=datetime.now(UTC) + timedelta(hours=1))
    before = datetime.now(UTC)
    await route(make_router(outbox), req)
    after = datetime.now(UTC)

    max_deadline = timedelta(seconds=MAX_DEADLINE_S)
    deadlines = {s.message.deadline for s in outbox.sent}
    assert len(outbox.sent) == 2
    assert len(deadlines) == 1  # plan and query agree
    [deadline] = deadlines
    assert before + max_deadline <= deadline <= after + max_deadline


async def test_deadline_within_max_is_kept(outbox: RecordingOutbox) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=MAX_DEADLINE_S / 2)
    await route(make_router(outbox), request(IDENTITY, deadline=deadline))
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


def local_router(
    outbox: RecordingOutbox,
    source: FakeSource,
    others: dict[str, Any] | None = None,
    **kwargs: Any,
) -> LookupRouter:
    parts = router_parts(kwargs.pop("allow_all", True), kwargs.pop("audit", None))
    return LookupRouter(
        parts.pop("policy"),
        outbox,  # type: ignore[arg-type]
        max_deadline_s=MAX_DEADLINE_S,
        local={"population": source, **(others or {})},
        **parts,
        **kwargs,
    )


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
    await route(local_router(outbox, source), req)

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
    await route(local_router(outbox, FakeSource("not_found")), request(IDENTITY))
    _, reply = only_reply(outbox)
    assert reply.status == "not_found"
    assert [(e.dataset, e.code) for e in reply.errors] == [(IDENTITY, "not_found")]


async def test_a_repeated_delivery_is_answered_once(outbox: RecordingOutbox) -> None:
    source = FakeSource()
    router = local_router(outbox, source)
    req = request(IDENTITY)
    for _ in range(3):
        await route(router, req)
    assert len(source.queries) == 1
    assert len(outbox.replies) == 1


class GatedSource(FakeSource):
    """Answers only once every gated source has been asked: proves the calls overlap."""

    def __init__(self, started: list[str], everyone: int, outcome: str = "found") -> None:
        super().__init__(outcome)
        self.started = started
        self.everyone = everyone

    async def answer(self, query: SourceQuery) -> SourceResult:
        self.started.append(query.dataset)
        while len(self.started) < self.everyone:
            await asyncio.sleep(0.001)
        return await super().answer(query)


async def test_several_datasets_all_served_here_are_asked_at_once_and_answered_in_one_reply(
    outbox: RecordingOutbox,
) -> None:
    started: list[str] = []
    population, insurance = GatedSource(started, 2), GatedSource(started, 2, "not_found")
    router = local_router(outbox, population, {"insurance": insurance})
    req = request(IDENTITY, CARD, reply_to=ReplyTo(partition=2))
    await asyncio.wait_for(route(router, req), 5)

    assert sorted(started) == sorted([IDENTITY, CARD])  # neither waited for the other
    reply_to, reply = only_reply(outbox)  # no plan, no source query: no aggregator
    assert reply_to == ReplyTo(partition=2)
    assert reply.status == "partial"
    assert [r.dataset for r in reply.results] == [IDENTITY]
    assert [(e.dataset, e.code) for e in reply.errors] == [(CARD, "not_found")]


async def test_a_refused_dataset_beside_a_local_one_is_an_error_of_the_direct_reply(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    await route(local_router(outbox, source), request(IDENTITY, "land.parcel"))
    assert [q.dataset for q in source.queries] == [IDENTITY]
    _, reply = only_reply(outbox)
    assert reply.status == "partial"
    assert [r.dataset for r in reply.results] == [IDENTITY]
    assert [(e.dataset, e.code) for e in reply.errors] == [("land.parcel", "unknown_dataset")]


async def test_several_datasets_fan_out_when_a_source_is_served_elsewhere(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    await route(local_router(outbox, source), request(IDENTITY, CARD))
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
    now = datetime.now(UTC)
    # Sent 3 s ago with 2 s to answer, and the broker took it then: it waited in Kafka.
    req = request(IDENTITY, deadline=now - timedelta(seconds=1), sent=now - timedelta(seconds=3))
    await route(local_router(outbox, source), req, appended_at=req.time.timestamp())
    assert (source.queries, outbox.sent, outbox.replies) == ([], [], [])


async def as_agency(
    outbox: RecordingOutbox, source: FakeSource, req: LookupRequest, appended_at: float | None
) -> None:
    """As a Kafka-native agency sends it, signed with its own key, replies on its own topic."""
    router, signer = agency_router(outbox, source)
    req = req.model_copy(
        update={"reply_to": ReplyTo(topic=topics.agency_reply_topic(AGENCY), partition=0)}
    )
    body = req.model_dump_json().encode()
    headers = tuple(signer.headers(AGENCY, body))
    await router.route(req, headers=headers, value=body, appended_at=appended_at)


def skewed(skew_s: float, budget_s: float = 5.0) -> tuple[LookupRequest, float]:
    """A request from a clock `skew_s` off, giving `budget_s`; and the broker's stamp (now)."""
    now = datetime.now(UTC)
    sent = now + timedelta(seconds=skew_s)
    return request(
        IDENTITY, deadline=sent + timedelta(seconds=budget_s), sent=sent
    ), now.timestamp()


@pytest.mark.parametrize("skew_s", [-60.0, 30.0])
async def test_a_requester_whose_clock_is_off_is_answered_in_the_time_it_gave(
    outbox: RecordingOutbox, skew_s: float
) -> None:
    """A minute behind, its deadline by the bus's clock passed before it was sent; ahead, it
    would get more time than it waits for. Counted from the broker's stamp, it gets 5 s."""
    source = FakeSource()
    req, stamp = skewed(skew_s)
    await as_agency(outbox, source, req, stamp)
    [query] = source.queries
    assert abs(query.deadline.timestamp() - (stamp + 5)) < 0.01
    [(_, reply)] = outbox.replies
    assert reply.status == "complete"


async def test_without_the_brokers_stamp_the_requests_own_deadline_stands(
    outbox: RecordingOutbox,
) -> None:
    """CreateTime (a topic made before LogAppendTime): no stamp to trust, nothing rebased; a
    minute behind, the deadline has passed and the request is dropped, as before."""
    source = FakeSource()
    req, _ = skewed(-60.0)
    await as_agency(outbox, source, req, None)
    assert (source.queries, outbox.replies) == ([], [])


async def test_a_gateways_request_is_never_rebased(outbox: RecordingOutbox) -> None:
    """The gateway's clock is the bus's own: its deadline stands (here it has passed)."""
    source = FakeSource()
    req, stamp = skewed(-60.0)
    await route(local_router(outbox, source), req, appended_at=stamp)
    assert (source.queries, outbox.replies) == ([], [])


async def test_a_clock_off_by_more_than_the_bus_corrects_is_refused_saying_so(
    outbox: RecordingOutbox,
) -> None:
    """Two hours behind: more likely a replay of an old signed request than a clock."""
    source = FakeSource()
    req, stamp = skewed(-7200.0)
    await as_agency(outbox, source, req, stamp)
    assert source.queries == []
    [(_, reply)] = outbox.replies
    [error] = reply.errors
    assert (reply.status, error.code) == ("failed", "invalid_request")
    assert "7200 s behind the broker's clock" in error.message and "NTP" in error.message


async def test_a_replay_within_the_corrected_window_is_answered_once(
    outbox: RecordingOutbox,
) -> None:
    """The same signed request taken again 100 s later (its time now 100 s off the stamp)."""
    source = FakeSource()
    router, signer = agency_router(outbox, source)
    req, stamp = skewed(0.0)
    req = req.model_copy(
        update={"reply_to": ReplyTo(topic=topics.agency_reply_topic(AGENCY), partition=0)}
    )
    body = req.model_dump_json().encode()
    headers = tuple(signer.headers(AGENCY, body))
    await router.route(req, headers=headers, value=body, appended_at=stamp)
    await router.route(req, headers=headers, value=body, appended_at=stamp + 100)
    assert len(source.queries) == 1 and len(outbox.replies) == 1


async def test_an_unsigned_request_with_no_time_gets_no_reply(outbox: RecordingOutbox) -> None:
    source = FakeSource()
    now = datetime.now(UTC)
    req = request(IDENTITY, deadline=now - timedelta(seconds=1), sent=now)
    await local_router(outbox, source).route(req, value=req.model_dump_json().encode())
    assert (source.queries, outbox.replies) == ([], [])


async def test_a_deadline_before_the_requests_own_time_is_refused_with_the_reason(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    now = datetime.now(UTC)
    req = request(IDENTITY, deadline=now - timedelta(seconds=1), sent=now)
    await route(local_router(outbox, source), req)
    assert source.queries == []
    _, reply = only_reply(outbox)
    [error] = reply.errors
    assert (reply.status, error.code) == ("failed", "invalid_request")
    assert "allows no time" in error.message and "is not after the request's time" in error.message


async def test_a_request_that_waited_too_long_in_kafka_is_refused_as_overloaded(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    router = local_router(outbox, source, max_queue_s=0.5)
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    await route(router, request(IDENTITY, deadline=soon), queued_s=1.7)

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
    await route(
        local_router(outbox, source, max_queue_s=0.5), request(IDENTITY, deadline=far), queued_s=8
    )
    _, reply = only_reply(outbox)
    assert reply.status == "complete"


async def test_policy_denial_is_answered_directly(outbox: RecordingOutbox) -> None:
    source = FakeSource()
    req = request(IDENTITY, CARD, reply_to=ReplyTo(partition=4))
    await route(local_router(outbox, source, allow_all=False), req)

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


# -- who is asking: signatures and reply topics ----------------------------------------------


async def test_an_unsigned_request_is_denied_unauthenticated_and_audited(
    outbox: RecordingOutbox,
) -> None:
    audit_box = RecordingOutbox()
    source = FakeSource()
    router = local_router(outbox, source, audit=audit_recorder(audit_box))
    req = request(IDENTITY, reply_to=ReplyTo(partition=1))
    await router.route(req, headers=(), value=req.model_dump_json().encode())

    _, reply = only_reply(outbox)
    assert reply.status == "denied"
    [error] = reply.errors
    assert error.code == "unauthenticated" and "unsigned request" in error.message
    assert source.queries == []
    [event] = [s.message for s in audit_box.sent]
    assert (event.kind, event.outcome, event.channel) == (
        "authentication",
        "unauthenticated",
        "kafka",
    )
    assert event.subject != req.subject.personal_id  # a pseudonym, never the raw id


async def test_a_signature_over_another_body_is_refused(outbox: RecordingOutbox) -> None:
    req = request(IDENTITY, reply_to=ReplyTo(partition=1))
    headers = tuple(SIGNER.headers(AGENCY, b"another body"))
    await make_router(outbox).route(req, headers=headers, value=req.model_dump_json().encode())
    [(_, reply)] = outbox.replies
    assert [e.code for e in reply.errors] == ["unauthenticated"]


async def test_a_request_for_another_agency_than_signed_is_forbidden(
    outbox: RecordingOutbox,
) -> None:
    req = request(IDENTITY, reply_to=ReplyTo(partition=1))
    body = req.model_dump_json().encode()
    headers = tuple(SIGNER.headers("H26.30", body))  # the body says H26.22
    await make_router(outbox).route(req, headers=headers, value=body)
    [(_, reply)] = outbox.replies
    [error] = reply.errors
    assert error.code == "forbidden" and "'H26.22'" in error.message


def agency_router(outbox: RecordingOutbox, source: FakeSource) -> tuple[LookupRouter, Any]:
    agency_key = generate_key(AGENCY, ["lookup"], n=TEST_COST)
    parts = router_parts(True, None)
    parts["requesters"] = RequesterCheck(Keyring([GATEWAY.record, agency_key.record]), [AGENCY])
    router = LookupRouter(
        parts.pop("policy"),
        outbox,  # type: ignore[arg-type]
        max_deadline_s=MAX_DEADLINE_S,
        local={"population": source},
        **parts,
    )
    return router, RequestSigner(agency_key.key, AGENCY, n=TEST_COST)


async def test_an_agency_key_gets_its_reply_on_its_own_topic_only(
    outbox: RecordingOutbox,
) -> None:
    source = FakeSource()
    router, signer = agency_router(outbox, source)
    own = ReplyTo(topic=topics.agency_reply_topic(AGENCY), partition=0)
    for reply_to in (own, ReplyTo(partition=3)):
        req = request(IDENTITY, reply_to=reply_to)
        body = req.model_dump_json().encode()
        await router.route(req, headers=tuple(signer.headers(AGENCY, body)), value=body)
    (first_to, first), (_, second) = outbox.replies
    assert (first_to, first.status) == (own, "complete")
    assert second.status == "denied"
    [error] = second.errors
    assert error.code == "forbidden"
    assert f"its own topic 'tthc.lookup.reply.{AGENCY}'" in error.message
    assert len(source.queries) == 1  # the refused one never reached the source


# -- the audit trail --------------------------------------------------------------------------


async def test_decision_and_release_are_audited_before_the_reply(
    outbox: RecordingOutbox,
) -> None:
    audit_box = RecordingOutbox()
    req = request(IDENTITY, reply_to=ReplyTo(partition=1))
    await route(local_router(outbox, FakeSource(), audit=audit_recorder(audit_box)), req)

    decision, release = (s.message for s in audit_box.sent)
    assert {s.topic for s in audit_box.sent} == {topics.AUDIT}
    assert (decision.kind, decision.outcome) == ("decision", "accepted")
    assert (release.kind, release.outcome) == ("release", "released")
    assert decision.message_id == f"{req.message_id}.decision"
    [released] = release.datasets
    assert (released.dataset, released.fields) == (IDENTITY, ["a"])
    assert (release.agency, release.officer, release.procedure_code, release.dossier_id) == (
        AGENCY,
        "Phạm D",
        PROCEDURE,
        "HS-1",
    )
    assert release.purpose == PURPOSE
    assert release.subject == Pseudonymizer(b"test-key")(req.subject.key)
    [(_, reply)] = outbox.replies
    assert reply.status == "complete"


class RefusingOutbox(RecordingOutbox):
    async def send(
        self, topic: str, message: Any, *, key: str, partition: int | None = None
    ) -> None:
        raise RuntimeError("NOT_ENOUGH_REPLICAS")


async def test_no_data_leaves_when_the_audit_event_cannot_be_written(
    outbox: RecordingOutbox,
) -> None:
    audit = audit_recorder(RefusingOutbox())
    await route(local_router(outbox, FakeSource(), audit=audit), request(IDENTITY))
    [(_, reply)] = outbox.replies
    assert (reply.status, reply.results) == ("failed", [])
    [error] = reply.errors
    assert error.code == "audit_unavailable"
    assert "NOT_ENOUGH_REPLICAS" in error.message


async def test_a_fan_out_sends_no_query_before_its_decision_is_on_record(
    outbox: RecordingOutbox,
) -> None:
    audit = audit_recorder(RefusingOutbox())
    await route(local_router(outbox, FakeSource(), audit=audit), request(IDENTITY, CARD))
    assert outbox.sent == []  # no plan, no query to a source
    [(_, reply)] = outbox.replies
    assert (reply.status, reply.results) == ("failed", [])
    assert [e.code for e in reply.errors] == ["audit_unavailable"]


async def test_a_denial_is_audited_with_its_reason(outbox: RecordingOutbox) -> None:
    audit_box = RecordingOutbox()
    await route(
        local_router(outbox, FakeSource(), allow_all=False, audit=audit_recorder(audit_box)),
        request(IDENTITY),
    )
    [decision] = [s.message for s in audit_box.sent]
    assert (decision.kind, decision.outcome) == ("decision", "denied")
    assert "no policy grants agency 'H26.22'" in (decision.reason or "")
    [(_, reply)] = outbox.replies
    assert reply.status == "denied"
