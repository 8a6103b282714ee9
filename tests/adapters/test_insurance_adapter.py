"""Contract test: the insurance adapter against the sandbox's REST service, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import pytest

from adapters.base import Adapter, NativeRecord
from adapters.insurance import InsuranceAdapter, InsuranceSettings
from bus.errors import (
    MalformedAnswer,
    SettingsError,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas import PartialDate, Subject
from bus.schemas.insurance import HealthInsuranceCard, SocialInsuranceRecord
from bus.settings import SourceSettings
from mappings import load_mapping
from mappings.transforms import load_code_list
from mappings.units import new_province_code
from sandbox.insurance.generator import Insured
from sandbox.insurance.service import InsuranceService
from sandbox.world import SNAPSHOT
from tests.sandbox_server import RunningSandbox

SEX = {1: "male", 2: "female"}


def insurance_settings(base_url: str, timeout_s: float = 3.0, **overrides: Any) -> SourceSettings:
    values: dict[str, Any] = {
        "adapter": "adapters.insurance:InsuranceAdapter",
        "url": f"{base_url}/bhxh",
        "timeout_s": timeout_s,
        "concurrency": 4,
        "username": "tthc-bus",
        "password": "sandbox-secret",
    }
    return SourceSettings(**(values | overrides))


class Insurance:
    """The shared sandbox's insurance side: its faults, its source object and its world."""

    def __init__(self, running: RunningSandbox) -> None:
        self.running = running
        self.service: InsuranceService = running.source("insurance")
        self.world = running.world

    def set_faults(self, **faults: object) -> None:
        self.running.set_faults("insurance", **faults)

    def sample(self, n: int, seed: int = 11) -> list[str]:
        return self.service.sample(n, seed=seed)

    def insured(self, personal_id: str) -> Insured:
        index = self.world.index_of(personal_id)
        assert index is not None
        record = self.service.generator.insured(index)
        assert record is not None
        return record

    def ids_where(self, wanted: Any) -> list[str]:
        """Personal ids of the held whose index satisfies ``wanted``."""
        return [
            self.world.population.personal_id(index)
            for index in range(self.world.count)
            if self.service.holds(index) and wanted(index)
        ]


@pytest.fixture
def insurance(sandbox: RunningSandbox) -> Iterator[Insurance]:
    side = Insurance(sandbox)
    side.set_faults()
    yield side
    side.set_faults()
    side.service.tokens.lifetime_s = 3600


@pytest.fixture
def adapter(insurance: Insurance) -> Iterator[InsuranceAdapter]:
    own = InsuranceAdapter("insurance", insurance_settings(insurance.running.base_url))
    yield own
    own.close()


def fetch(
    adapter: Adapter,
    dataset: str,
    personal_id: str,
    timeout: float = 3.0,
    agency: str = "000.00.00.H26",
) -> NativeRecord:
    return adapter.fetch(
        dataset,
        Subject(personal_id=personal_id),
        timeout=timeout,
        request_id="req-1",
        requester_agency=agency,
    )


def day_of(value: PartialDate | None) -> date | None:
    return None if value is None else value.as_date()


def month_text(value: PartialDate | None) -> str | None:
    if value is None:
        return None
    assert value.precision == "month"
    return f"{value.month:02d}/{value.year:04d}"


def participation(adapter: InsuranceAdapter, personal_id: str) -> SocialInsuranceRecord:
    model = load_mapping("insurance-participation").apply(
        fetch(adapter, "participation", personal_id).data
    )
    assert isinstance(model, SocialInsuranceRecord)
    return model


def health_card(adapter: InsuranceAdapter, personal_id: str) -> HealthInsuranceCard:
    model = load_mapping("insurance-health-card").apply(
        fetch(adapter, "health_card", personal_id).data
    )
    assert isinstance(model, HealthInsuranceCard)
    return model


