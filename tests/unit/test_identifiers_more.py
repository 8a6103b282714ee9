"""The identifiers of the new databases: BHXH numbers, health cards, driver licences; MST and
personal id consistency again, as the business registration and civil status adapters use them."""

from __future__ import annotations

import pytest

from bus.identifiers import (
    HealthCardParts,
    check_enterprise_code,
    check_health_card_number,
    check_licence_number,
    check_personal_id_consistency,
    check_social_insurance_number,
    health_card_parts,
)

CARD = "DN4790123456789"  # enterprise employee, level 4, province 79, BHXH number 0123456789


# -- social insurance number (mã số BHXH) ------------------------------------------------------


def test_ten_digit_social_insurance_number_is_accepted() -> None:
    assert check_social_insurance_number("0123456789") == "0123456789"


@pytest.mark.parametrize(
    "value", ["012345678", "01234567890", "012345678A", " 0123456789", "０１２３４５６７８９", ""]
)
def test_social_insurance_number_not_ten_digits_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="social insurance number must be exactly 10 digits") as e:
        check_social_insurance_number(value)
    assert value.strip() == "" or value.strip() not in str(e.value)


# -- health insurance card (thẻ BHYT) ----------------------------------------------------------


@pytest.mark.parametrize("value", [CARD, "TE1010000000001", "HT3960123456789", "GD5010000000000"])
def test_well_formed_health_card_numbers_are_accepted(value: str) -> None:
    assert check_health_card_number(value) == value


def test_health_card_splits_into_its_four_parts() -> None:
    parts = health_card_parts(CARD)
    assert parts == HealthCardParts("DN", 4, "79", "0123456789")
    assert (parts.group, parts.benefit_level, parts.province, parts.bhxh_number) == parts
    group, level, province, bhxh_number = parts
    assert (group, level, province, bhxh_number) == ("DN", 4, "79", "0123456789")


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("DN479012345678", "must be 15 characters"),
        ("DN47901234567890", "must be 15 characters"),
        ("dn4790123456789", r"characters 1-2 \(beneficiary group\) must be capital letters"),
        ("D14790123456789", r"characters 1-2 \(beneficiary group\)"),
        ("ĐN4790123456789", r"characters 1-2 \(beneficiary group\)"),
        ("DN0790123456789", r"character 3 \(benefit level\) must be a digit 1-5"),
        ("DN6790123456789", r"character 3 \(benefit level\)"),
        ("DN47A0123456789", r"characters 4-5 \(province\) must be 2 digits"),
        ("DN479012345678X", r"characters 6-15 \(BHXH number\) must be 10 digits"),
        ("DN479０123456789", r"characters 6-15 \(BHXH number\)"),
    ],
)
def test_malformed_health_card_names_the_part_that_is_wrong(value: str, rule: str) -> None:
    with pytest.raises(ValueError, match=rule) as info:
        check_health_card_number(value)
    assert value not in str(info.value) and value[5:] not in str(info.value)
    with pytest.raises(ValueError, match=rule):
        health_card_parts(value)


# -- driver licence number ---------------------------------------------------------------------


def test_twelve_digit_licence_number_is_accepted() -> None:
    assert check_licence_number("790123456789") == "790123456789"


@pytest.mark.parametrize("value", ["79012345678", "7901234567890", "79012345678B", "AB0123456789"])
def test_licence_number_not_twelve_digits_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="driver licence number must be exactly 12 digits") as e:
        check_licence_number(value)
    assert value not in str(e.value)


# -- enterprise code (MST) ---------------------------------------------------------------------


def test_known_enterprise_code_and_its_branch_are_valid() -> None:
    assert check_enterprise_code("0100047516") == "0100047516"
    assert check_enterprise_code("0100047516-001") == "0100047516-001"


def test_enterprise_code_with_a_wrong_check_digit_is_refused() -> None:
    with pytest.raises(ValueError, match="fails the MST check digit"):
        check_enterprise_code("0100047517")


def test_branch_suffix_000_is_refused() -> None:
    with pytest.raises(ValueError, match=r"branch suffix must be -001\.\.-999"):
        check_enterprise_code("0100047516-000")


# -- personal id against birth year and sex -----------------------------------------------------


def test_personal_id_agreeing_with_birth_year_and_sex_passes() -> None:
    check_personal_id_consistency("079305000123", 2005, "female")  # digit 4 = 3: 2000s, female


def test_personal_id_whose_century_digit_disagrees_with_the_birth_year_is_refused() -> None:
    # Digit 4 = 0 says born in the 1900s; the civil status record says 2005.
    with pytest.raises(ValueError, match=r"digit 4 .* disagrees with the birth year") as info:
        check_personal_id_consistency("001005000123", 2005, "male")
    assert "2005" not in str(info.value) and "001005000123" not in str(info.value)


def test_personal_id_whose_sex_digit_disagrees_with_the_sex_is_refused() -> None:
    # Digit 4 = 2 says a man born in the 2000s; the record says female.
    with pytest.raises(ValueError, match=r"digit 4 .* disagrees with the sex"):
        check_personal_id_consistency("079205000123", 2005, "female")
