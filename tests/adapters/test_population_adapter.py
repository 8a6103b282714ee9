"""Contract test: the population adapter against the sandbox SOAP service, over real HTTP."""

from __future__ import annotations

import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import requests
from vietnam_provinces import Ward

from adapters.http11 import OriginPool
from adapters.population import PopulationAdapter
from bus.errors import (
    MalformedAnswer,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas import Address, Citizen, Relative, Subject
from mappings import load_mapping
from mappings.units import new_province_code
from tests.adapters.conftest import population_url

SEX = {0: "unknown", 1: "male", 2: "female"}


def fetch(adapter: PopulationAdapter, personal_id: str, timeout: float = 3.0) -> Any:
    return adapter.fetch(
        "identity",
        Subject(personal_id=personal_id),
        timeout=timeout,
        request_id="req-1",
        requester_agency="000.00.00.H01",
    )


def same_name(mapped: str, native: str) -> None:
    """The mapped name is the native one in NFC, title-cased only if it came in upper case."""
    native = " ".join(unicodedata.normalize("NFC", native).split())
    assert unicodedata.is_normalized("NFC", mapped)
    if native.isupper():
        assert mapped.casefold() == native.casefold()
        assert all(word[0].isupper() and word[1:] == word[1:].lower() for word in mapped.split())
    else:
        assert mapped == native


def same_address(mapped: Address | None, native: dict[str, str]) -> None:
    assert mapped is not None and mapped.original is not None
    assert mapped.detail == native["ChiTiet"]
    assert mapped.original.province_code == native["MaTinh"]
    assert mapped.original.commune_code == native["MaDonViHanhChinh"]
    assert mapped.province_code == new_province_code(native["MaTinh"])
    if mapped.conversion == "exact":
        assert mapped.commune_code == native["MaDonViHanhChinh"]
        ward = Ward.from_code(int(native["MaDonViHanhChinh"]))
        assert f"{int(ward.province_code):02d}" == mapped.province_code
        assert mapped.commune_name == ward.name
    else:
        assert mapped.conversion == "ambiguous" and mapped.commune_code is None


def same_relative(mapped: Relative | None, native: dict[str, str] | None) -> None:
    if native is None:
        assert mapped is None
        return
    assert mapped is not None
    same_name(mapped.full_name, native["HoVaTen"])
    assert mapped.personal_id == native.get("SoDinhDanh")


def test_sampled_citizens_map_field_by_field(adapter: PopulationAdapter, generator: Any) -> None:
    mapping = load_mapping("population")
    for personal_id in generator.sample(60, rng_seed=11):
        record = fetch(adapter, personal_id)
        native = generator.find(personal_id)
        index = generator.index_of(personal_id)
        assert record.source == "population" and record.dataset == "identity"
        assert record.record_time is not None
        assert record.record_time.utcoffset() == timedelta(hours=7)
        assert record.record_time.strftime("%Y%m%d%H%M%S") == generator.native_data_time(index)

        citizen = mapping.apply(record.data)
        assert isinstance(citizen, Citizen)
        assert citizen.personal_id == native["SoDinhDanh"]
        assert citizen.old_id_number == native.get("SoCMND")
        parts = native["HoVaTen"]
        same_name(citizen.full_name, " ".join(parts.values()))
        same_name(citizen.family_name or "", parts["Ho"])
        same_name(citizen.given_name or "", parts["Ten"])
        assert (citizen.middle_name is None) == ("ChuDem" not in parts)
        born = native["NgayThangNamSinh"]
        assert citizen.birth_date is not None
        if "NgayThangNam" in born:
            assert citizen.birth_date.iso.replace("-", "") == born["NgayThangNam"]
        else:
            assert (citizen.birth_date.iso, citizen.birth_date.precision) == (born["Nam"], "year")
        assert citizen.sex == SEX[native["GioiTinh"]]
        assert citizen.ethnicity is not None
        assert citizen.ethnicity.code == native["DanToc"]["MaDanToc"]
        assert citizen.ethnicity.code_list == "ethnicity-2008"
        religion = native["TonGiao"]["MaTonGiao"]
        assert (citizen.religion.code if citizen.religion else "00") == religion
        assert citizen.nationality == native["QuocTich"]
        same_address(citizen.hometown, native["QueQuan"])
        same_address(citizen.permanent_address, native["ThuongTru"])
        same_address(citizen.current_address, native["NoiOHienTai"])
        same_relative(citizen.father, native.get("Cha"))
        same_relative(citizen.mother, native.get("Me"))
        same_relative(citizen.spouse, native.get("VoChong"))
        same_relative(citizen.household_head, native["ChuHo"])
        assert citizen.household_head is not None
        assert citizen.household_head.relation == native["ChuHo"]["QuanHeVoiChuHo"]


def test_unknown_personal_id_is_not_found(adapter: PopulationAdapter) -> None:
    with pytest.raises(SourceNotFound) as info:
        fetch(adapter, "001099999999")
    assert info.value.source == "population"


def test_subject_without_personal_id_is_rejected(adapter: PopulationAdapter) -> None:
    with pytest.raises(SourceRejected):
        adapter.fetch(
            "identity",
            Subject(enterprise_code="0100047516"),
            timeout=1,
            request_id="r",
            requester_agency="a",
        )


def test_server_error_is_a_source_fault(adapter: PopulationAdapter, faultless: Any) -> None:
    faultless.set_faults("population", error_rate=1)
    with pytest.raises(SourceFault) as info:
        fetch(adapter, faultless.app.state.world.population.personal_id(0))
    assert info.value.retryable


def test_malformed_answer(adapter: PopulationAdapter, faultless: Any) -> None:
    personal_id = faultless.app.state.world.population.personal_id(1)
    fetch(adapter, personal_id)  # the WSDL is loaded before the answers go bad
    faultless.set_faults("population", malformed_rate=1)
    for _ in range(6):  # both kinds of garbage: cut short, and an HTML page
        with pytest.raises(MalformedAnswer) as info:
            fetch(adapter, personal_id)
        # Described by status, content type and length; never quoted (it holds personal data).
        message = str(info.value)
        assert "HTTP 200" in message and "bytes" in message and "xml" in message
        assert personal_id not in message
        assert info.value.__cause__ is None


def test_latency_beyond_the_timeout(adapter: PopulationAdapter, faultless: Any) -> None:
    personal_id = faultless.app.state.world.population.personal_id(2)
    fetch(adapter, personal_id)
    faultless.set_faults("population", latency_ms=1500)
    with pytest.raises(SourceTimeout):
        fetch(adapter, personal_id, timeout=0.3)


def test_hang_is_a_timeout(adapter: PopulationAdapter, faultless: Any) -> None:
    personal_id = faultless.app.state.world.population.personal_id(3)
    fetch(adapter, personal_id)
    faultless.set_faults("population", hang=True)
    with pytest.raises(SourceTimeout):
        fetch(adapter, personal_id, timeout=0.3)


def test_stopped_server_is_unavailable(sandbox_on: Any) -> None:
    running = sandbox_on()
    adapter = PopulationAdapter("population", sandbox_on.settings(population_url(running)))
    personal_id = running.app.state.world.population.personal_id(0)
    assert fetch(adapter, personal_id).data["SoDinhDanh"] == personal_id
    running.stop()
    with pytest.raises(SourceUnavailable):
        fetch(adapter, personal_id)
    adapter.close()


def test_wsdl_is_loaded_again_after_the_source_was_down(sandbox_on: Any) -> None:
    port = sandbox_on.free_port()
    adapter = PopulationAdapter("population", sandbox_on.settings(f"http://127.0.0.1:{port}/dancu"))
    with pytest.raises(SourceUnavailable):
        fetch(adapter, "001085012345")
    running = sandbox_on(port)
    personal_id = running.app.state.world.population.personal_id(4)
    assert fetch(adapter, personal_id).data["SoDinhDanh"] == personal_id
    adapter.close()


def test_connections_are_reused(
    adapter: PopulationAdapter, faultless: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = faultless.app.state.world.population
    fetch(adapter, generator.personal_id(5))
    opened: list[object] = []
    connect = OriginPool._connect

    def counting_connect(pool: OriginPool, ends: float) -> Any:
        opened.append(pool)
        return connect(pool, ends)

    monkeypatch.setattr(OriginPool, "_connect", counting_connect)
    for index in range(6, 16):
        fetch(adapter, generator.personal_id(index))
    assert opened == []  # ten calls over the connection the first one opened


def test_sandbox_sample_ids_are_found(adapter: PopulationAdapter, faultless: Any) -> None:
    ids = requests.get(f"{faultless.base_url}/_sandbox/sample?n=3", timeout=5).json()
    for personal_id in ids:
        assert fetch(adapter, personal_id).data["SoDinhDanh"] == personal_id


def test_concurrent_calls_each_get_their_own_answer(
    adapter: PopulationAdapter, faultless: Any
) -> None:
    generator = faultless.app.state.world.population
    ids = [generator.personal_id(index) for index in range(40, 120)]
    with ThreadPoolExecutor(max_workers=8) as pool:  # more threads than pooled connections
        records = list(pool.map(lambda personal_id: fetch(adapter, personal_id), ids))
    assert [record.data["SoDinhDanh"] for record in records] == ids
