"""The normalized change event: each type's data is checked by its own model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bus import topics
from bus.schemas.change import CHANGE_DATA, CHANGE_TYPES, ChangeEvent, change_event_id
from bus.settings import Subscription, SyncSettings


def death(**data: Any) -> ChangeEvent:
    return ChangeEvent(
        message_id=change_event_id("civil", 41),
        source="civil",
        sequence=41,
        event_type="CitizenDeceased",
        entity="001089012345",
        entity_kind="personal_id",
        occurred_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        native_kind="KHAI_TU",
        data={
            "death_registration_id": "KT-2026-41",
            "date_of_death": "2026-11-30",
            "registered_on": "2026-12-01",
        }
        | data,
    )


def test_a_change_event_round_trips_with_its_data_typed() -> None:
    event = death(place_of_death="Bệnh viện Bạch Mai")
    again = ChangeEvent.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.message_id == "civil.41"
    assert again.typed().model_dump()["date_of_death"].isoformat() == "2026-11-30"


def test_data_that_does_not_fit_its_type_names_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        death(date_of_death="30/11/2026")
    assert [error["loc"] for error in caught.value.errors()] == [("data", "date_of_death")]


def test_every_change_type_has_a_data_model() -> None:
    assert set(CHANGE_TYPES) == set(CHANGE_DATA)


def test_subscription_names_are_unique_and_topics_follow_them() -> None:
    sink = {"kind": "update", "source": "population", "operation": "remove_residence"}
    one = Subscription(name="death-to-population", sources=["civil"], sink=sink)
    with pytest.raises(ValidationError, match="two subscriptions named"):
        SyncSettings(subscriptions=[one, one])
    assert topics.dlq(one.name) == "tthc.dlq.death-to-population"
    assert topics.sync_change("civil") == "tthc.sync.civil.change"
