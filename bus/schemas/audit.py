"""Audit events: what `tthc.audit` carries, one per decision, release or refused authentication.

An event keeps metadata, never the data released: who asked (agency, system, officer), for what
(procedure, dossier, purpose, legal basis), about whom (the subject's pseudonym, a keyed hash,
never the raw id) and what left the bus (which fields of which dataset, and which were withheld).
Its `message_id` is derived from the request (`<request id>.<kind>`), so that an event sent twice
(a worker's successor after a crash) is stored once by the ledger.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from bus.schemas.common import Model
from bus.schemas.envelope import Envelope

AuditKind = Literal["decision", "release", "authentication"]
AuditOutcome = Literal[
    "accepted",  # decision: at least one dataset granted
    "denied",  # decision: nothing granted (or the purpose, the procedure, the agency refused)
    "released",  # release: data left the bus
    "withheld",  # release: nothing left (every dataset failed, not found, or audit refused)
    "unauthenticated",  # authentication: no valid key or signature (401)
    "forbidden",  # authentication: a valid key used for what its role does not allow
]
Channel = Literal["http", "kafka"]


class AuditedDataset(Model):
    dataset: str
    source: str
    outcome: str = Field(
        description="granted, or the refusal's code (decision); found, not_found or the error "
        "code (release)."
    )
    fields: list[str] = Field(
        default_factory=list, description="Fields granted (decision) or released (release)."
    )
    withheld: list[str] = Field(
        default_factory=list, description="Fields of the record removed by policy."
    )
    latency_ms: float | None = Field(
        default=None,
        ge=0,
        description="Release of a found dataset: how long its source took (the service-quality "
        "report's figure, `tthc-bus report sla`). Left out when there is none.",
    )

    @model_serializer(mode="wrap")
    def _without_empty_latency(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A decision or a failed dataset has no latency: its record keeps the shape it had.
        dumped: dict[str, Any] = handler(self)
        if dumped.get("latency_ms") is None:
            dumped.pop("latency_ms", None)
        return dumped


class AuditEvent(Envelope):
    type: Literal["audit.event"] = "audit.event"
    kind: AuditKind
    outcome: AuditOutcome
    channel: Channel
    request_id: str | None = Field(default=None, description="The lookup's request id.")
    agency: str | None = Field(default=None, description="None when nobody was authenticated.")
    key_id: str | None = Field(default=None, description="The API key used, by its public id.")
    system: str | None = None
    officer: str | None = None
    procedure_code: str | None = None
    dossier_id: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    subject: str | None = Field(
        default=None,
        description="The subject's pseudonym: HMAC-SHA256 of its id under audit.pseudonym_key, "
        "hex. The raw id is never in an audit event.",
    )
    subject_kind: Literal["personal_id", "enterprise_code"] | None = None
    datasets: list[AuditedDataset] = Field(default_factory=list)
    reason: str | None = Field(default=None, description="Why, for a refusal.")


def audit_event_id(request_id: str, kind: AuditKind) -> str:
    """The event id of a lookup's decision or release: the same each time it is sent."""
    return f"{request_id}.{kind}"
