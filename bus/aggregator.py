"""The aggregator: collects the per-source results of a lookup and sends exactly one reply.

Pending lookups live in a faust table keyed by request id (its changelog lets another worker take
over after a crash). The plan from the router and the results from the connectors all arrive on
`tthc.source.result` keyed by request id, so they meet in one partition; they may arrive in any
order. Deadlines are enforced by a timer that sends a `LookupExpiry` through the same topic, since
a faust table can only be changed while processing a message of its partition.

After the reply an entry shrinks to a `done` marker kept for `DONE_RETENTION_S`, so repeated
deliveries of a plan or result (at-least-once) never produce a second reply.
"""

from __future__ import annotations

import heapq
import logging
import time
from datetime import datetime
from typing import Any

import faust

from bus import topics
from bus.audit.recorder import AuditRecorder, without_data
from bus.errors import exception_site
from bus.outbox import Outbox
from bus.outcome import deadline_exceeded, lookup_status
from bus.runtime import Inbound, Publication, Route, Subscriber, bind_faust
from bus.schemas import (
    DatasetError,
    DatasetResult,
    LookupExpiry,
    LookupPlan,
    LookupResponse,
    ReplyTo,
    SourceResult,
)
from bus.schemas.lookup import AuditContext

log = logging.getLogger(__name__)

DONE_RETENTION_S = 300.0
ORPHAN_TTL_S = 120.0
TIMER_INTERVAL_S = 0.1
# The heap covers what this process saw; a scan finds what it did not (entries recovered from
# the changelog after a restart or a rebalance).
SCAN_INTERVAL_S = 30.0
EXPIRY_RESEND_S = 10.0

Entry = dict[str, Any]


