"""The simulated population database: its synthetic citizens and its SOAP service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import zeep
from lxml import etree
from vietnam_provinces import Ward

from sandbox.population.generator import PopulationGenerator, old_tone_placement
from sandbox.reference import OLD_PROVINCES, PROVINCE_MERGE_2025
from tests.sandbox_server import served_sandbox

COUNT = 10_000
SEED = 20250701
NS = "urn:tthc-sandbox:csdl-dan-cu:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.fixture(scope="module")
def generator() -> PopulationGenerator:
    return PopulationGenerator(count=COUNT, seed=SEED)


@pytest.fixture(scope="module")
def citizens(generator: PopulationGenerator) -> list[dict[str, Any]]:
    return [generator.get(i) for i in range(COUNT)]


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    """The sandbox app served by a real uvicorn on a free loopback port."""
    with served_sandbox(COUNT, SEED) as running:
        yield running.base_url


@pytest.fixture
def http(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        yield client
        client.put("/_sandbox/faults/population", json={})


def lookup_envelope(personal_id: str) -> str:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:dc="{NS}"><soapenv:Body>'
        "<dc:TraCuuThongTinCongDan><dc:MaYeuCau>msg-1</dc:MaYeuCau>"
        "<dc:MaDonViYeuCau>H01.01</dc:MaDonViYeuCau>"
        f"<dc:SoDinhDanh>{personal_id}</dc:SoDinhDanh></dc:TraCuuThongTinCongDan>"
        "</soapenv:Body></soapenv:Envelope>"
    )


def verify_envelope(personal_id: str, full_name: str, birth: str) -> str:
    return (
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:dc="{NS}"><soapenv:Body>'
        f"<dc:XacThucThongTinCongDan><dc:SoDinhDanh>{personal_id}</dc:SoDinhDanh>"
        f"<dc:HoVaTen>{full_name}</dc:HoVaTen>"
        f"<dc:NgayThangNamSinh>{birth}</dc:NgayThangNamSinh></dc:XacThucThongTinCongDan>"
        "</soapenv:Body></soapenv:Envelope>"
    )


def element_to_native(element: etree._Element) -> Any:
    """An answer element back into the generator's nested-dict shape."""
    children = [child for child in element if isinstance(child.tag, str)]
    if not children:
        return element.text or ""
    return {etree.QName(child).localname: element_to_native(child) for child in children}


def soap_result(response: httpx.Response) -> dict[str, Any]:
    root = etree.fromstring(response.content)
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None
    result = element_to_native(body[0])
    assert isinstance(result, dict)
    return result


def full_name(citizen: dict[str, Any]) -> str:
    return " ".join(citizen["HoVaTen"].values())


# -- generator ----------------------------------------------------------------------------------
def test_two_generators_with_the_same_seed_give_the_same_citizens() -> None:
    first, second = PopulationGenerator(COUNT, SEED), PopulationGenerator(COUNT, SEED)
    for index in (0, 1, 17, 4_321, COUNT - 1):
        dumped = json.dumps(first.get(index), ensure_ascii=False)
        assert dumped == json.dumps(second.get(index), ensure_ascii=False)
        assert first.native_data_time(index) == second.native_data_time(index)
    assert PopulationGenerator(COUNT, SEED + 1).get(0) != first.get(0)


def test_citizens_do_not_depend_on_the_hash_seed_of_the_process() -> None:
    script = (
        "import json; from sandbox.population.generator import PopulationGenerator as G; "
        "g = G(1000, 5); print(json.dumps([g.get(i) for i in range(0, 1000, 37)]))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_a_record_does_not_depend_on_generating_the_records_before_it(
    citizens: list[dict[str, Any]],
) -> None:
    fresh = PopulationGenerator(COUNT, SEED)
    assert fresh.get(9_876) == citizens[9_876]


def test_personal_ids_follow_the_rules(citizens: list[dict[str, Any]]) -> None:
    for citizen in citizens:
        personal_id = citizen["SoDinhDanh"]
        assert len(personal_id) == 12 and personal_id.isdigit()
        assert personal_id[0] == "0" and personal_id[1:3] in OLD_PROVINCES
        born = citizen["NgayThangNamSinh"]
        year = int(born.get("NgayThangNam", born.get("Nam", ""))[:4])
        assert 1940 <= year <= 2024
        female = citizen["GioiTinh"] == 2
        expected_digit = (0 if year < 2000 else 2) + (1 if female else 0)
        assert int(personal_id[3]) == expected_digit, citizen
        assert personal_id[4:6] == f"{year % 100:02d}"


