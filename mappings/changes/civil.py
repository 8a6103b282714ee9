"""The civil status database's changes (its feed `LayDanhSachThayDoi`) -> normalized changes.

| LoaiThayDoi | event type         | entity (kind)                          |
|-------------|--------------------|----------------------------------------|
| KHAI_SINH   | CitizenBorn        | the birth registration's number        |
| KHAI_TU     | CitizenDeceased    | the deceased's personal id             |
| KET_HON     | MarriageRegistered | the husband's personal id              |
| LY_HON      | DivorceRegistered  | the husband's personal id              |

The native fields: `SuKienHoTich` (the record: days dd/MM/yyyy, the office `CoQuanDangKy` with
its old commune and province codes, the people named), `ThongTinKhaiSinh` (a birth's sex 1/2,
`NgaySinh`, `NoiSinh`, `Cha`, `Me`) and `NoiChet` (a death's place). This source sends its text
in NFD: every text is made NFC here. A registration's id is its office's commune code, book and
entry (`<MaDonViHanhChinh>-<QuyenSo>-<SoDangKy>`); a birth's is the feed's `MaDoiTuong`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date
from typing import Any

from bus.errors import MappingError
from mappings.changes import NormalizedChange, change_mapper
from mappings.transforms import to_name
from mappings.units import convert_unit

_DAY = re.compile(r"(\d{2})/(\d{2})/(\d{4})")
_PERSONAL_ID = re.compile(r"\d{12}")
_SEX = {"1": "male", "2": "female"}


@change_mapper("civil")
def civil_change(kind: str, entity: str, data: Mapping[str, Any]) -> NormalizedChange | None:
    """One change of the civil status feed; None for a kind the bus does not carry."""
    if kind not in ("KHAI_SINH", "KHAI_TU", "KET_HON", "LY_HON"):
        return None
    record = _part(data, "SuKienHoTich")
    if kind == "KHAI_SINH":
        return _birth(entity, record, _part(data, "ThongTinKhaiSinh"))
    registered = {
        "registered_on": _day(record, "SuKienHoTich.NgayDangKy"),
        "registry_office": _office(record),
    }
    if kind == "KHAI_TU":
        death = {
            "death_registration_id": _registration_id(record),
            "date_of_death": _day(record, "SuKienHoTich.NgaySuKien"),
            "place_of_death": _text(data, "NoiChet"),
            **registered,
        }
        return NormalizedChange("CitizenDeceased", entity, "personal_id", _present(death))
    spouse = _spouse_of(entity, record)
    if kind == "KET_HON":
        marriage = {
            "marriage_registration_id": _registration_id(record),
            "spouse_personal_id": spouse,
            **registered,
        }
        return NormalizedChange("MarriageRegistered", entity, "personal_id", _present(marriage))
    divorce = {
        "spouse_personal_id": spouse,
        "decision": _text(record, "SuKienHoTich.BanAnQuyetDinh"),
        "effective_on": _day(record, "SuKienHoTich.NgaySuKien"),
    }
    return NormalizedChange("DivorceRegistered", entity, "personal_id", _present(divorce))


def _birth(entity: str, record: Mapping[str, Any], born: Mapping[str, Any]) -> NormalizedChange:
    child = _part(record, "SuKienHoTich.NguoiDuocKhaiSinh")
    name = _text(child, "SuKienHoTich.NguoiDuocKhaiSinh.HoVaTen")
    if name is None:
        raise MappingError("SuKienHoTich.NguoiDuocKhaiSinh.HoVaTen", None, "the child's name")
    sex = _SEX.get(str(_leaf(born, "ThongTinKhaiSinh.GioiTinh")))
    if sex is None:
        raise MappingError(
            "ThongTinKhaiSinh.GioiTinh", _leaf(born, "ThongTinKhaiSinh.GioiTinh"), "1 or 2"
        )
    place = born.get("NoiSinh")
    commune = None
    if isinstance(place, Mapping):
        commune = convert_unit(place.get("MaTinh"), place.get("MaDonViHanhChinh")).commune_code
    birth = {
        "birth_registration_id": entity,
        "full_name": to_name(name),
        "sex": sex,
        "birth_date": _day(born, "ThongTinKhaiSinh.NgaySinh"),
        "birth_place_commune": commune,
        "father_personal_id": _parent_id(born, "Cha"),
        "mother_personal_id": _parent_id(born, "Me"),
        "registered_on": _day(record, "SuKienHoTich.NgayDangKy"),
        "registry_office": _office(record),
    }
    return NormalizedChange("CitizenBorn", entity, "birth_registration", _present(birth))


def _spouse_of(entity: str, record: Mapping[str, Any]) -> str:
    """The personal id of the other spouse than `entity` (the husband, as the feed keys it)."""
    husband = _personal_id(_part(record, "SuKienHoTich.Chong"), "SuKienHoTich.Chong.SoDinhDanh")
    wife = _personal_id(_part(record, "SuKienHoTich.Vo"), "SuKienHoTich.Vo.SoDinhDanh")
    return husband if entity == wife else wife


def _parent_id(born: Mapping[str, Any], role: str) -> str | None:
    parent = born.get(role)
    if not isinstance(parent, Mapping) or not parent.get("SoDinhDanh"):
        return None
    return _personal_id(parent, f"ThongTinKhaiSinh.{role}.SoDinhDanh")


def _registration_id(record: Mapping[str, Any]) -> str:
    office = _part(record, "SuKienHoTich.CoQuanDangKy")
    parts = (
        _leaf(office, "SuKienHoTich.CoQuanDangKy.MaDonViHanhChinh"),
        _leaf(record, "SuKienHoTich.QuyenSo"),
        _leaf(record, "SuKienHoTich.SoDangKy"),
    )
    return "-".join(str(part) for part in parts)


def _office(record: Mapping[str, Any]) -> str | None:
    return _text(_part(record, "SuKienHoTich.CoQuanDangKy"), "SuKienHoTich.CoQuanDangKy.TenCoQuan")


# -- reading native values: each error names the field's path --------------------------------


def _part(data: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    value = data.get(path.rsplit(".", 1)[-1])
    if not isinstance(value, Mapping):
        raise MappingError(path, value, "a nested element")
    return value


def _leaf(data: Mapping[str, Any], path: str) -> Any:
    value = data.get(path.rsplit(".", 1)[-1])
    if value is None or value == "":
        raise MappingError(path, value, "a value")
    return value


def _text(data: Mapping[str, Any], path: str) -> str | None:
    value = data.get(path.rsplit(".", 1)[-1])
    if value is None:
        return None
    if not isinstance(value, str):
        raise MappingError(path, value, "text")
    return " ".join(unicodedata.normalize("NFC", value).split()) or None


def _day(data: Mapping[str, Any], path: str) -> str:
    """A day dd/MM/yyyy as ISO yyyy-mm-dd."""
    value = data.get(path.rsplit(".", 1)[-1])
    match = _DAY.fullmatch(value) if isinstance(value, str) else None
    try:
        if match is None:
            raise ValueError(path)
        return date(int(match[3]), int(match[2]), int(match[1])).isoformat()
    except ValueError:
        raise MappingError(path, value, "a date dd/MM/yyyy") from None


def _personal_id(data: Mapping[str, Any], path: str) -> str:
    value = data.get(path.rsplit(".", 1)[-1])
    if not isinstance(value, str) or not _PERSONAL_ID.fullmatch(value):
        raise MappingError(path, value, "a 12-digit personal id")
    return value


def _present(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}
