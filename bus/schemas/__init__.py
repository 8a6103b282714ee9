"""Message schemas v1 (pydantic v2, JSON on the wire)."""

from bus.schemas.citizen import Address, Citizen, CodedValue, OriginalUnit, PartialDate, Relative
from bus.schemas.envelope import Envelope, new_message_id
from bus.schemas.lookup import (
    DatasetError,
    DatasetResult,
    LookupExpiry,
    LookupPlan,
    LookupRequest,
    LookupResponse,
    LookupStatus,
    Provenance,
    ReplyTo,
    Requester,
    SourceQuery,
    SourceResult,
    Subject,
)

__all__ = [
    "Address",
    "Citizen",
    "CodedValue",
    "DatasetError",
    "DatasetResult",
    "Envelope",
    "LookupExpiry",
    "LookupPlan",
    "LookupRequest",
    "LookupResponse",
    "LookupStatus",
    "OriginalUnit",
    "PartialDate",
    "Provenance",
    "Relative",
    "ReplyTo",
    "Requester",
    "SourceQuery",
    "SourceResult",
    "Subject",
    "new_message_id",
]
