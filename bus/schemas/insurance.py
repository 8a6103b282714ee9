"""Normalized social insurance data (bảo hiểm xã hội, Vietnam Social Security): a citizen's
participation with its contribution history, and their health insurance card (thẻ BHYT).

- The social insurance number (mã số BHXH) is 10 digits; since 2025 the personal id looks it up,
  and both are given.
- A contribution period (quá trình đóng) is a run of months paid at one salary base (mức lương
  đóng), by an employer (compulsory) or by the participant alone (voluntary); codes of the list
  `insurance-contribution-type`. Participation status and the reason it stopped are codes of
  `insurance-participation-status` and `insurance-stop-reason`.
- The card number is 15 characters: beneficiary group (mã đối tượng, list
  `insurance-beneficiary-group`), benefit level (mức hưởng) 1-5, the issuing province's 2-digit
  code, the holder's social insurance number. The record's parts must agree with the number.
- The registered primary care facility (nơi đăng ký khám chữa bệnh ban đầu) is where the holder
  goes first for covered care.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, field_validator, model_validator

from bus.identifiers import (
    Sex,
    check_enterprise_code,
    check_health_card_number,
    check_personal_id,
    check_personal_id_consistency,
    check_social_insurance_number,
    health_card_parts,
)
from bus.schemas.citizen import Address, CodedValue, PartialDate
from bus.schemas.common import Model, NFCStr

STATUS_LIST, STOP_REASON_LIST = "insurance-participation-status", "insurance-stop-reason"
CONTRIBUTION_LIST, GROUP_LIST = "insurance-contribution-type", "insurance-beneficiary-group"
NEVER, PARTICIPATING, PAUSED, STOPPED = "0", "1", "2", "3"
COMPULSORY, VOLUNTARY = "BB", "TN"


def _month(value: PartialDate, field: str) -> tuple[int, int]:
    if value.precision != "month" or value.month is None:
        raise ValueError(f"{field} must be a month (month precision)")
    return value.year, value.month


def _of_list(value: CodedValue | None, code_list: str, field: str) -> None:
    if value is not None and value.code_list != code_list:
        raise ValueError(f"{field} must be a code of the list {code_list!r}")


class ContributionPeriod(Model):
    """Months paid at one salary base, to one employer or voluntarily."""

    employer_code: str | None = Field(
        default=None,
        description="The employer's enterprise code (MST); none for voluntary contributions.",
    )
    employer_name: NFCStr | None = Field(
        default=None, description="The employer as the insurance database names it."
    )
    from_month: PartialDate = Field(description="First month paid (month precision).")
    to_month: PartialDate | None = Field(
        default=None, description="Last month paid (month precision); none while still open."
    )
    months: int = Field(ge=1, description="Months paid in the period.")
    salary_base: int = Field(gt=0, description="Monthly salary or income contributed on, VND.")
    contribution_type: CodedValue = Field(
        description="Compulsory (BB) or voluntary (TN), list 'insurance-contribution-type'."
    )

    @field_validator("employer_code")
    @classmethod
    def _employer_code_form(cls, value: str | None) -> str | None:
        return None if value is None else check_enterprise_code(value)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _of_list(self.contribution_type, CONTRIBUTION_LIST, "contribution_type")
        start = _month(self.from_month, "from_month")
        if self.to_month is not None:
            end = _month(self.to_month, "to_month")
            span = (end[0] - start[0]) * 12 + end[1] - start[1] + 1
            if span < 1:
                raise ValueError("to_month must not be before from_month")
            if self.months > span:
                raise ValueError("months must not exceed the months from from_month to to_month")
        compulsory = self.contribution_type.code == COMPULSORY
        if compulsory and self.employer_code is None:
            raise ValueError("a compulsory period names its employer (employer_code)")
        if self.contribution_type.code == VOLUNTARY and self.employer_code is not None:
            raise ValueError("a voluntary period has no employer")
        return self

    @property
    def is_open(self) -> bool:
        return self.to_month is None


class InsuredPerson(Model):
    """Who the record is about, as the insurance database holds them."""

    social_insurance_number: str = Field(description="Mã số BHXH: 10 digits.")
    personal_id: str = Field(description="12-digit personal id (số định danh cá nhân).")
    full_name: NFCStr = Field(min_length=1)
    birth_date: PartialDate | None = None
    sex: Sex = "unknown"
    address: Address | None = Field(
        default=None, description="Residence in the 2025 units; the source's codes in `original`."
    )

    @field_validator("social_insurance_number")
    @classmethod
    def _social_insurance_number_form(cls, value: str) -> str:
        return check_social_insurance_number(value)

    @field_validator("personal_id")
    @classmethod
    def _personal_id_form(cls, value: str) -> str:
        return check_personal_id(value)

    @model_validator(mode="after")
    def _personal_id_agrees(self) -> Self:
        year = self.birth_date.year if self.birth_date else None
        check_personal_id_consistency(self.personal_id, year, self.sex)
        return self


class SocialInsuranceRecord(InsuredPerson):
    """A citizen's social insurance participation and contribution history (quá trình tham gia)."""

    status: CodedValue = Field(
        description="0 never participated (a health card only), 1 participating, 2 paused (the "
        "months kept), 3 stopped; list 'insurance-participation-status'."
    )
    stop_reason: CodedValue | None = Field(
        default=None,
        description="When stopped: 1 death, 2 retired on a pension, 3 lump-sum settlement; "
        "list 'insurance-stop-reason'.",
    )
    stopped_on: PartialDate | None = Field(
        default=None, description="When stopped: the day (of death, or of retirement)."
    )
    periods: list[ContributionPeriod] = Field(
        default_factory=list, description="Contribution periods, oldest first."
    )
    months_total: int = Field(ge=0, description="Months contributed in all.")

    @model_validator(mode="after")
    def _status_agrees(self) -> Self:
        _of_list(self.status, STATUS_LIST, "status")
        _of_list(self.stop_reason, STOP_REASON_LIST, "stop_reason")
        code = self.status.code
        stopped = code == STOPPED
        if stopped != (self.stop_reason is not None) or stopped != (self.stopped_on is not None):
            raise ValueError("stop_reason and stopped_on are given exactly when status is stopped")
        if self.stopped_on is not None:
            self.stopped_on.as_date("stopped_on")
        open_periods = sum(1 for period in self.periods if period.is_open)
        if code == PARTICIPATING and open_periods != 1:
            raise ValueError("a participating record has exactly one open period")
        if code != PARTICIPATING and open_periods:
            raise ValueError("only a participating record has an open period")
        if code == NEVER and self.periods:
            raise ValueError("a record that never participated has no periods")
        if self.months_total < sum(period.months for period in self.periods):
            raise ValueError("months_total must not be less than the months of the periods")
        return self


