"""Changes of the driver licence database (loai_thay_doi) -> the bus's change events.

The native entity is the licence (`so_gplx`); the event is keyed by the holder's personal id
(`so_dinh_danh`, entity kind `personal_id`), so that every change of one person's licences, and
those of the other databases about the person, are keyed alike and stay in order; the licence
number is in the data.

- CAP_MOI    -> LicenceIssued (hang: its class, of licence-class-2025 or, when he_hang is
                truoc_2025, licence-class-pre2025; ngay_hieu_luc; den_ngay the expiry)
- TUOC_QUYEN -> LicenceSuspended (ngay_hieu_luc .. den_ngay; the decision as the reason)
- THU_HOI    -> LicenceRevoked (ngay_hieu_luc, ly_do)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bus.errors import MappingError
from bus.schemas.change import ChangeType
from mappings.changes import NormalizedChange, change_mapper
from mappings.changes._values import (
    code,
    identifier,
    native_date,
    optional_date,
    optional_text,
)

TYPES: dict[str, ChangeType] = {
    "CAP_MOI": "LicenceIssued",
    "TUOC_QUYEN": "LicenceSuspended",
    "THU_HOI": "LicenceRevoked",
}
CLASS_LISTS = {"2025": "licence-class-2025", "truoc_2025": "licence-class-pre2025"}


@change_mapper("licence")
def map_licence_change(kind: str, entity: str, data: Mapping[str, Any]) -> NormalizedChange | None:
    event_type = TYPES.get(kind)
    if event_type is None:
        return None
    number = identifier({"so_gplx": entity}, "so_gplx", r"\d{12}", "12 digits")
    holder = identifier(data, "so_dinh_danh", r"\d{12}", "12 digits")
    licence: dict[str, Any] = {
        "licence_number": number,
        "holder_personal_id": holder,
        "effective_on": native_date(data, "ngay_hieu_luc"),
        "until": optional_date(data, "den_ngay"),
    }
    if kind == "CAP_MOI":
        scheme = data.get("he_hang", "2025")
        if scheme not in CLASS_LISTS:
            raise MappingError("he_hang", scheme, f"one of {sorted(CLASS_LISTS)}")
        licence["licence_class"] = code(data, "hang", CLASS_LISTS[str(scheme)])
    elif kind == "TUOC_QUYEN":
        decision = optional_text(data, "so_quyet_dinh")
        licence["reason"] = None if decision is None else f"Quyết định số {decision}"
    else:
        licence["reason"] = optional_text(data, "ly_do")
    return NormalizedChange(event_type, holder, "personal_id", licence)