def test_personal_ids_are_unique_over_10000(generator: PopulationGenerator) -> None:
    ids = list(generator.ids())
    assert len(ids) == COUNT == len(set(ids))


def test_surname_nguyen_has_its_national_share(citizens: list[dict[str, Any]]) -> None:
    nguyen = sum(c["HoVaTen"]["Ho"].casefold() == "nguyễn" for c in citizens)
    assert abs(nguyen / COUNT - 0.38) < 0.025


def test_legacy_data_quirks_have_their_shares(citizens: list[dict[str, Any]]) -> None:
    def share(predicate: Any, population: list[dict[str, Any]] = citizens) -> float:
        return sum(1 for c in population if predicate(c)) / len(population)

    assert 0.25 < share(lambda c: full_name(c).isupper()) < 0.35
    assert 0.80 < share(lambda c: c["DanToc"]["MaDanToc"] == "01") < 0.90
    assert 0.80 < share(lambda c: c["TonGiao"]["MaTonGiao"] == "00") < 0.90
    assert 0.005 < share(lambda c: "Nam" in c["NgayThangNamSinh"]) < 0.04
    assert share(lambda c: c["GioiTinh"] == 0) < 0.01
    assert 0.75 < share(lambda c: c["NoiOHienTai"] == c["ThuongTru"]) < 0.85
    born_before_2000 = [c for c in citizens if c["SoDinhDanh"][3] in "01"]
    assert 0.55 < share(lambda c: "SoCMND" in c, born_before_2000) < 0.65
    assert all(len(c["SoCMND"]) == 9 for c in born_before_2000 if "SoCMND" in c)
    assert share(lambda c: "SoCMND" in c and c["SoDinhDanh"][3] in "23") == 0
    old_tones = share(lambda c: old_tone_placement(full_name(c)) != full_name(c))
    assert old_tones > 0.003  # only names with oa/oe/uy can show it
    assert all(unicodedata.is_normalized("NFC", full_name(c)) for c in citizens)


def test_old_tone_placement_moves_the_mark_in_open_syllables_only() -> None:
    assert old_tone_placement("Hòa Thủy Thúy") == "Hoà Thuỷ Thuý"
    assert old_tone_placement("Hoàng Quỳnh Khoa") == "Hoàng Quỳnh Khoa"
    assert old_tone_placement("NGUYỄN THỊ HÒA") == "NGUYỄN THỊ HOÀ"


def test_addresses_carry_old_province_codes_of_the_communes_new_province(
    citizens: list[dict[str, Any]],
) -> None:
    new_province = {f"{int(w.code):05d}": f"{int(w.province_code):02d}" for w in Ward.iter_all()}
    for citizen in citizens[:2_000]:
        for field in ("QueQuan", "ThuongTru", "NoiOHienTai"):
            address = citizen[field]
            merged_from = PROVINCE_MERGE_2025[new_province[address["MaDonViHanhChinh"]]]
            assert address["MaTinh"] in merged_from
            assert address["QuocGia"] == "VN"


def test_find_returns_the_citizen_and_none_for_unknown_ids(generator: PopulationGenerator) -> None:
    for personal_id in generator.sample(50, rng_seed=1):
        citizen = generator.find(personal_id)
        assert citizen is not None and citizen["SoDinhDanh"] == personal_id
    known = generator.personal_id(3)
    other_province = "01" if known[1:3] != "01" else "79"
    assert generator.find(f"0{other_province}{known[3:]}") is None
    assert generator.find("000000000000") is None
    assert generator.find("12345") is None


def test_sample_is_distinct_existing_and_reproducible(generator: PopulationGenerator) -> None:
    sample = generator.sample(100, rng_seed=7)
    assert len(set(sample)) == 100
    assert sample == generator.sample(100, rng_seed=7)
    assert all(generator.index_of(personal_id) is not None for personal_id in sample)


def test_get_returns_a_copy_the_caller_may_change(generator: PopulationGenerator) -> None:
    citizen = generator.get(5)
    citizen["HoVaTen"]["Ten"] = "changed"
    assert generator.get(5)["HoVaTen"]["Ten"] != "changed"


def test_a_million_citizens_need_no_index_and_ids_stay_unique_in_a_slice() -> None:
    started = time.perf_counter()
    million = PopulationGenerator(count=1_000_000, seed=SEED)
    last = million.personal_id(999_999)
    assert million.find(last) is not None
    assert time.perf_counter() - started < 2
    ids = [million.personal_id(i) for i in range(0, 1_000_000, 50)]
    assert len(set(ids)) == len(ids)
    with pytest.raises(ValueError, match="count must be between 1 and 1,000,000"):
        PopulationGenerator(count=1_000_001)