# -- found, and mapped field by field --------------------------------------------------------
def test_sampled_participation_maps_field_by_field(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    for personal_id in insurance.sample(40):
        held = insurance.insured(personal_id)
        facts = insurance.world.person(held.index)
        record = fetch(adapter, "participation", personal_id)
        assert (record.source, record.dataset) == ("insurance", "participation")
        assert record.record_time is not None
        assert record.record_time.utcoffset() == timedelta(hours=7)
        assert record.record_time.replace(tzinfo=None) == held.updated

        mapped = load_mapping("insurance-participation").apply(record.data)
        assert isinstance(mapped, SocialInsuranceRecord)
        assert mapped.personal_id == personal_id
        assert mapped.social_insurance_number == held.bhxh_number
        assert mapped.full_name == facts.full_name  # upper case in, title case out
        assert mapped.birth_date is not None
        if facts.birth_date is not None:
            assert day_of(mapped.birth_date) == facts.birth_date
        else:
            assert (mapped.birth_date.year, mapped.birth_date.precision) == (
                facts.birth_year,
                "year",
            )
        assert mapped.sex == SEX.get(facts.sex, "unknown")
        assert mapped.address is not None and mapped.address.original is not None
        assert mapped.address.detail == facts.residence_detail
        assert mapped.address.original.commune_code == facts.residence_commune
        assert mapped.address.province_code == new_province_code(facts.residence_province)
        assert mapped.status.code == held.status
        assert mapped.status.code_list == "insurance-participation-status"
        assert (mapped.stop_reason.code if mapped.stop_reason else None) == held.stop_reason
        assert day_of(mapped.stopped_on) == held.stopped_on
        assert mapped.months_total == held.months_total
        assert len(mapped.periods) == len(held.periods)
        for period, native in zip(mapped.periods, held.periods, strict=True):
            employer = (
                None
                if native.enterprise is None
                else insurance.world.enterprise(native.enterprise).code
            )
            assert period.employer_code == employer
            assert (period.employer_name is None) == (employer is None)
            assert month_text(period.from_month) == f"{native.start[1]:02d}/{native.start[0]}"
            end = None if native.end is None else f"{native.end[1]:02d}/{native.end[0]}"
            assert month_text(period.to_month) == end
            assert (period.months, period.salary_base) == (native.months, native.salary)
            assert period.contribution_type.code == native.kind


def test_sampled_health_cards_map_field_by_field(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    groups = load_code_list("insurance-beneficiary-group").codes
    checked = 0
    for personal_id in insurance.sample(40, seed=12):
        held = insurance.insured(personal_id)
        if held.card is None:
            with pytest.raises(SourceNotFound):
                fetch(adapter, "health_card", personal_id)
            continue
        card = health_card(adapter, personal_id)
        native = held.card
        assert card.personal_id == personal_id
        assert card.social_insurance_number == held.bhxh_number
        assert card.card_number == native.number(held.bhxh_number)
        assert card.beneficiary_group.code == native.group
        assert card.beneficiary_group.name == groups[native.group]
        assert (card.benefit_level, card.province_code) == (native.level, native.province)
        assert day_of(card.valid_from) == native.valid_from
        assert day_of(card.valid_to) == native.valid_to
        assert card.primary_care_facility is not None
        assert card.primary_care_facility.code == native.facility.code
        assert card.primary_care_facility.name == native.facility.name
        assert card.valid is native.valid
        checked += 1
    assert checked >= 20


def test_the_dead_stop_participating_on_their_death_day_and_their_card_is_not_valid(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    world = insurance.world
    dead = insurance.ids_where(lambda index: world.death(index) is not None)
    assert dead
    for personal_id in dead:
        died = world.death(insurance.insured(personal_id).index)
        record = participation(adapter, personal_id)
        assert record.status.code == "3" and record.stop_reason is not None
        assert (record.stop_reason.code, record.stop_reason.name) == ("1", "Chết")
        assert day_of(record.stopped_on) == died
        try:
            card = health_card(adapter, personal_id)
        except SourceNotFound:
            continue
        assert card.valid is False
        valid_to = day_of(card.valid_to)
        assert valid_to is not None and died is not None and valid_to <= died


def test_a_child_under_six_has_a_valid_te_card_and_no_contributions(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    world = insurance.world
    children = insurance.ids_where(
        lambda index: world.alive_on(index, SNAPSHOT) and not world.of_age_on(index, SNAPSHOT, 6)
    )
    assert children
    for personal_id in children[:10]:
        card = health_card(adapter, personal_id)
        assert (card.beneficiary_group.code, card.benefit_level, card.valid) == ("TE", 1, True)
        assert card.beneficiary_group.name == "Trẻ em dưới 6 tuổi"
        record = participation(adapter, personal_id)
        assert record.status.code == "0" and record.periods == [] and record.months_total == 0


def test_the_mappings_read_every_sampled_record(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    participation_mapping = load_mapping("insurance-participation")
    card_mapping = load_mapping("insurance-health-card")
    cards = 0
    for personal_id in insurance.sample(200, seed=99):
        participation_mapping.apply(fetch(adapter, "participation", personal_id).data)
        try:
            card_mapping.apply(fetch(adapter, "health_card", personal_id).data)
            cards += 1
        except SourceNotFound:
            pass
    assert cards > 150


def test_concurrent_calls_each_get_their_own_answer(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    ids = insurance.sample(60, seed=4)
    with ThreadPoolExecutor(max_workers=8) as pool:  # more threads than pooled connections
        records = list(pool.map(lambda pid: fetch(adapter, "participation", pid), ids))
    assert [record.data["soDinhDanh"] for record in records] == ids
    assert adapter.login is not None and adapter.login.logins == 1


# -- not found and refused -------------------------------------------------------------------
def test_someone_it_does_not_hold_is_not_found(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    world = insurance.world
    not_held = next(
        world.population.personal_id(index)
        for index in range(world.count)
        if not insurance.service.holds(index)
    )
    for personal_id in (not_held, "001090999999"):
        assert world.index_of("001090999999") is None
        for dataset in ("participation", "health_card"):
            with pytest.raises(SourceNotFound) as info:
                fetch(adapter, dataset, personal_id)
            assert info.value.source == "insurance"
            assert personal_id not in str(info.value)


def test_invalid_input_is_rejected_with_the_sources_words(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    with pytest.raises(SourceRejected) as info:
        fetch(adapter, "participation", insurance.sample(1)[0], agency="")
    assert "2 " in str(info.value) and "maDonVi" in str(info.value)


def test_an_enterprise_subject_is_rejected_before_asking(adapter: InsuranceAdapter) -> None:
    with pytest.raises(SourceRejected):
        adapter.fetch(
            "participation",
            Subject(enterprise_code="0100047516"),
            timeout=1,
            request_id="r",
            requester_agency="a",
        )
    assert adapter.login is not None and adapter.login.logins == 0


def test_a_wrong_password_is_a_refused_login(insurance: Insurance) -> None:
    settings = insurance_settings(insurance.running.base_url, password="not-the-secret")
    with InsuranceAdapter("insurance", settings) as wrong, pytest.raises(SourceRejected) as info:
        fetch(wrong, "participation", insurance.sample(1)[0])
    assert "login refused" in str(info.value) and "not-the-secret" not in str(info.value)


def test_a_revoked_token_is_replaced_by_a_fresh_login(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    personal_id = insurance.sample(1)[0]
    fetch(adapter, "participation", personal_id)
    insurance.service.tokens.revoke_all()  # the source forgot it: the next call gets a 401
    assert fetch(adapter, "participation", personal_id).data["soDinhDanh"] == personal_id
    assert adapter.login is not None and adapter.login.logins == 2


def test_a_short_lived_token_is_renewed_before_it_expires(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    insurance.service.tokens.lifetime_s = 5  # shorter than the adapter's renewal margin
    personal_id = insurance.sample(1)[0]
    for _ in range(3):
        assert fetch(adapter, "health_card", personal_id).data["soDinhDanh"] == personal_id
    assert adapter.login is not None and adapter.login.logins == 3


def test_settings_without_a_password_name_the_environment_variable(
    insurance: Insurance,
) -> None:
    settings = SourceSettings(
        adapter="adapters.insurance:InsuranceAdapter",
        url=f"{insurance.running.base_url}/bhxh",
        username="tthc-bus",
    )
    with pytest.raises(SettingsError) as info:
        InsuranceAdapter("insurance", settings)
    assert "TTHC_BUS_SOURCES__INSURANCE__PASSWORD" in str(info.value)
    own = InsuranceSettings.model_validate(settings.model_dump() | {"password": "sandbox-secret"})
    assert "sandbox-secret" not in repr(own)


# -- faults ----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_unavailable(
    adapter: InsuranceAdapter, insurance: Insurance, status: int
) -> None:
    personal_id = insurance.sample(1)[0]
    fetch(adapter, "participation", personal_id)  # logged in before the errors
    insurance.set_faults(error_rate=1, error_status=status)
    with pytest.raises(SourceUnavailable) as info:
        fetch(adapter, "participation", personal_id)
    assert info.value.retryable and f"HTTP {status}" in str(info.value)


def test_a_malformed_answer_is_described_never_quoted(
    adapter: InsuranceAdapter, insurance: Insurance
) -> None:
    personal_id = insurance.sample(1)[0]
    fetch(adapter, "participation", personal_id)
    insurance.set_faults(malformed_rate=1)
    for _ in range(6):  # both kinds of garbage: cut short, and an HTML page
        with pytest.raises(MalformedAnswer) as info:
            fetch(adapter, "participation", personal_id)
        message = str(info.value)
        assert "HTTP 200" in message and "bytes" in message and "json" in message
        assert personal_id not in message
        assert info.value.__cause__ is None


def test_an_outage_is_unavailable_for_the_login_and_the_lookup(insurance: Insurance) -> None:
    personal_id = insurance.sample(1)[0]
    insurance.set_faults(outage=True)
    with InsuranceAdapter("insurance", insurance_settings(insurance.running.base_url)) as fresh:
        with pytest.raises(SourceUnavailable):  # the login meets the outage
            fetch(fresh, "participation", personal_id)
        insurance.set_faults()
        fetch(fresh, "participation", personal_id)
        insurance.set_faults(outage=True)
        with pytest.raises(SourceUnavailable) as info:
            fetch(fresh, "health_card", personal_id)
    assert "HTTP 503" in str(info.value)


def test_latency_beyond_the_timeout(adapter: InsuranceAdapter, insurance: Insurance) -> None:
    personal_id = insurance.sample(1)[0]
    fetch(adapter, "participation", personal_id)
    insurance.set_faults(latency_ms=1500)
    with pytest.raises(SourceTimeout):
        fetch(adapter, "participation", personal_id, timeout=0.3)


def test_a_hang_is_a_timeout(adapter: InsuranceAdapter, insurance: Insurance) -> None:
    personal_id = insurance.sample(1)[0]
    fetch(adapter, "participation", personal_id)
    insurance.set_faults(hang=True)
    with pytest.raises(SourceTimeout):
        fetch(adapter, "health_card", personal_id, timeout=0.3)


def test_a_stopped_server_is_unavailable(sandbox_on: Any) -> None:
    running = sandbox_on()
    with InsuranceAdapter("insurance", insurance_settings(running.base_url)) as own:
        personal_id = Insurance(running).sample(1)[0]
        assert fetch(own, "participation", personal_id).data["soDinhDanh"] == personal_id
        running.stop()
        with pytest.raises(SourceUnavailable):
            fetch(own, "participation", personal_id)
