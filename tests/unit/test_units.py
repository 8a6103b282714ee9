"""Old (pre-2025) administrative units to the 2025 ones."""

from __future__ import annotations

import pytest
from vietnam_provinces import Province

from mappings.units import COMMUNES, OLD_TO_NEW_PROVINCE, convert_unit, new_province_code

# DOMAIN.md's merge table, written out again by hand so that the TOML is checked against it.
DOMAIN_MERGES = {
    "01": ["01"], "04": ["04"], "08": ["02", "08"], "11": ["11"], "12": ["12"], "14": ["14"],
    "15": ["10", "15"], "19": ["06", "19"], "20": ["20"], "22": ["22"], "24": ["24", "27"],
    "25": ["17", "25", "26"], "31": ["30", "31"], "33": ["33", "34"], "37": ["35", "36", "37"],
    "38": ["38"], "40": ["40"], "42": ["42"], "44": ["44", "45"], "46": ["46"], "48": ["48", "49"],
    "51": ["51", "62"], "52": ["52", "64"], "56": ["56", "58"], "66": ["54", "66"],
    "68": ["60", "67", "68"], "75": ["70", "75"], "79": ["74", "77", "79"], "80": ["72", "80"],
    "82": ["82", "87"], "86": ["83", "84", "86"], "91": ["89", "91"], "92": ["92", "93", "94"],
    "96": ["95", "96"],
}  # fmt: skip


def test_province_table_is_the_domain_merge_table() -> None:
    expected = {old: new for new, olds in DOMAIN_MERGES.items() for old in olds}
    assert expected == OLD_TO_NEW_PROVINCE
    assert len(OLD_TO_NEW_PROVINCE) == 63
    assert len(set(OLD_TO_NEW_PROVINCE.values())) == 34


def test_every_new_province_exists_in_vietnam_provinces() -> None:
    package_codes = {f"{int(p.code):02d}" for p in Province.iter_all()}
    assert set(OLD_TO_NEW_PROVINCE.values()) == package_codes


@pytest.mark.parametrize("new_code", sorted(DOMAIN_MERGES))
def test_province_conversion_is_idempotent(new_code: str) -> None:
    assert new_province_code(new_code) == new_code


def test_commune_that_is_a_current_ward_of_the_province_converts_exactly() -> None:
    unit = convert_unit("01", "00070")
    assert unit.conversion == "exact"
    assert (unit.province_code, unit.province_name) == ("01", "Thành phố Hà Nội")
    assert (unit.commune_code, unit.commune_name) == ("00070", "Phường Hoàn Kiếm")
    assert (unit.original_province_code, unit.original_commune_code) == ("01", "00070")


def test_commune_of_a_merged_province_converts_to_the_new_province() -> None:
    # Thái Bình (34) joined Hưng Yên (33); Phường Trần Lãm kept its old code 12454.
    unit = convert_unit("34", "12454")
    assert unit.conversion == "exact"
    assert unit.province_code == "33"
    assert unit.province_name == "Hưng Yên"
    assert (unit.commune_code, unit.commune_name) == ("12454", "Phường Trần Lãm")
    assert unit.original_province_code == "34"


def test_commune_code_not_reused_is_ambiguous_and_keeps_the_original() -> None:
    assert "00001" not in COMMUNES
    unit = convert_unit("01", "00001")
    assert unit.conversion == "ambiguous"
    assert unit.province_code == "01"
    assert unit.commune_code is None and unit.commune_name is None
    assert (unit.original_province_code, unit.original_commune_code) == ("01", "00001")


def test_commune_of_another_province_is_ambiguous() -> None:
    unit = convert_unit("79", "00070")  # a Hà Nội ward code filed under Hồ Chí Minh City
    assert unit.conversion == "ambiguous"
    assert unit.province_code == "79"
    assert unit.commune_code is None


def test_missing_commune_is_ambiguous() -> None:
    unit = convert_unit("77", None)
    assert (unit.conversion, unit.province_code, unit.commune_code) == ("ambiguous", "79", None)


@pytest.mark.parametrize(("province", "commune"), [("99", "00070"), (None, "00070"), ("x1", None)])
def test_unknown_province_is_unknown_and_keeps_the_original(
    province: str | None, commune: str | None
) -> None:
    unit = convert_unit(province, commune)
    assert unit.conversion == "unknown"
    assert unit.province_code is None and unit.commune_code is None
    assert (unit.original_province_code, unit.original_commune_code) == (province, commune)


def test_codes_given_as_numbers_are_zero_padded() -> None:
    unit = convert_unit(1, 70)
    assert (unit.conversion, unit.province_code, unit.commune_code) == ("exact", "01", "00070")


def test_converting_a_converted_unit_again_changes_nothing() -> None:
    first = convert_unit("34", "12454")
    again = convert_unit(first.province_code, first.commune_code)
    assert (again.province_code, again.commune_code, again.conversion) == ("33", "12454", "exact")