class PrimaryCareFacility(Model):
    """The registered primary care facility (nơi đăng ký khám chữa bệnh ban đầu)."""

    code: str = Field(
        pattern=r"^[0-9]{5}$", description="5 digits: the province's 2, the facility's 3."
    )
    name: NFCStr = Field(min_length=1, description="As the insurance database names it.")


class HealthInsuranceCard(InsuredPerson):
    """A health insurance card (thẻ BHYT) and whether it is valid."""

    card_number: str = Field(
        description="15 characters: beneficiary group, benefit level, province, BHXH number."
    )
    beneficiary_group: CodedValue = Field(
        description="Mã đối tượng, e.g. DN employee, TE child under 6, HT pensioner; list "
        "'insurance-beneficiary-group'."
    )
    benefit_level: int = Field(
        ge=1,
        le=5,
        description="Mức hưởng: 1 100% without a ceiling, 2 100% with a ceiling, 3 95%, 4 80%, "
        "5 100% (armed forces).",
    )
    province_code: str = Field(
        pattern=r"^[0-9]{2}$",
        description="The issuing province as printed on the card (pre-2025 code on cards "
        "issued before 1 July 2025).",
    )
    valid_from: PartialDate = Field(description="First day of validity (gtTheTu).")
    valid_to: PartialDate | None = Field(
        default=None, description="Last day of validity (gtTheDen); none when open-ended."
    )
    primary_care_facility: PrimaryCareFacility | None = None
    valid: bool = Field(
        description="Whether the card is valid on the day the source's data is as of: not "
        "expired, not yet to begin, and not ended by the holder's death."
    )

    @field_validator("card_number")
    @classmethod
    def _card_number_form(cls, value: str) -> str:
        return check_health_card_number(value)

    @model_validator(mode="after")
    def _parts_agree(self) -> Self:
        _of_list(self.beneficiary_group, GROUP_LIST, "beneficiary_group")
        parts = health_card_parts(self.card_number)
        if parts.group != self.beneficiary_group.code:
            raise ValueError("card_number characters 1-2 must be the beneficiary group")
        if parts.benefit_level != self.benefit_level:
            raise ValueError("card_number character 3 must be the benefit level")
        if parts.province != self.province_code:
            raise ValueError("card_number characters 4-5 must be the province code")
        if parts.bhxh_number != self.social_insurance_number:
            raise ValueError("card_number characters 6-15 must be the social insurance number")
        start = self.valid_from.as_date("valid_from")
        if self.valid_to is not None and self.valid_to.as_date("valid_to") < start:
            raise ValueError("valid_to must not be before valid_from")
        return self
