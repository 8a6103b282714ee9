"""The population database's changes (its feed `LayDanhSachThayDoi`) -> normalized changes.

| LoaiThayDoi             | event type        | data                                        |
|-------------------------|-------------------|---------------------------------------------|
| CAP_SO_DINH_DANH        | CitizenRegistered | the citizen and the permanent residence     |
| DANG_KY_THUONG_TRU      | ResidenceChanged  | permanent, registered (moved: `DiaChiCu`)   |
| XOA_DANG_KY_THUONG_TRU  | ResidenceChanged  | permanent, removed                          |
| THAY_DOI_NOI_O_HIEN_TAI | ResidenceChanged  | current, moved                              |

The entity is the citizen's personal id (`SoDinhDanh`). Days are yyyyMMdd (`NgayHieuLuc`,
`NgayThangNam`); addresses `DiaChi` carry old commune and province codes, converted to the 2025
communes (None when the old code alone cannot decide); names are NFC, title case when they came
in upper case.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bus.errors import MappingError
from mappings.changes import NormalizedChange, change_mapper
from mappings.changes._values import native_date, optional_text
from mappings.transforms import to_name
from mappings.units import convert_unit

_SEX = {1: "male", 2: "female"}
_RESIDENCE = {
    "DANG_KY_THUONG_TRU": ("permanent", "registered"),
    "XOA_DANG_KY_THUONG_TRU": ("permanent", "removed"),
    "THAY_DOI_NOI_O_HIEN_TAI": ("current", "moved"),
}


@change_mapper("population")
def population_change(kind: str, entity: str, data: Mapping[str, Any]) -> NormalizedChange | None:
    """One change of the population feed; None for a kind the bus does not carry."""
    if kind == "CAP_SO_DINH_DANH":
        return NormalizedChange(
            "CitizenRegistered", entity, "personal_id", _registered(entity, data)
        )
    if kind not in _RESIDENCE:
        return None
    residence, action = _RESIDENCE[kind]
    if action == "registered" and isinstance(data.get("DiaChiCu"), Mapping):
        action = "moved"
    address = data.get("DiaChi") if action != "removed" else None
    if action != "removed" and not isinstance(address, Mapping):
        raise MappingError("DiaChi", address, "an address")
    changed = {
        "kind": residence,
        "action": action,
        "commune": _commune(address, "DiaChi") if address else None,
        "detail": optional_text(address, "ChiTiet") if address else None,
        "reason": optional_text(data, "LyDo"),
        "effective_on": _day(data, "NgayHieuLuc"),
    }
    return NormalizedChange("ResidenceChanged", entity, "personal_id", _present(changed))


def _registered(entity: str, data: Mapping[str, Any]) -> dict[str, Any]:
    citizen = data.get("CongDan")
    if not isinstance(citizen, Mapping):
        raise MappingError("CongDan", citizen, "the citizen's element")
    name = citizen.get("HoVaTen")
    if not isinstance(name, Mapping) or not name.get("Ho") or not name.get("Ten"):
        raise MappingError("CongDan.HoVaTen", name, "Ho, ChuDem and Ten")
    parts = [name.get(part) for part in ("Ho", "ChuDem", "Ten")]
    sex = _SEX.get(citizen.get("GioiTinh"))  # type: ignore[arg-type]
    if sex is None:
        raise MappingError("CongDan.GioiTinh", citizen.get("GioiTinh"), "1 or 2")
    born = citizen.get("NgayThangNamSinh")
    if not isinstance(born, Mapping):
        raise MappingError("CongDan.NgayThangNamSinh", born, "a birth date")
    address = data.get("DiaChi")
    registered = {
        "personal_id": entity,
        "full_name": to_name(" ".join(str(part) for part in parts if part)),
        "sex": sex,
        "birth_date": _day(born, "NgayThangNam"),
        "birth_registration_id": optional_text(citizen, "SoDangKyKhaiSinh"),
        "permanent_residence_commune": (
            _commune(address, "DiaChi") if isinstance(address, Mapping) else None
        ),
    }
    return _present(registered)


def _commune(address: Mapping[str, Any], path: str) -> str | None:
    province, commune = address.get("MaTinh"), address.get("MaDonViHanhChinh")
    if not isinstance(commune, str) or not commune.isdigit():
        raise MappingError(f"{path}.MaDonViHanhChinh", commune, "a commune code")
    return convert_unit(province, commune).commune_code


def _day(data: Mapping[str, Any], field: str) -> str:
    """A day yyyyMMdd as ISO yyyy-mm-dd."""
    return native_date(data, field, "yyyyMMdd").isoformat()


def _present(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}
