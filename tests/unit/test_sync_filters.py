"""A subscription's `where`: conditions on the event's data, checked against the data models at
the start, and met or not by each event (not met: skipped, like a type not wanted)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bus.errors import SettingsError
from bus.schemas.change import ChangeEvent, change_event_id
from bus.schemas.common import utc_now
from bus.settings import EventFilter, load_settings
from bus.sync.subscription import matches

WHEN = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def registered(born: date | None, sex: str = "female") -> ChangeEvent:
    data: dict[str, Any] = {"personal_id": "001326000001", "full_name": "Lê Thị An", "sex": sex}
    if born is not None:
        data["birth_date"] = born.isoformat()
    return ChangeEvent.model_construct(
        message_id=change_event_id("population", 7),
        source="population",
        sequence=7,
        event_type="CitizenRegistered",
        entity="001326000001",
        entity_kind="personal_id",
        occurred_at=WHEN,
        native_kind="CAP_SO_DINH_DANH",
        data=data,
    )


def test_a_date_within_days_of_the_event_matches_and_an_older_one_does_not() -> None:
    under_six = EventFilter(field="birth_date", within_days=2190)
    assert matches(under_six, registered(date(2026, 11, 28)))
    assert matches(under_six, registered(date(2020, 12, 3)))
    assert not matches(under_six, registered(date(1990, 5, 1)))
    assert not matches(under_six, registered(None))  # missing: not met


def test_equals_matches_one_of_the_values() -> None:
    girls = EventFilter(field="sex", equals=["female"])
    assert matches(girls, registered(date(2026, 11, 28)))
    assert not matches(girls, registered(date(2026, 11, 28), sex="male"))


def subscription(**where: Any) -> dict[str, Any]:
    return {
        "name": "child-card",
        "sources": ["population"],
        "event_types": ["CitizenRegistered"],
        "where": [where],
        "sink": {"kind": "update", "source": "insurance", "operation": "issue_child_health_card"},
    }


def test_a_field_not_in_the_wanted_types_data_stops_the_start_naming_it() -> None:
    with pytest.raises(SettingsError, match="'date_of_death' is not in the data of"):
        load_settings(sync={"subscriptions": [subscription(field="date_of_death", equals=["x"])]})


def test_a_condition_needs_exactly_one_of_equals_and_within_days() -> None:
    with pytest.raises(SettingsError, match="give either equals or within_days"):
        load_settings(sync={"subscriptions": [subscription(field="birth_date")]})


def test_within_days_of_the_delivery_counts_from_today() -> None:
    today = utc_now().date()
    on_delivery = EventFilter(field="birth_date", within_days=10, of="delivery")
    assert matches(on_delivery, registered(today))
    assert not matches(on_delivery, registered(today - timedelta(days=11)))
    # the event itself is recent, the delivery is what counts
    assert matches(EventFilter(field="birth_date", within_days=10), registered(WHEN.date()))
