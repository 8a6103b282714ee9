"""The civil and population adapters' change feeds and population's updates, against the
sandbox over real HTTP and SOAP, and the change mappings of what they read."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from adapters.base import NativeChange
from adapters.civil import CivilStatusAdapter
from adapters.population import PopulationAdapter
from bus.errors import (
    MalformedAnswer,
    MappingError,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceUnavailable,
)
from bus.schemas import Subject
from bus.schemas.change import ChangeEvent, change_event_id
from bus.settings import SourceSettings
from mappings import load_mapping
from mappings.changes import NormalizedChange, mapper_for
from tests.sandbox_server import RunningSandbox, serve_sandbox

COUNT, SEED, BACKLOG = 800, 5, 300


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    running = serve_sandbox(COUNT, SEED, changes_backlog=BACKLOG)
    yield running
    running.stop()


@pytest.fixture
def civil(sandbox: RunningSandbox) -> Iterator[CivilStatusAdapter]:
    sandbox.set_faults("civil")
    settings = SourceSettings(
        adapter="adapters.civil:CivilStatusAdapter",
        url=f"{sandbox.base_url}/hotich",
        datasets=["events"],
        timeout_s=5.0,
    )
    adapter = CivilStatusAdapter("civil", settings)
    yield adapter
    adapter.close()
    sandbox.set_faults("civil")


@pytest.fixture
def population(sandbox: RunningSandbox) -> Iterator[PopulationAdapter]:
    sandbox.set_faults("population")
    settings = SourceSettings(
        adapter="adapters.population:PopulationAdapter",
        url=f"{sandbox.base_url}/dancu",
        datasets=["identity", "residence"],
        timeout_s=5.0,
    )
    adapter = PopulationAdapter("population", settings)
    yield adapter
    adapter.close()
    sandbox.set_faults("population")


def event(source: str, change: NativeChange, normalized: NormalizedChange) -> ChangeEvent:
    return ChangeEvent(
        message_id=change_event_id(source, change.sequence),
        source=source,
        sequence=change.sequence,
        event_type=normalized.event_type,
        entity=normalized.entity,
        entity_kind=normalized.entity_kind,
        occurred_at=change.occurred_at,
        data=normalized.data,
        native_kind=change.kind,
    )


def all_changes(adapter: CivilStatusAdapter | PopulationAdapter) -> list[NativeChange]:
    found: list[NativeChange] = []
    cursor: str | None = None
    while True:
        page = adapter.changes(cursor, 120, timeout=5)
        found += page.changes
        assert page.cursor == str(found[-1].sequence if found else 0)
        cursor = page.cursor
        if not page.more:
            return found


@pytest.mark.parametrize("name", ["civil", "population"])
def test_the_feed_is_read_page_by_page_with_the_last_sequence_as_cursor(
    name: str, request: pytest.FixtureRequest
) -> None:
    adapter = request.getfixturevalue(name)
    changes = all_changes(adapter)
    assert [c.sequence for c in changes][:BACKLOG] == list(range(1, BACKLOG + 1))
    assert all(c.source == name and c.occurred_at.utcoffset() is not None for c in changes)
    again = adapter.changes("99", 3, timeout=5)
    assert again.changes == changes[99:102] and again.cursor == "102" and again.more
    head = adapter.changes(str(changes[-1].sequence), 10, timeout=5)
    assert head.changes == [] and head.cursor == str(changes[-1].sequence) and not head.more


def test_every_civil_change_maps_to_a_valid_change_event(civil: CivilStatusAdapter) -> None:
    mapper = mapper_for("civil")
    assert mapper is not None
    types = set()
    for change in civil.changes(None, BACKLOG, timeout=5).changes:
        normalized = mapper(change.kind, change.entity, change.data)
        assert normalized is not None
        typed = event("civil", change, normalized).typed()
        types.add(normalized.event_type)
        for text in typed.model_dump().values():
            assert not isinstance(text, str) or unicodedata.is_normalized("NFC", text)
        if normalized.event_type == "CitizenBorn":
            assert normalized.entity_kind == "birth_registration"
            assert typed.model_dump()["birth_registration_id"] == change.entity
    assert types == {"CitizenBorn", "CitizenDeceased", "MarriageRegistered", "DivorceRegistered"}


def test_every_population_change_maps_to_a_valid_change_event(
    population: PopulationAdapter,
) -> None:
    mapper = mapper_for("population")
    assert mapper is not None
    actions = set()
    for change in population.changes(None, BACKLOG, timeout=5).changes:
        normalized = mapper(change.kind, change.entity, change.data)
        assert normalized is not None and normalized.entity == change.entity
        data = event("population", change, normalized).typed().model_dump()
        if normalized.event_type == "ResidenceChanged":
            actions.add((data["kind"], data["action"]))
            if data["action"] == "removed":
                assert data["commune"] is None
    assert actions >= {("permanent", "moved"), ("permanent", "removed"), ("current", "moved")}


def test_a_death_recorded_in_civil_reaches_the_feed_as_citizen_deceased(
    civil: CivilStatusAdapter, sandbox: RunningSandbox
) -> None:
    world = sandbox.world
    index = next(i for i in range(COUNT) if world.death(i) is None and i % 7 == 3)
    personal_id = world.population.personal_id(index)
    answer = requests.post(
        f"{sandbox.base_url}/_sandbox/record/civil/death",
        json={"personal_id": personal_id, "date_of_death": "2026-11-30"},
        timeout=5,
    )
    assert answer.status_code == 201, answer.text
    sequence = answer.json()["sequence"]
    change = civil.changes(str(sequence - 1), 1, timeout=5).changes[0]
    mapper = mapper_for("civil")
    assert mapper is not None
    normalized = mapper(change.kind, change.entity, change.data)
    assert normalized is not None
    typed = event("civil", change, normalized).typed().model_dump()
    assert normalized.event_type == "CitizenDeceased" and normalized.entity == personal_id
    assert typed["date_of_death"].isoformat() == "2026-11-30"
    events = civil.fetch(
        "events", Subject(personal_id=personal_id), timeout=5, request_id="r", requester_agency="x"
    )
    kinds = [e["LoaiSuKien"] for e in events.data["DanhSachSuKien"]["SuKienHoTich"]]
    assert kinds.count("08") == 1


def birth_payload(mother_id: str, registration: str) -> dict[str, Any]:
    """What a subscription sends for a CitizenBorn event (see Adapter.update)."""
    return {
        "entity": registration,
        "entity_kind": "birth_registration",
        "event_type": "CitizenBorn",
        "event_id": f"civil.{registration}",
        "occurred_at": datetime(2026, 12, 1, 9, tzinfo=UTC).isoformat(),
        "birth_registration_id": registration,
        "full_name": "Lê Gia Bảo",
        "sex": "male",
        "birth_date": "2026-11-28",
        "mother_personal_id": mother_id,
        "registered_on": "2026-12-01",
    }


def test_register_birth_twice_assigns_one_personal_id_the_lookup_finds(
    population: PopulationAdapter, sandbox: RunningSandbox
) -> None:
    world = sandbox.world
    mother = next(i for i in range(COUNT) if world.person(i).sex == 2 and world.death(i) is None)
    mother_id = world.population.personal_id(mother)
    payload = birth_payload(mother_id, "KS-T-1")
    first = population.update("register_birth", payload, idempotency_key="civil.9001", timeout=5)
    second = population.update("register_birth", payload, idempotency_key="civil.9001", timeout=5)
    assert first.applied and not second.applied
    personal_id = first.detail["personal_id"]
    assert second.detail["personal_id"] == personal_id
    assert personal_id[3] == "2" and personal_id[4:6] == "26"  # male, born 2026
    record = population.fetch(
        "identity",
        Subject(personal_id=personal_id),
        timeout=5,
        request_id="r",
        requester_agency="x",
    )
    citizen = load_mapping("population").apply(record.data)
    assert citizen.full_name == "Lê Gia Bảo"
    born = citizen.birth_date
    assert (born.year, born.month, born.day) == (2026, 11, 28)
    assert citizen.permanent_address is not None
    feed = population.changes(str(BACKLOG), 100, timeout=5).changes
    mine = [c.kind for c in feed if c.entity == personal_id]
    assert mine == ["CAP_SO_DINH_DANH", "DANG_KY_THUONG_TRU"]


def test_remove_permanent_residence_once_and_the_residence_shows_none(
    population: PopulationAdapter, sandbox: RunningSandbox
) -> None:
    personal_id = sandbox.world.population.personal_id(101)
    payload = {
        "entity": personal_id,
        "entity_kind": "personal_id",
        "event_type": "CitizenDeceased",
        "event_id": "civil.77",
        "occurred_at": "2026-12-01T09:00:00+07:00",
        "date_of_death": "2026-11-29",
        "death_registration_id": "x",
        "registered_on": "2026-12-01",
    }
    first = population.update(
        "remove_permanent_residence", payload, idempotency_key="civil.77", timeout=5
    )
    again = population.update(
        "remove_permanent_residence", payload, idempotency_key="civil.77", timeout=5
    )
    assert first.applied and not again.applied
    record = population.fetch(
        "residence",
        Subject(personal_id=personal_id),
        timeout=5,
        request_id="r",
        requester_agency="x",
    )
    assert record.data.get("ThuongTru") is None
    assert record.data["XoaDangKyThuongTru"]["NgayXoa"] == "20261129"
    residence = load_mapping("population-residence").apply(record.data)
    assert getattr(residence, "permanent_address", "absent") is None
    mapper = mapper_for("population")
    assert mapper is not None
    removal = [c for c in population.changes(str(BACKLOG), 100, timeout=5).changes][-1]
    normalized = mapper(removal.kind, removal.entity, removal.data)
    assert normalized is not None
    assert (
        normalized.data["action"] == "removed" and normalized.data["effective_on"] == "2026-11-29"
    )


def test_update_errors_are_classified(population: PopulationAdapter) -> None:
    with pytest.raises(SourceNotFound):
        population.update(
            "register_birth",
            birth_payload("001189999999", "KS-T-2"),
            idempotency_key="k-2",
            timeout=5,
        )
    with pytest.raises(SourceRejected, match="sex"):
        payload = birth_payload("001189999999", "KS-T-3") | {"sex": "x"}
        population.update("register_birth", payload, idempotency_key="k-3", timeout=5)
    with pytest.raises(SourceRejected, match="birth_date"):
        payload = birth_payload("001189999999", "KS-T-4") | {"birth_date": "28/11/2026"}
        population.update("register_birth", payload, idempotency_key="k-4", timeout=5)
    with pytest.raises(SourceRejected, match="known"):
        population.update("issue_card", {}, idempotency_key="k-5", timeout=5)


def test_feed_errors_are_classified(
    civil: CivilStatusAdapter, population: PopulationAdapter, sandbox: RunningSandbox
) -> None:
    with pytest.raises(SourceRejected):
        civil.changes("not-a-number", 10, timeout=5)
    with pytest.raises(SourceRejected, match="SoLuongToiDa"):
        population.changes(None, 5000, timeout=5)
    sandbox.set_faults("civil", error_rate=1.0)
    with pytest.raises(SourceFault):
        civil.changes(None, 10, timeout=5)
    sandbox.set_faults("population", outage=True)
    with pytest.raises(SourceUnavailable):
        population.changes(None, 10, timeout=5)
    with pytest.raises(SourceUnavailable):
        population.update(
            "remove_permanent_residence",
            {"entity": "001089012345", "effective_on": "2026-11-30"},
            idempotency_key="k-6",
            timeout=5,
        )
    sandbox.set_faults("population", malformed_rate=1.0)
    with pytest.raises(MalformedAnswer):
        population.changes(None, 10, timeout=5)


def test_an_unreadable_native_value_names_its_field() -> None:
    civil = mapper_for("civil")
    population = mapper_for("population")
    assert civil is not None and population is not None
    death = {
        "SuKienHoTich": {
            "NgaySuKien": "2026-11-30",
            "NgayDangKy": "01/12/2026",
            "SoDangKy": "1",
            "QuyenSo": "01/2026",
            "CoQuanDangKy": {"TenCoQuan": "Ủy ban", "MaDonViHanhChinh": "00004"},
        }
    }
    with pytest.raises(MappingError) as raised:
        civil("KHAI_TU", "001089012345", death)
    assert raised.value.path == "NgaySuKien"
    assert "2026-11-30" not in str(raised.value)
    moved = {"NgayHieuLuc": "2026-11-30", "DiaChi": {"MaDonViHanhChinh": "00004", "MaTinh": "01"}}
    with pytest.raises(MappingError) as raised:
        population("DANG_KY_THUONG_TRU", "001089012345", moved)
    assert raised.value.path == "NgayHieuLuc"
    assert civil("NHAN_CON_NUOI", "x", {}) is None
