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
from bus.aggregator import DONE_RETENTION_S
from bus.codec import DecodeError, decode
from bus.errors import exception_site
from bus.outcome import deadline_exceeded
from bus.policy import Policy
from bus.schemas import (
    DatasetError,
    LookupPlan,
    LookupRequest,
    ReplyTo,
    SourceQuery,
)
from bus.streams import Outbox, event_headers

log = logging.getLogger(__name__)


class LookupRouter:
    name = "lookup-router"

    def __init__(
        self, app: faust.App, policy: Policy, outbox: Outbox, *, max_deadline_s: float
    ) -> None:
        self._app = app
        self._policy = policy
        self._outbox = outbox
        self._max_deadline = timedelta(seconds=max_deadline_s)
        # A request whose deadline passed longer ago than this is a replay after an outage: its
        # requester is gone, and the aggregator may have forgotten the reply it had. A lookup is
        # answered at the latest at its deadline, at the earliest max_deadline before it, and
        # remembered DONE_RETENTION_S after: so replays are dropped before they are forgotten.
        self._stale_after = timedelta(seconds=max(DONE_RETENTION_S - max_deadline_s, 0.0))

    def register(self, concurrency: int = 1) -> None:
        channel = self._app.topic(topics.LOOKUP_REQUEST, key_type=bytes, value_type=bytes)
        self._app.agent(channel, name=self.name, concurrency=concurrency)(self._consume)

    async def _consume(self, stream: Any) -> None:
        async for event in stream.events():
            try:
                await self._handle(event)
            except Exception as exc:  # even parking failed: log where, never what
                log.error("%s: message lost to an error: %s", self.name, exception_site(exc))

    async def _handle(self, event: Any) -> None:
        try:
            request = decode(LookupRequest, event.message.value, event_headers(event))
        except DecodeError as exc:
            await self._outbox.dead_letter(event, self.name, str(exc))
            await self._refuse_invalid(event.message.value, str(exc))
            return
        try:
            await self.route(request)
        except Exception as exc:  # faust would ack and forget: park it instead
            site = exception_site(exc)
            log.error("%s: request %s failed: %s", self.name, request.message_id, site)
            await self._outbox.dead_letter(event, self.name, f"internal error: {site}")

    async def route(self, request: LookupRequest) -> None:
        now = datetime.now(UTC)
        if request.deadline < now - self._stale_after:
            log.warning("%s: dropped stale request %s", self.name, request.message_id)
            return
        if request.deadline > now + self._max_deadline:
            request = request.model_copy(update={"deadline": now + self._max_deadline})
        if request.deadline <= now:
            # Through the aggregator like every other outcome: it answers a plan whose datasets
            # all carry errors at once, and ignores the plan if this request was answered before
            # (a replay after a crash must not bring a second reply).
            await self._send_plan(request, [_deadline_passed(ds) for ds in request.datasets])
            return
        decision = self._policy.decide(request)
        if decision.denied:
            await self._send_plan(request, decision.refused)
            return
        request_id = request.message_id
        await self._send_plan(request, decision.refused, granted=list(decision.granted))
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

    async def _send_plan(
        self, request: LookupRequest, errors: list[DatasetError], granted: list[str] | None = None
    ) -> None:
        plan = LookupPlan(
            correlation_id=request.message_id,
            request_id=request.message_id,
            producer=self._outbox.producer_name,
            datasets=[*(granted or []), *(error.dataset for error in errors)],
            deadline=request.deadline,
            reply_to=request.reply_to,
            errors=errors,
            traceparent=request.traceparent,
            tracestate=request.tracestate,
        )
        await self._outbox.send(topics.SOURCE_RESULT, plan, key=request.message_id)

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
        plan = LookupPlan(
            correlation_id=request_id,
            request_id=request_id,
            producer=self._outbox.producer_name,
            datasets=[error.dataset],
            deadline=datetime.now(UTC),
            reply_to=reply_to,
            errors=[error],
        )
        await self._outbox.send(topics.SOURCE_RESULT, plan, key=request_id)


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


def _deadline_passed(dataset: str) -> DatasetError:
    return deadline_exceeded(dataset, "the request's deadline had passed when it was routed")
