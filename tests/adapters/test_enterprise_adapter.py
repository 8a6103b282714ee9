"""Contract test: the business registration adapter against the sandbox's REST/JSON service, over
real HTTP, with the mappings applied to what it answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from adapters.enterprise import EnterpriseAdapter
from adapters.rest import JsonAnswer
from bus.errors import (
    MalformedAnswer,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas import Address, PartialDate, Subject
from bus.schemas.enterprise import (
    Enterprise,
    EnterpriseRepresentatives,
    LegalRepresentative,
    RepresentedEnterprises,
)
from bus.settings import SourceSettings
from mappings import load_mapping
from mappings.transforms import load_code_list
from mappings.units import COMMUNES, new_province_code
from sandbox.enterprise.generator import EnterpriseRegistry
from sandbox.world import World
from tests.sandbox_server import RunningSandbox

PREFIX = "/dkdn/api"


class EnterpriseSandbox:
    """What the shared sandbox (tests/adapters/conftest.py) holds, seen from this database."""

    def __init__(self, running: RunningSandbox) -> None:
        self.running = running
        self.base_url = running.base_url
        self.url = running.base_url + PREFIX
        self.world = running.world
        self.records: EnterpriseRegistry = running.source("enterprise").registry

    def set_faults(self, **faults: object) -> None:
        self.running.set_faults("enterprise", **faults)


def settings(url: str, timeout_s: float = 3.0) -> SourceSettings:
    return SourceSettings(
        adapter="adapters.enterprise:EnterpriseAdapter", url=url, timeout_s=timeout_s, concurrency=4
    )


@pytest.fixture
def site(sandbox: RunningSandbox) -> Iterator[EnterpriseSandbox]:
    """The shared sandbox (conftest's), this source's faults switched off after the test."""
    site = EnterpriseSandbox(sandbox)
    site.set_faults()
    yield site
    site.set_faults()


@pytest.fixture
def adapter(site: EnterpriseSandbox) -> Iterator[EnterpriseAdapter]:
    enterprise = EnterpriseAdapter("enterprise", settings(site.url))
    yield enterprise
    enterprise.close()


def fetch(adapter: EnterpriseAdapter, dataset: str, timeout: float = 3.0, **subject: str) -> Any:
    return adapter.fetch(
        dataset,
        Subject(**subject),
        timeout=timeout,
        request_id="req-1",
        requester_agency="000.00.00.H01",
    )


def same_date(mapped: PartialDate | None, native: str) -> None:
    assert mapped is not None
    if len(native) == 4:
        assert (mapped.iso, mapped.precision) == (native, "year")
    else:
        assert datetime.strptime(native, "%d/%m/%Y").date().isoformat() == mapped.iso


def same_address(mapped: Address | None, native: dict[str, str]) -> None:
    assert mapped is not None and mapped.original is not None
    assert mapped.detail == native["AddressDetail"]
    assert mapped.original.province_code == native["CityID"]
    assert mapped.original.commune_code == native["WardID"]
    assert mapped.province_code == new_province_code(native["CityID"])
    if native["WardID"] in COMMUNES:
        assert mapped.conversion == "exact"
        assert (mapped.commune_code, mapped.commune_name) == (
            native["WardID"],
            COMMUNES[native["WardID"]][0],
        )
    else:  # an old commune merged away: the original is kept, the new one left open
        assert mapped.conversion == "ambiguous" and mapped.commune_code is None


def same_representatives(
    mapped: list[LegalRepresentative], native: list[dict[str, str]], world: World
) -> None:
    assert [r.personal_id for r in mapped] == [r["ID_NUMBER"] for r in native]
    for representative, raw in zip(mapped, native, strict=True):
        person_index = world.index_of(representative.personal_id)
        assert person_index is not None
        person = world.person(person_index)
        assert representative.full_name == person.full_name  # title case again when upper
        same_date(representative.birth_date, raw["BIRTH_DATE"])
        assert representative.title == raw["POSITION"]
        same_date(representative.since, raw["FROM_DATE"])


def test_every_profile_maps_field_by_field(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    mapping = load_mapping("enterprise-profile")
    types, statuses = load_code_list("enterprise-type"), load_code_list("enterprise-status")
    world, records = site.world, site.records
    conversions = set()
    for index in range(world.enterprise_count):
        code = world.enterprise_code(index)
        record = fetch(adapter, "profile", enterprise_code=code)
        native = records.profile(index)
        assert (record.source, record.dataset) == ("enterprise", "profile")
        assert record.data == native
        assert record.record_time.utcoffset() == timedelta(hours=7)
        assert record.record_time.strftime("%Y-%m-%d %H:%M:%S") == native["LAST_UPDATE_TIME"]

        enterprise = mapping.apply(record.data)
        assert isinstance(enterprise, Enterprise)
        assert enterprise.enterprise_code == code
        assert enterprise.name == native["NAME"]
        assert enterprise.foreign_name == (native["NAME_F"] or None)
        assert enterprise.short_name == (native["SHORT_NAME"] or None)
        assert enterprise.enterprise_type.code == str(native["ENTERPRISE_TYPE_ID"])
        assert enterprise.enterprise_type.name == types.codes[enterprise.enterprise_type.code]
        assert enterprise.status.code == str(native["ENTERPRISE_STATUS_ID"])
        assert enterprise.status.name == statuses.codes[enterprise.status.code]
        same_date(enterprise.founding_date, native["FOUNDING_DATE"])
        assert enterprise.charter_capital == native["CAPITAL_AMOUNT"]
        same_address(enterprise.head_office, native["HO_ADDRESS"])
        assert enterprise.head_office is not None
        conversions.add(enterprise.head_office.conversion)
        same_representatives(enterprise.representatives, native["REPRESENTATIVES"], world)
        assert len(enterprise.branches) == len(native["BRANCHES"])
        for branch, raw in zip(enterprise.branches, native["BRANCHES"], strict=True):
            assert (branch.branch_code, branch.name) == (raw["BRANCH_CODE"], raw["BRANCH_NAME"])
            assert branch.status is not None
            assert branch.status.code == str(raw["BRANCH_STATUS_ID"])
            same_address(branch.address, raw["ADDRESS"])
        assert [(a.industry.code, a.description, a.main) for a in enterprise.activities] == [
            (a["INDUSTRY_CODE"], a["INDUSTRY_NAME"], a["IS_MAIN"] == 1)
            for a in native["BUSINESS_ACTIVITIES"]
        ]
        assert enterprise.requested_branch is None
    assert conversions == {"exact", "ambiguous"}


def test_a_branch_code_gives_the_parent_enterprise_with_the_branch_marked(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    world = site.world
    index = next(j for j in range(world.enterprise_count) if world.enterprise(j).branches)
    branch = f"{world.enterprise_code(index)}-001"
    enterprise = load_mapping("enterprise-profile").apply(
        fetch(adapter, "profile", enterprise_code=branch).data
    )
    assert isinstance(enterprise, Enterprise)
    assert enterprise.enterprise_code == world.enterprise_code(index)
    assert enterprise.requested_branch == branch
    assert branch in [b.branch_code for b in enterprise.branches]
    representatives = load_mapping("enterprise-representatives").apply(
        fetch(adapter, "representatives", enterprise_code=branch).data
    )
    assert isinstance(representatives, EnterpriseRepresentatives)
    assert representatives.requested_branch == branch
    assert representatives.enterprise_code == world.enterprise_code(index)


def test_representatives_map_field_by_field(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    mapping = load_mapping("enterprise-representatives")
    world, records = site.world, site.records
    for index in range(0, world.enterprise_count, 3):
        record = fetch(adapter, "representatives", enterprise_code=world.enterprise_code(index))
        assert record.record_time is None
        answer = mapping.apply(record.data)
        assert isinstance(answer, EnterpriseRepresentatives)
        assert answer.enterprise_code == world.enterprise_code(index)
        assert answer.name == records.profile(index)["NAME"]
        same_representatives(answer.representatives, records.representatives(index), world)


def test_by_representative_agrees_with_the_representatives_answers(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    by_person, of_enterprise = (
        load_mapping("enterprise-by-representative"),
        load_mapping("enterprise-representatives"),
    )
    world = site.world
    people = {
        r.person for j in range(world.enterprise_count) for r in world.enterprise(j).representatives
    }
    for person in sorted(people):
        personal_id = world.population.personal_id(person)
        answer = by_person.apply(fetch(adapter, "by_representative", personal_id=personal_id).data)
        assert isinstance(answer, RepresentedEnterprises)
        assert answer.personal_id == personal_id
        assert sorted(e.enterprise_code for e in answer.enterprises) == sorted(
            world.enterprise_code(j) for j in world.represented_by(person)
        )
        for summary in answer.enterprises:
            listed = of_enterprise.apply(
                fetch(adapter, "representatives", enterprise_code=summary.enterprise_code).data
            )
            assert isinstance(listed, EnterpriseRepresentatives)
            own = [r for r in listed.representatives if r.personal_id == personal_id]
            assert len(own) == 1
            assert (summary.role, summary.since) == (own[0].title, own[0].since)
            assert summary.name == listed.name
            index = world.enterprise_index(summary.enterprise_code)
            assert index is not None
            assert summary.status.code == str(world.enterprise(index).status)


def test_a_citizen_who_represents_none_is_found_with_an_empty_list(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    world = site.world
    nobody = next(i for i in range(world.count) if not world.represented_by(i))
    personal_id = world.population.personal_id(nobody)
    record = fetch(adapter, "by_representative", personal_id=personal_id)
    answer = load_mapping("enterprise-by-representative").apply(record.data)
    assert answer == RepresentedEnterprises(personal_id=personal_id, enterprises=[])


def test_a_dissolved_enterprise_is_found_with_status_7(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    world = site.world
    index = next(j for j in range(world.enterprise_count) if world.enterprise(j).status == 7)
    record = fetch(adapter, "profile", enterprise_code=world.enterprise_code(index))
    enterprise = load_mapping("enterprise-profile").apply(record.data)
    assert isinstance(enterprise, Enterprise)
    assert enterprise.status.code == "7"


def test_unknown_enterprise_and_branch_are_not_found(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    with pytest.raises(SourceNotFound) as info:
        fetch(adapter, "profile", enterprise_code="0100047516")
    assert info.value.source == "enterprise" and "01" in str(info.value)
    with pytest.raises(SourceNotFound):
        fetch(adapter, "representatives", enterprise_code="0100047516")
    code = site.world.enterprise_code(0)
    with pytest.raises(SourceNotFound):
        fetch(adapter, "profile", enterprise_code=f"{code}-999")


def test_input_the_source_refuses_is_rejected(adapter: EnterpriseAdapter) -> None:
    # A subject the bus would refuse itself, sent anyway: the source's 02 is SourceRejected.
    for dataset, subject in (
        ("profile", Subject.model_construct(enterprise_code="0100047517")),
        ("by_representative", Subject.model_construct(personal_id="12345")),
    ):
        with pytest.raises(SourceRejected) as info:
            adapter.fetch(dataset, subject, timeout=3, request_id="r", requester_agency="a")
        assert "02" in str(info.value)
        assert "0100047517" not in str(info.value) and "12345" not in str(info.value)


def test_a_subject_of_the_wrong_kind_is_rejected_before_asking(
    adapter: EnterpriseAdapter,
) -> None:
    with pytest.raises(SourceRejected):
        fetch(adapter, "profile", personal_id="001085012345")
    with pytest.raises(SourceRejected):
        fetch(adapter, "by_representative", enterprise_code="0100047516")


def test_a_wrong_path_is_refused_not_malformed(site: EnterpriseSandbox) -> None:
    wrong = EnterpriseAdapter("enterprise", settings(site.base_url + "/dkdn/api/v9"))
    with wrong, pytest.raises(SourceRejected, match="HTTP 404"):
        fetch(wrong, "profile", enterprise_code=site.world.enterprise_code(0))


def test_server_errors_are_unavailable_and_retryable(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    code = site.world.enterprise_code(1)
    for status in (500, 502, 503):
        site.set_faults(error_rate=1, error_status=status)
        with pytest.raises(SourceUnavailable) as info:
            fetch(adapter, "profile", enterprise_code=code)
        assert info.value.retryable and f"HTTP {status}" in str(info.value)


def test_an_error_result_code_is_a_source_fault(adapter: EnterpriseAdapter) -> None:
    with pytest.raises(SourceFault):
        adapter.read_answer(JsonAnswer(200, {"RESULT_CODE": "99", "RESULT_MESSAGE": "Lỗi"}))
    with pytest.raises(MalformedAnswer):
        adapter.read_answer(JsonAnswer(200, {"RESULT_CODE": "00", "DATA": None}))
    with pytest.raises(MalformedAnswer):
        adapter.read_answer(JsonAnswer(200, {"DATA": {}}))


def test_a_malformed_answer_is_described_not_quoted(
    adapter: EnterpriseAdapter, site: EnterpriseSandbox
) -> None:
    world = site.world
    personal_id = world.population.personal_id(world.enterprise(2).representatives[0].person)
    site.set_faults(malformed_rate=1)
    for _ in range(6):  # both kinds of garbage: cut short, and an HTML page
        with pytest.raises(MalformedAnswer) as info:
            fetch(adapter, "by_representative", personal_id=personal_id)
        message = str(info.value)
        assert "HTTP 200" in message and "bytes" in message
        assert personal_id not in message
        assert info.value.__cause__ is None


def test_an_outage_is_unavailable(adapter: EnterpriseAdapter, site: EnterpriseSandbox) -> None:
    site.set_faults(outage=True)
    with pytest.raises(SourceUnavailable) as info:
        fetch(adapter, "profile", enterprise_code=site.world.enterprise_code(3))
    assert "HTTP 503" in str(info.value)


def test_latency_beyond_the_timeout(adapter: EnterpriseAdapter, site: EnterpriseSandbox) -> None:
    code = site.world.enterprise_code(4)
    fetch(adapter, "profile", enterprise_code=code)
    site.set_faults(latency_ms=1500)
    started = time.monotonic()
    with pytest.raises(SourceTimeout):
        fetch(adapter, "profile", timeout=0.3, enterprise_code=code)
    assert time.monotonic() - started < 1.0


def test_hang_is_a_timeout(adapter: EnterpriseAdapter, site: EnterpriseSandbox) -> None:
    site.set_faults(hang=True)
    with pytest.raises(SourceTimeout):
        fetch(
            adapter,
            "representatives",
            timeout=0.3,
            enterprise_code=site.world.enterprise_code(5),
        )


def test_a_stopped_server_is_unavailable(sandbox_on: Any) -> None:
    running = EnterpriseSandbox(sandbox_on())
    code = running.world.enterprise_code(0)
    adapter = EnterpriseAdapter("enterprise", settings(running.url))
    try:
        assert fetch(adapter, "profile", enterprise_code=code).data["ENTERPRISE_CODE"] == code
        running.running.stop()
        with pytest.raises(SourceUnavailable):
            fetch(adapter, "profile", enterprise_code=code)
    finally:
        adapter.close()


def test_sampled_codes_are_found(adapter: EnterpriseAdapter, site: EnterpriseSandbox) -> None:
    codes = requests.get(
        f"{site.base_url}/_sandbox/sample", params={"source": "enterprise", "n": 5}, timeout=5
    ).json()
    assert len(codes) == 5
    for code in codes:
        assert fetch(adapter, "profile", enterprise_code=code).data["ENTERPRISE_CODE"] == code


def test_datasets_are_declared_with_their_subject_kind_and_mapping_target() -> None:
    declared = {
        d.name: (d.subject, load_mapping(d.mapping).model) for d in EnterpriseAdapter.datasets
    }
    assert declared == {
        "profile": ("enterprise_code", Enterprise),
        "representatives": ("enterprise_code", EnterpriseRepresentatives),
        "by_representative": ("personal_id", RepresentedEnterprises),
    }
