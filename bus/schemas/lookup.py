"""Lookup messages: the request a TTHC system sends, the reply it gets, and the internal messages
between router, lookup connectors and aggregator.

A dataset is named `<source>.<dataset>`, e.g. `population.identity`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import Field, GetJsonSchemaHandler, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from bus.identifiers import check_enterprise_code, check_personal_id
from bus.schemas.common import Model, NFCStr
from bus.schemas.envelope import Envelope
from bus.topics import REPLY_PARTITIONS

DATASET_PATTERN = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
LookupStatus = Literal["complete", "partial", "not_found", "denied", "failed"]
SubjectKind = Literal["personal_id", "enterprise_code"]  # the field of Subject a dataset takes


def check_dataset_names(value: list[str]) -> list[str]:
    for name in value:
        if not DATASET_PATTERN.fullmatch(name):
            raise ValueError(f"dataset {name!r} must look like 'source.dataset'")
    if len(set(value)) != len(value):
        raise ValueError("datasets must not repeat")
    return value


def dataset_names_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema of what `check_dataset_names` accepts (a field's `json_schema_extra`)."""
    schema["items"] = {"type": "string", "pattern": DATASET_PATTERN.pattern}
    schema["uniqueItems"] = True


class Requester(Model):
    agency_code: str = Field(min_length=1, max_length=64, description="Requesting agency code.")
    system: str = Field(min_length=1, max_length=128, description="Requesting system.")
    officer: NFCStr = Field(min_length=1, max_length=128, description="Officer handling it.")


# The forms `check_personal_id` and `check_enterprise_code` accept, for the JSON Schema; the MST
# check digit is a sum modulo 11, beyond a pattern, and is named by the format `mst`.
PERSONAL_ID_FORM: dict[str, Any] = {"type": "string", "pattern": "^[0-9]{12}$"}
ENTERPRISE_CODE_FORM: dict[str, Any] = {
    "type": "string",
    "pattern": "^[0-9]{10}(-(00[1-9]|0[1-9][0-9]|[1-9][0-9]{2}))?$",
    "format": "mst",
}


class Subject(Model):
    """Whose data is asked for: exactly one of a personal id or an enterprise code."""

    personal_id: str | None = Field(
        default=None,
        description="Personal id (số định danh cá nhân, on the CCCD card): exactly 12 digits. "
        "Digit 4 encodes century and sex and digits 5-6 the year of birth, but a request carries "
        "no birth data to check them against: a well-formed id nobody has is `not_found`.",
    )
    enterprise_code: str | None = Field(
        default=None,
        description="Enterprise code (mã số doanh nghiệp, the tax code MST): 10 digits, of which "
        "the 10th is the check digit 10 - (d1*31 + d2*29 + d3*23 + d4*19 + d5*17 + d6*13 + d7*7 "
        "+ d8*5 + d9*3) mod 11 (a remainder of 0 is never issued), then for a branch -001..-999. "
        "A code that fails the check digit is a 400.",
    )

    @field_validator("personal_id")
    @classmethod
    def _personal_id(cls, value: str | None) -> str | None:
        return None if value is None else check_personal_id(value)

    @field_validator("enterprise_code")
    @classmethod
    def _enterprise_code(cls, value: str | None) -> str | None:
        return None if value is None else check_enterprise_code(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.personal_id is None) == (self.enterprise_code is None):
            raise ValueError("give exactly one of personal_id or enterprise_code")
        return self

    @property
    def key(self) -> str:
        return self.personal_id or self.enterprise_code or ""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler, /
    ) -> JsonSchemaValue:
        """The identifiers' forms, and `oneOf`: exactly one of them is a string (null = absent)."""
        json_schema = handler(core_schema)
        schema = handler.resolve_ref_schema(json_schema)
        forms = {"personal_id": PERSONAL_ID_FORM, "enterprise_code": ENTERPRISE_CODE_FORM}
        for name, form in forms.items():
            for option in schema["properties"][name]["anyOf"]:
                if option.get("type") == "string":
                    option.update(form)
        schema["oneOf"] = [
            {"required": [name], "properties": {name: {"type": "string"}}} for name in forms
        ]
        return json_schema


REPLY_TOPIC_PATTERN = r"^tthc\.lookup\.reply(\.[A-Za-z0-9][A-Za-z0-9.-]{0,63})?$"


