"""The change mappers of insurance, licence and enterprise: native changes of the sandbox's own
feeds -> events `ChangeEvent` accepts; an unreadable native value names its field, never the
value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bus.errors import MappingError
from bus.schemas.change import ChangeEvent, change_event_id
from mappings.changes import NormalizedChange, mapper_for
from sandbox.changes import SandboxState
from sandbox.enterprise.service import EnterpriseService
from sandbox.insurance.service import InsuranceService
from sandbox.licence.service import LicenceService
from sandbox.world import World

PERSON = "001089012345"


def mapped(source: str, kind: str, entity: str, data: dict[str, Any]) -> NormalizedChange:
    mapper = mapper_for(source)
    assert mapper is not None
    normalized = mapper(kind, entity, data)
    assert normalized is not None
    return normalized


def event(source: str, sequence: int, kind: str, normalized: NormalizedChange) -> ChangeEvent:
    return ChangeEvent(
        message_id=change_event_id(source, sequence),
        source=source,
        sequence=sequence,
        event_type=normalized.event_type,
        entity=normalized.entity,
        entity_kind=normalized.entity_kind,
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
        native_kind=kind,
        data=normalized.data,
    )


@pytest.mark.parametrize(
    ("source", "cls"),
    [
        ("insurance", InsuranceService),
        ("licence", LicenceService),
        ("enterprise", EnterpriseService),
    ],
)
def test_every_kind_of_a_backlog_maps_to_a_typed_event(source: str, cls: type[Any]) -> None:
    service = cls(World(count=800, seed=21))
    service.enable_changes(5_000, SandboxState())
    changes, _ = service.changes.page(0, 3_000)
    seen = set()
    for change in changes:
        normalized = mapped(source, change.kind, change.entity, change.data)
        typed = event(source, change.sequence, change.kind, normalized).typed()
        seen.add((change.kind, normalized.event_type, type(typed).__name__))
    kinds = {kind for kind, _, _ in seen}
    expected = {
        "insurance": {"BAT_DAU_THAM_GIA", "DUNG_THAM_GIA", "CAP_THE_BHYT", "MO_HO_SO_MAI_TANG"},
        "licence": {"CAP_MOI", "TUOC_QUYEN", "THU_HOI"},
        "enterprise": {"STATUS_CHANGE"},
    }[source]
    assert kinds == expected


def test_a_stop_by_death_reads_its_reason_from_the_code_list() -> None:
    normalized = mapped(
        "insurance",
        "DUNG_THAM_GIA",
        PERSON,
        {
            "maSoBHXH": "0101234567",
            "ngayDung": "30/11/2026",
            "trangThaiThamGia": "3",
            "lyDoDung": "1",
        },
    )
    assert normalized.entity == PERSON and normalized.entity_kind == "personal_id"
    assert normalized.data["reason"] == "Chết"
    assert event("insurance", 1, "DUNG_THAM_GIA", normalized).data["effective_on"] == "2026-11-30"


def test_licence_events_are_keyed_by_the_holder() -> None:
    normalized = mapped(
        "licence",
        "THU_HOI",
        "010123456789",
        {
            "so_dinh_danh": PERSON,
            "ngay_hieu_luc": "30/11/2026",
            "ly_do": "Người được cấp giấy phép lái xe đã chết",
            "so_quyet_dinh": "1/QĐ-CSGT",
        },
    )
    assert (normalized.entity, normalized.data["licence_number"]) == (PERSON, "010123456789")


@pytest.mark.parametrize(
    ("source", "kind", "entity", "data", "field"),
    [
        (
            "insurance",
            "BAT_DAU_THAM_GIA",
            PERSON,
            {"maSoBHXH": "0101234567", "loaiDong": "BB", "tuNgay": "2026-11-30"},
            "tuNgay",
        ),
        (
            "insurance",
            "CAP_THE_BHYT",
            PERSON,
            {"maSoBHXH": "0101234567", "maThe": "TE9010101234567", "gtTheTu": "01/12/2026"},
            "maThe",
        ),
        (
            "licence",
            "CAP_MOI",
            "010123456789",
            {
                "so_dinh_danh": PERSON,
                "hang": "Z9",
                "he_hang": "2025",
                "ngay_hieu_luc": "01/12/2026",
            },
            "hang",
        ),
        (
            "enterprise",
            "STATUS_CHANGE",
            "0100047516",
            {"ENTERPRISE_STATUS_ID": 12, "EFFECTIVE_DATE": "01/12/2026"},
            "ENTERPRISE_STATUS_ID",
        ),
    ],
)
def test_an_unreadable_native_value_names_its_field_not_the_value(
    source: str, kind: str, entity: str, data: dict[str, Any], field: str
) -> None:
    with pytest.raises(MappingError) as caught:
        mapped(source, kind, entity, data)
    assert caught.value.path == field
    assert str(caught.value).startswith(f"{field}: expected")
    assert str(data[field]) not in str(caught.value)


def test_a_kind_the_bus_does_not_carry_maps_to_nothing() -> None:
    mapper = mapper_for("enterprise")
    assert mapper is not None and mapper("NAME_CHANGE", "0100047516", {}) is None
