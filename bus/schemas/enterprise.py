"""The normalized enterprise records of the national business registration database.

Vietnamese terms: *mã số doanh nghiệp* (enterprise code, equal to the tax code MST), *loại hình
doanh nghiệp* (enterprise type), *tình trạng pháp lý* (legal status), *vốn điều lệ* (charter
capital), *trụ sở chính* (head office), *người đại diện theo pháp luật* (legal representative),
*chi nhánh* (branch), *ngành, nghề kinh doanh* (business lines, VSIC 2018).

Addresses use the administrative units in force since 1 July 2025 and keep the registry's
original codes (`Address.original`); an old commune merged away is `conversion = "ambiguous"`.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from bus.identifiers import check_enterprise_code, check_personal_id
from bus.schemas.citizen import Address, CodedValue, PartialDate
from bus.schemas.common import Model, NFCStr


def _enterprise_code(value: str) -> str:
    check_enterprise_code(value)
    if "-" in value:
        raise ValueError("an enterprise code has 10 digits and no branch suffix")
    return value


def _branch_code(value: str) -> str:
    check_enterprise_code(value)
    if "-" not in value:
        raise ValueError("a branch code is the enterprise code followed by -001..-999")
    return value


EnterpriseCode = Annotated[str, AfterValidator(_enterprise_code)]
BranchCode = Annotated[str, AfterValidator(_branch_code)]
PersonalId = Annotated[str, AfterValidator(check_personal_id)]


class LegalRepresentative(Model):
    """A legal representative: a citizen of the population database."""

    personal_id: PersonalId = Field(description="12-digit personal id (số định danh cá nhân).")
    full_name: NFCStr
    birth_date: PartialDate | None = None
    title: NFCStr | None = Field(default=None, description="Position, e.g. 'Giám đốc'.")
    since: PartialDate | None = Field(default=None, description="Representative since.")


class Branch(Model):
    """A branch (chi nhánh): a dependent unit, not a legal person of its own."""

    branch_code: BranchCode = Field(description="The enterprise code followed by -001..-999.")
    name: NFCStr
    status: CodedValue | None = Field(default=None, description="Code list enterprise-status.")
    address: Address | None = None


class BusinessActivity(Model):
    """A registered business line."""

    industry: CodedValue = Field(description="A 4-digit VSIC 2018 class (code list vsic-2018).")
    description: NFCStr | None = Field(
        default=None, description="The line as the registry words it."
    )
    main: bool = Field(default=False, description="The main business line (ngành chính).")


class Enterprise(Model):
    """An enterprise's registration record (hồ sơ đăng ký doanh nghiệp)."""

    enterprise_code: EnterpriseCode = Field(
        description="10-digit enterprise code (the tax code MST), with a valid check digit."
    )
    name: NFCStr
    foreign_name: NFCStr | None = None
    short_name: NFCStr | None = None
    enterprise_type: CodedValue = Field(description="Code list enterprise-type.")
    status: CodedValue = Field(
        description="Legal status, code list enterprise-status; 7 = dissolved, bankrupt or "
        "ceased (the record still answers)."
    )
    founding_date: PartialDate | None = None
    charter_capital: int | None = Field(
        default=None,
        ge=0,
        description="Charter capital in VND (invested capital for a private enterprise).",
    )
    head_office: Address | None = None
    representatives: list[LegalRepresentative] = Field(default_factory=list)
    branches: list[Branch] = Field(default_factory=list)
    activities: list[BusinessActivity] = Field(default_factory=list)
    requested_branch: BranchCode | None = Field(
        default=None,
        description="Set when asked by a branch code: the branch asked for, one of `branches`; "
        "the record is its parent enterprise's.",
    )

    @model_validator(mode="after")
    def _parts_agree(self) -> Self:
        for branch in self.branches:
            if branch.branch_code.split("-")[0] != self.enterprise_code:
                raise ValueError("a branch code must start with its enterprise's code")
        if self.activities and sum(activity.main for activity in self.activities) != 1:
            raise ValueError("exactly one business activity must be the main one")
        if self.requested_branch is not None and self.requested_branch not in {
            branch.branch_code for branch in self.branches
        }:
            raise ValueError("requested_branch must be one of the enterprise's branches")
        return self


class EnterpriseRepresentatives(Model):
    """The legal representatives of one enterprise."""

    enterprise_code: EnterpriseCode
    name: NFCStr
    representatives: list[LegalRepresentative] = Field(default_factory=list)
    requested_branch: BranchCode | None = Field(
        default=None,
        description="Set when asked by a branch code: the representatives are its parent "
        "enterprise's.",
    )

    @model_validator(mode="after")
    def _branch_of_this_enterprise(self) -> Self:
        if (
            self.requested_branch is not None
            and self.requested_branch.split("-")[0] != self.enterprise_code
        ):
            raise ValueError("requested_branch must be a branch of this enterprise")
        return self


class RepresentedEnterprise(Model):
    """One enterprise a citizen legally represents, in brief."""

    enterprise_code: EnterpriseCode
    name: NFCStr
    status: CodedValue = Field(description="Legal status, code list enterprise-status.")
    role: NFCStr | None = Field(default=None, description="The citizen's position there.")
    since: PartialDate | None = None


class RepresentedEnterprises(Model):
    """The enterprises a citizen legally represents, dissolved ones included (status 7); an
    empty list when the registry knows of none."""

    personal_id: PersonalId = Field(description="12-digit personal id (số định danh cá nhân).")
    enterprises: list[RepresentedEnterprise] = Field(default_factory=list)
