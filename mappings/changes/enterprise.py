"""Changes of the business registration database (CHANGE_TYPE) -> the bus's change events.

STATUS_CHANGE -> EnterpriseStatusChanged, keyed by the enterprise code (entity kind
`enterprise_code`): ENTERPRISE_STATUS_ID and PREVIOUS_STATUS_ID (null at the founding) are codes
of mappings/codes/enterprise-status.toml (the registry sends the bus's numbers), EFFECTIVE_DATE
(dd/MM/yyyy) the day it took effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappings.changes import NormalizedChange, change_mapper
from mappings.changes._values import code, identifier, native_date, optional_code

STATUS_LIST = "enterprise-status"


@change_mapper("enterprise")
def map_enterprise_change(
    kind: str, entity: str, data: Mapping[str, Any]
) -> NormalizedChange | None:
    if kind != "STATUS_CHANGE":
        return None
    enterprise = identifier({"ENTERPRISE_CODE": entity}, "ENTERPRISE_CODE", r"\d{10}", "10 digits")
    status = {
        "previous_status": optional_code(data, "PREVIOUS_STATUS_ID", STATUS_LIST),
        "status": code(data, "ENTERPRISE_STATUS_ID", STATUS_LIST),
        "effective_on": native_date(data, "EFFECTIVE_DATE"),
    }
    return NormalizedChange("EnterpriseStatusChanged", enterprise, "enterprise_code", status)
