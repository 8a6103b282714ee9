"""The lookup connector: one generic class, one instance per national database.

`answer` calls the source's adapter in a bounded thread pool (adapters are blocking) through the
resilience middleware of connectors/resilience (metrics, retry, circuit breaker, rate limit,
deadline; a bulkhead before the pool), and maps the native record to the normalized schema.
Every outcome, including failures, is a `SourceResult`: nothing raises for an expected error.
The router calls `answer` directly for a single-source lookup (the common case: no hop in
between); on the fan-out path the connector's `subscriber` consumes
`tthc.source.<source>.request` and sends the result to the aggregator.

Datasets that the adapter answers from one native call (`Dataset.call`), asked at the same time
for the same subject in the same request, share that call: the first query makes it, the others
wait for its record (or its error) and map it their own way. A dossier prefill asks population
for identity and residence at once: one `TraCuuThongTinCongDan`, not two.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from adapters.base import Adapter, NativeRecord
from bus import topics
from bus.deadline import Deadline
from bus.errors import MappingError, SourceError, SourceNotFound, SourceTimeout
from bus.outbox import Outbox
from bus.runtime import Inbound, Publication, Route, Subscriber
from bus.schemas import DatasetError, DatasetResult, Provenance, SourceQuery, SourceResult
from bus.schemas.lookup import WithheldField
from bus.settings import SourceSettings
from connectors.resilience import Middleware, Proceed, SourceCall, chain
from connectors.resilience.breaker import CircuitBreaker
from connectors.resilience.bulkhead import Bulkhead
from connectors.resilience.deadline import MIN_ATTEMPT_S, DeadlineGuard
from connectors.resilience.metrics import Metrics, record_breaker
from connectors.resilience.ratelimit import RateLimit
from connectors.resilience.retry import Retry
from mappings.engine import Mapping, load_mapping

log = logging.getLogger(__name__)


def _retrieved(future: asyncio.Future[NativeRecord]) -> None:
    """A shared call's failure is raised to each query that waited for it; none may have."""
    if not future.cancelled():
        future.exception()


def build_chain(
    source: str, settings: SourceSettings, adapter: Adapter
) -> tuple[Proceed, CircuitBreaker]:
    """The middleware around one source's adapter calls, outermost first, and its breaker."""
    breaker = CircuitBreaker(
        source,
        failures=settings.breaker_failures,
        reset_s=settings.breaker_reset_s,
        on_change=lambda state: record_breaker(source, state),
    )
    record_breaker(source, "closed")
    middlewares: list[Middleware] = [
        Metrics(source),
        Retry(settings.retries, settings.retry_backoff_s),
        breaker,
    ]
    if settings.rate_limit_per_s is not None:
        middlewares.append(RateLimit(source, settings.rate_limit_per_s, settings.rate_burst))
    middlewares.append(DeadlineGuard(settings.timeout_s))

    def fetch(call: SourceCall) -> NativeRecord:
        return adapter.fetch(
            call.dataset,
            call.subject,
            timeout=call.timeout,
            request_id=call.request_id,
            requester_agency=call.requester_agency,
        )

    return chain(middlewares, fetch), breaker


