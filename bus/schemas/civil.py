"""Normalized civil status data (hộ tịch): registered events and the marital status they give.

A civil status record (bản ghi hộ tịch) is one entry of a civil status book: a birth (khai
sinh), a marriage (kết hôn), a divorce recorded from a court decision (ly hôn) or a death (khai
tử), with the office that registered it, its book (quyển số) and entry (số) numbers. The kinds
are codes of the list `civil-event`; marital status codes are of the list `marital-status`.
Offices are given in the 2025 administrative units, with the source's original codes kept.
"""

from __future__ import annotations

import calendar
from datetime import date
from typing import Self

from pydantic import Field, field_validator, model_validator

from bus.identifiers import check_personal_id
from bus.schemas.citizen import Address, CodedValue, PartialDate
from bus.schemas.common import Model, NFCStr

EVENT_LIST, STATUS_LIST = "civil-event", "marital-status"
BIRTH, MARRIAGE, DEATH, DIVORCE = "01", "02", "08", "16"
NEVER_MARRIED, MARRIED, DIVORCED, WIDOWED = "1", "2", "3", "4"
CERTIFICATE_MONTHS = 6  # a marital status certificate is valid 6 months from its day
# The kind of record each marital status rests on.
_STATUS_BASIS = {MARRIED: MARRIAGE, DIVORCED: DIVORCE, WIDOWED: DEATH}


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months; the last day of a shorter month where needed."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class Party(Model):
    """A person named in a record: the person born or deceased, a husband or a wife."""

    full_name: NFCStr = Field(min_length=1)
    personal_id: str | None = Field(
        default=None, description="12-digit personal id (số định danh cá nhân)."
    )

    @field_validator("personal_id")
    @classmethod
    def _personal_id_form(cls, value: str | None) -> str | None:
        return None if value is None else check_personal_id(value)


class RegistrationOffice(Model):
    """The office that registered the event (cơ quan đăng ký): a commune people's committee."""

    name: NFCStr = Field(min_length=1, description="As registered, e.g. 'Ủy ban nhân dân xã ...'.")
    address: Address = Field(
        description="Its commune in the 2025 units; the source's pre-2025 codes in `original`."
    )


class CivilStatusRecord(Model):
    """One entry of a civil status book."""

    kind: CodedValue = Field(description="The event, a code of the list 'civil-event'.")
    event_date: PartialDate = Field(
        description="The day of the event: birth, wedding (its registration), the court decision "
        "of a divorce, death."
    )
    registration_date: PartialDate = Field(description="The day it was registered or recorded.")
    office: RegistrationOffice
    book_number: str = Field(min_length=1, description="Quyển số: the register book.")
    entry_number: str = Field(min_length=1, description="Số: the entry in the book.")
    born: Party | None = Field(default=None, description="Birth: the person born.")
    husband: Party | None = Field(default=None, description="Marriage and divorce.")
    wife: Party | None = Field(default=None, description="Marriage and divorce.")
    decision: NFCStr | None = Field(
        default=None, description="Divorce: the court judgment or decision it is recorded from."
    )
    deceased: Party | None = Field(default=None, description="Death: the person who died.")

    @model_validator(mode="after")
    def _parties_fit_the_kind(self) -> Self:
        if self.kind.code_list != EVENT_LIST:
            raise ValueError(f"kind must be a code of the list {EVENT_LIST!r}")
        code = self.kind.code
        if code in (MARRIAGE, DIVORCE) and (self.husband is None or self.wife is None):
            raise ValueError("a marriage or divorce record names both husband and wife")
        if code == BIRTH and self.born is None:
            raise ValueError("a birth record names the person born")
        if code == DEATH and self.deceased is None:
            raise ValueError("a death record names the person who died")
        registered = self.registration_date.as_date("registration_date")
        if registered < self.event_date.as_date("event_date"):
            raise ValueError("registration_date must not be before event_date")
        return self

    def other_party(self, personal_id: str) -> Party | None:
        """Marriage or divorce: the spouse of the person with ``personal_id`` in this record."""
        if self.husband is not None and self.husband.personal_id == personal_id:
            return self.wife
        if self.wife is not None and self.wife.personal_id == personal_id:
            return self.husband
        return None


class CivilStatusHistory(Model):
    """Every civil status record naming one citizen, oldest event first."""

    personal_id: str = Field(description="12-digit personal id (số định danh cá nhân).")
    records: list[CivilStatusRecord] = Field(default_factory=list)

    @field_validator("personal_id")
    @classmethod
    def _personal_id_form(cls, value: str) -> str:
        return check_personal_id(value)


class RecordReference(Model):
    """The record a marital status rests on, as a certificate cites it (căn cứ)."""

    kind: CodedValue
    book_number: str = Field(min_length=1, description="Quyển số.")
    entry_number: str = Field(min_length=1, description="Số.")
    registration_date: PartialDate
    office_name: NFCStr = Field(min_length=1)


class MaritalStatus(Model):
    """Marital status (tình trạng hôn nhân) on a day, as a marital status certificate states it."""

    personal_id: str = Field(description="12-digit personal id (số định danh cá nhân).")
    full_name: NFCStr = Field(min_length=1)
    status: CodedValue = Field(
        description="1 never married, 2 married, 3 divorced, 4 widowed (list 'marital-status')."
    )
    as_of: PartialDate = Field(description="The day the status is certified for.")
    valid_until: PartialDate = Field(description="as_of + 6 months, as for a certificate.")
    spouse: Party | None = Field(default=None, description="The current spouse, when married.")
    derived_from: RecordReference | None = Field(
        default=None,
        description="The marriage, divorce or spouse's death record; none when never married.",
    )

    @field_validator("personal_id")
    @classmethod
    def _personal_id_form(cls, value: str) -> str:
        return check_personal_id(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.status.code_list != STATUS_LIST:
            raise ValueError(f"status must be a code of the list {STATUS_LIST!r}")
        married = self.status.code == MARRIED
        if married != (self.spouse is not None):
            raise ValueError("spouse is given exactly when the status is married")
        basis = self.derived_from.kind.code if self.derived_from is not None else None
        if basis != _STATUS_BASIS.get(self.status.code):
            raise ValueError(
                "derived_from must be the marriage (married), divorce (divorced) or spouse's "
                "death (widowed) record, and absent when never married"
            )
        expected = add_months(self.as_of.as_date("as_of"), CERTIFICATE_MONTHS)
        if self.valid_until.as_date("valid_until") != expected:
            raise ValueError("valid_until must be as_of plus 6 months")
        return self
