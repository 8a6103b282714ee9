"""The change feeds of the simulated civil status and population databases (SOAP), what their
officers record and the updates population takes, over real HTTP."""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lxml import etree

from sandbox.changes import SandboxState
from sandbox.civil.service import CivilStatusService
from sandbox.population.service import PopulationService
from sandbox.world import World
from tests.sandbox_server import RunningSandbox, serve_sandbox

COUNT, SEED, BACKLOG = 2_000, 11, 400
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CIVIL = ("/hotich", "urn:tthc-sandbox:csdl-ho-tich:v1")
POPULATION = ("/dancu", "urn:tthc-sandbox:csdl-dan-cu:v1")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    running = serve_sandbox(COUNT, SEED, changes_backlog=BACKLOG)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, timeout=10) as client:
        yield client


def soap(
    http: httpx.Client, service: tuple[str, str], operation: str, **fields: str
) -> etree._Element:
    """The response element of `operation`, every text in NFC."""
    path, namespace = service
    inner = "".join(f"<n:{name}>{value}</n:{name}>" for name, value in fields.items())
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:n="{namespace}"><soap:Body>'
        f"<n:{operation}>{inner}</n:{operation}></soap:Body></soap:Envelope>"
    )
    answer = http.post(path, content=unicodedata.normalize("NFC", body).encode())
    assert answer.status_code == 200, answer.text
    text = unicodedata.normalize("NFC", answer.content.decode())
    return etree.fromstring(text.encode())[0][0]


def child(element: etree._Element, *path: str) -> str:
    for name in path:
        found = next((c for c in element if etree.QName(c).localname == name), None)
        assert found is not None, f"no {name} in {etree.QName(element).localname}"
        element = found
    return element.text or ""


def changes(element: etree._Element) -> list[etree._Element]:
    listed = next(c for c in element if etree.QName(c).localname == "DanhSachThayDoi")
    return list(listed)


def page(http: httpx.Client, service: tuple[str, str], after: str, limit: int) -> etree._Element:
    return soap(
        http,
        service,
        "LayDanhSachThayDoi",
        MaYeuCau="t-1",
        MaDonViYeuCau="000.00.00.H01",
        SauSoThuTu=after,
        SoLuongToiDa=str(limit),
    )


@pytest.mark.parametrize("service", [CIVIL, POPULATION], ids=["civil", "population"])
def test_the_feed_pages_in_order_from_the_start_to_the_head(
    http: httpx.Client, service: tuple[str, str]
) -> None:
    seen: list[int] = []
    cursor, more = "", True
    while more:
        answer = page(http, service, cursor, 150)
        assert child(answer, "MaKetQua") == "00"
        seen += [int(child(change, "SoThuTu")) for change in changes(answer)]
        cursor, more = child(answer, "SoThuTuCuoi"), child(answer, "ConNua") == "true"
    assert seen[:BACKLOG] == list(range(1, BACKLOG + 1))
    empty = page(http, service, cursor, 10)
    assert changes(empty) == [] and child(empty, "SoThuTuCuoi") == cursor


@pytest.mark.parametrize("service", [CIVIL, POPULATION], ids=["civil", "population"])
def test_a_wrong_cursor_or_page_size_is_invalid_input(
    http: httpx.Client, service: tuple[str, str]
) -> None:
    assert child(page(http, service, "abc", 10), "MaKetQua") == "02"
    assert child(page(http, service, "", 0), "MaKetQua") == "02"
    assert child(page(http, service, "", 5000), "MaKetQua") == "02"


def test_civil_changes_are_native_and_name_world_citizens(
    http: httpx.Client, sandbox: RunningSandbox
) -> None:
    world = sandbox.world
    kinds = set()
    for change in changes(page(http, CIVIL, "", 200)):
        kind = child(change, "LoaiThayDoi")
        kinds.add(kind)
        stamp = child(change, "ThoiDiemGhiNhan")
        assert len(stamp) == 14 and stamp.isdigit()
        entity = child(change, "MaDoiTuong")
        if kind == "KHAI_SINH":
            assert entity.startswith("KS")
            mother = child(change, "ThongTinKhaiSinh", "Me", "SoDinhDanh")
            index = world.index_of(mother)
            assert index is not None and world.person(index).sex == 2
        else:
            assert world.index_of(entity) is not None
        if kind == "KHAI_TU":
            assert child(change, "SuKienHoTich", "NguoiDaMat", "SoDinhDanh") == entity
    assert kinds == {"KHAI_SINH", "KHAI_TU", "KET_HON", "LY_HON"}


