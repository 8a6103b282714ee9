"""The normalized citizen record (công dân), whatever the national database it came from.

Addresses use the administrative units in force since 1 July 2025 (34 provinces, communes without
districts) and keep the source's original codes for provenance.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from bus.identifiers import Sex, check_personal_id, check_personal_id_consistency
from bus.schemas.common import Model, NFCStr

UnitConversion = Literal["exact", "ambiguous", "unknown", "unchanged"]


class PartialDate(Model):
    """A date that some sources only know to the year (năm sinh)."""

    year: int = Field(ge=1800, le=2200)
    month: int | None = Field(default=None, ge=1, le=12)
    day: int | None = Field(default=None, ge=1, le=31)
    precision: Literal["day", "month", "year"]

    @model_validator(mode="after")
    def _parts_match_precision(self) -> Self:
        wanted = {"year": (False, False), "month": (True, False), "day": (True, True)}
        if (self.month is not None, self.day is not None) != wanted[self.precision]:
            raise ValueError(f"precision {self.precision!r} does not match the parts given")
        if self.precision == "day":
            date(self.year, self.month or 1, self.day or 1)  # raises for 31 February
        return self

    @property
    def iso(self) -> str:
        if self.precision == "year":
            return f"{self.year:04d}"
        if self.precision == "month":
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def as_date(self, field: str = "the date") -> date:
        """The day, for a date of day precision; a ValueError naming `field` for any other."""
        if self.precision != "day":
            raise ValueError(f"{field} must be a full date (day precision)")
        return date(self.year, self.month or 1, self.day or 1)


class CodedValue(Model):
    """A code from a named code list, with its label."""

    code: str
    name: NFCStr | None = None
    code_list: str = Field(description="Which list the code is from, e.g. 'ethnicity-2008'.")


class OriginalUnit(Model):
    """Administrative-unit codes exactly as the source holds them."""

    province_code: str | None = None
    commune_code: str | None = None
    scheme: Literal["pre-2025", "2025"] = "pre-2025"


class Address(Model):
    detail: NFCStr | None = None
    province_code: str | None = Field(default=None, description="2025 province code.")
    province_name: NFCStr | None = None
    commune_code: str | None = Field(
        default=None, description="2025 commune code; None when the conversion is ambiguous."
    )
    commune_name: NFCStr | None = None
    country: str = "VN"
    original: OriginalUnit | None = None
    conversion: UnitConversion = "unchanged"


class Relative(Model):
    full_name: NFCStr
    personal_id: str | None = None
    relation: NFCStr | None = None


class Citizen(Model):
    personal_id: str = Field(description="12-digit personal id (số định danh cá nhân).")
    old_id_number: str | None = Field(
        default=None, pattern=r"^([0-9]{9}|[0-9]{12})$", description="Old ID card number (CMND)."
    )
    full_name: NFCStr
    family_name: NFCStr | None = None
    middle_name: NFCStr | None = None
    given_name: NFCStr | None = None
    birth_date: PartialDate | None = None
    sex: Sex = "unknown"
    ethnicity: CodedValue | None = None
    religion: CodedValue | None = None
    nationality: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    hometown: Address | None = None
    permanent_address: Address | None = None
    current_address: Address | None = None
    father: Relative | None = None
    mother: Relative | None = None
    spouse: Relative | None = None
    household_head: Relative | None = None

    @field_validator("personal_id")
    @classmethod
    def _personal_id_form(cls, value: str) -> str:
        return check_personal_id(value)

    @model_validator(mode="after")
    def _personal_id_agrees(self) -> Self:
        year = self.birth_date.year if self.birth_date else None
        check_personal_id_consistency(self.personal_id, year, self.sex)
        return self


class Residence(Model):
    """Where a citizen lives (nơi thường trú, nơi ở hiện tại) and their household (hộ)."""

    personal_id: str = Field(description="12-digit personal id (số định danh cá nhân).")
    permanent_address: Address | None = Field(
        default=None, description="Permanent residence (thường trú)."
    )
    current_address: Address | None = Field(
        default=None, description="Current residence (nơi ở hiện tại)."
    )
    household_head: Relative | None = Field(
        default=None, description="Head of the household (chủ hộ) and the relation to them."
    )

    @field_validator("personal_id")
    @classmethod
    def _personal_id_form(cls, value: str) -> str:
        return check_personal_id(value)
