"""The change feeds and updates of insurance, licence and enterprise, over real HTTP to a real
sandbox: paging, determinism, updates whose effect the source's own lookup shows, idempotency,
and the mapped events validated by `ChangeEvent`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests

from adapters.base import Adapter, ChangePage
from adapters.enterprise import EnterpriseAdapter
from adapters.insurance import FEED, InsuranceAdapter
from adapters.licence import LicenceAdapter
from bus.errors import MalformedAnswer, SourceNotFound, SourceRejected, SourceUnavailable
from bus.schemas.change import ChangeEvent, change_event_id
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings
from mappings import load_mapping
from mappings.changes import mapper_for
from sandbox.insurance.generator import PARTICIPATING
from tests.sandbox_server import RunningSandbox, serve_sandbox

COUNT, SEED, BACKLOG = 400, 11, 1_000
CARD = re.compile(r"^[A-Z]{2}[1-5]\d{2}\d{10}$")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    running = serve_sandbox(COUNT, SEED, changes_backlog=BACKLOG)
    yield running
    running.stop()


def settings(running: RunningSandbox, source: str) -> SourceSettings:
    paths = {"insurance": "/bhxh", "licence": "/gplx/api/v1", "enterprise": "/dkdn/api"}
    extra: dict[str, Any] = (
        {"username": "tthc-bus", "password": "sandbox-secret"} if source == "insurance" else {}
    )
    return SourceSettings(
        adapter=f"adapters.{source}", url=running.base_url + paths[source], timeout_s=3.0, **extra
    )


ADAPTERS: dict[str, type[Adapter]] = {
    "insurance": InsuranceAdapter,
    "licence": LicenceAdapter,
    "enterprise": EnterpriseAdapter,
}


@pytest.fixture
def adapters(sandbox: RunningSandbox) -> Iterator[dict[str, Adapter]]:
    made = {name: cls(name, settings(sandbox, name)) for name, cls in ADAPTERS.items()}
    yield made
    for name, adapter in made.items():
        sandbox.set_faults(name)
        adapter.close()


def events_of(page: ChangePage) -> list[ChangeEvent]:
    """Each change of a page mapped and validated as the sync connector would."""
    events = []
    for change in page.changes:
        mapper = mapper_for(change.source)
        assert mapper is not None
        normalized = mapper(change.kind, change.entity, change.data)
        assert normalized is not None, change.kind
        event = ChangeEvent(
            message_id=change_event_id(change.source, change.sequence),
            source=change.source,
            sequence=change.sequence,
            event_type=normalized.event_type,
            entity=normalized.entity,
            entity_kind=normalized.entity_kind,
            occurred_at=change.occurred_at,
            native_kind=change.kind,
            data=normalized.data,
        )
        event.typed()
        events.append(event)
    return events


def death(personal_id: str, died: date = date(2026, 11, 30)) -> dict[str, Any]:
    return {
        "entity": personal_id,
        "entity_kind": "personal_id",
        "event_type": "CitizenDeceased",
        "event_id": "civil.77",
        "occurred_at": "2026-12-01T09:00:00+07:00",
        "death_registration_id": "KT-2026-77",
        "date_of_death": died.isoformat(),
        "registered_on": "2026-12-01",
    }


def fetch(adapter: Adapter, dataset: str, personal_id: str) -> dict[str, Any]:
    record = adapter.fetch(
        dataset,
        Subject(personal_id=personal_id),
        timeout=3.0,
        request_id="req-feed",
        requester_agency="000.00.00.H26",
    )
    return record.data


def record(sandbox: RunningSandbox, source: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A change recorded by the source's officer, through the sandbox's admin route."""
    url = f"{sandbox.base_url}/_sandbox/record/{source}/{kind}"
    answer = requests.post(url, json=body, timeout=5)
    assert answer.status_code == 201, answer.text
    recorded: dict[str, Any] = answer.json()
    return recorded


def tail(adapter: Adapter, sandbox: RunningSandbox, source: str) -> ChangePage:
    head = sandbox.source(source).changes.head
    return adapter.changes(str(head - 1), 10, timeout=3.0)