def test_the_same_sequence_is_the_same_change_in_another_sandbox_of_the_seed() -> None:
    state = SandboxState()
    for service_class in (CivilStatusService, PopulationService):
        one, two = service_class(World(COUNT, SEED)), service_class(World(COUNT, SEED))
        one.enable_changes(BACKLOG, state)
        two.enable_changes(BACKLOG, SandboxState())
        for sequence in (1, 77, BACKLOG):
            assert one.changes.get(sequence) == two.changes.get(sequence)
            assert one.changes.get(sequence) == one.changes.get(sequence)
        other = service_class(World(COUNT, SEED + 1))
        other.enable_changes(BACKLOG, SandboxState())
        assert [other.changes.get(s) for s in range(1, 20)] != [
            one.changes.get(s) for s in range(1, 20)
        ]


def test_a_page_of_500_from_a_backlog_of_a_million_is_served() -> None:
    running = serve_sandbox(COUNT, SEED, changes_backlog=1_000_000)
    try:
        with httpx.Client(base_url=running.base_url, timeout=30) as client:
            for service in (CIVIL, POPULATION):
                answer = page(client, service, "999000", 500)
                found = changes(answer)
                assert len(found) == 500 and child(answer, "ConNua") == "true"
                assert child(found[-1], "SoThuTu") == "999500"
                last = page(client, service, "999990", 500)
                assert len(changes(last)) == 10 and child(last, "ConNua") == "false"
    finally:
        running.stop()


def test_a_recorded_death_shows_in_the_civil_lookup_and_the_feed(
    http: httpx.Client, sandbox: RunningSandbox
) -> None:
    world = sandbox.world
    index = next(i for i in range(COUNT) if world.death(i) is None and world.person(i).birth_date)
    personal_id = world.population.personal_id(index)
    recorded = http.post(
        "/_sandbox/record/civil/death",
        json={
            "personal_id": personal_id,
            "date_of_death": "2026-11-20",
            "place_of_death": "Bệnh viện Bạch Mai",
        },
    )
    assert recorded.status_code == 201, recorded.text
    sequence = recorded.json()["sequence"]
    events = soap(
        http, CIVIL, "TraCuuSuKienHoTich", MaYeuCau="t", MaDonViYeuCau="x", SoDinhDanh=personal_id
    )
    deaths = [e for e in child_list(events) if child(e, "LoaiSuKien") == "08"]
    assert [child(d, "NgaySuKien") for d in deaths] == ["20/11/2026"]
    change = changes(page(http, CIVIL, str(sequence - 1), 1))[0]
    assert child(change, "LoaiThayDoi") == "KHAI_TU"
    assert child(change, "MaDoiTuong") == personal_id
    assert child(change, "NoiChet") == "Bệnh viện Bạch Mai"
    again = http.post("/_sandbox/record/civil/death", json={"personal_id": personal_id})
    assert again.status_code == 400 and "personal_id" in again.json()["error"]


def child_list(events: etree._Element) -> list[etree._Element]:
    listed = next(c for c in events if etree.QName(c).localname == "DanhSachSuKien")
    return list(listed)


def test_a_recorded_birth_is_a_khai_sinh_change_with_its_parents(
    http: httpx.Client, sandbox: RunningSandbox
) -> None:
    world = sandbox.world
    mother = next(
        i
        for i in range(COUNT)
        if world.person(i).sex == 2 and world.death(i) is None and world.person(i).birth_year > 1985
    )
    mother_id = world.population.personal_id(mother)
    recorded = http.post(
        "/_sandbox/record/civil/birth",
        json={
            "full_name": "Nguyễn Minh Khôi",
            "sex": "male",
            "birth_date": "2026-11-25",
            "mother_personal_id": mother_id,
        },
    )
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    change = changes(page(http, CIVIL, str(body["sequence"] - 1), 1))[0]
    assert child(change, "MaDoiTuong") == body["birth_registration_id"]
    assert child(change, "SuKienHoTich", "NguoiDuocKhaiSinh", "HoVaTen") == "Nguyễn Minh Khôi"
    assert child(change, "ThongTinKhaiSinh", "NgaySinh") == "25/11/2026"
    assert child(change, "ThongTinKhaiSinh", "Me", "SoDinhDanh") == mother_id


@pytest.mark.parametrize(
    ("kind", "body", "named"),
    [
        ("death", {"personal_id": "12345"}, "personal_id"),
        ("marriage", {"husband_personal_id": "1"}, "husband_personal_id"),
        ("birth", {"full_name": "A B", "sex": "x"}, "sex"),
        ("adoption", {}, "adoption"),
    ],
)
def test_a_wrong_record_is_refused_naming_the_field(
    http: httpx.Client, kind: str, body: dict[str, Any], named: str
) -> None:
    answer = http.post(f"/_sandbox/record/civil/{kind}", json=body)
    assert answer.status_code == 400
    assert named in answer.json()["error"]


