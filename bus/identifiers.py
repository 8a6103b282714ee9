"""Validation of Vietnamese identifiers (see DOMAIN.md).

- Personal id (số định danh cá nhân, printed on the CCCD card): 12 digits, no check digit.
  Digits 1-3: place of birth registration; digit 4: century and sex; digits 5-6: year of birth.
- Enterprise code (mã số doanh nghiệp, equal to the tax code MST): 10 digits with a check digit,
  branches add a suffix -001..-999.
"""

from __future__ import annotations

import re
from typing import Literal

Sex = Literal["male", "female", "unknown"]

_PERSONAL_ID = re.compile(r"^[0-9]{12}$")
_ENTERPRISE_CODE = re.compile(r"^([0-9]{10})(-[0-9]{3})?$")
_MST_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)


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
