"""Discovery: what the bus serves, and what a calling agency may ask of it (X-Road's
listMethods and allowedMethods). The same answers come over HTTP (`GET /v1/datasets`,
`GET /v1/datasets/allowed`), from the shell (`tthc-bus datasets`) and over Kafka: a
`discovery.request` on `tthc.lookup.request`, signed like a lookup, answered by a
`discovery.response` on the requester's reply partition.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bus.schemas.common import Model
from bus.schemas.envelope import Envelope
from bus.schemas.lookup import ReplyTo, Requester, SubjectKind


class FieldDescription(Model):
    name: str
    type: str = Field(
        description="The field's JSON type: string, integer, number, boolean, object, array; "
        "with its format or item type where it has one (`string (date)`, `array of object`)."
    )
    required: bool = Field(description="Whether every record has it (else it may be null).")
    description: str | None = None


class DatasetDescription(Model):
    name: str = Field(description="`<source>.<dataset>`, as a lookup names it.")
    source: str = Field(description="The national database that answers it.")
    subject: SubjectKind = Field(
        description="The subject it is asked by: `subject.personal_id` (12 digits) or "
        "`subject.enterprise_code` (10 digits, or 10-NNN for a branch)."
    )
    description: str = ""
    fields: list[FieldDescription]
    procedures: list[str] = Field(
        description="The TTHC procedures (GET /v1/procedures) that list it among the datasets "
        "they need."
    )


class AllowedProcedure(Model):
    code: str = Field(description="TTHC procedure code.")
    name: str = Field(description="The procedure's official name.")
    purposes: list[str] = Field(description="The purposes a request for it may state.")
    fields: list[str] | None = Field(
        description="The fields granted; null: every field of the dataset."
    )


class AllowedDataset(Model):
    dataset: str
    source: str
    subject: SubjectKind
    procedures: list[AllowedProcedure] = Field(
        description="The procedures for which the agency may ask for it."
    )


class AllowedDatasets(Model):
    agency: str = Field(description="The calling agency (the API key's or the signature's).")
    datasets: list[AllowedDataset]


DiscoveryQuestion = Literal["datasets", "allowed"]


class DiscoveryRequest(Envelope):
    """A Kafka-native client asks what the bus serves (`datasets`) or what its agency may ask
    for (`allowed`). Signed like a lookup request; no personal data in either direction."""

    type: Literal["discovery.request"] = "discovery.request"
    requester: Requester
    question: DiscoveryQuestion
    reply_to: ReplyTo


class DiscoveryResponse(Envelope):
    type: Literal["discovery.response"] = "discovery.response"
    request_id: str
    question: DiscoveryQuestion
    datasets: list[DatasetDescription] | None = Field(
        default=None, description="For `datasets`: every dataset the bus serves."
    )
    allowed: AllowedDatasets | None = Field(
        default=None, description="For `allowed`: what the signed agency may ask for."
    )
    error: str | None = Field(
        default=None, description="Why the question was not answered (an unsigned request...)."
    )