def test_the_debug_view_lists_changes_as_json(http: httpx.Client) -> None:
    answer = http.get("/_sandbox/changes/population", params={"after": 10, "limit": 3})
    assert answer.status_code == 200
    listed = answer.json()
    assert [c["sequence"] for c in listed["changes"]] == [11, 12, 13]
    assert listed["more"] is True and listed["backlog"] == BACKLOG
    assert http.get("/_sandbox/changes/nowhere").status_code == 404
    assert http.get("/_sandbox/changes/civil", params={"limit": 0}).status_code == 400


def register_birth(http: httpx.Client, key: str, mother_id: str) -> etree._Element:
    return soap(
        http,
        POPULATION,
        "CapSoDinhDanhKhaiSinh",
        MaYeuCau="t",
        MaDonViYeuCau="x",
        MaGiaoDich=key,
        SoDangKyKhaiSinh=f"KS-{key.removesuffix('-again')}",
        HoVaTen="Trần Bảo Anh",
        GioiTinh="2",
        NgayThangNamSinh="20261102",
        NoiDangKyKhaiSinh="",
        SoDinhDanhCha="",
        SoDinhDanhMe=mother_id,
        NgayDangKy="20261110",
    )


def test_a_birth_registered_twice_gets_one_valid_personal_id_found_by_the_lookup(
    http: httpx.Client, sandbox: RunningSandbox
) -> None:
    world = sandbox.world
    mother = next(i for i in range(COUNT) if world.person(i).sex == 2)
    mother_id = world.population.personal_id(mother)
    head = http.get("/_sandbox/changes/population", params={"after": 0, "limit": 1}).json()["head"]
    first = register_birth(http, "birth-1", mother_id)
    second = register_birth(http, "birth-1", mother_id)
    assert child(first, "MaKetQua") == child(second, "MaKetQua") == "00"
    assert child(first, "DaXuLyTruocDo") == "false" and child(second, "DaXuLyTruocDo") == "true"
    personal_id = child(first, "SoDinhDanh")
    assert child(second, "SoDinhDanh") == personal_id
    province = world.person(mother).residence_province
    assert personal_id[:4] == f"0{province}3" and personal_id[4:6] == "26"
    assert world.index_of(personal_id) is None  # no citizen of the world holds it
    found = soap(
        http, POPULATION, "TraCuuThongTinCongDan", MaYeuCau="t", MaDonViYeuCau="x",
        SoDinhDanh=personal_id,
    )  # fmt: skip
    assert child(found, "MaKetQua") == "00"
    assert child(found, "CongDan", "HoVaTen", "Ten") == "Anh"
    assert child(found, "CongDan", "Me", "SoDinhDanh") == mother_id
    mother_record = world.population.get(mother)
    assert (
        child(found, "CongDan", "ThuongTru", "MaDonViHanhChinh")
        == (mother_record["ThuongTru"]["MaDonViHanhChinh"])
    )
    other_key = register_birth(http, "birth-1-again", mother_id)  # the same registration
    assert child(other_key, "SoDinhDanh") == personal_id
    assert child(other_key, "DaXuLyTruocDo") == "true"
    appended = http.get("/_sandbox/changes/population", params={"after": head}).json()["changes"]
    assert [c["kind"] for c in appended] == ["CAP_SO_DINH_DANH", "DANG_KY_THUONG_TRU"]
    assert {c["entity"] for c in appended} == {personal_id}


def test_a_birth_with_an_unknown_mother_is_not_found_and_applies_nothing(
    http: httpx.Client,
) -> None:
    answer = register_birth(http, "birth-unknown", "001189999999")
    assert child(answer, "MaKetQua") == "01"


def test_removing_a_permanent_residence_twice_removes_it_once(
    http: httpx.Client, sandbox: RunningSandbox
) -> None:
    personal_id = sandbox.world.population.personal_id(42)
    fields = {
        "MaYeuCau": "t",
        "MaDonViYeuCau": "x",
        "SoDinhDanh": personal_id,
        "LyDo": "",
        "NgayHieuLuc": "20261120",
    }
    head = http.get("/_sandbox/changes/population", params={"limit": 1}).json()["head"]
    first = soap(http, POPULATION, "XoaDangKyThuongTru", MaGiaoDich="rm-1", **fields)
    second = soap(http, POPULATION, "XoaDangKyThuongTru", MaGiaoDich="rm-1", **fields)
    assert child(first, "DaXuLyTruocDo") == "false" and child(second, "DaXuLyTruocDo") == "true"
    found = soap(
        http, POPULATION, "TraCuuThongTinCongDan", MaYeuCau="t", MaDonViYeuCau="x",
        SoDinhDanh=personal_id,
    )  # fmt: skip
    citizen = next(c for c in found if etree.QName(c).localname == "CongDan")
    assert all(etree.QName(c).localname != "ThuongTru" for c in citizen)
    assert child(citizen, "XoaDangKyThuongTru", "NgayXoa") == "20261120"
    appended = http.get("/_sandbox/changes/population", params={"after": head}).json()["changes"]
    assert [c["kind"] for c in appended] == ["XOA_DANG_KY_THUONG_TRU"]