# -- feeds -------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", sorted(ADAPTERS))
def test_feed_pages_follow_the_cursor_and_read_the_same_twice(
    adapters: dict[str, Adapter], source: str
) -> None:
    adapter = adapters[source]
    first = adapter.changes(None, 100, timeout=3.0)
    assert [c.sequence for c in first.changes] == list(range(1, 101))
    assert (first.cursor, first.more) == ("100", True)
    second = adapter.changes(first.cursor, 100, timeout=3.0)
    assert second.changes[0].sequence == 101
    assert adapter.changes(None, 100, timeout=3.0) == first
    times = [c.occurred_at for c in first.changes + second.changes]
    assert times == sorted(times) and all(t.utcoffset() is not None for t in times)
    last = adapter.changes(str(BACKLOG - 5), 100, timeout=3.0)
    assert last.more is False and len(last.changes) >= 5
    large = adapter.changes(None, 10_000, timeout=3.0)  # over the source's page: asked as 1000
    assert len(large.changes) == min(1_000, BACKLOG) and large.changes[0] == first.changes[0]


@pytest.mark.parametrize("source", sorted(ADAPTERS))
def test_every_backlog_change_maps_to_a_valid_change_event(
    adapters: dict[str, Adapter], source: str
) -> None:
    page = adapters[source].changes("200", 300, timeout=3.0)
    events = events_of(page)
    assert len(events) == 300
    kinds = {e.entity_kind for e in events}
    assert kinds == ({"enterprise_code"} if source == "enterprise" else {"personal_id"})