class LookupConnector:
    def __init__(
        self, source: str, settings: SourceSettings, adapter: Adapter, outbox: Outbox
    ) -> None:
        self.source = source
        self.settings = settings
        self.adapter = adapter
        self._outbox = outbox
        self._pool = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix=f"source-{source}"
        )
        self._mappings: dict[str, Mapping] = {
            f"{source}.{dataset.name}": load_mapping(dataset.mapping)
            for dataset in adapter.datasets
        }
        self.name = f"lookup-connector-{source}"
        self._call, self.breaker = build_chain(source, settings, adapter)
        self.bulkhead = Bulkhead(source, settings.concurrency, settings.max_waiting)
        self._calls = {
            f"{source}.{dataset.name}": dataset.call for dataset in adapter.datasets if dataset.call
        }
        # (request id, subject, native call) -> the record of the call being made.
        self._shared: dict[tuple[str, str, str], asyncio.Future[NativeRecord]] = {}

    def subscriber(self, outbox: Outbox) -> Subscriber:
        """The connector's consumer on the fan-out path: queries from the router, results to
        the aggregator. (A single-source lookup skips this: the router calls `answer`.)"""

        async def on_query(query: SourceQuery, record: Inbound) -> None:
            result = await self.answer(query)
            try:
                await outbox.send(topics.SOURCE_RESULT, result, key=query.request_id)
            except Exception as exc:  # the lookup then ends at its deadline; keep the query
                log.error("%s: result of %s not sent: %r", self.name, query.request_id, exc)
                await outbox.dead_letter(record, self.name, f"result not sent: {exc!r:.200}")

        return Subscriber(
            name=self.name,
            topic=topics.source_request(self.source),
            routes=(Route(SourceQuery, on_query),),
            description=f"Queries for the {self.source} database, from the router's fan-out.",
            publishes=(
                Publication(
                    topics.SOURCE_RESULT, SourceResult, "request id", "One query's outcome."
                ),
            ),
            concurrency=self.settings.concurrency,
        )

    async def start(self) -> None:
        """Nothing to start: the adapter connects on first use."""

    async def stop(self) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.adapter.close()

    async def answer(self, query: SourceQuery) -> SourceResult:
        """Ask the source and turn whatever happens into a SourceResult."""
        started = time.monotonic()
        try:
            if query.dataset not in self._mappings:
                raise MappingError("dataset", query.dataset, f"one of {sorted(self._mappings)}")
            deadline = Deadline.of(query.deadline)
            budget = deadline.budget()
            if budget < MIN_ATTEMPT_S:
                raise SourceTimeout(self.source, "no time left before the deadline")
            record = await self._record(query, deadline, budget)
            data, withheld = self._normalize(query, record)
            return self._found(query, record, data, withheld, time.monotonic() - started)
        except SourceNotFound as exc:
            return self._error(query, "not_found", exc.code, exc.detail, retryable=False)
        except SourceError as exc:
            return self._error(query, "error", exc.code, exc.detail, retryable=exc.retryable)
        except MappingError as exc:
            # The native value may be personal data: name the field and the rule, never the value.
            reason = f"{exc.path}: expected {exc.expected}"
            log.warning("%s: mapping failed, request %s: %s", self.name, query.request_id, reason)
            return self._error(query, "error", "mapping_error", reason, retryable=False)
        except Exception as exc:  # a bug must still end in an answer, not silence
            # Where, not what: an exception's text may quote personal data.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "%s: unexpected %s at %s:%s for request %s",
                self.name,
                type(exc).__name__,
                frame.filename,
                frame.lineno,
                query.request_id,
            )
            return self._error(
                query, "error", "internal_error", type(exc).__name__, retryable=False
            )

    async def _record(self, query: SourceQuery, deadline: Deadline, budget: float) -> NativeRecord:
        """The native record for `query`: from a call of its own, or from the same call
        another query of the request is making (see the module doc)."""
        call_name = self._calls.get(query.dataset)
        if call_name is None:
            return await self._fetch(query, deadline, budget)
        key = (query.request_id, query.subject.key, call_name)
        pending = self._shared.get(key)
        if pending is not None:
            try:
                record = await asyncio.wait_for(asyncio.shield(pending), budget)
            except TimeoutError:
                raise SourceTimeout(self.source, "no answer before the deadline") from None
            name = query.dataset.split(".", 1)[1]
            return NativeRecord(record.source, name, record.data, record.record_time)
        pending = self._shared[key] = asyncio.get_running_loop().create_future()
        pending.add_done_callback(_retrieved)
        try:
            record = await self._fetch(query, deadline, budget)
        except Exception as exc:
            pending.set_exception(exc)
            raise
        except BaseException:  # cancelled: the queries waiting for it still get an answer
            pending.set_exception(SourceTimeout(self.source, "the shared call was cancelled"))
            raise
        else:
            pending.set_result(record)
        finally:
            del self._shared[key]
        return record

    async def _fetch(self, query: SourceQuery, deadline: Deadline, budget: float) -> NativeRecord:
        self.bulkhead.enter()
        try:
            loop = asyncio.get_running_loop()
            call = SourceCall(
                self.source,
                query.dataset.split(".", 1)[1],
                query.subject,
                deadline,
                query.request_id,
                query.requester_agency,
            )
            pending = loop.run_in_executor(self._pool, self._call, call)
            # The adapter's socket timeouts are per read, so a trickling answer could outlast
            # the deadline; the result goes out just before it whatever the thread does.
            try:
                return await asyncio.wait_for(pending, budget)
            except TimeoutError:
                raise SourceTimeout(self.source, "no answer before the deadline") from None
        finally:
            self.bulkhead.leave()

    def _found(
        self,
        query: SourceQuery,
        record: NativeRecord,
        data: dict[str, Any],
        withheld: list[WithheldField],
        elapsed: float,
    ) -> SourceResult:
        provenance = Provenance(
            source=self.source,
            source_record_time=record.record_time,
            fetched_at=datetime.now(UTC),
            latency_ms=round(elapsed * 1000, 3),
        )
        return SourceResult(
            correlation_id=query.request_id,
            request_id=query.request_id,
            producer=self._outbox.producer_name,
            dataset=query.dataset,
            outcome="found",
            result=DatasetResult(
                dataset=query.dataset, data=data, provenance=provenance, withheld=withheld
            ),
            traceparent=query.traceparent,
            tracestate=query.tracestate,
        )

    def _normalize(
        self, query: SourceQuery, record: NativeRecord
    ) -> tuple[dict[str, Any], list[WithheldField]]:
        """The normalized record, less the fields policy did not grant (listed as withheld:
        every field not granted, whether or not this record has it, so that the list itself
        tells nothing about the person)."""
        model = self._mappings[query.dataset].apply(record.data)
        data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
        if query.fields is None:
            return data, []
        granted = query.fields
        data = {key: value for key, value in data.items() if key in granted}
        reason = (
            f"not granted to agency {query.requester_agency!r} for procedure "
            f"{query.procedure_code!r}"
        )
        withheld = [
            WithheldField(field=name, reason=reason)
            for name in type(model).model_fields
            if name not in granted
        ]
        return data, withheld

    def _error(
        self, query: SourceQuery, outcome: str, code: str, message: str, *, retryable: bool
    ) -> SourceResult:
        return SourceResult(
            correlation_id=query.request_id,
            request_id=query.request_id,
            producer=self._outbox.producer_name,
            dataset=query.dataset,
            outcome="not_found" if outcome == "not_found" else "error",
            error=DatasetError(
                dataset=query.dataset,
                source=self.source,
                code=code,
                message=message,
                retryable=retryable,
            ),
            traceparent=query.traceparent,
            tracestate=query.tracestate,
        )
