"""Validation of Vietnamese identifiers (see DOMAIN.md).

- Personal id (số định danh cá nhân, printed on the CCCD card): 12 digits, no check digit.
  Digits 1-3: place of birth registration; digit 4: century and sex; digits 5-6: year of birth.
- Enterprise code (mã số doanh nghiệp, equal to the tax code MST): 10 digits with a check digit,
  branches add a suffix -001..-999.
- Social insurance number (mã số BHXH): 10 digits.
- Health insurance card number (mã thẻ BHYT): 2 letters of beneficiary group, 1 digit of benefit
  level 1-5, 2 digits of province, the 10-digit social insurance number.
- Driver licence number (số giấy phép lái xe): 12 digits; its inner structure is not public.

Digits are ASCII `[0-9]` only (a regex digit class would also take other scripts' digits).
Error messages name the rule broken and never the value: these are personal data.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

Sex = Literal["male", "female", "unknown"]

_PERSONAL_ID = re.compile(r"^[0-9]{12}$")
_ENTERPRISE_CODE = re.compile(r"^([0-9]{10})(-[0-9]{3})?$")
_MST_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)
_SOCIAL_INSURANCE_NUMBER = re.compile(r"[0-9]{10}")
_LICENCE_NUMBER = re.compile(r"[0-9]{12}")
# The health card's parts, checked one by one so that a message can say which part is wrong.
_CARD_GROUP = re.compile(r"[A-Z]{2}")
_CARD_PROVINCE = re.compile(r"[0-9]{2}")


def check_personal_id(value: str) -> str:
    """Return the id if it has the 12-digit form, else raise ValueError saying what is wrong."""
    if not _PERSONAL_ID.fullmatch(value):
        raise ValueError(f"personal id must be exactly 12 digits, got {len(value)} characters")
    return value


def personal_id_century_and_sex(value: str) -> tuple[int, Sex]:
    """Century (1900, 2000, ...) and sex encoded by the fourth digit."""
    digit = int(value[3])
    century = 1900 + (digit // 2) * 100
    return century, ("male" if digit % 2 == 0 else "female")


def check_personal_id_consistency(value: str, birth_year: int | None, sex: Sex | None) -> None:
    """Raise ValueError when the id's century/sex digit disagrees with the birth year or sex."""
    century, id_sex = personal_id_century_and_sex(value)
    if birth_year is not None:
        if not century <= birth_year < century + 100:
            # Messages name the rule, never the digits or the year: they are personal data.
            raise ValueError("personal id digit 4 (century and sex) disagrees with the birth year")
        if int(value[4:6]) != birth_year % 100:
            raise ValueError("personal id digits 5-6 must be the last two digits of the birth year")
    if sex in ("male", "female") and sex != id_sex:
        raise ValueError("personal id digit 4 (century and sex) disagrees with the sex")


def enterprise_check_digit(first_nine: str) -> int | None:
    """The MST check digit for nine digits, or None when that prefix is never issued."""
    total = sum(int(d) * w for d, w in zip(first_nine, _MST_WEIGHTS, strict=True))
    check = 10 - (total % 11)
    # A remainder of 0 would need the digit 10: such prefixes are never issued.
    return None if check == 10 else check


def check_enterprise_code(value: str) -> str:
    """Return the code if it is a valid 10-digit MST (optionally with a branch suffix)."""
    match = _ENTERPRISE_CODE.fullmatch(value)
    if not match:
        raise ValueError("enterprise code must be 10 digits, optionally followed by -001..-999")
    digits = match.group(1)
    expected = enterprise_check_digit(digits[:9])
    if expected is None or int(digits[9]) != expected:
        raise ValueError(f"enterprise code {digits} fails the MST check digit")
    if match.group(2) == "-000":
        raise ValueError("branch suffix must be -001..-999")
    return value


def check_social_insurance_number(value: str) -> str:
    """Return the number if it is a 10-digit social insurance number (mã số BHXH)."""
    if not _SOCIAL_INSURANCE_NUMBER.fullmatch(value):
        raise ValueError(
            f"social insurance number must be exactly 10 digits, got {len(value)} characters"
        )
    return value


class HealthCardParts(NamedTuple):
    """The four parts of a health insurance card number."""

    group: str  # beneficiary group, e.g. "DN"
    benefit_level: int  # 1-5
    province: str  # 2 digits
    bhxh_number: str  # the 10-digit social insurance number


def check_health_card_number(value: str) -> str:
    """Return the number if it has the form of a health insurance card number (mã thẻ BHYT).

    Only the form is checked: whether the group letters are a known group is for the code list
    `insurance-beneficiary-group` to say.
    """
    if len(value) != 15:
        raise ValueError(
            "health insurance card number must be 15 characters (2 letters of beneficiary "
            "group, benefit level 1-5, 2 digits of province, 10-digit BHXH number), "
            f"got {len(value)} characters"
        )
    if not _CARD_GROUP.fullmatch(value[:2]):
        raise ValueError(
            "health insurance card number: characters 1-2 (beneficiary group) "
            "must be capital letters A-Z"
        )
    if value[2] not in "12345":
        raise ValueError(
            "health insurance card number: character 3 (benefit level) must be a digit 1-5"
        )
    if not _CARD_PROVINCE.fullmatch(value[3:5]):
        raise ValueError("health insurance card number: characters 4-5 (province) must be 2 digits")
    if not _SOCIAL_INSURANCE_NUMBER.fullmatch(value[5:]):
        raise ValueError(
            "health insurance card number: characters 6-15 (BHXH number) must be 10 digits"
        )
    return value


def health_card_parts(value: str) -> HealthCardParts:
    """Split a health insurance card number into its parts; ValueError if it is malformed."""
    check_health_card_number(value)
    return HealthCardParts(value[:2], int(value[2]), value[3:5], value[5:])


def check_licence_number(value: str) -> str:
    """Return the number if it is a 12-digit driver licence number (format only)."""
    if not _LICENCE_NUMBER.fullmatch(value):
        raise ValueError(
            f"driver licence number must be exactly 12 digits, got {len(value)} characters"
        )
    return value
