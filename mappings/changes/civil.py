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

from collections.abc import Mapping
from typing import Any

from bus.errors import MappingError
from mappings.changes import NormalizedChange, change_mapper
from mappings.changes._values import identifier, native_date, optional_text, text
from mappings.transforms import to_name
from mappings.units import convert_unit

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
        "registered_on": _day(record, "NgayDangKy"),
        "registry_office": _office(record),
    }
    if kind == "KHAI_TU":
        death = {
            "death_registration_id": _registration_id(record),
            "date_of_death": _day(record, "NgaySuKien"),
            "place_of_death": optional_text(data, "NoiChet"),
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
        "decision": optional_text(record, "BanAnQuyetDinh"),
        "effective_on": _day(record, "NgaySuKien"),
    }
    return NormalizedChange("DivorceRegistered", entity, "personal_id", _present(divorce))


def _birth(entity: str, record: Mapping[str, Any], born: Mapping[str, Any]) -> NormalizedChange:
    child = _part(record, "NguoiDuocKhaiSinh")
    name = optional_text(child, "HoVaTen")
    if name is None:
        raise MappingError("HoVaTen", None, "the child's name")
    sex = _SEX.get(str(born.get("GioiTinh")))
    if sex is None:
        raise MappingError("GioiTinh", born.get("GioiTinh"), "1 (male) or 2 (female)")
    place = born.get("NoiSinh")
    commune = None
    if isinstance(place, Mapping):
        commune = convert_unit(place.get("MaTinh"), place.get("MaDonViHanhChinh")).commune_code
    birth = {
        "birth_registration_id": entity,
        "full_name": to_name(name),
        "sex": sex,
        "birth_date": _day(born, "NgaySinh"),
        "birth_place_commune": commune,
        "father_personal_id": _parent_id(born, "Cha"),
        "mother_personal_id": _parent_id(born, "Me"),
        "registered_on": _day(record, "NgayDangKy"),
        "registry_office": _office(record),
    }
    return NormalizedChange("CitizenBorn", entity, "birth_registration", _present(birth))


def _spouse_of(entity: str, record: Mapping[str, Any]) -> str:
    """The personal id of the other spouse than `entity` (the husband, as the feed keys it)."""
    husband = _personal_id(_part(record, "Chong"), "SoDinhDanh")
    wife = _personal_id(_part(record, "Vo"), "SoDinhDanh")
    return husband if entity == wife else wife


def _parent_id(born: Mapping[str, Any], role: str) -> str | None:
    parent = born.get(role)
    if not isinstance(parent, Mapping) or not parent.get("SoDinhDanh"):
        return None
    return _personal_id(parent, "SoDinhDanh")


def _registration_id(record: Mapping[str, Any]) -> str:
    office = _part(record, "CoQuanDangKy")
    parts = (
        identifier(office, "MaDonViHanhChinh", r"\d{5}", "a 5-digit commune code"),
        text(record, "QuyenSo"),
        text(record, "SoDangKy"),
    )
    return "-".join(str(part) for part in parts)


def _office(record: Mapping[str, Any]) -> str | None:
    return optional_text(_part(record, "CoQuanDangKy"), "TenCoQuan")


# -- reading native values (mappings.changes._values names the field in every error) -------


def _part(data: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = data.get(field)
    if not isinstance(value, Mapping):
        raise MappingError(field, value, "a nested element")
    return value


def _day(data: Mapping[str, Any], field: str) -> str:
    """A day dd/MM/yyyy as ISO yyyy-mm-dd."""
    return native_date(data, field).isoformat()


def _personal_id(data: Mapping[str, Any], field: str) -> str:
    return identifier(data, field, r"\d{12}", "a 12-digit personal id")


def _present(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}