# -- SOAP service -------------------------------------------------------------------------------
def test_lookup_of_a_sampled_id_returns_that_citizen(
    http: httpx.Client, generator: PopulationGenerator
) -> None:
    sample = http.get("/_sandbox/sample", params={"n": 5}).json()
    assert len(sample) == 5
    for personal_id in sample:
        response = http.post("/dancu", content=lookup_envelope(personal_id))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        result = soap_result(response)
        assert result["MaKetQua"] == "00"
        expected = generator.find(personal_id)
        assert expected is not None
        assert result["CongDan"] == json.loads(json.dumps(expected), parse_int=str)
        index = generator.index_of(personal_id)
        assert index is not None
        assert result["ThoiDiemDuLieu"] == generator.native_data_time(index)


def test_lookup_of_an_unknown_id_answers_not_found(http: httpx.Client) -> None:
    result = soap_result(http.post("/dancu", content=lookup_envelope("099999999999")))
    assert result["MaKetQua"] == "01"
    assert "CongDan" not in result
    assert len(result["ThoiDiemDuLieu"]) == 14


def test_lookup_of_an_eleven_digit_id_answers_invalid_input(http: httpx.Client) -> None:
    response = http.post("/dancu", content=lookup_envelope("01234567890"))
    assert response.status_code == 200
    result = soap_result(response)
    assert result["MaKetQua"] == "02"
    assert "SoDinhDanh" in result["MoTaKetQua"]


def test_verify_agrees_only_with_the_right_name_and_birth_date(
    http: httpx.Client, generator: PopulationGenerator
) -> None:
    citizen = generator.get(42)
    name, born = full_name(citizen), citizen["NgayThangNamSinh"]
    birth = born.get("NgayThangNam") or born["Nam"]

    def verify(full: str, date: str) -> dict[str, Any]:
        envelope = verify_envelope(citizen["SoDinhDanh"], full, date)
        return soap_result(http.post("/dancu", content=envelope.encode()))

    assert verify(name, birth) == {
        "MaKetQua": "00",
        "MoTaKetQua": "Thông tin công dân khớp",
        "KetQuaXacThuc": "true",
    }
    assert verify(name.swapcase(), birth)["KetQuaXacThuc"] == "true"
    assert verify(name, birth[:4])["KetQuaXacThuc"] == "true"
    assert verify(name + " An", birth)["KetQuaXacThuc"] == "false"
    assert verify(name, "18991231")["KetQuaXacThuc"] == "false"
    assert verify(name, "31/12/1990")["MaKetQua"] == "02"


def test_unknown_operation_is_a_client_fault_naming_it(http: httpx.Client) -> None:
    envelope = lookup_envelope("012345678901").replace("TraCuuThongTinCongDan", "XoaCongDan")
    response = http.post("/dancu", content=envelope)
    assert response.status_code == 500
    fault = soap_result(response)
    assert fault["faultcode"] == "soap:Client"
    assert "XoaCongDan" in fault["faultstring"]


def test_a_request_that_is_not_xml_is_a_client_fault(http: httpx.Client) -> None:
    response = http.post("/dancu", content=b"<soapenv:Envelope")
    assert response.status_code == 500
    assert soap_result(response)["faultcode"] == "soap:Client"


def test_external_entities_are_not_resolved(http: httpx.Client) -> None:
    envelope = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        + lookup_envelope("&e;")
    )
    response = http.post("/dancu", content=envelope)
    assert b"root:" not in response.content


def test_health_reports_count_and_seed(http: httpx.Client) -> None:
    health = http.get("/_sandbox/health").json()
    assert (health["status"], health["count"], health["seed"]) == ("ok", COUNT, SEED)
    assert "population" in health["sources"]


# -- faults ---------------------------------------------------------------------------------------
def test_error_rate_one_answers_a_server_fault_then_normal_again(http: httpx.Client) -> None:
    personal_id = http.get("/_sandbox/sample", params={"n": 1}).json()[0]
    assert http.put("/_sandbox/faults/population", json={"error_rate": 1}).status_code == 200
    assert http.get("/_sandbox/faults/population").json()["error_rate"] == 1
    response = http.post("/dancu", content=lookup_envelope(personal_id))
    assert response.status_code == 500
    fault = soap_result(response)
    assert fault["faultcode"] == "soap:Server"
    assert "internal error" in fault["faultstring"] and "Lỗi" in fault["faultstring"]
    http.put("/_sandbox/faults/population", json={})
    assert (
        soap_result(http.post("/dancu", content=lookup_envelope(personal_id)))["MaKetQua"] == "00"
    )


