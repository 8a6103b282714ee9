"""Contract test: the driver licence adapter against the sandbox REST service, over real HTTP."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from adapters.base import NativeRecord
from adapters.licence import LicenceAdapter
from adapters.rest import JsonAnswer
from bus.errors import (
    MalformedAnswer,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas.citizen import PartialDate
from bus.schemas.licence import DriverLicence
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings
from mappings import load_mapping
from mappings.units import new_province_code
from sandbox.licence.generator import HeldClass, LicenceGenerator
from sandbox.licence.service import LicenceService
from sandbox.world import SNAPSHOT, World
from tests.sandbox_server import RunningSandbox, serve_sandbox, served_sandbox

# A world larger than the shared adapter sandbox's, so that it has dead holders, suspensions,
# expired licences and 2025 classes.
COUNT, SEED = 3_000, 7

API = "/gplx/api/v1"
CODES = Path(__file__).resolve().parents[2] / "mappings" / "codes"
# The source's own status words and the status the bus derives from the dated facts.
STATUS = {
    "con_hieu_luc": "valid",
    "bi_tuoc_quyen": "suspended",
    "het_diem": "suspended",
    "da_thu_hoi": "revoked",
    "het_han": "expired",
}


def settings(url: str, timeout_s: float = 3.0) -> SourceSettings:
    return SourceSettings(
        adapter="adapters.licence:LicenceAdapter", url=url, timeout_s=timeout_s, concurrency=4
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with served_sandbox(COUNT, SEED) as running:
        yield running


@pytest.fixture
def licence_sandbox(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    """This module's sandbox, with the licence source's faults off before and after the test."""
    sandbox.set_faults("licence")
    yield sandbox
    sandbox.set_faults("licence")


@pytest.fixture
def adapter(licence_sandbox: RunningSandbox) -> Iterator[LicenceAdapter]:
    licence = LicenceAdapter("licence", settings(licence_sandbox.base_url + API))
    yield licence
    licence.close()


@pytest.fixture
def service(licence_sandbox: RunningSandbox) -> LicenceService:
    source: LicenceService = licence_sandbox.source("licence")
    return source


def fetch(
    adapter: LicenceAdapter, personal_id: str, timeout: float = 3.0, agency: str = "H26"
) -> NativeRecord:
    return adapter.fetch(
        "driver",
        Subject(personal_id=personal_id),
        timeout=timeout,
        request_id="req-1",
        requester_agency=agency,
    )


def a_holder(service: LicenceService) -> str:
    return service.sample(1, seed=1)[0]


def day(value: PartialDate | None) -> date | None:
    return None if value is None else value.as_date()


def labels(name: str) -> dict[str, str]:
    with (CODES / f"{name}.toml").open("rb") as fh:
        return {code: entry["name"] for code, entry in tomllib.load(fh)["codes"].items()}


def same_classes(mapped: tuple[Any, ...], held: list[HeldClass], code_list: str) -> None:
    names = labels(code_list)
    assert [c.code for c in mapped] == [h.code for h in held]
    for normalized, native in zip(mapped, held, strict=True):
        assert normalized.label == names[native.code]
        assert normalized.scheme == native.scheme
        assert day(normalized.issued) == native.issued
        assert day(normalized.expires) == native.expires


def test_sampled_holders_map_field_by_field(
    adapter: LicenceAdapter, service: LicenceService
) -> None:
    mapping = load_mapping("licence-driver")
    world, generator = service.world, service.generator
    for personal_id in service.sample(60, seed=11):
        index = world.index_of(personal_id)
        assert index is not None
        record = fetch(adapter, personal_id)
        assert (record.source, record.dataset) == ("licence", "driver")
        licence, facts, native = generator.licence(index), world.person(index), record.data
        assert licence is not None
        assert record.record_time is not None
        assert record.record_time.utcoffset() == timedelta(hours=7)
        assert record.record_time.replace(tzinfo=None) == licence.updated

        mapped = mapping.apply(native)
        assert isinstance(mapped, DriverLicence)
        assert mapped.licence_number == licence.number
        assert mapped.personal_id == facts.personal_id
        assert mapped.full_name == facts.full_name  # title case again, from the card's capitals
        if licence.year_only_birth or facts.birth_date is None:
            assert (mapped.birth_date.precision, mapped.birth_date.year) == (
                "year",
                facts.birth_year,
            )
        else:
            assert day(mapped.birth_date) == facts.birth_date
        assert mapped.residence is not None and mapped.residence.original is not None
        assert mapped.residence.original.commune_code == facts.residence_commune
        assert mapped.residence.province_code == new_province_code(facts.residence_province)
        assert mapped.residence.detail == facts.residence_detail
        same_classes(
            mapped.classes, [h for h in licence.classes if h.scheme == "2025"], "licence-class-2025"
        )
        old = [h for h in licence.classes if h.scheme == "pre-2025"]
        same_classes(mapped.pre2025_classes, old, "licence-class-pre2025")
        for normalized, entry in zip(mapped.pre2025_classes, native["hang_cu"], strict=True):
            assert list(normalized.exchanges_to) == entry["doi_sang"]
        assert day(mapped.issued) == licence.issued
        assert mapped.issuing_authority == licence.authority
        assert mapped.points == licence.points
        if licence.suspension is None:
            assert mapped.suspension is None
        else:
            assert mapped.suspension is not None
            assert day(mapped.suspension.start) == licence.suspension.start
            assert day(mapped.suspension.end) == licence.suspension.end
        if licence.revocation is None:
            assert mapped.revocation is None
        else:
            assert mapped.revocation is not None
            assert day(mapped.revocation.day) == licence.revocation.day
            assert mapped.revocation.reason == licence.revocation.reason
        assert day(mapped.as_of) == SNAPSHOT
        assert mapped.status == STATUS[native["trang_thai"]]


def test_every_holder_maps_and_the_status_agrees_with_the_sources_own(
    adapter: LicenceAdapter, service: LicenceService
) -> None:
    mapping = load_mapping("licence-driver")
    statuses: set[str] = set()
    for personal_id in service.sample(10_000, seed=2):  # every holder of the test world
        record = fetch(adapter, personal_id)
        mapped = mapping.apply(record.data)
        assert isinstance(mapped, DriverLicence)
        assert mapped.status == STATUS[record.data["trang_thai"]]
        statuses.add(mapped.status)
        dumped = mapped.model_dump(mode="json", exclude_none=True)
        assert DriverLicence.model_validate(dumped) == mapped  # the bus's output reads back
    assert statuses == {"valid", "suspended", "revoked", "expired"}


def test_a_status_that_disagrees_with_the_facts_is_refused(
    adapter: LicenceAdapter, service: LicenceService
) -> None:
    mapped = load_mapping("licence-driver").apply(fetch(adapter, a_holder(service)).data)
    dumped = mapped.model_dump(mode="json")
    wrong = "revoked" if dumped["status"] != "revoked" else "valid"
    with pytest.raises(ValidationError, match="status disagrees"):
        DriverLicence.model_validate({**dumped, "status": wrong})


def test_holders_known_by_the_birth_year_only_get_a_year_precision_date(
    adapter: LicenceAdapter, service: LicenceService
) -> None:
    world, generator = service.world, service.generator
    year_only = [
        world.population.personal_id(i)
        for i in range(world.count)
        if (licence := generator.licence(i)) is not None and licence.year_only_birth
    ]
    assert year_only, "the test world has no holder known by the birth year only"
    mapping = load_mapping("licence-driver")
    for personal_id in year_only:
        record = fetch(adapter, personal_id)
        assert len(record.data["ngay_sinh"]) == 4
        mapped = mapping.apply(record.data)
        assert isinstance(mapped, DriverLicence)
        assert mapped.birth_date.precision == "year"
        assert (mapped.birth_date.month, mapped.birth_date.day) == (None, None)


def test_a_dead_holders_licence_is_revoked(
    adapter: LicenceAdapter, service: LicenceService
) -> None:
    world = service.world
    dead = [
        world.population.personal_id(i)
        for i in range(world.count)
        if service.holds(i) and world.death(i) is not None
    ]
    assert dead, "the test world has no dead holder"
    mapping = load_mapping("licence-driver")
    for personal_id in dead:
        mapped = mapping.apply(fetch(adapter, personal_id).data)
        assert isinstance(mapped, DriverLicence)
        index = world.index_of(personal_id)
        assert index is not None
        died = world.death(index)
        assert mapped.status == "revoked" and mapped.revocation is not None
        revoked_on = day(mapped.revocation.day)
        assert died is not None and revoked_on is not None and revoked_on >= died
        issued = [day(c.issued) for c in mapped.classes]
        issued += [day(c.issued) for c in mapped.pre2025_classes]
        assert all(grant is not None and grant < died for grant in issued)


def test_an_adult_without_a_licence_and_an_unknown_id_are_not_found(
    adapter: LicenceAdapter, service: LicenceService
) -> None:
    world = service.world
    adult = next(
        i for i in range(world.count) if world.of_age_on(i, SNAPSHOT, 30) and not service.holds(i)
    )
    for personal_id in (world.population.personal_id(adult), "001090999999"):
        with pytest.raises(SourceNotFound) as info:
            fetch(adapter, personal_id)
        assert info.value.source == "licence" and "404" in str(info.value)
        assert personal_id not in str(info.value)


def test_a_subject_without_personal_id_is_rejected(adapter: LicenceAdapter) -> None:
    with pytest.raises(SourceRejected):
        adapter.fetch(
            "driver",
            Subject(enterprise_code="0100047516"),
            timeout=1,
            request_id="r",
            requester_agency="a",
        )


def test_the_source_refuses_a_request_without_a_requesting_agency(
    adapter: LicenceAdapter, service: LicenceService
) -> None:
    personal_id = a_holder(service)
    with pytest.raises(SourceRejected) as info:
        fetch(adapter, personal_id, agency="")
    message = str(info.value)
    assert "400" in message and "don_vi_yeu_cau" in message and personal_id not in message


def test_the_personal_id_goes_in_the_body_never_in_the_url(
    adapter: LicenceAdapter, service: LicenceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    personal_id = a_holder(service)
    sent: list[tuple[str, bytes]] = []
    post_bytes = LicenceAdapter.post_bytes

    def spying(self: LicenceAdapter, url: str, body: bytes, *args: Any, **kwargs: Any) -> Any:
        sent.append((url, body))
        return post_bytes(self, url, body, *args, **kwargs)

    monkeypatch.setattr(LicenceAdapter, "post_bytes", spying)
    fetch(adapter, personal_id)
    ((url, body),) = sent
    assert url.endswith("/gplx/api/v1/tra-cuu") and personal_id not in url
    assert orjson.loads(body) == {
        "so_dinh_danh": personal_id,
        "don_vi_yeu_cau": "H26",
        "ma_yeu_cau": "req-1",
    }


# -- answers that must not be believed -----------------------------------------------------------
def found_answer(**changes: Any) -> JsonAnswer:
    body: dict[str, Any] = {
        "ma_loi": 0,
        "thong_diep": "Thành công",
        "ma_yeu_cau": "req-1",
        "du_lieu": {"so_dinh_danh": "001090999999", "cap_nhat_luc": "30/06/2025 10:00:00"},
    }
    body.update(changes)
    return JsonAnswer(200, body)


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"ma_yeu_cau": "someone-else"}, "another request"),
        ({"du_lieu": {"so_dinh_danh": "001090999998"}}, "another holder"),
        ({"du_lieu": None}, "without a du_lieu"),
        ({"ma_loi": "0"}, "not a number"),
        ({"du_lieu": {"so_dinh_danh": "001090999999", "cap_nhat_luc": "2025-06-30"}}, "cap_nhat"),
    ],
)
def test_an_answer_that_does_not_fit_the_question_is_malformed(
    changes: dict[str, Any], named: str
) -> None:
    adapter = LicenceAdapter("licence", settings("http://127.0.0.1:9/gplx/api/v1"))
    with pytest.raises(MalformedAnswer, match=named) as info:
        adapter.read_answer("driver", found_answer(**changes), "001090999999", "req-1")
    assert "001090999999" not in str(info.value)
    adapter.close()


def test_a_wrong_path_is_refused_not_malformed(licence_sandbox: RunningSandbox) -> None:
    adapter = LicenceAdapter("licence", settings(licence_sandbox.base_url + "/gplx/api/v9"))
    with pytest.raises(SourceRejected, match="HTTP 404"):
        fetch(adapter, "001090999999")
    adapter.close()


# -- faults ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_unavailable_and_retryable(
    adapter: LicenceAdapter, service: LicenceService, licence_sandbox: RunningSandbox, status: int
) -> None:
    licence_sandbox.set_faults("licence", error_rate=1, error_status=status)
    with pytest.raises(SourceUnavailable) as info:
        fetch(adapter, a_holder(service))
    assert info.value.retryable and f"HTTP {status}" in str(info.value)


def test_an_outage_is_unavailable(
    adapter: LicenceAdapter, service: LicenceService, licence_sandbox: RunningSandbox
) -> None:
    licence_sandbox.set_faults("licence", outage=True)
    with pytest.raises(SourceUnavailable):
        fetch(adapter, a_holder(service))


def test_a_malformed_answer_is_described_never_quoted(
    adapter: LicenceAdapter, service: LicenceService, licence_sandbox: RunningSandbox
) -> None:
    personal_id = a_holder(service)
    licence_sandbox.set_faults("licence", malformed_rate=1)
    for _ in range(6):  # both kinds of garbage: cut short, and an HTML page
        with pytest.raises(MalformedAnswer) as info:
            fetch(adapter, personal_id)
        message = str(info.value)
        assert "HTTP 200" in message and "bytes" in message and personal_id not in message
        assert info.value.retryable and info.value.__cause__ is None


def test_latency_beyond_the_timeout_is_a_timeout(
    adapter: LicenceAdapter, service: LicenceService, licence_sandbox: RunningSandbox
) -> None:
    licence_sandbox.set_faults("licence", latency_ms=1500)
    with pytest.raises(SourceTimeout):
        fetch(adapter, a_holder(service), timeout=0.3)


def test_a_hang_is_a_timeout(
    adapter: LicenceAdapter, service: LicenceService, licence_sandbox: RunningSandbox
) -> None:
    licence_sandbox.set_faults("licence", hang=True)
    with pytest.raises(SourceTimeout):
        fetch(adapter, a_holder(service), timeout=0.3)


def test_a_stopped_server_is_unavailable() -> None:
    running = serve_sandbox(200, SEED)
    adapter = LicenceAdapter("licence", settings(running.base_url + API))
    service: LicenceService = running.source("licence")
    personal_id = a_holder(service)
    assert fetch(adapter, personal_id).data["so_dinh_danh"] == personal_id
    running.stop()
    try:
        with pytest.raises(SourceUnavailable):
            fetch(adapter, personal_id)
    finally:
        adapter.close()


def test_the_mapping_reads_licences_of_a_larger_world() -> None:
    """Many more records than the HTTP tests, straight from the generator."""
    generator = LicenceGenerator(World(5_000, 99))
    mapping = load_mapping("licence-driver")
    mapped = 0
    for index in range(5_000):
        native = generator.native(index)
        if native is not None:
            assert isinstance(mapping.apply(native), DriverLicence)
            mapped += 1
    assert mapped > 1_500
