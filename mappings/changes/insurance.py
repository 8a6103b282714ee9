"""Changes of the social insurance database (loaiBienDong) -> the bus's change events.

Every change is about a person, and its event is keyed by the person's personal id
(`soDinhDanh`, entity kind `personal_id`), so that one person's participation, card and
funeral-allowance changes stay in order; the BHXH number is in the data.

- BAT_DAU_THAM_GIA  -> InsuranceParticipationChanged, action started (tuNgay)
- DUNG_THAM_GIA     -> InsuranceParticipationChanged, action stopped (ngayDung); the reason is
                       the stop reason's name (insurance-stop-reason) when the participation
                       ended (trangThaiThamGia 3), the paused status's name when a job ended (2)
- CAP_THE_BHYT      -> HealthCardIssued (maThe, gtTheTu, gtTheDen, maDoiTuong)
- MO_HO_SO_MAI_TANG -> FuneralAllowanceCaseOpened (maHoSo, maSoBHXH, ngayChet, ngayMo)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bus.errors import MappingError
from mappings.changes import NormalizedChange, change_mapper
from mappings.changes._values import (
    code,
    identifier,
    label,
    native_date,
    optional_code,
    optional_date,
    text,
)

PERSONAL_ID, BHXH_NUMBER, CARD_NUMBER = r"\d{12}", r"\d{10}", r"[A-Z]{2}[1-5]\d{2}\d{10}"
SCHEMES = {"BB": "compulsory", "TN": "voluntary"}  # insurance-contribution-type -> scheme
STATUS_LIST, STOP_LIST = "insurance-participation-status", "insurance-stop-reason"
STOPPED, PAUSED = "3", "2"


@change_mapper("insurance")
def map_insurance_change(
    kind: str, entity: str, data: Mapping[str, Any]
) -> NormalizedChange | None:
    personal_id = identifier({"soDinhDanh": entity}, "soDinhDanh", PERSONAL_ID, "12 digits")
    number = identifier(data, "maSoBHXH", BHXH_NUMBER, "10 digits")
    if kind in ("BAT_DAU_THAM_GIA", "DUNG_THAM_GIA"):
        return NormalizedChange(
            "InsuranceParticipationChanged",
            personal_id,
            "personal_id",
            _participation(kind, number, data),
        )
    if kind == "CAP_THE_BHYT":
        card = {
            "card_number": identifier(data, "maThe", CARD_NUMBER, "a BHYT card number"),
            "valid_from": native_date(data, "gtTheTu"),
            "valid_to": optional_date(data, "gtTheDen"),
            "beneficiary_group": optional_code(data, "maDoiTuong", "insurance-beneficiary-group"),
        }
        return NormalizedChange("HealthCardIssued", personal_id, "personal_id", card)
    if kind == "MO_HO_SO_MAI_TANG":
        case = {
            "case_id": text(data, "maHoSo"),
            "insurance_number": number,
            "date_of_death": native_date(data, "ngayChet"),
            "opened_on": native_date(data, "ngayMo"),
        }
        return NormalizedChange("FuneralAllowanceCaseOpened", personal_id, "personal_id", case)
    return None


def _participation(kind: str, number: str, data: Mapping[str, Any]) -> dict[str, Any]:
    scheme = data.get("loaiDong")
    change: dict[str, Any] = {
        "insurance_number": number,
        "scheme": None
        if scheme is None
        else SCHEMES[code(data, "loaiDong", "insurance-contribution-type")],
        "employer_code": data.get("maSoThue") or None,
    }
    if change["employer_code"] is not None:
        change["employer_code"] = identifier(data, "maSoThue", r"\d{10}(-\d{3})?", "a tax code")
    if kind == "BAT_DAU_THAM_GIA":
        return {**change, "action": "started", "effective_on": native_date(data, "tuNgay")}
    status = code(data, "trangThaiThamGia", STATUS_LIST)
    if status == STOPPED:
        reason = label(STOP_LIST, code(data, "lyDoDung", STOP_LIST))
    elif status == PAUSED:
        reason = label(STATUS_LIST, PAUSED)
    else:
        raise MappingError("trangThaiThamGia", data.get("trangThaiThamGia"), "2 or 3 after a stop")
    return {
        **change,
        "action": "stopped",
        "effective_on": native_date(data, "ngayDung"),
        "reason": reason,
    }