def test_malformed_rate_one_answers_200_with_a_body_that_is_not_xml(http: httpx.Client) -> None:
    personal_id = http.get("/_sandbox/sample", params={"n": 1}).json()[0]
    http.put("/_sandbox/faults/population", json={"malformed_rate": 1})
    for _ in range(5):
        response = http.post("/dancu", content=lookup_envelope(personal_id))
        assert response.status_code == 200
        with pytest.raises(etree.XMLSyntaxError):
            etree.fromstring(response.content)


def test_latency_delays_the_answer(http: httpx.Client) -> None:
    http.put("/_sandbox/faults/population", json={"latency_ms": 300, "jitter_ms": 50})
    started = time.perf_counter()
    response = http.post("/dancu", content=lookup_envelope("099999999999"))
    assert time.perf_counter() - started >= 0.3
    assert soap_result(response)["MaKetQua"] == "01"


def test_hang_holds_the_answer_until_the_client_gives_up(http: httpx.Client) -> None:
    http.put("/_sandbox/faults/population", json={"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        http.post("/dancu", content=lookup_envelope("099999999999"), timeout=0.5)
    http.put("/_sandbox/faults/population", json={"hang": False})
    response = http.post("/dancu", content=lookup_envelope("099999999999"))
    assert soap_result(response)["MaKetQua"] == "01"


def test_fault_settings_are_validated_with_the_field_named(http: httpx.Client) -> None:
    response = http.put("/_sandbox/faults/population", json={"error_rat": 1})
    assert response.status_code == 400 and "error_rat" in response.json()["error"]
    response = http.put("/_sandbox/faults/population", json={"malformed_rate": 2})
    assert response.status_code == 400 and "malformed_rate" in response.json()["error"]
    assert http.get("/_sandbox/faults/population").json() == {
        "latency_ms": 0,
        "jitter_ms": 0,
        "error_rate": 0,
        "error_status": 500,
        "malformed_rate": 0,
        "hang": False,
        "outage": False,
        "trickle": False,
        "oversize": False,
        "xml_bomb": False,
        "xxe": False,
        "wrong_content_type": False,
        "gzip_bomb": False,
    }


# -- WSDL and zeep --------------------------------------------------------------------------------
def test_wsdl_names_the_address_it_is_served_at(http: httpx.Client, sandbox_url: str) -> None:
    for path in ("/dancu?wsdl", "/dancu/population.wsdl"):
        root = etree.fromstring(http.get(path).content)
        address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
        assert address is not None and address.get("location") == f"{sandbox_url}/dancu"


def test_zeep_client_looks_up_and_verifies_a_citizen(
    sandbox_url: str, generator: PopulationGenerator
) -> None:
    client = zeep.Client(f"{sandbox_url}/dancu?wsdl")
    personal_id = generator.personal_id(123)
    expected = generator.get(123)
    result = client.service.TraCuuThongTinCongDan(
        MaYeuCau="msg-42", MaDonViYeuCau="H01.01", SoDinhDanh=personal_id
    )
    assert result.MaKetQua == "00"
    assert result.CongDan.SoDinhDanh == personal_id
    assert result.CongDan.HoVaTen.Ten == expected["HoVaTen"]["Ten"]
    assert result.CongDan.GioiTinh == expected["GioiTinh"]
    assert result.CongDan.ThuongTru.MaDonViHanhChinh == expected["ThuongTru"]["MaDonViHanhChinh"]
    assert result.CongDan.ChuHo.QuanHeVoiChuHo == expected["ChuHo"]["QuanHeVoiChuHo"]

    missing = client.service.TraCuuThongTinCongDan(
        MaYeuCau="msg-43", MaDonViYeuCau="H01.01", SoDinhDanh="099999999999"
    )
    assert missing.MaKetQua == "01" and missing.CongDan is None

    born = expected["NgayThangNamSinh"]
    verified = client.service.XacThucThongTinCongDan(
        SoDinhDanh=personal_id,
        HoVaTen=full_name(expected),
        NgayThangNamSinh=born.get("NgayThangNam") or born["Nam"],
    )
    assert verified.KetQuaXacThuc is True
