"""The lookup router: checks policy, then fans a request out to one query per source.

Stateless: a request processed twice (at-least-once delivery) sends the same plan and queries
twice, and the aggregator, keyed by request id, ignores the repeats. Every request ends in a
reply: an invalid one that still names its id and a valid `reply_to` gets a `failed` reply
saying what was wrong (and goes to the dead-letter topic too); a denied one gets `denied`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from pydantic import ValidationError

from bus import topics
from bus.codec import DecodeError, decode
from bus.outcome import deadline_exceeded, lookup_status
from bus.policy import Policy
from bus.schemas import (
    DatasetError,
    LookupPlan,
    LookupRequest,
    LookupResponse,
    ReplyTo,
    SourceQuery,
)
from bus.streams import Outbox, event_headers

log = logging.getLogger(__name__)

# A request whose deadline passed longer ago than this is a replay after an outage: its
# requester is long gone and the aggregator has forgotten the reply it may have had.
STALE_AFTER_S = 300.0


class LookupRouter:
    name = "lookup-router"

    def __init__(
        self, app: faust.App, policy: Policy, outbox: Outbox, *, max_deadline_s: float
    ) -> None:
        self._app = app
        self._policy = policy
        self._outbox = outbox
        self._max_deadline = timedelta(seconds=max_deadline_s)

    def register(self, concurrency: int = 1) -> None:
        channel = self._app.topic(topics.LOOKUP_REQUEST, key_type=bytes, value_type=bytes)
        self._app.agent(channel, name=self.name, concurrency=concurrency)(self._consume)

    async def _consume(self, stream: Any) -> None:
        async for event in stream.events():
            try:
                request = decode(LookupRequest, event.message.value, event_headers(event))
            except DecodeError as exc:
                await self._outbox.dead_letter(event, self.name, str(exc))
                await self._refuse_invalid(event.message.value, str(exc))
                continue
            try:
                await self.route(request)
            except Exception as exc:  # faust would ack and forget: park it instead
                log.exception("%s: request %s failed", self.name, request.message_id)
                await self._outbox.dead_letter(event, self.name, f"internal error: {exc!r:.200}")

    async def route(self, request: LookupRequest) -> None:
        now = datetime.now(UTC)
        if request.deadline < now - timedelta(seconds=STALE_AFTER_S):
            log.warning("%s: dropped stale request %s", self.name, request.message_id)
            return
        if request.deadline > now + self._max_deadline:
            request = request.model_copy(update={"deadline": now + self._max_deadline})
        if request.deadline <= now:
            await self._reply(request, [_deadline_passed(ds) for ds in request.datasets])
            return
        decision = self._policy.decide(request)
        if decision.denied:
            await self._reply(request, decision.refused)
            return
        request_id = request.message_id
        plan = LookupPlan(
            correlation_id=request_id,
            request_id=request_id,
            producer=self._outbox.producer_name,
            datasets=[*decision.granted, *(e.dataset for e in decision.refused)],
            deadline=request.deadline,
            reply_to=request.reply_to,
            errors=decision.refused,
            traceparent=request.traceparent,
            tracestate=request.tracestate,
        )
        await self._outbox.send(topics.SOURCE_RESULT, plan, key=request_id)
        for dataset, fields in decision.granted.items():
            query = SourceQuery(
                correlation_id=request_id,
                request_id=request_id,
                producer=self._outbox.producer_name,
                dataset=dataset,
                subject=request.subject,
                deadline=request.deadline,
                requester_agency=request.requester.agency_code,
                fields=fields,
                traceparent=request.traceparent,
                tracestate=request.tracestate,
            )
            source = self._policy.source_of(dataset)
            await self._outbox.send(topics.source_request(source), query, key=request_id)

    async def _reply(self, request: LookupRequest, errors: list[DatasetError]) -> None:
        reply = LookupResponse(
            correlation_id=request.message_id,
            request_id=request.message_id,
            producer=self._outbox.producer_name,
            status=lookup_status([], errors),
            errors=errors,
            traceparent=request.traceparent,
            tracestate=request.tracestate,
        )
        await self._outbox.reply(request.reply_to, reply)

    async def _refuse_invalid(self, body: bytes | None, reason: str) -> None:
        """Answer an invalid request if it says who it is and where replies go; else it is
        only in the dead-letter topic (there is nobody to answer)."""
        found = salvage_reply_address(body)
        if found is None:
            return
        request_id, reply_to = found
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
    except (ValueError, TypeError, KeyError, ValidationError):
        return None
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
        return None
    return request_id, reply_to


def _deadline_passed(dataset: str) -> DatasetError:
    return deadline_exceeded(dataset, "the request's deadline had passed when it was routed")
