"""The lookup router: admission, policy, then the cheapest path to one reply.

- A lookup whose granted datasets all come from sources this worker serves (the common case: a
  single dataset, or a dossier prefill on a worker that runs every connector) is answered right
  here: the router calls each source's lookup connector in-process, all at once, and sends the
  combined reply to the requester's `reply_to`. One Kafka hop in, one out, no state: a worker
  that dies mid-way has not committed the request, which its successor reads and answers again.
- A lookup that needs a source served by another worker is fanned out: a `LookupPlan` to the
  aggregator and one `SourceQuery` per granted dataset.

Every request ends in exactly one reply as the requester sees it:
- a request processed twice by this worker (a repeated delivery) is answered once (`RecentIds`);
  after a crash another worker may answer a request again, and clients drop a reply for a request
  they no longer wait for (`bus.client`), so the requester still sees one;
- a request whose deadline has passed is dropped: its requester has answered itself at the
  deadline, and a reply now would come after it;
- a request that waited longer than `max_queue_s` in Kafka and has less time left than it has
  already waited (the bus is past its capacity, for clients that do not cap what they send) is
  refused at once with `failed`/`overloaded` and a retry-after, instead of being served late. A
  backlog left by an outage, whose deadlines are still far, is served;
- an invalid request that names its id and a valid `reply_to` gets a `failed` reply naming the
  field (and goes to the dead-letter topic too); a denied one gets `denied`;
- a request whose signature does not check out (bus/requesters.py) is `denied` with
  `unauthenticated` or `forbidden`, before anything else is looked at.

Every decision and every release is an audit event (bus/audit/recorder.py), acknowledged by the
broker before the reply goes out (a lookup answered here sends both together, after the source
calls; a fanned-out one records its decision before any query goes out); when it cannot be
written the reply is `failed` with `audit_unavailable`, and no data leaves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import Counter
from pydantic import ValidationError

from bus import topics
from bus.audit.recorder import AuditRecorder, audit_failure, without_data
from bus.codec import encode
from bus.deadline import Deadline
from bus.discovery import Discovery
from bus.outbox import Outbox
from bus.outcome import lookup_status
from bus.policy import Policy
from bus.requesters import Caller, Refusal, RequesterCheck
from bus.runtime import Inbound, Publication, Route, Subscriber
from bus.schemas import (
    DatasetError,
    DatasetResult,
    LookupPlan,
    LookupRequest,
    LookupResponse,
    ReplyTo,
    SourceQuery,
    SourceResult,
)
from bus.schemas.audit import AuditEvent
from bus.schemas.discovery import DiscoveryRequest, DiscoveryResponse
from bus.schemas.lookup import AuditContext

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "tthc_worker_lookups", "Lookups a worker's router answered, by status.", ["status"]
)
DATASET_ERRORS = Counter(
    "tthc_worker_dataset_errors",
    "Datasets a reply could not give, by source and error code (deadline_exceeded: no answer "
    "in time).",
    ["source", "code"],
)

CLOCK_SKEWED = Counter(
    "tthc_worker_clock_skewed_requests",
    "Lookup requests whose time was more than CLOCK_SKEW_S off the broker's stamp (the "
    "requester's clock is wrong), by direction; their deadlines count from the stamp.",
    ["direction"],
)
# Farther than this from the broker's stamp, a request's time is its requester's wrong clock;
# its deadline is then counted from the stamp. Farther than the maximum, it is refused: a
# request that old is more likely a replay than a clock (its signature carries no time).
CLOCK_SKEW_S = 2.0
CLOCK_SKEW_MAX_S = 120.0

# How long a request id is remembered after its deadline, against repeated deliveries.
RECENT_GRACE_S = 60.0
RECENT_MAX = 200_000
OVERLOADED = "overloaded"


class LocalSource(Protocol):
    """A source's lookup connector running in this process."""

    async def answer(self, query: SourceQuery) -> SourceResult: ...


