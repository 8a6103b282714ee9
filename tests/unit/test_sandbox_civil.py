"""The simulated civil status database: its register over the shared World and its SOAP service."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
import zeep
from lxml import etree

from sandbox.civil.generator import (
    BIRTH,
    DEATH,
    DIVORCE,
    DIVORCED,
    MARRIAGE,
    MARRIED,
    NEVER_MARRIED,
    WIDOWED,
    CivilRecord,
    CivilRegister,
)
from sandbox.civil.service import CivilStatusService
from sandbox.reference import communes_by_old_province
from sandbox.world import SNAPSHOT, World, add_months
from tests.sandbox_server import served_sandbox

COUNT = 4_000
SEED = 20250701
NS = "urn:tthc-sandbox:csdl-ho-tich:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
FAULTS = "/_sandbox/faults/civil"


@pytest.fixture(scope="module")
def world() -> World:
    return World(COUNT, SEED)


@pytest.fixture(scope="module")
def register(world: World) -> CivilRegister:
    return CivilRegister(world, cache_size=COUNT * 2)


@pytest.fixture(scope="module")
def held(register: CivilRegister) -> list[int]:
    return [index for index in range(COUNT) if register.holds(index)]


@pytest.fixture(scope="module")
def couples(
    world: World, register: CivilRegister
) -> list[tuple[int, int, tuple[CivilRecord, ...]]]:
    """(husband, wife, their marriage records) of every registered marriage."""
    found = []
    for index in range(COUNT):
        couple = world.couple(index)
        if couple is not None and couple.husband == index and register.marriage_records(index):
            found.append((couple.husband, couple.wife, register.marriage_records(index)))
    return found


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    """The sandbox app served by a real uvicorn on a free loopback port."""
    with served_sandbox(COUNT, SEED) as running:
        yield running.base_url


@pytest.fixture
def http(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        yield client
        client.put(FAULTS, json={})


def envelope(operation: str, personal_id: str, **more: str) -> str:
    extra = "".join(f"<h:{name}>{value}</h:{name}>" for name, value in more.items())
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:h="{NS}"><soapenv:Body>'
        f"<h:{operation}><h:MaYeuCau>msg-1</h:MaYeuCau><h:MaDonViYeuCau>H26.01</h:MaDonViYeuCau>"
        f"<h:SoDinhDanh>{personal_id}</h:SoDinhDanh>{extra}</h:{operation}>"
        "</soapenv:Body></soapenv:Envelope>"
    )


def events_envelope(personal_id: str) -> str:
    return envelope("TraCuuSuKienHoTich", personal_id)


def status_envelope(personal_id: str, **more: str) -> str:
    return envelope("XacNhanTinhTrangHonNhan", personal_id, **more)


def element_to_native(element: etree._Element) -> Any:
    """An answer element as nested dicts; a repeated SuKienHoTich as a list."""
    children = [child for child in element if isinstance(child.tag, str)]
    if not children:
        return element.text or ""
    native: dict[str, Any] = {}
    for child in children:
        name = etree.QName(child).localname
        value = element_to_native(child)
        if name == "SuKienHoTich":
            native.setdefault(name, []).append(value)
        else:
            native[name] = value
    return native


def soap_result(response: httpx.Response) -> dict[str, Any]:
    root = etree.fromstring(response.content)
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None
    result = element_to_native(body[0])
    assert isinstance(result, dict)
    return result


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def native_day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


# -- the register: who is held ---------------------------------------------------------------------
def test_two_registers_of_the_same_world_agree(world: World, held: list[int]) -> None:
    first, second = CivilRegister(World(COUNT, SEED)), CivilRegister(World(COUNT, SEED))
    for index in held[:200:7]:
        assert first.records(index) == second.records(index)
        assert first.marital_status(index) == second.marital_status(index)
    other = CivilRegister(World(COUNT, SEED + 1))
    assert [other.records(i) for i in held[:50]] != [first.records(i) for i in held[:50]]


def test_held_are_those_born_since_1975_and_those_married_divorced_or_dead(
    world: World, register: CivilRegister, held: list[int]
) -> None:
    for index in range(COUNT):
        facts = world.person(index)
        born_since_1975 = facts.birth_year >= 1975
        expected = (
            born_since_1975
            or bool(register.marriage_records(index))
            or world.death(index) is not None
        )
        assert register.holds(index) == expected, index
        assert (register.birth(index) is not None) == born_since_1975
    not_held = COUNT - len(held)
    assert 0.05 * COUNT < not_held < 0.3 * COUNT  # the old, unmarried and alive


def test_births_are_registered_after_the_birth_in_the_birth_registration_province(
    world: World, register: CivilRegister
) -> None:
    late = 0
    for index in range(COUNT):
        record = register.birth(index)
        if record is None:
            continue
        facts = world.person(index)
        assert record.kind == BIRTH and record.person == index
        assert record.event_date == facts.birth_date
        assert record.event_date < record.registered_on <= SNAPSHOT
        late += record.registered_on - record.event_date > timedelta(days=60)
        # The personal id's digits 2-3 are the province of birth registration.
        assert record.office.old_province == facts.personal_id[1:3] == facts.birth_province
        assert record.office in communes_by_old_province()[facts.birth_province]
    assert 0 < late < COUNT * 0.15


# -- marriages and divorces ------------------------------------------------------------------------
def test_spouses_point_at_each_other_through_the_same_marriage_record(
    world: World, register: CivilRegister, couples: list[Any]
) -> None:
    assert len(couples) > COUNT * 0.15
    for husband, wife, (marriage, *_) in couples:
        couple = world.couple(husband)
        assert couple is not None
        assert (marriage.kind, marriage.husband, marriage.wife) == (MARRIAGE, husband, wife)
        assert marriage.event_date == marriage.registered_on == couple.married_on
        assert marriage in register.records(husband) and marriage in register.records(wife)
        facts = world.person(husband)
        assert (marriage.office.code, marriage.office.old_province) == (
            facts.residence_commune,
            facts.residence_province,
        )
        assert world.person(husband).sex == 1 and world.person(wife).sex == 2


def test_nobody_marries_under_age_or_after_death(world: World, couples: list[Any]) -> None:
    for husband, wife, (marriage, *_) in couples:
        for spouse, age in ((husband, 20), (wife, 18)):  # the legal ages, never under 18
            assert world.of_age_on(spouse, marriage.event_date, age) is not None
            assert world.alive_on(spouse, marriage.event_date)


def test_every_couple_of_the_world_wed_while_both_were_alive_and_has_its_record(
    world: World, register: CivilRegister
) -> None:
    couples = 0
    for index in range(0, COUNT, 2):
        couple = world.couple(index)
        if couple is None:
            continue
        couples += 1
        partners = (couple.husband, couple.wife)
        assert all(world.alive_on(p, couple.married_on) for p in partners)
        assert register.marriage_records(index) != ()
    assert couples > 20


def test_a_divorce_comes_after_its_marriage_while_both_are_alive(
    world: World, couples: list[Any]
) -> None:
    divorces = [records for _, _, records in couples if len(records) == 2]
    assert len(divorces) > 20
    for marriage, divorce in divorces:
        assert divorce.kind == DIVORCE
        assert (divorce.husband, divorce.wife) == (marriage.husband, marriage.wife)
        assert marriage.event_date < divorce.event_date <= divorce.registered_on <= SNAPSHOT
        assert all(world.alive_on(p, divorce.event_date) for p in (divorce.husband, divorce.wife))
        assert divorce.decision is not None and "Tòa án nhân dân" in divorce.decision


def test_marital_status_follows_the_records_day_by_day(couples: list[Any]) -> None:
    register = CivilRegister(World(COUNT, SEED))
    for husband, wife, records in couples[:300]:
        marriage = records[0]
        for spouse in (husband, wife):
            before = register.marital_status(spouse, marriage.event_date - timedelta(days=1))
            assert (before.code, before.spouse, before.record) == (NEVER_MARRIED, None, None)
            on = register.marital_status(spouse, marriage.event_date)
            if on.code == MARRIED:
                assert on.spouse == (wife if spouse == husband else husband)
                assert on.record == marriage
        if len(records) == 2:
            divorce = records[1]
            after = register.marital_status(husband, divorce.event_date)
            assert (after.code, after.spouse, after.record) == (DIVORCED, None, divorce)
            assert register.marital_status(wife, SNAPSHOT).code == DIVORCED


# -- deaths ----------------------------------------------------------------------------------------
def test_every_death_is_registered_at_the_residence(world: World, register: CivilRegister) -> None:
    deaths = 0
    for index in range(COUNT):
        died = world.death(index)
        record = register.death(index)
        assert (record is None) == (died is None)
        if record is None:
            continue
        deaths += 1
        facts = world.person(index)
        assert (record.kind, record.person, record.event_date) == (DEATH, index, died)
        assert record.event_date <= record.registered_on <= SNAPSHOT
        assert record.office.code == facts.residence_commune
        assert register.records(index)[-1] == record  # nothing is registered after a death
    assert deaths > 50


def test_the_surviving_spouse_is_widowed_unless_divorced_before(
    world: World, register: CivilRegister, couples: list[Any]
) -> None:
    widowed = 0
    for husband, wife, records in couples:
        for dead, survivor in ((husband, wife), (wife, husband)):
            died = world.death(dead)
            if died is None or not world.alive_on(survivor, died):
                continue
            status = register.marital_status(survivor)
            if len(records) == 2 and records[1].event_date <= died:
                assert status.code == DIVORCED
            else:
                assert (status.code, status.record) == (WIDOWED, register.death(dead))
                assert status.spouse is None
                widowed += 1
    assert widowed > 5


def test_a_marital_status_certificate_is_valid_six_months() -> None:
    assert add_months(date(2025, 6, 30), 6) == date(2025, 12, 30)
    assert add_months(date(2025, 8, 31), 6) == date(2026, 2, 28)
    assert add_months(date(2023, 8, 31), 6) == date(2024, 2, 29)
    assert add_months(date(2024, 12, 15), 6) == date(2025, 6, 15)
    register = CivilRegister(World(100, SEED))
    status = register.marital_status(0, date(2019, 8, 31))
    assert (status.as_of, status.valid_until) == (date(2019, 8, 31), date(2020, 2, 29))


def test_answers_cost_well_under_a_millisecond() -> None:
    world = World(COUNT, SEED + 3)
    service = CivilStatusService(world)
    ids = [world.population.personal_id(index) for index in range(0, COUNT, 4)]
    started = time.perf_counter()
    for personal_id in ids:
        service.look_up({"MaYeuCau": "m", "MaDonViYeuCau": "u", "SoDinhDanh": personal_id})
        service.certify({"MaYeuCau": "m", "MaDonViYeuCau": "u", "SoDinhDanh": personal_id})
    cold = (time.perf_counter() - started) / len(ids) / 2
    assert cold < 0.002  # measured about 0.3 ms, the world's own generation included


# -- the SOAP service ------------------------------------------------------------------------------
def test_events_of_a_sampled_citizen_are_the_registers_records(
    http: httpx.Client, world: World, register: CivilRegister
) -> None:
    sample = http.get("/_sandbox/sample", params={"source": "civil", "n": 30, "seed": 5}).json()
    assert len(sample) == 30
    for personal_id in sample:
        response = http.post("/hotich", content=events_envelope(personal_id))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        result = soap_result(response)
        assert (result["MaKetQua"], result["SoDinhDanh"]) == ("00", personal_id)
        index = world.index_of(personal_id)
        assert index is not None
        records = register.records(index)
        events = result["DanhSachSuKien"]["SuKienHoTich"]
        assert len(events) == len(records)
        for event, record in zip(events, records, strict=True):
            assert event["LoaiSuKien"] == record.kind
            assert (event["SoDangKy"], event["QuyenSo"]) == (record.entry, record.book)
            assert event["NgaySuKien"] == native_day(record.event_date)
            assert event["NgayDangKy"] == native_day(record.registered_on)
            office = event["CoQuanDangKy"]
            assert office["MaDonViHanhChinh"] == record.office.code
            assert office["MaTinh"] == record.office.old_province
            assert nfc(office["TenCoQuan"]).endswith(record.office.name[1:])
        last = max(record.registered_on for record in records)
        assert result["ThoiDiemDuLieu"][:8] == f"{last:%Y%m%d}"


def test_every_name_and_place_text_arrives_decomposed(http: httpx.Client, world: World) -> None:
    sample = http.get("/_sandbox/sample", params={"source": "civil", "n": 20, "seed": 6}).json()
    texts: list[str] = []
    for personal_id in sample:
        result = soap_result(http.post("/hotich", content=events_envelope(personal_id)))
        for event in result["DanhSachSuKien"]["SuKienHoTich"]:
            texts += [event["TenLoaiSuKien"], event["CoQuanDangKy"]["TenCoQuan"]]
            texts += [
                event[p]["HoVaTen"]
                for p in ("NguoiDuocKhaiSinh", "Chong", "Vo", "NguoiDaMat")
                if p in event
            ]
        status = soap_result(http.post("/hotich", content=status_envelope(personal_id)))
        texts += [status["MoTaKetQua"], status["TinhTrangHonNhan"]["HoVaTen"]]
        texts.append(status["TinhTrangHonNhan"]["TenTinhTrang"])
        index = world.index_of(personal_id)
        assert index is not None
        assert nfc(status["TinhTrangHonNhan"]["HoVaTen"]) == world.person(index).full_name
    assert all(unicodedata.is_normalized("NFD", text) for text in texts)
    # Decomposed, so not NFC wherever a letter carries a mark ("Khai sinh" carries none).
    assert sum(not unicodedata.is_normalized("NFC", text) for text in texts) > len(texts) * 0.7


def test_spouses_lookups_show_the_same_marriage_naming_both(
    http: httpx.Client, world: World, couples: list[Any]
) -> None:
    for husband, wife, _ in couples[:10]:
        ids = [world.population.personal_id(i) for i in (husband, wife)]
        marriages = []
        for personal_id in ids:
            events = soap_result(http.post("/hotich", content=events_envelope(personal_id)))
            marriages.append(
                next(
                    e
                    for e in events["DanhSachSuKien"]["SuKienHoTich"]
                    if e["LoaiSuKien"] == MARRIAGE
                )
            )
        assert marriages[0] == marriages[1]
        assert (marriages[0]["Chong"]["SoDinhDanh"], marriages[0]["Vo"]["SoDinhDanh"]) == tuple(ids)
        assert nfc(marriages[0]["Chong"]["HoVaTen"]) == world.person(husband).full_name


def test_marital_status_names_the_spouse_and_the_marriage_it_rests_on(
    http: httpx.Client, world: World, register: CivilRegister, couples: list[Any]
) -> None:
    married = [
        (h, w, records[0])
        for h, w, records in couples
        if register.marital_status(h).code == MARRIED
    ]
    husband, wife, marriage = married[0]
    result = soap_result(
        http.post("/hotich", content=status_envelope(world.population.personal_id(husband)))
    )
    assert result["MaKetQua"] == "00"
    status = result["TinhTrangHonNhan"]
    assert (status["MaTinhTrang"], nfc(status["TenTinhTrang"])) == ("2", "Đang có vợ hoặc chồng")
    assert (status["NgayXacNhan"], status["CoGiaTriDen"]) == ("30/06/2025", "30/12/2025")
    assert status["VoChong"]["SoDinhDanh"] == world.population.personal_id(wife)
    assert status["CanCu"]["LoaiSuKien"] == MARRIAGE
    assert (status["CanCu"]["SoDangKy"], status["CanCu"]["QuyenSo"]) == (
        marriage.entry,
        marriage.book,
    )


def test_marital_status_as_of_a_day_in_the_request(
    http: httpx.Client, world: World, couples: list[Any]
) -> None:
    husband, _, records = next(c for c in couples if len(c[2]) == 2)
    personal_id = world.population.personal_id(husband)
    marriage, divorce = records

    def status_on(day: date) -> dict[str, Any]:
        envelope = status_envelope(personal_id, NgayXacNhan=native_day(day))
        result = soap_result(http.post("/hotich", content=envelope))
        assert result["MaKetQua"] == "00"
        assert result["TinhTrangHonNhan"]["NgayXacNhan"] == native_day(day)
        return dict(result["TinhTrangHonNhan"])

    assert status_on(marriage.event_date - timedelta(days=1))["MaTinhTrang"] == NEVER_MARRIED
    assert "CanCu" not in status_on(marriage.event_date - timedelta(days=1))
    assert status_on(divorce.event_date - timedelta(days=1))["MaTinhTrang"] == MARRIED
    divorced = status_on(divorce.event_date)
    assert divorced["MaTinhTrang"] == DIVORCED and "VoChong" not in divorced
    assert divorced["CanCu"]["LoaiSuKien"] == DIVORCE
    assert divorced["CoGiaTriDen"] == native_day(add_months(divorce.event_date, 6))


def test_a_citizen_without_records_and_an_unknown_id_are_not_found(
    http: httpx.Client, world: World, register: CivilRegister
) -> None:
    unrecorded = next(i for i in range(COUNT) if not register.holds(i))
    for personal_id in (world.population.personal_id(unrecorded), "001090999999"):
        for request in (events_envelope(personal_id), status_envelope(personal_id)):
            result = soap_result(http.post("/hotich", content=request))
            assert result["MaKetQua"] == "01"
            assert "DanhSachSuKien" not in result and "TinhTrangHonNhan" not in result
            assert len(result["ThoiDiemDuLieu"]) == 14


def test_bad_input_answers_invalid_input_naming_the_field(
    http: httpx.Client, world: World, held: list[int]
) -> None:
    personal_id = world.population.personal_id(held[0])
    cases = [
        (events_envelope("01234567890"), "SoDinhDanh"),
        (events_envelope(""), "SoDinhDanh"),
        (status_envelope(personal_id, NgayXacNhan="2025-01-01"), "NgayXacNhan"),
        (status_envelope(personal_id, NgayXacNhan="31/02/2020"), "NgayXacNhan"),
        (status_envelope(personal_id, NgayXacNhan="01/07/2025"), "NgayXacNhan"),
    ]
    for request, field in cases:
        response = http.post("/hotich", content=request)
        assert response.status_code == 200
        result = soap_result(response)
        assert result["MaKetQua"] == "02"
        assert field in result["MoTaKetQua"]


def test_unknown_operation_is_a_client_fault_naming_it(http: httpx.Client) -> None:
    request = events_envelope("012345678901").replace("TraCuuSuKienHoTich", "XoaSuKienHoTich")
    response = http.post("/hotich", content=request)
    assert response.status_code == 500
    fault = soap_result(response)
    assert fault["faultcode"] == "soap:Client"
    assert "XoaSuKienHoTich" in fault["faultstring"]


def test_requests_that_are_not_soap_are_client_faults(http: httpx.Client) -> None:
    for body in (b"<soapenv:Envelope", b"<Envelope/>", events_envelope("1").replace(NS, "urn:x")):
        response = http.post("/hotich", content=body)
        assert response.status_code == 500
        assert soap_result(response)["faultcode"] == "soap:Client"


def test_external_entities_are_not_resolved(http: httpx.Client) -> None:
    request = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        + events_envelope("&e;")
    )
    response = http.post("/hotich", content=request)
    assert b"root:" not in response.content


# -- faults ----------------------------------------------------------------------------------------
def test_an_injected_error_is_a_server_fault_whatever_the_error_status(
    http: httpx.Client, held: list[int], world: World
) -> None:
    personal_id = world.population.personal_id(held[1])
    for status in (500, 503):
        assert http.put(FAULTS, json={"error_rate": 1, "error_status": status}).status_code == 200
        response = http.post("/hotich", content=events_envelope(personal_id))
        assert response.status_code == 500
        fault = soap_result(response)
        assert fault["faultcode"] == "soap:Server"
        assert "internal error" in fault["faultstring"] and "Lỗi" in nfc(fault["faultstring"])
    http.put(FAULTS, json={})
    assert (
        soap_result(http.post("/hotich", content=events_envelope(personal_id)))["MaKetQua"] == "00"
    )


def test_malformed_answers_are_200_with_a_body_that_is_not_xml(
    http: httpx.Client, held: list[int], world: World
) -> None:
    http.put(FAULTS, json={"malformed_rate": 1})
    for _ in range(5):
        response = http.post(
            "/hotich", content=status_envelope(world.population.personal_id(held[2]))
        )
        assert response.status_code == 200
        with pytest.raises(etree.XMLSyntaxError):
            etree.fromstring(response.content)


def test_an_outage_answers_the_proxys_503_page_for_soap_and_wsdl(http: httpx.Client) -> None:
    http.put(FAULTS, json={"outage": True})
    for response in (
        http.post("/hotich", content=events_envelope("001090999999")),
        http.get("/hotich?wsdl"),
    ):
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/html")
    assert http.get("/_sandbox/faults/population").json()["outage"] is False  # only this source


def test_latency_delays_the_answer(http: httpx.Client) -> None:
    http.put(FAULTS, json={"latency_ms": 300, "jitter_ms": 50})
    started = time.perf_counter()
    response = http.post("/hotich", content=events_envelope("001090999999"))
    assert time.perf_counter() - started >= 0.3
    assert soap_result(response)["MaKetQua"] == "01"


def test_hang_holds_the_answer_until_the_client_gives_up(http: httpx.Client) -> None:
    http.put(FAULTS, json={"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        http.post("/hotich", content=events_envelope("001090999999"), timeout=0.5)
    http.put(FAULTS, json={"hang": False})
    assert (
        soap_result(http.post("/hotich", content=events_envelope("001090999999")))["MaKetQua"]
        == "01"
    )


# -- WSDL and zeep ---------------------------------------------------------------------------------
def test_wsdl_names_the_address_it_is_served_at(http: httpx.Client, sandbox_url: str) -> None:
    for path in ("/hotich?wsdl", "/hotich/civil.wsdl"):
        root = etree.fromstring(http.get(path).content)
        address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address is not None and address.get("location") == f"{sandbox_url}/hotich"
    assert http.get("/hotich").status_code == 400


def test_zeep_client_looks_up_events_and_certifies_marital_status(
    sandbox_url: str, world: World, couples: list[Any]
) -> None:
    client = zeep.Client(f"{sandbox_url}/hotich?wsdl")
    husband, wife, records = couples[0]
    personal_id = world.population.personal_id(husband)
    found = client.service.TraCuuSuKienHoTich(
        MaYeuCau="msg-42", MaDonViYeuCau="H26.01", SoDinhDanh=personal_id
    )
    assert found.MaKetQua == "00"
    kinds = [event.LoaiSuKien for event in found.DanhSachSuKien.SuKienHoTich]
    assert MARRIAGE in kinds
    marriage = found.DanhSachSuKien.SuKienHoTich[kinds.index(MARRIAGE)]
    assert marriage.Vo.SoDinhDanh == world.population.personal_id(wife)
    assert marriage.SoDangKy == records[0].entry

    certificate = client.service.XacNhanTinhTrangHonNhan(
        MaYeuCau="msg-43", MaDonViYeuCau="H26.01", SoDinhDanh=personal_id
    )
    assert certificate.MaKetQua == "00"
    assert certificate.TinhTrangHonNhan.SoDinhDanh == personal_id
    assert certificate.TinhTrangHonNhan.NgayXacNhan == native_day(SNAPSHOT)
