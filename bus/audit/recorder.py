"""The audit recorder: every decision, release and refused authentication as an event on
`tthc.audit`, acknowledged by the broker (acks=all) before the reply goes out.

A lookup's events are keyed by its request id. A lookup answered by the router sends its
decision and its release together once the answer is known (`emit_together`: one partition, one
ledger chain, in order); a fanned-out one sends its decision before any query goes out and the
aggregator its release. The reply waits for the broker's acknowledgement. If an event cannot be
written in time, no data leaves: the caller replies `failed` with `audit_unavailable`
(`AUDIT_UNAVAILABLE`).
An event whose send timed out may still reach the broker later: the ledger can then record a
release that did not happen, never miss one that did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from bus import topics
from bus.audit.pseudonym import Pseudonymizer
from bus.catalog import SubjectKind
from bus.deadline import Deadline
from bus.outbox import Outbox
from bus.schemas import DatasetError, DatasetResult, LookupRequest
from bus.schemas.audit import AuditedDataset, AuditEvent, AuditOutcome, Channel, audit_event_id
from bus.schemas.lookup import AuditContext
from bus.settings import ALL_FIELDS

log = logging.getLogger(__name__)

AUDIT_UNAVAILABLE = "audit_unavailable"

Pending = asyncio.Future[None] | None
# How long `emit_together` keeps sending to one partition before it moves to the next.
STICKY_S = 0.05


class AuditRecorder:
    def __init__(
        self,
        outbox: Outbox | None,
        pseudonymize: Pseudonymizer,
        *,
        enabled: bool = True,
        timeout_s: float = 2.0,
        partitions: int | None = None,
    ) -> None:
        self._outbox = outbox
        self._pseudonymize = pseudonymize
        self.enabled = enabled and outbox is not None
        self._timeout_s = timeout_s
        # tthc.audit's partition count: `emit_together` then picks the partition itself.
        self._partitions = partitions
        self.failures = 0

    # -- building events ----------------------------------------------------------------------

    def context(self, request: LookupRequest, channel: Channel, key_id: str | None) -> AuditContext:
        subject = request.subject
        kind: SubjectKind = "personal_id" if subject.personal_id is not None else "enterprise_code"
        return AuditContext(
            channel=channel,
            agency=request.requester.agency_code,
            key_id=key_id,
            system=request.requester.system,
            officer=request.requester.officer,
            procedure_code=request.procedure_code,
            dossier_id=request.dossier_id,
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            subject=self._pseudonymize(subject.key),
            subject_kind=kind,
        )

    def pseudonym(self, subject_id: str) -> str:
        return self._pseudonymize(subject_id)

    def decision(
        self,
        context: AuditContext,
        request_id: str,
        granted: dict[str, list[str] | None],
        refused: Sequence[DatasetError],
        sources: dict[str, str],
    ) -> AuditEvent:
        datasets = [
            AuditedDataset(
                dataset=dataset,
                source=sources.get(dataset, dataset.split(".", 1)[0]),
                outcome="granted",
                fields=[ALL_FIELDS] if fields is None else list(fields),
            )
            for dataset, fields in granted.items()
        ]
        datasets += [refusal_of(error) for error in refused]
        outcome: AuditOutcome = "accepted" if granted else "denied"
        reason = None if granted else "; ".join(error.message for error in refused)[:2000]
        return self._event(context, request_id, "decision", outcome, datasets, reason)

    def release(
        self,
        context: AuditContext,
        request_id: str,
        results: Iterable[DatasetResult],
        errors: Iterable[DatasetError],
    ) -> AuditEvent:
        datasets = [
            AuditedDataset(
                dataset=result.dataset,
                source=result.provenance.source,
                outcome="found",
                fields=sorted(result.data),
                withheld=[withheld.field for withheld in result.withheld],
                latency_ms=result.provenance.latency_ms,
            )
            for result in results
        ]
        released = bool(datasets)
        datasets += [refusal_of(error) for error in errors]
        outcome: AuditOutcome = "released" if released else "withheld"
        return self._event(context, request_id, "release", outcome, datasets, None)

    def authentication(
        self,
        *,
        channel: Channel,
        outcome: AuditOutcome,
        reason: str,
        request_id: str | None = None,
        agency: str | None = None,
        key_id: str | None = None,
        request: LookupRequest | None = None,
    ) -> AuditEvent:
        """A refused authentication (401) or a key used beyond its role (403)."""
        fields: dict[str, object] = {}
        if request is not None:
            subject = request.subject
            fields = {
                "system": request.requester.system,
                "officer": request.requester.officer,
                "procedure_code": request.procedure_code,
                "dossier_id": request.dossier_id,
                "purpose": request.purpose,
                "legal_basis": request.legal_basis,
                "subject": self._pseudonymize(subject.key),
                "subject_kind": "personal_id" if subject.personal_id else "enterprise_code",
            }
        event_id = None if request_id is None else audit_event_id(request_id, "authentication")
        return AuditEvent(
            **({"message_id": event_id} if event_id else {}),
            correlation_id=request_id,
            kind="authentication",
            outcome=outcome,
            channel=channel,
            request_id=request_id,
            agency=agency,
            key_id=key_id,
            reason=reason[:2000],
            **fields,
        )

    def _event(
        self,
        context: AuditContext,
        request_id: str,
        kind: str,
        outcome: AuditOutcome,
        datasets: list[AuditedDataset],
        reason: str | None,
    ) -> AuditEvent:
        return AuditEvent(
            message_id=audit_event_id(request_id, "decision" if kind == "decision" else "release"),
            correlation_id=request_id,
            producer=self._outbox.producer_name if self._outbox else "",
            kind="decision" if kind == "decision" else "release",
            outcome=outcome,
            channel=context.channel,
            request_id=request_id,
            agency=context.agency,
            key_id=context.key_id,
            system=context.system,
            officer=context.officer,
            procedure_code=context.procedure_code,
            dossier_id=context.dossier_id,
            purpose=context.purpose,
            legal_basis=context.legal_basis,
            subject=context.subject,
            subject_kind=context.subject_kind,
            datasets=datasets,
            reason=reason,
        )

    # -- sending ------------------------------------------------------------------------------

    def emit(self, event: AuditEvent) -> Pending:
        """Start sending an event; `settle` waits for the broker's acknowledgement."""
        if not self.enabled or self._outbox is None:
            return None
        key = event.request_id or event.message_id
        return self._outbox.send_soon(topics.AUDIT, event, key=key)

    def emit_together(self, events: Sequence[AuditEvent]) -> list[Pending]:
        """Start sending a lookup's events, in this order, to one partition.

        The partition is the same for every lookup of a `STICKY_S` slice of time, as Kafka's
        sticky partitioner does for unkeyed records: concurrent lookups' events travel in one
        batch to one partition instead of one small batch per partition their request ids
        would hash to, which cost the broker a visible share of a lookup's CPU. The events
        stay keyed by request id; each partition is a ledger chain all the same.
        """
        if not self.enabled or self._outbox is None:
            return [None for _ in events]
        partition = None
        if self._partitions:
            partition = int(time.monotonic() / STICKY_S) % self._partitions
        return [
            self._outbox.send_soon(
                topics.AUDIT, event, key=event.request_id or event.message_id, partition=partition
            )
            for event in events
        ]

    async def settle(self, pending: Sequence[Pending], deadline: Deadline | None) -> str | None:
        """Wait for the events to be acknowledged: None, or why they could not be written."""
        waiting = [future for future in pending if future is not None]
        if not waiting:
            return None
        timeout = self._timeout_s
        if deadline is not None:
            # Up to the deadline itself: the requester waits until then, and the answer was
            # made to go out a margin before it (a write takes a few ms of that margin).
            timeout = min(timeout, deadline.remaining())
        # asyncio.wait, not wait_for(gather()): no task and no gathering future per lookup.
        done, late = await asyncio.wait(waiting, timeout=timeout) if timeout > 0 else ((), waiting)
        for future in late:
            future.cancel()
        for future in done:
            if not future.cancelled() and (exc := future.exception()) is not None:
                return self._failed(f"the audit event was refused: {type(exc).__name__}: {exc}")
        if late:
            return self._failed("the broker did not acknowledge the audit event in time")
        return None

    async def record(self, event: AuditEvent, deadline: Deadline | None = None) -> str | None:
        """Send one event and wait for it (see `settle`)."""
        return await self.settle([self.emit(event)], deadline)

    def _failed(self, reason: str) -> str:
        self.failures += 1
        log.error("audit: %s", reason[:300])
        return reason


def refusal_of(error: DatasetError) -> AuditedDataset:
    return AuditedDataset(
        dataset=error.dataset, source=error.source, outcome=error.code, fields=[], withheld=[]
    )


def without_data(
    results: Sequence[DatasetResult], errors: Sequence[DatasetError], reason: str
) -> list[DatasetError]:
    """The errors of a reply whose release could not be recorded: one per dataset, no data."""
    datasets = [r.dataset for r in results] + [e.dataset for e in errors]
    return [audit_failure(dataset, reason) for dataset in datasets]


def audit_failure(dataset: str, reason: str) -> DatasetError:
    """The error a reply carries when its audit event could not be written: no data leaves."""
    return DatasetError(
        dataset=dataset,
        source="bus",
        code=AUDIT_UNAVAILABLE,
        message=f"no data released: the access could not be recorded in the audit trail ({reason})",
        retryable=True,
    )