class LookupAggregator:
    name = "lookup-aggregator"

    def __init__(
        self,
        app: faust.App,
        outbox: Outbox,
        partitions: int,
        audit: AuditRecorder | None = None,
    ) -> None:
        self._app = app
        self._outbox = outbox
        self._audit = audit
        self.table = app.Table(
            "pending-lookups",
            default=None,
            partitions=partitions,
            # JSON keys and values: faust's changelog recovery decodes with the serializer it
            # derives from the key/value types, whatever schema was used to write.
            key_type=str,
        )
        self._due: list[tuple[float, str]] = []
        self._expiry_sent: dict[str, float] = {}
        self._last_scan = 0.0

    def subscriber(self) -> Subscriber:
        async def on_plan(plan: LookupPlan, _: Inbound) -> None:
            await self.on_plan(plan)

        async def on_result(result: SourceResult, _: Inbound) -> None:
            await self.on_result(result)

        async def on_expiry(expiry: LookupExpiry, _: Inbound) -> None:
            await self.on_expiry(expiry)

        return Subscriber(
            name=self.name,
            topic=topics.SOURCE_RESULT,
            routes=(
                Route(LookupPlan, on_plan),
                Route(SourceResult, on_result),
                Route(LookupExpiry, on_expiry),
            ),
            description="Fan-out lookups: the plan, each source's result and deadline expiries, "
            "keyed by request id so that they meet in one partition of the pending table.",
            publishes=(
                Publication(
                    topics.LOOKUP_REPLY,
                    LookupResponse,
                    "request id",
                    "The combined reply, to the partition named in reply_to.",
                ),
                Publication(
                    topics.SOURCE_RESULT,
                    LookupExpiry,
                    "request id",
                    "The aggregator's own deadline timer.",
                ),
            ),
        )

    def register(self) -> None:
        """Bind to the faust app: the pending table lives there, so does the consumer."""
        bind_faust(self._app, self.subscriber(), self._outbox)
        self._app.timer(TIMER_INTERVAL_S, name="lookup-deadlines")(self._tick)

    async def on_plan(self, plan: LookupPlan) -> None:
        key = plan.request_id
        entry: Entry = self.table.get(key) or _new_entry()
        if entry["done"] or entry["plan"] is not None:
            return  # a repeated plan
        entry["plan"] = plan.model_dump(mode="json")
        for error in plan.errors:
            entry["errors"][error.dataset] = error.model_dump(mode="json")
        heapq.heappush(self._due, (plan.deadline.timestamp(), key))
        await self._settle(key, entry)

    async def on_result(self, result: SourceResult) -> None:
        key = result.request_id
        entry: Entry = self.table.get(key) or _new_entry()
        if entry["done"] or result.dataset in entry["results"] or result.dataset in entry["errors"]:
            return  # a repeated result, or one that came after the reply
        if result.result is not None:
            entry["results"][result.dataset] = result.result.model_dump(mode="json")
        elif result.error is not None:
            entry["errors"][result.dataset] = result.error.model_dump(mode="json")
        if entry["plan"] is None:
            heapq.heappush(self._due, (entry["t"] + ORPHAN_TTL_S, key))
        else:
            # Also tracks lookups recovered from the changelog after a rebalance, which this
            # process never saw planned (repeats in the heap are harmless).
            deadline = datetime.fromisoformat(entry["plan"]["deadline"]).timestamp()
            heapq.heappush(self._due, (deadline, key))
        await self._settle(key, entry)

    async def on_expiry(self, expiry: LookupExpiry) -> None:
        key = expiry.request_id
        self._expiry_sent.pop(key, None)
        entry: Entry | None = self.table.get(key)
        if entry is None:
            return
        now = time.time()
        if entry["done"]:
            if now - entry["t"] >= DONE_RETENTION_S:
                del self.table[key]
            return
        plan = entry["plan"]
        if plan is None:
            if now - entry["t"] >= ORPHAN_TTL_S:
                del self.table[key]  # results whose plan never came: no one to answer
            return
        if datetime.fromisoformat(plan["deadline"]).timestamp() > now:
            return
        for dataset in plan["datasets"]:
            if dataset not in entry["results"] and dataset not in entry["errors"]:
                entry["errors"][dataset] = deadline_exceeded(
                    dataset, "no answer from the source before the request's deadline"
                ).model_dump(mode="json")
        await self._settle(key, entry)

    async def _settle(self, key: str, entry: Entry) -> None:
        """Reply if every planned dataset has an outcome; else store the entry."""
        plan = entry["plan"]
        if plan is None or any(
            ds not in entry["results"] and ds not in entry["errors"] for ds in plan["datasets"]
        ):
            self.table[key] = entry
            return
        try:
            reply = self._reply(key, entry)
        except Exception as exc:  # an entry that cannot be read still gets an answer
            log.error("%s: reply to %s could not be built: %s", self.name, key, exception_site(exc))
            reply = LookupResponse(
                correlation_id=key,
                request_id=key,
                producer=self._outbox.producer_name,
                status="failed",
                errors=[
                    DatasetError(
                        dataset="*",
                        source="bus",
                        code="internal_error",
                        message="the bus could not assemble the reply",
                        retryable=True,
                    )
                ],
            )
        reply_to = ReplyTo.model_validate(plan["reply_to"]) if plan["reply_to"] else None
        reply = await self._recorded(plan, reply)
        try:
            await self._outbox.reply(reply_to, reply)
        except Exception as exc:
            # Marked done all the same: retrying on every expiry would poison the partition.
            log.error("%s: reply to %s not sent: %s", self.name, key, exception_site(exc))
        done = time.time()
        self.table[key] = {"done": True, "t": done, "plan": None, "results": {}, "errors": {}}
        heapq.heappush(self._due, (done + DONE_RETENTION_S, key))

    async def _recorded(self, plan: dict[str, Any], reply: LookupResponse) -> LookupResponse:
        """The reply once its release is in the audit trail; without it, `failed` and no data."""
        if self._audit is None or not plan.get("audit"):
            return reply
        context = AuditContext.model_validate(plan["audit"])
        event = self._audit.release(context, reply.request_id, reply.results, reply.errors)
        # Not bounded by the deadline: a reply at an expiry still records what it releases.
        failure = await self._audit.record(event)
        if failure is None or not reply.results:  # without data, the answer may go out
            return reply
        errors = without_data(reply.results, reply.errors, failure)
        return reply.model_copy(update={"status": "failed", "results": [], "errors": errors})

    def _reply(self, key: str, entry: Entry) -> LookupResponse:
        plan = entry["plan"]
        datasets = plan["datasets"]
        results = [
            DatasetResult.model_validate(entry["results"][ds])
            for ds in datasets
            if ds in entry["results"]
        ]
        errors = [
            DatasetError.model_validate(entry["errors"][ds])
            for ds in datasets
            if ds in entry["errors"]
        ]
        return LookupResponse(
            correlation_id=key,
            request_id=key,
            producer=self._outbox.producer_name,
            status=lookup_status(results, errors),
            results=results,
            errors=errors,
            traceparent=plan.get("traceparent"),
            tracestate=plan.get("tracestate"),
        )

    # -- timer ----------------------------------------------------------------------------------

    async def _tick(self) -> None:
        now = time.time()
        due: list[str] = []
        while self._due and self._due[0][0] <= now:
            due.append(heapq.heappop(self._due)[1])
        if now - self._last_scan >= SCAN_INTERVAL_S:
            self._last_scan = now
            due.extend(self._scan(now))
            self._expiry_sent = {
                k: t for k, t in self._expiry_sent.items() if now - t < EXPIRY_RESEND_S
            }
        for request_id in dict.fromkeys(due):
            if request_id in self._expiry_sent or not self._expired(request_id, now):
                continue
            self._expiry_sent[request_id] = now
            try:
                await self._outbox.send(
                    topics.SOURCE_RESULT,
                    LookupExpiry(request_id=request_id, producer=self._outbox.producer_name),
                    key=request_id,
                )
            except Exception as exc:  # a raising timer would crash the worker; retry later
                log.error("%s: expiry not sent: %s", self.name, exception_site(exc))

    def _expired(self, request_id: str, now: float) -> bool:
        """True when the entry's time is up: deadline, orphan TTL or done-marker retention."""
        entry = self.table.get(request_id)
        if entry is None:
            return False
        try:
            if entry["done"]:
                return bool(now - entry["t"] >= DONE_RETENTION_S)
            if entry["plan"] is None:
                return bool(now - entry["t"] >= ORPHAN_TTL_S)
            return datetime.fromisoformat(entry["plan"]["deadline"]).timestamp() <= now
        except (KeyError, TypeError, ValueError):
            log.error("%s: unreadable table entry for %s; expiring it", self.name, request_id)
            return True

    def _scan(self, now: float) -> list[str]:
        """Entries whose time is up, including those this process never saw arrive."""
        return [str(key) for key in list(self.table.keys()) if self._expired(str(key), now)]


def _new_entry() -> Entry:
    return {"done": False, "t": time.time(), "plan": None, "results": {}, "errors": {}}