class ReplyTo(Model):
    """Where the reply goes: a partition of the bus's shared reply topic (gateways), or of the
    requesting agency's own `tthc.lookup.reply.<agency>` (Kafka-native agencies), never an
    arbitrary topic: a reply carries personal data. The worker checks that the topic is the one
    the signed requester may read (bus/router.py)."""

    topic: str = Field(default="tthc.lookup.reply", pattern=REPLY_TOPIC_PATTERN)
    partition: int = Field(ge=0, lt=REPLY_PARTITIONS)


class LookupRequest(Envelope):
    """A request for data the state already holds about a subject (the once-only principle)."""

    type: Literal["lookup.request"] = "lookup.request"
    requester: Requester
    procedure_code: str = Field(
        min_length=1, max_length=64, description="TTHC procedure code (mã thủ tục hành chính)."
    )
    dossier_id: str = Field(min_length=1, max_length=128, description="Dossier (hồ sơ) id.")
    purpose: NFCStr = Field(min_length=1, max_length=1000)
    legal_basis: NFCStr = Field(min_length=1, max_length=1000)
    subject: Subject
    datasets: list[str] = Field(min_length=1, max_length=16, json_schema_extra=dataset_names_schema)
    deadline: datetime = Field(description="Absolute time by which a reply must be sent.")
    reply_to: ReplyTo | None = None

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: list[str]) -> list[str]:
        return check_dataset_names(value)

    @field_validator("deadline")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("deadline must carry a time zone (e.g. 2026-01-01T10:00:00Z)")
        return value


class Provenance(Model):
    source: str
    source_record_time: datetime | None = None
    fetched_at: datetime
    latency_ms: float


class WithheldField(Model):
    field: str
    reason: str


class DatasetResult(Model):
    dataset: str
    data: dict[str, Any]
    provenance: Provenance
    withheld: list[WithheldField] = Field(
        default_factory=list,
        description="Fields of the dataset removed by policy before the reply left the bus, "
        "each with why (whether or not the record had a value for it).",
    )


class DatasetError(Model):
    dataset: str
    source: str
    code: str
    message: str
    retryable: bool


class LookupResponse(Envelope):
    type: Literal["lookup.response"] = "lookup.response"
    request_id: str
    status: LookupStatus
    results: list[DatasetResult] = Field(default_factory=list)
    errors: list[DatasetError] = Field(default_factory=list)
    retry_after_ms: int | None = Field(
        default=None, description="With an `overloaded` error: when asking again may succeed."
    )


class SourceQuery(Envelope):
    """Router -> lookup connector: ask one source for one dataset."""

    type: Literal["source.query"] = "source.query"
    request_id: str
    dataset: str
    subject: Subject
    deadline: datetime
    requester_agency: str
    procedure_code: str | None = None
    fields: list[str] | None = Field(
        default=None, description="Fields granted by policy; None means all of the dataset."
    )


class SourceResult(Envelope):
    """Lookup connector -> aggregator: the outcome of one SourceQuery."""

    type: Literal["source.result"] = "source.result"
    request_id: str
    dataset: str
    outcome: Literal["found", "not_found", "error"]
    result: DatasetResult | None = None
    error: DatasetError | None = None

    @model_validator(mode="after")
    def _outcome_has_its_body(self) -> Self:
        if self.outcome == "found" and self.result is None:
            raise ValueError("outcome 'found' needs a result")
        if self.outcome != "found" and self.error is None:
            raise ValueError(f"outcome {self.outcome!r} needs an error")
        return self


class AuditContext(Model):
    """What the release event of a fanned-out lookup needs to know of its request (no raw id)."""

    channel: Literal["http", "kafka"]
    agency: str
    key_id: str | None
    system: str
    officer: str
    procedure_code: str
    dossier_id: str
    purpose: str
    legal_basis: str
    subject: str
    subject_kind: Literal["personal_id", "enterprise_code"]


class LookupPlan(Envelope):
    """Router -> aggregator: a lookup has been fanned out; wait for these datasets."""

    type: Literal["lookup.plan"] = "lookup.plan"
    request_id: str
    datasets: list[str]
    deadline: datetime
    reply_to: ReplyTo | None
    errors: list[DatasetError] = Field(
        default_factory=list, description="Datasets refused before fan-out (unknown, not granted)."
    )
    audit: AuditContext | None = Field(
        default=None, description="Who asked, for what: for the release event the reply needs."
    )


class LookupExpiry(Envelope):
    """Aggregator timer -> aggregator: the deadline of a pending lookup has passed.

    Sent through the topic (not handled in the timer) because faust tables may only be changed
    while processing a message of their partition.
    """

    type: Literal["lookup.expiry"] = "lookup.expiry"
    request_id: str