class RecentIds:
    """Request ids seen lately, each until its deadline plus a grace; bounded in size."""

    PRUNE_EVERY = 512

    def __init__(self, limit: int = RECENT_MAX) -> None:
        # Oldest first. Not a dict: finding a dict's first key after deleting from its front
        # walks every deleted slot, which made pruning a visible share of the worker's CPU.
        self._until: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._added = 0

    def first_time(self, request_id: str, until: float, now: float) -> bool:
        """Record the id; False if it was already there (a repeated delivery)."""
        if request_id in self._until:
            return False
        self._until[request_id] = until + RECENT_GRACE_S
        self._added += 1
        if self._added % self.PRUNE_EVERY == 0 or len(self._until) > self._limit:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        entries = self._until
        while entries:
            oldest = next(iter(entries))
            if entries[oldest] > now and len(entries) <= self._limit:
                return
            entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._until)


class LookupRouter:
    name = "lookup-router"

    def __init__(
        self,
        policy: Policy,
        outbox: Outbox,
        *,
        requesters: RequesterCheck,
        audit: AuditRecorder,
        max_deadline_s: float,
        local: Mapping[str, LocalSource] | None = None,
        max_queue_s: float = 1.0,
        concurrency: int = 256,
    ) -> None:
        self._policy = policy
        self._discovery = Discovery(policy)
        self._outbox = outbox
        self._requesters = requesters
        self._audit = audit
        self._sources = {name: policy.source_of(name) for name in policy.datasets()}
        self._max_deadline_s = max_deadline_s
        self._local = dict(local or {})
        self._max_queue_s = max_queue_s
        self._concurrency = concurrency
        self._recent = RecentIds()
        self.refused_overloaded = 0
        self.dropped_expired = 0

    def subscriber(self) -> Subscriber:
        return Subscriber(
            name=self.name,
            topic=topics.LOOKUP_REQUEST,
            routes=(
                Route(LookupRequest, self.on_request),
                Route(DiscoveryRequest, self.on_discovery),
            ),
            description="Lookup requests from the gateway and Kafka-native clients, and their "
            "discovery questions (what the bus serves, what the agency may ask for).",
            publishes=(
                Publication(
                    topics.LOOKUP_REPLY,
                    LookupResponse,
                    "request id",
                    "The reply, to the partition named in reply_to (single-source lookups, "
                    "refusals and denials are answered here directly).",
                ),
                Publication(
                    topics.LOOKUP_REPLY,
                    DiscoveryResponse,
                    "request id",
                    "The answer to a discovery request, to the partition named in reply_to.",
                ),
                Publication(
                    topics.SOURCE_RESULT,
                    LookupPlan,
                    "request id",
                    "Fan-out: what the aggregator must wait for.",
                ),
                *(
                    Publication(
                        topics.source_request(source),
                        SourceQuery,
                        "request id",
                        f"Fan-out: the query for a {source} dataset.",
                    )
                    for source in self._policy.sources()
                ),
            ),
            concurrency=self._concurrency,
            # Whatever its deadline, a request is answered within max_deadline of being sent.
            max_age_s=self._max_deadline_s + RECENT_GRACE_S,
            on_undecodable=self.refuse_invalid,
        )

    async def on_discovery(self, request: DiscoveryRequest, record: Inbound) -> None:
        """Answers what the bus serves, or what the signed agency may ask for. Signed and
        checked like a lookup (the reply goes only where that agency may read); no personal
        data either way, so only a refused signature is audited."""
        now = time.time()
        caller = self._requesters.check(request, record.headers, record.value)
        # After the signature: an unsigned copy must not make the real one look repeated.
        if not self._recent.first_time(request.message_id, now + RECENT_GRACE_S, now):
            return
        found: dict[str, Any] = {}
        if isinstance(caller, Refusal):
            event = self._audit.authentication(
                channel="kafka",
                outcome="unauthenticated" if caller.code == "unauthenticated" else "forbidden",
                reason=caller.reason,
                request_id=request.message_id,
                agency=caller.agency,
                key_id=caller.key_id,
            )
            await self._audit.record(event, Deadline.after(RECENT_GRACE_S))
            found["error"] = f"{caller.code}: {caller.reason}"
        elif request.question == "datasets":
            found["datasets"] = self._discovery.datasets()
        else:
            found["allowed"] = self._discovery.allowed(caller.agency)
        answer = DiscoveryResponse(
            correlation_id=request.message_id,
            request_id=request.message_id,
            producer=self._outbox.producer_name,
            question=request.question,
            **found,
        )
        body, headers = encode(answer)
        await self._outbox.send_raw(
            request.reply_to.topic,
            body,
            headers,
            key=request.message_id.encode(),
            partition=request.reply_to.partition,
        )

    async def on_request(self, request: LookupRequest, record: Inbound) -> None:
        await self.route(
            request,
            queued_s=record.age_s(),
            headers=record.headers,
            value=record.value,
            appended_at=record.timestamp_ms / 1000 if record.appended else None,
        )

    async def route(
        self,
        request: LookupRequest,
        *,
        queued_s: float = 0.0,
        headers: tuple[tuple[str, bytes], ...] = (),
        value: bytes | None = None,
        appended_at: float | None = None,
    ) -> None:
        now = time.time()
        budget = request.deadline.timestamp() - request.time.timestamp()
        skew = None if appended_at is None else request.time.timestamp() - appended_at
        refusal = self._time_refusal(request, budget, skew)
        if refusal is not None:  # said so, once, to a signed requester only
            signed = not isinstance(self._requesters.check(request, headers, value), Refusal)
            if signed and self._recent.first_time(request.message_id, now + RECENT_GRACE_S, now):
                await self._refuse_time(request, refusal)
            return
        rebased = skew is not None and abs(skew) > CLOCK_SKEW_S
        deadline = self._deadline(request, appended_at if rebased else None, budget, now)
        if deadline.budget() <= 0:
            self.dropped_expired += 1
            log.debug("%s: dropped request %s past its deadline", self.name, request.message_id)
            return
        # Remembered past the longest a replay of it could still be taken as skewed.
        remember = deadline.at + (CLOCK_SKEW_MAX_S if rebased else 0.0)
        if not self._recent.first_time(request.message_id, remember, now):
            return  # a repeated delivery: answered (or being answered) already
        caller = self._requesters.check(request, headers, value)
        if isinstance(caller, Refusal):
            await self._refuse_requester(request, caller, deadline)
            return
        if rebased:
            deadline = self._skewed(request, caller, deadline, budget, skew or 0.0, now)
            if deadline.budget() <= 0:
                self.dropped_expired += 1
                return
        if deadline.at != request.deadline.timestamp():
            request = request.model_copy(update={"deadline": deadline.as_datetime()})
        if queued_s > self._max_queue_s and deadline.remaining(now) < queued_s:
            await self._refuse_overloaded(request, queued_s)
            return
        decision = self._policy.decide(request)
        context = self._audit.context(request, caller.channel, caller.key_id)
        decided = self._audit.decision(
            context, request.message_id, decision.granted, decision.refused, self._sources
        )
        if decision.denied:
            # No data leaves either way: a denial that could not be recorded is still a denial.
            await self._audit.record(decided, deadline)
            await self._reply(request, [], decision.refused)
            return
        local = self._served_here(decision.granted)
        if local is not None:
            answers = await asyncio.gather(
                *(
                    source.answer(self._query(request, dataset, fields))
                    for (dataset, fields), source in zip(
                        decision.granted.items(), local, strict=True
                    )
                )
            )
            results = [answer.result for answer in answers if answer.result is not None]
            errors = [
                *decision.refused,
                *(answer.error for answer in answers if answer.error is not None),
            ]
            await self._release(request, context, deadline, decided, results, errors)
            return
        # The queries go out only once the decision is on record (the aggregator records the
        # release).
        failure = await self._audit.record(decided, deadline)
        if failure is not None:
            await self._reply(request, [], [audit_failure("*", failure)])
            return
        await self._fan_out(request, decision.granted, decision.refused, context)

    def _served_here(self, granted: Mapping[str, list[str] | None]) -> list[LocalSource] | None:
        """The local connector of each granted dataset, in order; None unless all are here."""
        found = [self._local.get(self._sources[dataset]) for dataset in granted]
        if not found or any(source is None for source in found):
            return None
        return [source for source in found if source is not None]

    async def _release(
        self,
        request: LookupRequest,
        context: AuditContext,
        deadline: Deadline,
        decided: AuditEvent,
        results: list[DatasetResult],
        errors: list[DatasetError],
    ) -> None:
        """Record the decision and the release, then reply; without the record, no data.

        Both are sent together, decision first (one batch to the broker, in this order in the
        partition): both are on record before the reply, and nothing left before that. A
        worker that dies during the source calls has recorded nothing and released nothing;
        its successor answers the request again and records both."""
        released = self._audit.release(context, request.message_id, results, errors)
        pending = self._audit.emit_together([decided, released])
        failure = await self._audit.settle(pending, deadline)
        if failure is not None and results:  # without data, the answer itself may go out
            await self._reply(request, [], without_data(results, errors, failure))
            return
        await self._reply(request, results, errors)

    def _deadline(
        self, request: LookupRequest, stamped: float | None, budget: float, now: float
    ) -> Deadline:
        """The request's deadline, or (`stamped`: the broker's stamp of a request whose clock
        is off) the time it meant to give counted from the stamp; capped at max_deadline."""
        deadline = (
            Deadline(stamped + budget) if stamped is not None else Deadline.of(request.deadline)
        )
        return deadline.capped(self._max_deadline_s, now)

    def _skewed(
        self,
        request: LookupRequest,
        caller: Caller,
        deadline: Deadline,
        budget: float,
        skew: float,
        now: float,
    ) -> Deadline:
        """A signed request from a clock off the broker's: a gateway's clock is the bus's own,
        so its own deadline stands; an agency's is counted from the stamp, and said so."""
        if caller.channel == "http":
            return self._deadline(request, None, budget, now)
        CLOCK_SKEWED.labels("ahead" if skew > 0 else "behind").inc()
        log.warning(
            "%s: request %s of agency %s: its clock is %.1f s %s the broker's; its deadline "
            "counts from the broker's time (%.0f ms)",
            self.name,
            request.message_id,
            caller.agency,
            abs(skew),
            "ahead of" if skew > 0 else "behind",
            budget * 1000,
        )
        return deadline

    @staticmethod
    def _time_refusal(request: LookupRequest, budget: float, skew: float | None) -> str | None:
        """Why the request's times cannot be taken, or None: a deadline not after its own
        time, or a clock further off the broker's than the bus corrects for."""
        if budget <= 0:
            return (
                f"deadline {request.deadline.isoformat()} is not after the request's time "
                f"{request.time.isoformat()}: it allows no time"
            )
        if skew is not None and abs(skew) > CLOCK_SKEW_MAX_S:
            return (
                f"the request's time {request.time.isoformat()} is {abs(skew):.0f} s "
                f"{'ahead of' if skew > 0 else 'behind'} the broker's clock, more than the "
                f"{CLOCK_SKEW_MAX_S:.0f} s the bus corrects for: set the requester's clock "
                "right (NTP)"
            )
        return None

    async def _refuse_time(self, request: LookupRequest, message: str) -> None:
        error = DatasetError(
            dataset="*", source="bus", code="invalid_request", message=message, retryable=False
        )
        await self._reply(request, [], [error])

    async def _refuse_requester(
        self, request: LookupRequest, refusal: Refusal, deadline: Deadline
    ) -> None:
        event = self._audit.authentication(
            channel="kafka",
            outcome="unauthenticated" if refusal.code == "unauthenticated" else "forbidden",
            reason=refusal.reason,
            request_id=request.message_id,
            agency=refusal.agency,
            key_id=refusal.key_id,
            request=request,
        )
        await self._audit.record(event, deadline)
        error = DatasetError(
            dataset="*", source="bus", code=refusal.code, message=refusal.reason, retryable=False
        )
        await self._reply(request, [], [error])

    def _query(self, request: LookupRequest, dataset: str, fields: list[str] | None) -> SourceQuery:
        # From a validated request: its parts are models already and are not validated again
        # (pydantic's model_construct would cost more than this, in its default factories).
        return SourceQuery(
            correlation_id=request.message_id,
            request_id=request.message_id,
            producer=self._outbox.producer_name,
            dataset=dataset,
            subject=request.subject,
            deadline=request.deadline,
            requester_agency=request.requester.agency_code,
            procedure_code=request.procedure_code,
            fields=fields,
            traceparent=request.traceparent,
            tracestate=request.tracestate,
        )

    async def _fan_out(
        self,
        request: LookupRequest,
        granted: Mapping[str, list[str] | None],
        refused: list[DatasetError],
        context: AuditContext,
    ) -> None:
        request_id = request.message_id
        plan = LookupPlan(
            correlation_id=request_id,
            request_id=request_id,
            producer=self._outbox.producer_name,
            datasets=[*granted, *(error.dataset for error in refused)],
            deadline=request.deadline,
            reply_to=request.reply_to,
            errors=refused,
            audit=context if self._audit.enabled else None,
            traceparent=request.traceparent,
            tracestate=request.tracestate,
        )
        await self._outbox.send(topics.SOURCE_RESULT, plan, key=request_id)
        for dataset, fields in granted.items():
            source = self._policy.source_of(dataset)
            query = self._query(request, dataset, fields)
            await self._outbox.send(topics.source_request(source), query, key=request_id)

    async def _reply(
        self,
        request: LookupRequest,
        results: list[DatasetResult],
        errors: list[DatasetError],
        *,
        retry_after_ms: int | None = None,
    ) -> None:
        status = lookup_status(results, errors)
        LOOKUPS.labels(status).inc()
        for error in errors:
            DATASET_ERRORS.labels(error.source, error.code).inc()
        reply = LookupResponse(
            correlation_id=request.message_id,
            request_id=request.message_id,
            producer=self._outbox.producer_name,
            status=status,
            results=results,
            errors=errors,
            retry_after_ms=retry_after_ms,
            traceparent=request.traceparent,
            tracestate=request.tracestate,
        )
        await self._outbox.reply(request.reply_to, reply)

    async def _refuse_overloaded(self, request: LookupRequest, queued_s: float) -> None:
        self.refused_overloaded += 1
        retry_after_s = max(1, math.ceil(queued_s))
        error = DatasetError(
            dataset="*",
            source="bus",
            code=OVERLOADED,
            message=f"the bus is past its capacity: the request waited {queued_s * 1000:.0f} ms "
            f"in the queue (more than {self._max_queue_s * 1000:.0f} ms); "
            f"retry after {retry_after_s} s",
            retryable=True,
        )
        await self._reply(request, [], [error], retry_after_ms=retry_after_s * 1000)

    async def refuse_invalid(self, record: Inbound, reason: str) -> None:
        """Answer an invalid request if it says who it is and where replies go; else it is
        only in the dead-letter topic (there is nobody to answer)."""
        found = salvage_reply_address(record.value)
        if found is None:
            return
        request_id, reply_to = found
        now = time.time()
        if not self._recent.first_time(request_id, until=now, now=now):
            return
        error = DatasetError(
            dataset="*", source="bus", code="invalid_request", message=reason, retryable=False
        )
        reply = LookupResponse(
            correlation_id=request_id,
            request_id=request_id,
            producer=self._outbox.producer_name,
            status="failed",
            errors=[error],
        )
        await self._outbox.reply(reply_to, reply)


def salvage_reply_address(body: bytes | None) -> tuple[str, ReplyTo] | None:
    """The message id and a valid reply_to of an otherwise invalid request, if it has both."""
    try:
        data = json.loads(body or b"")
        request_id = data["message_id"]
        reply_to = ReplyTo.model_validate(data["reply_to"])
    except (ValueError, TypeError, KeyError, ValidationError, RecursionError):
        return None
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
        return None
    return request_id, reply_to
