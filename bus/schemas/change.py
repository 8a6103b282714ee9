"""Change events: what the sync streams carry, `tthc.sync.<source>.change`, keyed by entity id.

A national database records a change (a birth, a death, a licence revoked); its sync source
connector reads it from the database's change feed, in the database's own format, and the
change's mapping makes one normalized `ChangeEvent` of it. The event's `message_id` is derived
from the source's own sequence number (`change_event_id`), so a feed read twice (a connector
restarted before its cursor was committed) gives the same ids, and every subscriber's
idempotency key drops the repeat.

`entity` is what the change is about: a personal id (a citizen), an enterprise code or a licence
number. It is the Kafka key, so that the changes of one entity stay in order in one partition,
and each subscriber gets them in that order.

The `data` of each type is its own model (`CHANGE_DATA`); the names are the bus's normalized
names, never a source's native ones.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from bus.schemas.common import Model, NFCStr
from bus.schemas.envelope import Envelope

ChangeType = Literal[
    "CitizenBorn",
    "CitizenDeceased",
    "CitizenRegistered",
    "ResidenceChanged",
    "MarriageRegistered",
    "DivorceRegistered",
    "EnterpriseStatusChanged",
    "LicenceIssued",
    "LicenceSuspended",
    "LicenceRevoked",
    "InsuranceParticipationChanged",
    "HealthCardIssued",
    "FuneralAllowanceCaseOpened",
]
EntityKind = Literal[
    "personal_id",
    "enterprise_code",
    "licence_number",
    "insurance_number",
    "birth_registration",  # a newborn before population gives it a personal id
]
CHANGE_TYPES: tuple[str, ...] = ChangeType.__args__  # type: ignore[attr-defined]


# -- the data of each change type -------------------------------------------------------------


class CitizenBornData(Model):
    """A birth registered in civil status (đăng ký khai sinh): the child has no personal id yet
    when the civil-status register records it; population assigns one (CitizenRegistered)."""

    birth_registration_id: str = Field(description="The civil-status register's record number.")
    full_name: NFCStr
    sex: Literal["male", "female"]
    birth_date: date
    birth_place_commune: str | None = Field(default=None, description="Commune code (2025).")
    father_personal_id: str | None = None
    mother_personal_id: str | None = None
    registered_on: date
    registry_office: NFCStr | None = None


class CitizenDeceasedData(Model):
    """A death registered in civil status (đăng ký khai tử)."""

    death_registration_id: str
    date_of_death: date
    place_of_death: NFCStr | None = None
    registered_on: date
    registry_office: NFCStr | None = None


class CitizenRegisteredData(Model):
    """A citizen newly recorded in the population database, with the personal id it assigned
    (after a birth, from the civil-status register's birth registration)."""

    personal_id: str
    full_name: NFCStr
    sex: Literal["male", "female"]
    birth_date: date
    birth_registration_id: str | None = None
    permanent_residence_commune: str | None = None


class ResidenceChangedData(Model):
    """Permanent or current residence registered, moved or removed (xóa đăng ký thường trú)."""

    kind: Literal["permanent", "current"]
    action: Literal["registered", "moved", "removed"]
    commune: str | None = Field(default=None, description="Commune code (2025); None: removed.")
    detail: NFCStr | None = None
    reason: NFCStr | None = None
    effective_on: date


class MarriageRegisteredData(Model):
    marriage_registration_id: str
    spouse_personal_id: str
    registered_on: date
    registry_office: NFCStr | None = None


class DivorceRegisteredData(Model):
    spouse_personal_id: str
    decision: NFCStr | None = Field(default=None, description="The court decision's reference.")
    effective_on: date


class EnterpriseStatusChangedData(Model):
    previous_status: str | None = Field(
        default=None, description="Legal status code (mappings/codes/enterprise-status.toml)."
    )
    status: str
    effective_on: date


class LicenceData(Model):
    """A driver licence issued, suspended or revoked (giấy phép lái xe)."""

    licence_number: str
    holder_personal_id: str
    licence_class: str | None = Field(default=None, description="A1, B, C1 ... (2024 law).")
    effective_on: date
    until: date | None = Field(default=None, description="End of a suspension; expiry if issued.")
    reason: NFCStr | None = None


class InsuranceParticipationChangedData(Model):
    insurance_number: str = Field(description="Mã số BHXH, 10 digits.")
    action: Literal["started", "stopped"]
    scheme: str | None = Field(default=None, description="compulsory, voluntary ...")
    employer_code: str | None = None
    effective_on: date
    reason: NFCStr | None = None


class HealthCardIssuedData(Model):
    card_number: str = Field(description="Thẻ BHYT, 15 characters.")
    valid_from: date
    valid_to: date | None = None
    beneficiary_group: str | None = Field(default=None, description="TE for a child under 6.")


class FuneralAllowanceCaseOpenedData(Model):
    case_id: str
    insurance_number: str | None = None
    date_of_death: date
    opened_on: date


CHANGE_DATA: dict[str, type[Model]] = {
    "CitizenBorn": CitizenBornData,
    "CitizenDeceased": CitizenDeceasedData,
    "CitizenRegistered": CitizenRegisteredData,
    "ResidenceChanged": ResidenceChangedData,
    "MarriageRegistered": MarriageRegisteredData,
    "DivorceRegistered": DivorceRegisteredData,
    "EnterpriseStatusChanged": EnterpriseStatusChangedData,
    "LicenceIssued": LicenceData,
    "LicenceSuspended": LicenceData,
    "LicenceRevoked": LicenceData,
    "InsuranceParticipationChanged": InsuranceParticipationChangedData,
    "HealthCardIssued": HealthCardIssuedData,
    "FuneralAllowanceCaseOpened": FuneralAllowanceCaseOpenedData,
}


class ChangeEvent(Envelope):
    """One change recorded by a national database, normalized."""

    type: Literal["sync.change"] = "sync.change"
    source: str = Field(description="The national database that recorded it, e.g. 'civil'.")
    sequence: int = Field(ge=0, description="The source's own sequence number of the change.")
    event_type: ChangeType
    entity: str = Field(min_length=1, max_length=64, description="The Kafka key.")
    entity_kind: EntityKind
    occurred_at: datetime = Field(description="When the source recorded the change.")
    data: dict[str, object] = Field(
        description="The change's data, validated by the model of its type (CHANGE_DATA)."
    )
    native_kind: str = Field(description="The source's own name of the change, for tracing.")

    @field_validator("data")
    @classmethod
    def _data_fits_its_type(
        cls, data: dict[str, object], info: ValidationInfo
    ) -> dict[str, object]:
        event_type = info.data.get("event_type")
        if event_type is None:  # event_type itself was invalid: that error says it all
            return data
        typed = CHANGE_DATA[event_type].model_validate(data)
        return typed.model_dump(mode="json", exclude_none=True)

    def typed(self) -> Model:
        """`data` as the model of `event_type`."""
        return CHANGE_DATA[self.event_type].model_validate(self.data)


def change_event_id(source: str, sequence: int) -> str:
    """The event id of a source's change: the same each time the feed is read."""
    return f"{source}.{sequence}"
