"""The lookup router: checks policy, then fans a request out to one query per source.

Stateless: a request processed twice (at-least-once delivery) sends the same plan and queries
twice, and the aggregator, keyed by request id, ignores the repeats.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from bus import topics
from bus.codec import DecodeError, decode
from bus.outcome import lookup_status
from bus.policy import Policy
from bus.schemas import LookupPlan, LookupRequest, LookupResponse, SourceQuery
from bus.streams import Outbox, event_headers

log = logging.getLogger(__name__)


class LookupRouter:
    name = "lookup-router"

    def __init__(self, app: faust.App, policy: Policy, outbox: Outbox) -> None:
        self._app = app
        self._policy = policy
        self._outbox = outbox

    def register(self, concurrency: int = 1) -> None:
        channel = self._app.topic(topics.LOOKUP_REQUEST, key_type=bytes, value_type=bytes)
        self._app.agent(channel, name=self.name, concurrency=concurrency)(self._consume)

    async def _consume(self, stream: Any) -> None:
        async for event in stream.events():
            try:
                request = decode(LookupRequest, event.message.value, event_headers(event))
            except DecodeError as exc:
                await self._outbox.dead_letter(event, self.name, str(exc))
                continue
            await self.route(request)

    async def route(self, request: LookupRequest) -> None:
        decision = self._policy.decide(request)
        request_id = request.message_id
        if decision.denied:
            reply = LookupResponse(
                correlation_id=request_id,
                request_id=request_id,
                producer=self._outbox.producer_name,
                status=lookup_status([], decision.refused),
                errors=decision.refused,
                traceparent=request.traceparent,
            )
            await send_reply(self._outbox, request.reply_to, reply)
            return
        plan = LookupPlan(
            correlation_id=request_id,
            request_id=request_id,
            producer=self._outbox.producer_name,
            datasets=[*decision.granted, *(e.dataset for e in decision.refused)],
            deadline=request.deadline,
            reply_to=request.reply_to,
            errors=decision.refused,
            traceparent=request.traceparent,
        )
        await self._outbox.send(topics.SOURCE_RESULT, plan, key=request_id)
        for dataset, fields in decision.granted.items():
            source = self._policy.source_of(dataset)
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
            )
            await self._outbox.send(topics.source_request(source), query, key=request_id)


async def send_reply(outbox: Outbox, reply_to: Any, reply: LookupResponse) -> None:
    """Send a reply where the requester asked; without reply_to, keyed by request id."""
    if reply_to is None:
        await outbox.send(topics.LOOKUP_REPLY, reply, key=reply.request_id)
    else:
        await outbox.send(reply_to.topic, reply, key=reply.request_id, partition=reply_to.partition)
