"""Personal ids (số định danh cá nhân) and enterprise codes (MST), as DOMAIN.md describes them."""

from __future__ import annotations

import itertools

import pytest

from bus.identifiers import (
    check_enterprise_code,
    check_personal_id,
    check_personal_id_consistency,
    enterprise_check_digit,
    personal_id_century_and_sex,
)

MALE_1990 = "001090000001"  # Hà Nội, digit 4 = 0 (1900s, male), born '90


# -- personal id: form ----------------------------------------------------------------------


def test_twelve_digit_personal_id_is_accepted_as_is() -> None:
    assert check_personal_id(MALE_1990) == MALE_1990


@pytest.mark.parametrize(
    "value",
    [
        "00109000000",  # 11 digits
        "0010900000012",  # 13 digits
        "00109000000A",  # a letter
        "001 90000001",  # a space
        "",
        "００１０９００００００１",  # fullwidth digits are not ASCII digits
    ],
)
def test_personal_id_that_is_not_twelve_digits_is_refused_saying_so(value: str) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        check_personal_id(value)


# -- personal id: century/sex digit ---------------------------------------------------------


@pytest.mark.parametrize(
    ("digit", "century", "sex"),
    [("0", 1900, "male"), ("1", 1900, "female"), ("2", 2000, "male"), ("3", 2000, "female")],
)
def test_fourth_digit_encodes_century_and_sex(digit: str, century: int, sex: str) -> None:
    assert personal_id_century_and_sex(f"001{digit}90000001") == (century, sex)


def test_male_born_1990_agrees_with_digit_zero() -> None:
    check_personal_id_consistency(MALE_1990, 1990, "male")


def test_female_born_2005_agrees_with_digit_three() -> None:
    check_personal_id_consistency("079305000123", 2005, "female")


def test_unknown_birth_year_and_sex_are_not_checked() -> None:
    check_personal_id_consistency(MALE_1990, None, None)
    check_personal_id_consistency(MALE_1990, None, "unknown")


def test_female_with_a_male_digit_is_refused_naming_sex() -> None:
    with pytest.raises(ValueError, match=r"digit 4 \(century and sex\) disagrees with the sex"):
        check_personal_id_consistency(MALE_1990, 1990, "female")


def test_birth_year_in_another_century_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"digit 4 \(century and sex\) disagrees with the birth year"
    ):
        check_personal_id_consistency(MALE_1990, 2090, "male")


def test_digits_five_and_six_must_be_the_birth_year() -> None:
    with pytest.raises(
        ValueError, match=r"digits 5-6 must be the last two digits of the birth year"
    ):
        check_personal_id_consistency(MALE_1990, 1991, "male")


# -- enterprise code (MST) ------------------------------------------------------------------


def test_known_valid_enterprise_code_is_accepted() -> None:
    assert check_enterprise_code("0100047516") == "0100047516"
    assert enterprise_check_digit("010004751") == 6


@pytest.mark.parametrize("last", [d for d in "0123456789" if d != "6"])
def test_enterprise_code_with_another_last_digit_fails_the_check_digit(last: str) -> None:
    with pytest.raises(ValueError, match="0100047516"[:9] + last + " fails the MST check digit"):
        check_enterprise_code("010004751" + last)


def test_branch_suffix_is_accepted() -> None:
    assert check_enterprise_code("0100047516-001") == "0100047516-001"
    assert check_enterprise_code("0100047516-999") == "0100047516-999"


def test_branch_suffix_000_is_refused() -> None:
    with pytest.raises(ValueError, match=r"-001\.\.-999"):
        check_enterprise_code("0100047516-000")


@pytest.mark.parametrize(
    "value", ["010004751", "01000475160", "0100047516-01", "0100047516-0001", "010004751A"]
)
def test_enterprise_code_of_the_wrong_form_is_refused_saying_the_form(value: str) -> None:
    with pytest.raises(ValueError, match="10 digits"):
        check_enterprise_code(value)


def _never_issued_prefix() -> str:
    """The first nine-digit prefix whose weighted sum is a multiple of 11 (check digit '10')."""
    weights = (31, 29, 23, 19, 17, 13, 7, 5, 3)
    for tail in itertools.product("0123456789", repeat=4):
        prefix = "01000" + "".join(tail)
        if sum(int(d) * w for d, w in zip(prefix, weights, strict=True)) % 11 == 0:
            return prefix
    raise AssertionError("no prefix with remainder 0 found")


def test_prefix_whose_check_would_be_ten_is_never_valid() -> None:
    prefix = _never_issued_prefix()
    assert enterprise_check_digit(prefix) is None
    for last in "0123456789":
        with pytest.raises(ValueError, match="fails the MST check digit"):
            check_enterprise_code(prefix + last)


def test_consistency_errors_never_quote_the_id_or_the_birth_year() -> None:
    for year, sex in [(2090, None), (1991, None), (None, "female")]:
        with pytest.raises(ValueError) as caught:
            check_personal_id_consistency(MALE_1990, year, sex)  # type: ignore[arg-type]
        message = str(caught.value)
        assert MALE_1990[3:6] not in message and "1990" not in message
        assert year is None or str(year) not in message
