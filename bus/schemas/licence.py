"""The normalized driver licence (giấy phép lái xe, GPLX) of a citizen.

One holder has one licence number (12 digits, kept across reissues) and a card with one or more
classes (hạng), each with its own issue and expiry date. Classes come in two schemes, kept in two
lists because their codes overlap with different meanings (A1, B1, C and D exist in both):

- `classes`: the classes of Law 36/2024/QH15, granted on or after 1 January 2025 (code list
  `licence-class-2025`);
- `pre2025_classes`: classes granted before that day under the Law on Road Traffic 2008 (list
  `licence-class-pre2025`), valid for the term printed on them, each with the 2025 classes it
  is exchanged for on renewal or reissue (`exchanges_to`; two codes: the holder chooses).

`status` is derived, on the data's day `as_of`, from the dated facts the source gives:
`revoked` once a revocation (thu hồi) has taken effect (the licence of a holder who died is
revoked); `suspended` during a suspension (tước quyền sử dụng) or when all 12 points are lost
(Law 36/2024, Article 58: no driving on that licence until the points are restored); `expired`
when every class on it has a term and all terms ended before `as_of`; otherwise `valid`. A class
may be expired while the licence is valid through another: compare `expires` with `as_of`.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, Self

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    computed_field,
    field_validator,
    model_validator,
)

from bus.identifiers import check_licence_number, check_personal_id, check_personal_id_consistency
from bus.schemas.citizen import Address, PartialDate
from bus.schemas.common import Model, NFCStr

LicenceStatus = Literal["valid", "suspended", "revoked", "expired"]
REFORM_DAY = date(2025, 1, 1)  # Law 36/2024 in force: its classes are granted from this day
FULL_POINTS = 12


class _ClassOnLicence(Model):
    """What every class on a licence has: its code, label and term."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9]{0,2}$", description="The class as printed.")
    label: NFCStr = Field(description="Its name in its scheme's code list.")
    scheme: str
    issued: PartialDate = Field(description="When this class was granted or last renewed.")
    expires: PartialDate | None = Field(
        default=None, description="The end of its term; none for a class without one."
    )

    @model_validator(mode="after")
    def _term_in_its_scheme(self) -> Self:
        start = self.issued.as_date("issued")
        if self.expires is not None and self.expires.as_date("expires") <= start:
            raise ValueError("expires must be after issued")
        if (start >= REFORM_DAY) != (self.scheme == "2025"):
            raise ValueError(
                "a class granted on or after 1 January 2025 is of the 2025 scheme, "
                "one granted before of the pre-2025 scheme"
            )
        return self


class LicenceClass(_ClassOnLicence):
    """A class of Law 36/2024 (list 'licence-class-2025'); A1, A and B1 have no term."""

    scheme: Literal["2025"] = "2025"


class Pre2025LicenceClass(_ClassOnLicence):
    """A class granted before 2025 (list 'licence-class-pre2025'), still on the licence; A1, A2
    and A3 have no term."""

    scheme: Literal["pre-2025"] = "pre-2025"
    exchanges_to: tuple[str, ...] = Field(
        default=(),
        description="The 2025 classes it is exchanged for (two: the holder chooses); none for "
        "A4, which becomes a certificate for special-use vehicles.",
    )

    @field_validator("exchanges_to")
    @classmethod
    def _class_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not code.isalnum() or not code.isupper() or len(code) > 3 for code in value):
            raise ValueError("exchanges_to must hold class codes such as 'B' or 'C1E'")
        return value


class Suspension(Model):
    """The latest suspension of the right to use the licence (tước quyền sử dụng có thời hạn)."""

    start: PartialDate
    end: PartialDate = Field(description="The last day of the suspension.")
    decision: str | None = Field(default=None, description="The decision's number.")

    @model_validator(mode="after")
    def _period(self) -> Self:
        if self.end.as_date("end") < self.start.as_date("start"):
            raise ValueError("a suspension must not end before it starts")
        return self


class Revocation(Model):
    """The revocation of the licence (thu hồi); it holds from `day` on."""

    day: PartialDate
    reason: NFCStr | None = None
    decision: str | None = Field(default=None, description="The decision's number.")

    @field_validator("day")
    @classmethod
    def _full_day(cls, value: PartialDate) -> PartialDate:
        value.as_date("day")
        return value


class DriverLicence(Model):
    """A citizen's driver licence with its classes, points and status on the data's day."""

    licence_number: str = Field(description="Số GPLX: 12 digits, kept across reissues.")
    personal_id: str = Field(description="The holder's 12-digit personal id.")
    full_name: NFCStr
    birth_date: PartialDate = Field(
        description="Year precision for holders the database knows only by the birth year."
    )
    residence: Address | None = Field(default=None, description="Nơi cư trú, as on the record.")
    classes: tuple[LicenceClass, ...] = Field(
        default=(), description="Classes of Law 36/2024 (list 'licence-class-2025')."
    )
    pre2025_classes: tuple[Pre2025LicenceClass, ...] = Field(
        default=(), description="Classes granted before 2025 (list 'licence-class-pre2025')."
    )
    issued: PartialDate = Field(description="The day the current card was issued.")
    issuing_authority: NFCStr = Field(description="Who issued the current card (nơi cấp).")
    points: int = Field(ge=0, le=FULL_POINTS, description="Points left of 12 (since 2025).")
    suspension: Suspension | None = None
    revocation: Revocation | None = None
    as_of: PartialDate = Field(description="The day the source's data are as of.")

    @field_validator("licence_number")
    @classmethod
    def _licence_number(cls, value: str) -> str:
        return check_licence_number(value)

    @field_validator("personal_id")
    @classmethod
    def _personal_id(cls, value: str) -> str:
        return check_personal_id(value)

    @field_validator("issued", "as_of")
    @classmethod
    def _full_day(cls, value: PartialDate) -> PartialDate:
        value.as_date("issued and as_of")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.classes and not self.pre2025_classes:
            raise ValueError("a licence holds at least one class")
        check_personal_id_consistency(self.personal_id, self.birth_date.year, None)
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _status_is_derived(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """A dumped licence validates again: its `status` must be the one its facts give."""
        given = None
        if isinstance(data, dict) and "status" in data:
            data = dict(data)
            given = data.pop("status")
        licence = handler(data)
        if given is not None and given != licence.status:
            raise ValueError("status disagrees with the revocation, suspension, points and terms")
        return licence

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status(self) -> LicenceStatus:
        """The licence's status on `as_of` (see the module doc)."""
        day = self.as_of.as_date("as_of")
        if self.revocation is not None and self.revocation.day.as_date("day") <= day:
            return "revoked"
        suspension = self.suspension
        if suspension is not None and (
            suspension.start.as_date("start") <= day <= suspension.end.as_date("end")
        ):
            return "suspended"
        if self.points == 0:
            return "suspended"
        terms = [held.expires for held in self.classes]
        terms += [held.expires for held in self.pre2025_classes]
        if all(end is not None and end.as_date("expires") < day for end in terms):
            return "expired"
        return "valid"
