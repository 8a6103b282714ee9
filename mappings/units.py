"""Administrative units before and after the reform of 1 July 2025.

Legacy databases hold pre-2025 codes: a 2-digit province (one of 63) and a 5-digit commune.
`convert_unit` turns such a pair into the 2025 units (34 provinces, communes without districts):

- the province goes through our old -> new table (`codes/provinces-2025.toml`); new codes are old
  codes too, so converting a 2025 code again changes nothing;
- a new commune reused the code of one of its predecessors, so when the 5-digit code is a current
  commune of the converted province the conversion is "exact". Otherwise the old code alone
  cannot say which new commune it went to (an old commune merged "in part" went to several):
  the conversion is "ambiguous" and the commune is left empty.

The original codes are always kept. The 2025 units and their names come from the
`vietnam-provinces` package; everything is looked up in dicts built once at import.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from vietnam_provinces import Province, Ward

from bus.schemas.citizen import UnitConversion

PROVINCE_TABLE = Path(__file__).parent / "codes" / "provinces-2025.toml"


@dataclass(frozen=True, slots=True)
class ConvertedUnit:
    """The 2025 units for a pre-2025 pair of codes, with the pair as the source gave it."""

    province_code: str | None
    province_name: str | None
    commune_code: str | None
    commune_name: str | None
    conversion: UnitConversion
    original_province_code: str | None
    original_commune_code: str | None


def _load_province_table(path: Path) -> dict[str, str]:
    """Old 2-digit province code -> 2025 province code, checked against the package."""
    with path.open("rb") as fh:
        table: dict[str, Any] = tomllib.load(fh)
    known = {f"{int(p.code):02d}" for p in Province.iter_all()}
    old_to_new: dict[str, str] = {}
    for new_code, entry in table["province"].items():
        if new_code not in known:
            raise ValueError(
                f"{path}: province.{new_code}: not a 2025 province in vietnam-provinces"
            )
        for old_code in entry["merged_from"]:
            if old_code in old_to_new:
                raise ValueError(f"{path}: old province {old_code} is listed twice")
            old_to_new[old_code] = new_code
    return old_to_new


OLD_TO_NEW_PROVINCE: dict[str, str] = _load_province_table(PROVINCE_TABLE)
PROVINCE_NAMES: dict[str, str] = {f"{int(p.code):02d}": p.name for p in Province.iter_all()}
# 5-digit commune code -> (name, 2-digit province code), 2025 units.
COMMUNES: dict[str, tuple[str, str]] = {
    f"{int(w.code):05d}": (w.name, f"{int(w.province_code):02d}") for w in Ward.iter_all()
}


def _digits(value: object, width: int) -> str | None:
    """A code as a zero-padded digit string; None when it is empty or not digits."""
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > width:
        return None
    return text.zfill(width)


def new_province_code(old_code: str) -> str | None:
    """The 2025 code of the province that absorbed `old_code` (a 2025 code maps to itself)."""
    return OLD_TO_NEW_PROVINCE.get(old_code)


def convert_unit(province_code: object, commune_code: object) -> ConvertedUnit:
    """Convert a pre-2025 (province, commune) pair to the 2025 units; see the module doc."""
    if isinstance(province_code, str | None) and isinstance(commune_code, str | None):
        return _convert_codes(province_code, commune_code)
    return _convert(province_code, commune_code)


@lru_cache(maxsize=16_384)  # a few thousand communes: the pairs repeat, the result is immutable
def _convert_codes(province_code: str | None, commune_code: str | None) -> ConvertedUnit:
    return _convert(province_code, commune_code)


def _convert(province_code: object, commune_code: object) -> ConvertedUnit:
    old_province = _digits(province_code, 2)
    old_commune = _digits(commune_code, 5)
    original_province = None if province_code is None else str(province_code).strip() or None
    original_commune = None if commune_code is None else str(commune_code).strip() or None
    province = new_province_code(old_province) if old_province else None
    if province is None:
        return ConvertedUnit(None, None, None, None, "unknown", original_province, original_commune)
    commune = COMMUNES.get(old_commune) if old_commune else None
    if commune is not None and commune[1] == province:
        return ConvertedUnit(
            province,
            PROVINCE_NAMES[province],
            old_commune,
            commune[0],
            "exact",
            original_province,
            original_commune,
        )
    return ConvertedUnit(
        province,
        PROVINCE_NAMES[province],
        None,
        None,
        "ambiguous",
        original_province,
        original_commune,
    )