def test_a_feed_at_its_end_keeps_the_cursor(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    head = str(sandbox.source("enterprise").changes.head)
    page = adapters["enterprise"].changes(head, 50, timeout=3.0)
    assert (page.changes, page.cursor, page.more) == ([], head, False)


def test_a_failing_feed_is_classified_as_for_lookups(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    sandbox.set_faults("licence", error_rate=1.0, error_status=503)
    with pytest.raises(SourceUnavailable):
        adapters["licence"].changes(None, 10, timeout=3.0)
    with pytest.raises(SourceRejected, match="cursor"):
        adapters["enterprise"].changes("abc", 10, timeout=3.0)


# -- insurance updates -------------------------------------------------------------------------
def participating(sandbox: RunningSandbox, skip: int = 0) -> str:
    service = sandbox.source("insurance")
    found = [
        sandbox.world.population.personal_id(index)
        for index in range(sandbox.world.count)
        if (insured := service.generator.insured(index)) is not None
        and insured.status == PARTICIPATING
    ]
    return found[skip]


def test_stop_participation_shows_in_the_lookup_and_the_feed_once(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    insurance = adapters["insurance"]
    person = participating(sandbox)
    assert fetch(insurance, "participation", person)["trangThaiThamGia"] == PARTICIPATING
    applied = insurance.update(
        "stop_participation", death(person), idempotency_key="death-1", timeout=3.0
    )
    assert applied.applied is True
    record = fetch(insurance, "participation", person)
    assert (record["trangThaiThamGia"], record["lyDoDung"], record["ngayDung"]) == (
        "3",
        "1",
        "30/11/2026",
    )
    assert all(period["denThang"] is not None for period in record["quaTrinhThamGia"])
    assert fetch(insurance, "health_card", person)["conGiaTri"] is False  # ended by the death
    normalized = load_mapping("insurance-participation").apply(record)  # the bus reads it
    assert normalized.model_dump(mode="json")["status"]["code"] == "3"
    head = sandbox.source("insurance").changes.head
    again = insurance.update(
        "stop_participation", death(person), idempotency_key="death-1", timeout=3.0
    )
    assert again.applied is False and again.detail == applied.detail
    assert sandbox.source("insurance").changes.head == head
    (event,) = events_of(tail(insurance, sandbox, "insurance"))
    assert (event.event_type, event.entity, event.sequence) == (
        "InsuranceParticipationChanged",
        person,
        applied.detail["soThuTu"],
    )
    assert event.data["action"] == "stopped" and event.data["effective_on"] == "2026-11-30"


def test_a_funeral_allowance_case_is_opened_once(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    insurance = adapters["insurance"]
    person = participating(sandbox, skip=1)
    opened = insurance.update(
        "open_funeral_case", death(person), idempotency_key="funeral-1", timeout=3.0
    )
    assert opened.applied and opened.detail["maHoSo"].startswith("MT")
    again = insurance.update(
        "open_funeral_case", death(person), idempotency_key="funeral-1", timeout=3.0
    )
    assert not again.applied and again.detail["maHoSo"] == opened.detail["maHoSo"]
    other_key = insurance.update(
        "open_funeral_case", death(person), idempotency_key="funeral-1-bis", timeout=3.0
    )
    assert other_key.detail == opened.detail  # one death, one case
    (event,) = events_of(tail(insurance, sandbox, "insurance"))
    assert event.event_type == "FuneralAllowanceCaseOpened"
    assert event.data["case_id"] == opened.detail["maHoSo"]
    assert event.data["date_of_death"] == "2026-11-30"


def test_a_child_registered_by_population_gets_a_te_card_found_by_its_id(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    insurance = adapters["insurance"]
    child = "001325000777"  # not a citizen of the World: population just registered it
    born = date(2025, 11, 14)  # the card runs to the day before the sixth birthday
    payload = {
        "entity": child,
        "entity_kind": "personal_id",
        "event_type": "CitizenRegistered",
        "event_id": "population.9",
        "occurred_at": "2026-12-01T10:00:00+07:00",
        "personal_id": child,
        "full_name": "Nguyễn Thị Mai Anh",
        "sex": "female",
        "birth_date": born.isoformat(),
    }
    with pytest.raises(SourceNotFound):
        fetch(insurance, "health_card", child)
    issued = insurance.update(
        "issue_child_health_card", payload, idempotency_key="birth-9", timeout=3.0
    )
    assert issued.applied and CARD.match(issued.detail["maThe"])
    card = fetch(insurance, "health_card", child)
    assert card["maThe"] == issued.detail["maThe"] and card["maThe"].startswith("TE1")
    load_mapping("insurance-health-card").apply(card)  # the bus reads it
    assert (card["gtTheTu"], card["gtTheDen"], card["hoTen"]) == (
        "14/11/2025",
        "13/11/2031",
        "NGUYỄN THỊ MAI ANH",
    )
    again = insurance.update(
        "issue_child_health_card", payload, idempotency_key="birth-9", timeout=3.0
    )
    assert not again.applied and again.detail["maThe"] == card["maThe"]
    head = sandbox.source("insurance").changes.head
    other_key = insurance.update(
        "issue_child_health_card", payload, idempotency_key="birth-9-bis", timeout=3.0
    )
    assert other_key.detail == issued.detail  # one child, one card
    assert sandbox.source("insurance").changes.head == head
    (event,) = events_of(tail(insurance, sandbox, "insurance"))
    assert (event.event_type, event.entity, event.data["beneficiary_group"]) == (
        "HealthCardIssued",
        child,
        "TE",
    )


def test_an_update_about_someone_the_database_does_not_hold_does_nothing(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    stranger = "001099999999"
    head = sandbox.source("insurance").changes.head
    for source, operation in [
        ("insurance", "stop_participation"),
        ("insurance", "open_funeral_case"),
        ("licence", "revoke_licences"),
    ]:
        result = adapters[source].update(
            operation, death(stranger), idempotency_key=f"x-{operation}", timeout=3.0
        )
        assert (result.applied, result.detail["not_held"]) == (False, True)
    assert sandbox.source("insurance").changes.head == head
    with pytest.raises(SourceRejected, match="date_of_death"):
        adapters["licence"].update(
            "revoke_licences", {"entity": stranger}, idempotency_key="x-3", timeout=3.0
        )
    with pytest.raises(SourceRejected, match="no update"):
        adapters["insurance"].update("remove_residence", {}, idempotency_key="x-4", timeout=3.0)


# -- licence update ------------------------------------------------------------------------------
def test_revoke_licences_shows_in_the_driver_lookup_and_the_feed_once(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    licence = adapters["licence"]
    service = sandbox.source("licence")
    holder = next(
        sandbox.world.population.personal_id(index)
        for index in range(sandbox.world.count)
        if (held := service.generator.licence(index)) is not None and held.revocation is None
    )
    assert fetch(licence, "driver", holder)["trang_thai"] != "da_thu_hoi"
    revoked = licence.update("revoke_licences", death(holder), idempotency_key="d-1", timeout=3.0)
    assert revoked.applied and len(revoked.detail["thu_hoi"]) == 1
    record = fetch(licence, "driver", holder)
    assert record["trang_thai"] == "da_thu_hoi" and record["thu_hoi"]["ngay"] == "30/11/2026"
    assert load_mapping("licence-driver").apply(record).status == "revoked"  # as the bus reads it
    head = service.changes.head
    again = licence.update("revoke_licences", death(holder), idempotency_key="d-1", timeout=3.0)
    assert not again.applied and service.changes.head == head
    (event,) = events_of(tail(licence, sandbox, "licence"))
    assert (event.event_type, event.entity) == ("LicenceRevoked", holder)
    assert event.data["licence_number"] == record["so_gplx"]
    assert event.data["effective_on"] == "2026-11-30"


# -- enterprise: an officer's record -------------------------------------------------------------
def test_a_recorded_enterprise_status_shows_in_the_profile_and_the_feed(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    enterprise = adapters["enterprise"]
    service = sandbox.source("enterprise")
    index = next(i for i in range(sandbox.world.enterprise_count) if service.current_status(i) == 1)
    code = sandbox.world.enterprise_code(index)
    recorded = record(
        sandbox,
        "enterprise",
        "status",
        {"ENTERPRISE_CODE": code, "ENTERPRISE_STATUS_ID": 2, "EFFECTIVE_DATE": "01/12/2026"},
    )
    profile = enterprise.fetch(
        "profile",
        Subject(enterprise_code=code),
        timeout=3.0,
        request_id="r",
        requester_agency="a",
    ).data
    assert profile["ENTERPRISE_STATUS_ID"] == 2
    load_mapping("enterprise-profile").apply(profile)  # the bus reads it
    (event,) = events_of(tail(enterprise, sandbox, "enterprise"))
    assert event.sequence == recorded["SEQ"]
    assert (event.entity, event.data) == (
        code,
        {"previous_status": "1", "status": "2", "effective_on": "2026-12-01"},
    )


def test_a_recorded_suspension_shows_in_the_driver_lookup_and_the_feed(
    adapters: dict[str, Adapter], sandbox: RunningSandbox
) -> None:
    licence = adapters["licence"]
    service = sandbox.source("licence")
    holders = [
        sandbox.world.population.personal_id(index)
        for index in range(sandbox.world.count)
        if (held := service.generator.licence(index)) is not None and held.revocation is None
    ]
    holder = holders[-1]
    recorded = record(
        sandbox,
        "licence",
        "suspend",
        {"so_dinh_danh": holder, "tu_ngay": "01/12/2026", "den_ngay": "01/06/2027"},
    )
    driver = fetch(licence, "driver", holder)
    assert driver["trang_thai"] == "bi_tuoc_quyen"
    load_mapping("licence-driver").apply(driver)
    (event,) = events_of(tail(licence, sandbox, "licence"))
    assert (event.sequence, event.event_type, event.entity) == (
        recorded["so_thu_tu"],
        "LicenceSuspended",
        holder,
    )
    assert (event.data["effective_on"], event.data["until"]) == ("2026-12-01", "2027-06-01")


# -- reading a feed's answer ---------------------------------------------------------------------
@pytest.mark.parametrize("source", sorted(ADAPTERS))
def test_a_malformed_or_failing_feed_answer_is_classified(
    adapters: dict[str, Adapter], sandbox: RunningSandbox, source: str
) -> None:
    sandbox.set_faults(source, malformed_rate=1.0)
    with pytest.raises(MalformedAnswer):
        adapters[source].changes(None, 20, timeout=3.0)
    sandbox.set_faults(source, outage=True)
    with pytest.raises(SourceUnavailable):
        adapters[source].changes(None, 20, timeout=3.0)


def test_a_change_without_its_time_or_out_of_order_names_the_field(
    adapters: dict[str, Adapter],
) -> None:
    insurance = adapters["insurance"]
    assert isinstance(insurance, InsuranceAdapter)
    good = {
        "soThuTu": 8,
        "loaiBienDong": "CAP_THE_BHYT",
        "soDinhDanh": "001089012345",
        "thoiDiemGhiNhan": "01/12/2026 09:30:00",
        "maSoBHXH": "0101234567",
    }
    (change,) = insurance.read_changes([good], 7, FEED)
    assert change.occurred_at.isoformat() == "2026-12-01T09:30:00+07:00"
    assert change.data == {"soDinhDanh": "001089012345", "maSoBHXH": "0101234567"}
    with pytest.raises(MalformedAnswer, match=r"duLieu\[0\]\.thoiDiemGhiNhan is not dd/MM/yyyy"):
        insurance.read_changes([{**good, "thoiDiemGhiNhan": "2026-12-01T09:30"}], 7, FEED)
    with pytest.raises(MalformedAnswer, match=r"duLieu\[1\]\.soThuTu is not a sequence after 8"):
        insurance.read_changes([good, good], 7, FEED)
    with pytest.raises(MalformedAnswer, match=r"duLieu\[0\]\.soDinhDanh is missing"):
        insurance.read_changes([{**good, "soDinhDanh": None}], 7, FEED)