def test_the_live_generator_appends_changes_at_its_rate() -> None:
    running = serve_sandbox(COUNT, SEED, changes_backlog=5, changes_rate=40)
    try:
        with httpx.Client(base_url=running.base_url, timeout=10) as client:
            deadline = time.monotonic() + 10
            heads: dict[str, int] = {}
            while time.monotonic() < deadline:
                heads = {
                    name: client.get(f"/_sandbox/changes/{name}", params={"limit": 1}).json()[
                        "head"
                    ]
                    for name in ("civil", "population")
                }
                if all(head > 5 for head in heads.values()):
                    break
                time.sleep(0.2)
            assert all(head > 5 for head in heads.values()), heads
            live = client.get("/_sandbox/changes/civil", params={"after": 5}).json()["changes"]
            assert live[0]["sequence"] == 6
            assert live[0]["kind"] in {"KHAI_SINH", "KHAI_TU", "KET_HON", "LY_HON"}
    finally:
        running.stop()


def test_a_recorded_marriage_then_divorce_show_in_the_marital_status_certificate(
    http: httpx.Client, sandbox: RunningSandbox
) -> None:
    world, register = sandbox.world, sandbox.source("civil").register
    single = [
        i
        for i in range(COUNT)
        if world.death(i) is None
        and world.person(i).birth_year < 1995
        and register.marital_status(i).code == "1"
    ]
    husband = next(i for i in single if world.person(i).sex == 1)
    wife = next(i for i in single if world.person(i).sex == 2)
    ids = {
        "husband_personal_id": world.population.personal_id(husband),
        "wife_personal_id": world.population.personal_id(wife),
    }

    def status(index: int) -> etree._Element:
        answer = soap(
            http, CIVIL, "XacNhanTinhTrangHonNhan", MaYeuCau="t", MaDonViYeuCau="x",
            SoDinhDanh=world.population.personal_id(index), NgayXacNhan="",
        )  # fmt: skip
        return next(c for c in answer if etree.QName(c).localname == "TinhTrangHonNhan")

    married = http.post("/_sandbox/record/civil/marriage", json=ids)
    assert married.status_code == 201, married.text
    assert child(status(wife), "MaTinhTrang") == "2"
    assert child(status(wife), "VoChong", "SoDinhDanh") == ids["husband_personal_id"]
    twice = http.post("/_sandbox/record/civil/marriage", json=ids)
    assert twice.status_code == 400 and "already" in twice.json()["error"]
    divorced = http.post("/_sandbox/record/civil/divorce", json=ids)
    assert divorced.status_code == 201, divorced.text
    assert child(status(husband), "MaTinhTrang") == "3"
    change = changes(page(http, CIVIL, str(divorced.json()["sequence"] - 1), 1))[0]
    assert child(change, "LoaiThayDoi") == "LY_HON"
    assert child(change, "MaDoiTuong") == ids["husband_personal_id"]


def test_a_recorded_move_shows_in_the_population_lookup_and_feed(
    http: httpx.Client, sandbox: RunningSandbox
) -> None:
    personal_id = sandbox.world.population.personal_id(77)
    commune = sandbox.world.person(200).residence_commune
    moved = http.post(
        "/_sandbox/record/population/residence",
        json={"personal_id": personal_id, "commune": commune, "detail": "Số 5 đường Láng"},
    )
    assert moved.status_code == 201, moved.text
    found = soap(
        http, POPULATION, "TraCuuThongTinCongDan", MaYeuCau="t", MaDonViYeuCau="x",
        SoDinhDanh=personal_id,
    )  # fmt: skip
    assert child(found, "CongDan", "ThuongTru", "MaDonViHanhChinh") == commune
    assert child(found, "CongDan", "ThuongTru", "ChiTiet") == "Số 5 đường Láng"
    change = changes(page(http, POPULATION, str(moved.json()["sequence"] - 1), 1))[0]
    assert child(change, "LoaiThayDoi") == "DANG_KY_THUONG_TRU"
    assert child(change, "DiaChi", "MaDonViHanhChinh") == commune
    wrong = http.post("/_sandbox/record/population/residence", json={"personal_id": personal_id})
    assert wrong.status_code == 400 and "commune" in wrong.json()["error"]
