"""Pre-2025 addresses of the legacy databases converted to the 2025 units, on real cases.

The communes are from the `vietnam-provinces` package (the 2025 units): a 2025 commune kept the
code of one of its predecessors, so an old code that is still a commune of the new province
converts exactly, and one that no 2025 commune reused is ambiguous.
"""

from __future__ import annotations

import pytest

from mappings.transforms import TRANSFORMS, build_converter
from mappings.units import COMMUNES, convert_unit


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [
        ("02", "08", "Tuyên Quang"),  # Hà Giang merged into Tuyên Quang
        ("08", "08", "Tuyên Quang"),
        ("24", "24", "Bắc Ninh"),  # Bắc Giang (24) and Bắc Ninh (27) became Bắc Ninh, code 24
        ("27", "24", "Bắc Ninh"),
        ("74", "79", "Thành phố Hồ Chí Minh"),  # Bình Dương
        ("77", "79", "Thành phố Hồ Chí Minh"),  # Bà Rịa - Vũng Tàu
        ("93", "92", "Thành phố Cần Thơ"),  # Hậu Giang
        ("01", "01", "Thành phố Hà Nội"),  # unchanged
    ],
)
def test_old_province_converts_to_the_province_that_absorbed_it(
    old: str, new: str, name: str
) -> None:
    unit = convert_unit(old, None)
    assert (unit.province_code, unit.province_name) == (new, name)
    assert unit.original_province_code == old


@pytest.mark.parametrize(
    ("province", "commune", "new_province", "name"),
    [
        ("02", "00694", "08", "Phường Hà Giang 1"),  # a Hà Giang city ward, now Tuyên Quang
        ("74", "25747", "79", "Phường Thủ Dầu Một"),  # Bình Dương, now Hồ Chí Minh City
        ("24", "07210", "24", "Phường Bắc Giang"),  # Bắc Giang, now Bắc Ninh
        ("27", "09169", "24", "Phường Vũ Ninh"),  # Bắc Ninh city
    ],
)
def test_commune_whose_code_was_kept_converts_exactly(
    province: str, commune: str, new_province: str, name: str
) -> None:
    unit = convert_unit(province, commune)
    assert unit.conversion == "exact"
    assert (unit.province_code, unit.commune_code, unit.commune_name) == (
        new_province,
        commune,
        name,
    )
    assert (unit.original_province_code, unit.original_commune_code) == (province, commune)


@pytest.mark.parametrize(
    ("province", "commune", "new_province"),
    [
        ("02", "00688", "08"),  # an old ward of Hà Giang city that no 2025 commune reused
        ("27", "09172", "24"),  # likewise in the old Bắc Ninh city
        ("74", "07210", "79"),  # a code that is a 2025 commune, but of another province
    ],
)
def test_old_commune_that_is_not_a_commune_of_the_new_province_is_ambiguous(
    province: str, commune: str, new_province: str
) -> None:
    assert COMMUNES.get(commune, (None, None))[1] != new_province
    unit = convert_unit(province, commune)
    assert unit.conversion == "ambiguous"
    assert unit.province_code == new_province
    assert (unit.commune_code, unit.commune_name) == (None, None)
    assert (unit.original_province_code, unit.original_commune_code) == (province, commune)


def test_the_address_transform_keeps_the_original_codes_of_an_ambiguous_commune() -> None:
    address = build_converter(TRANSFORMS["address"], {})
    result = address({"detail": "Tổ 5", "province": "02", "commune": "00688", "country": None})
    assert result["conversion"] == "ambiguous"
    assert (result["province_code"], result["province_name"]) == ("08", "Tuyên Quang")
    assert result["commune_code"] is None
    assert result["original"] == {
        "province_code": "02",
        "commune_code": "00688",
        "scheme": "pre-2025",
    }


def test_the_address_transform_converts_an_exact_commune_with_its_name() -> None:
    address = build_converter(TRANSFORMS["address"], {})
    result = address({"detail": "Số 1", "province": 74, "commune": 25747})
    assert result["conversion"] == "exact"
    assert (result["province_code"], result["commune_code"]) == ("79", "25747")
    assert result["commune_name"] == "Phường Thủ Dầu Một"
