"""Contract test: the civil status adapter against the sandbox SOAP service, over real HTTP."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import requests
from vietnam_provinces import Ward

from adapters.civil import CivilStatusAdapter
from bus.errors import (
    MalformedAnswer,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas.civil import CivilStatusHistory, CivilStatusRecord, MaritalStatus, Party
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings
from bus.tooling.kafka_local import free_port
from mappings import load_mapping
from mappings.units import new_province_code
from sandbox.civil.generator import CivilRecord, CivilRegister
from sandbox.civil.service import CivilStatusService
from sandbox.world import World
from tests.sandbox_server import RunningSandbox, serve_sandbox, served_sandbox

COUNT, SEED = 3_000, 11
ABSENT = "001090999999"


class CivilSandbox:
    """A sandbox of this module's own World (COUNT, SEED), seen from the civil status side."""

    def __init__(self, running: RunningSandbox) -> None:
        self.running = running
        self.base_url = running.base_url
        self.url = f"{running.base_url}/hotich"
        self.world = running.world
        self.service: CivilStatusService = running.source("civil")
        self.register: CivilRegister = self.service.register

    def set_faults(self, **faults: object) -> None:
        self.running.set_faults("civil", **faults)


def settings(url: str, timeout_s: float = 3.0) -> SourceSettings:
    return SourceSettings(
        adapter="adapters.civil:CivilStatusAdapter", url=url, timeout_s=timeout_s, concurrency=4
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[CivilSandbox]:
    with served_sandbox(COUNT, SEED) as running:
        yield CivilSandbox(running)


@pytest.fixture
def civil(sandbox: CivilSandbox) -> Iterator[CivilSandbox]:
    """The shared sandbox, with its faults switched off again after the test."""
    sandbox.set_faults()
    yield sandbox
    sandbox.set_faults()


@pytest.fixture
def adapter(civil: CivilSandbox) -> Iterator[CivilStatusAdapter]:
    adapter = CivilStatusAdapter("civil", settings(civil.url))
    yield adapter
    adapter.close()


def fetch(adapter: CivilStatusAdapter, dataset: str, personal_id: str, timeout: float = 3.0) -> Any:
    return adapter.fetch(
        dataset,
        Subject(personal_id=personal_id),
        timeout=timeout,
        request_id="req-1",
        requester_agency="000.00.00.H26",
    )


def events(adapter: CivilStatusAdapter, personal_id: str) -> CivilStatusHistory:
    history = load_mapping("civil-events").apply(fetch(adapter, "events", personal_id).data)
    assert isinstance(history, CivilStatusHistory)
    return history


def marital_status(adapter: CivilStatusAdapter, personal_id: str) -> MaritalStatus:
    status = load_mapping("civil-marital-status").apply(
        fetch(adapter, "marital_status", personal_id).data
    )
    assert isinstance(status, MaritalStatus)
    return status


def same_party(mapped: Party | None, world: World, index: int | None) -> None:
    """The world's canonical name (NFC) and personal id of citizen ``index``."""
    if index is None:
        assert mapped is None
        return
    assert mapped is not None
    facts = world.person(index)
    assert unicodedata.is_normalized("NFC", mapped.full_name)
    assert (mapped.full_name, mapped.personal_id) == (facts.full_name, facts.personal_id)


def same_record(mapped: CivilStatusRecord, native: CivilRecord, world: World) -> None:
    assert (mapped.kind.code, mapped.kind.code_list) == (native.kind, "civil-event")
    assert mapped.event_date.as_date() == native.event_date
    assert mapped.registration_date.as_date() == native.registered_on
    assert (mapped.book_number, mapped.entry_number) == (native.book, native.entry)
    office = mapped.office
    assert unicodedata.is_normalized("NFC", office.name)
    assert office.name.startswith("Ủy ban nhân dân ")
    assert office.name.casefold().endswith(native.office.name.casefold())
    address = office.address
    assert address.original is not None
    assert address.original.province_code == native.office.old_province
    assert address.original.commune_code == native.office.code
    assert address.province_code == new_province_code(native.office.old_province)
    assert address.conversion == "exact"  # the office's commune is a 2025 commune
    assert address.commune_code == native.office.code
    assert address.commune_name == Ward.from_code(int(native.office.code)).name
    born = native.person if native.kind == "01" else None
    deceased = native.person if native.kind == "08" else None
    same_party(mapped.born, world, born)
    same_party(mapped.deceased, world, deceased)
    same_party(mapped.husband, world, native.husband)
    same_party(mapped.wife, world, native.wife)
    assert (mapped.decision is None) == (native.decision is None)
    if native.decision is not None:
        assert mapped.decision == native.decision
        assert unicodedata.is_normalized("NFC", mapped.decision)


# -- found, mapped field by field -------------------------------------------------------------
def test_sampled_events_map_field_by_field(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    world, register = civil.world, civil.register
    sample = requests.get(
        f"{civil.base_url}/_sandbox/sample",
        params={"source": "civil", "n": 60, "seed": 2},
        timeout=5,
    ).json()
    for personal_id in sample:
        record = fetch(adapter, "events", personal_id)
        index = world.index_of(personal_id)
        assert index is not None
        assert (record.source, record.dataset) == ("civil", "events")
        assert record.record_time is not None
        assert record.record_time.utcoffset() == timedelta(hours=7)
        history = load_mapping("civil-events").apply(record.data)
        assert isinstance(history, CivilStatusHistory)
        assert history.personal_id == personal_id
        native = register.records(index)
        assert len(history.records) == len(native)
        for mapped, expected in zip(history.records, native, strict=True):
            same_record(mapped, expected, world)


def test_sampled_marital_statuses_map_field_by_field(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    world, register = civil.world, civil.register
    for index in [i for i in range(0, COUNT, 7) if register.holds(i)][:80]:
        facts = world.person(index)
        status = marital_status(adapter, facts.personal_id)
        expected = register.marital_status(index)
        assert (status.personal_id, status.full_name) == (facts.personal_id, facts.full_name)
        assert (status.status.code, status.status.code_list) == (expected.code, "marital-status")
        assert status.as_of.as_date() == expected.as_of == date(2025, 6, 30)
        assert status.valid_until.as_date() == expected.valid_until == date(2025, 12, 30)
        same_party(status.spouse, world, expected.spouse)
        if expected.record is None:
            assert status.derived_from is None
        else:
            cited = status.derived_from
            assert cited is not None
            assert cited.kind.code == expected.record.kind
            assert (cited.book_number, cited.entry_number) == (
                expected.record.book,
                expected.record.entry,
            )
            assert cited.registration_date.as_date() == expected.record.registered_on
            assert cited.office_name.casefold().endswith(expected.record.office.name.casefold())


def test_spouses_name_each_other_in_the_same_marriage(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    world, register = civil.world, civil.register
    checked = 0
    for index in range(0, COUNT, 2):
        couple = world.couple(index)
        if couple is None or not register.marriage_records(index):
            continue
        husband, wife = (world.person(i).personal_id for i in (couple.husband, couple.wife))
        his, hers = events(adapter, husband), events(adapter, wife)
        marriage = next(r for r in his.records if r.kind.code == "02")
        assert marriage in hers.records
        assert marriage.other_party(husband) == marriage.wife
        assert marriage.other_party(wife) == marriage.husband
        assert marriage.wife is not None and marriage.wife.personal_id == wife
        his_status, her_status = marital_status(adapter, husband), marital_status(adapter, wife)
        if his_status.status.code == "2":
            assert her_status.status.code == "2"
            assert his_status.spouse is not None and her_status.spouse is not None
            assert (his_status.spouse.personal_id, her_status.spouse.personal_id) == (wife, husband)
            assert his_status.derived_from == her_status.derived_from
        checked += 1
        if checked == 12:
            break
    assert checked == 12


def test_the_surviving_spouse_of_a_death_is_widowed(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    world, register = civil.world, civil.register
    widowed = 0
    for index in range(COUNT):
        couple = world.couple(index)
        died = world.death(index)
        if couple is None or died is None or len(register.marriage_records(index)) != 1:
            continue
        partner = couple.partner_of(index)
        if not world.alive_on(partner, died):
            continue
        dead_events = events(adapter, world.person(index).personal_id)
        assert dead_events.records[-1].kind.code == "08"
        status = marital_status(adapter, world.person(partner).personal_id)
        assert (status.status.code, status.spouse) == ("4", None)
        assert status.derived_from is not None
        assert status.derived_from.kind.code == "08"
        assert status.derived_from.entry_number == dead_events.records[-1].entry_number
        widowed += 1
    assert widowed > 0


def test_divorced_citizens_are_divorced_after_their_marriage(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    world, register = civil.world, civil.register
    divorced = [i for i in range(COUNT) if len(register.marriage_records(i)) == 2][:6]
    assert divorced
    for index in divorced:
        personal_id = world.person(index).personal_id
        kinds = [r.kind.code for r in events(adapter, personal_id).records]
        assert kinds.index("02") < kinds.index("16")
        status = marital_status(adapter, personal_id)
        assert status.status.code == "3" and status.spouse is None
        assert status.derived_from is not None and status.derived_from.kind.code == "16"


def test_many_sampled_records_map_without_error(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    sample = civil.service.sample(300, seed=9)
    kinds: set[str] = set()
    statuses: set[str] = set()
    for personal_id in sample:
        kinds |= {record.kind.code for record in events(adapter, personal_id).records}
        statuses.add(marital_status(adapter, personal_id).status.code)
    assert kinds == {"01", "02", "08", "16"}
    assert statuses == {"1", "2", "3", "4"}


# -- not found, invalid input ---------------------------------------------------------------
def test_unknown_id_and_citizen_without_records_are_not_found(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    unrecorded = next(i for i in range(COUNT) if not civil.register.holds(i))
    for personal_id in (ABSENT, civil.world.person(unrecorded).personal_id):
        for dataset in ("events", "marital_status"):
            with pytest.raises(SourceNotFound) as info:
                fetch(adapter, dataset, personal_id)
            assert info.value.source == "civil"
            assert personal_id not in str(info.value)
            assert unicodedata.is_normalized("NFC", str(info.value))
            assert "Không tìm thấy" in str(info.value)


def test_an_id_the_source_refuses_is_rejected(adapter: CivilStatusAdapter) -> None:
    # A subject built past its own validation: the source's result code 02 is a rejection.
    subject = Subject.model_construct(personal_id="12345", enterprise_code=None)
    with pytest.raises(SourceRejected) as info:
        adapter.fetch("events", subject, timeout=3, request_id="r", requester_agency="a")
    assert "02" in str(info.value) and "SoDinhDanh" in str(info.value)
    assert not info.value.retryable


def test_a_subject_without_personal_id_and_an_unknown_dataset_are_rejected(
    adapter: CivilStatusAdapter,
) -> None:
    with pytest.raises(SourceRejected):
        adapter.fetch(
            "events",
            Subject(enterprise_code="0100047516"),
            timeout=1,
            request_id="r",
            requester_agency="a",
        )
    with pytest.raises(SourceRejected, match="identity"):
        fetch(adapter, "identity", ABSENT)


# -- faults -------------------------------------------------------------------------------------
def held_id(civil: CivilSandbox, n: int = 0) -> str:
    return str(civil.service.sample(n + 1, seed=4)[n])


def test_server_error_is_a_retryable_source_fault_in_nfc(
    adapter: CivilStatusAdapter, civil: CivilSandbox
) -> None:
    personal_id = held_id(civil)
    fetch(adapter, "events", personal_id)
    for status in (500, 503):
        civil.set_faults(error_rate=1, error_status=status)
        with pytest.raises(SourceFault) as info:
            fetch(adapter, "marital_status", personal_id)
        assert info.value.retryable
        assert "soap:Server" in str(info.value) and "Lỗi hệ thống" in str(info.value)


def test_malformed_answer(adapter: CivilStatusAdapter, civil: CivilSandbox) -> None:
    personal_id = held_id(civil, 1)
    fetch(adapter, "events", personal_id)  # the WSDL is loaded before the answers go bad
    civil.set_faults(malformed_rate=1)
    for dataset in ("events", "marital_status", "events", "marital_status", "events"):
        with pytest.raises(MalformedAnswer) as info:
            fetch(adapter, dataset, personal_id)
        message = str(info.value)
        assert "HTTP 200" in message and "bytes" in message
        assert personal_id not in message
        assert info.value.__cause__ is None


def test_outage_is_unavailable_before_and_after_the_wsdl_is_loaded(civil: CivilSandbox) -> None:
    personal_id = held_id(civil, 2)
    fresh = CivilStatusAdapter("civil", settings(civil.url))
    warm = CivilStatusAdapter("civil", settings(civil.url))
    fetch(warm, "events", personal_id)
    civil.set_faults(outage=True)
    for adapter in (fresh, warm):
        with pytest.raises(SourceUnavailable) as info:
            fetch(adapter, "marital_status", personal_id)
        assert info.value.retryable
    civil.set_faults()
    assert fetch(fresh, "marital_status", personal_id).data["SoDinhDanh"] == personal_id
    fresh.close()
    warm.close()


def test_latency_beyond_the_timeout(adapter: CivilStatusAdapter, civil: CivilSandbox) -> None:
    personal_id = held_id(civil, 3)
    fetch(adapter, "events", personal_id)
    civil.set_faults(latency_ms=1500)
    started = time.monotonic()
    with pytest.raises(SourceTimeout):
        fetch(adapter, "events", personal_id, timeout=0.3)
    assert time.monotonic() - started < 1.0


def test_hang_is_a_timeout(adapter: CivilStatusAdapter, civil: CivilSandbox) -> None:
    personal_id = held_id(civil, 4)
    fetch(adapter, "marital_status", personal_id)
    civil.set_faults(hang=True)
    with pytest.raises(SourceTimeout):
        fetch(adapter, "marital_status", personal_id, timeout=0.3)


def test_stopped_server_is_unavailable_and_the_wsdl_is_read_once_it_is_back() -> None:
    port = free_port()
    adapter = CivilStatusAdapter("civil", settings(f"http://127.0.0.1:{port}/hotich"))
    with pytest.raises(SourceUnavailable):
        fetch(adapter, "events", ABSENT)
    running = serve_sandbox(COUNT, SEED, port)
    try:
        personal_id = held_id(CivilSandbox(running))
        assert fetch(adapter, "events", personal_id).data["SoDinhDanh"] == personal_id
    finally:
        running.stop()
    with pytest.raises(SourceUnavailable):
        fetch(adapter, "marital_status", personal_id)
    adapter.close()
