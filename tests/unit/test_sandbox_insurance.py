"""The simulated social insurance database: its insured, their cards, and its REST service."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import httpx
import orjson
import pytest

from mappings.transforms import load_code_list
from sandbox.enterprise.generator import EnterpriseRegistry
from sandbox.insurance.generator import (
    BENEFIT_LEVEL,
    PENSION_MONTHS,
    RETIREMENT_AGE,
    InsuranceGenerator,
    Insured,
    child_card_end,
    minimum_wage,
)
from sandbox.insurance.service import InsuranceService
from sandbox.reference import OLD_PROVINCES
from sandbox.world import SNAPSHOT, World
from tests.sandbox_server import served_sandbox

COUNT = 4_000
SEED = 20250701
PARTICIPATION = "/bhxh/api/tra-cuu/qua-trinh-tham-gia"
HEALTH_CARD = "/bhxh/api/tra-cuu/the-bhyt"
CREDENTIALS = {"username": "tthc-bus", "password": "sandbox-secret"}
CARD_NUMBER = re.compile(r"[A-Z]{2}[1-5][0-9]{2}[0-9]{10}")


@pytest.fixture(scope="module")
def world() -> World:
    return World(COUNT, SEED)


@pytest.fixture(scope="module")
def generator(world: World) -> InsuranceGenerator:
    return InsuranceGenerator(world)


@pytest.fixture(scope="module")
def everyone(generator: InsuranceGenerator) -> list[Insured | None]:
    return [generator.insured(index) for index in range(COUNT)]


@pytest.fixture(scope="module")
def insured(everyone: list[Insured | None]) -> list[Insured]:
    return [record for record in everyone if record is not None]


def month_serial(text: str) -> int:
    month, year = text.split("/")
    return int(year) * 12 + int(month) - 1


def dmy(text: str) -> date:
    return datetime.strptime(text, "%d/%m/%Y").date()


# -- generator: who is insured, and how ----------------------------------------------------------
def test_the_same_seed_gives_the_same_insured_whatever_was_generated_before(
    generator: InsuranceGenerator,
) -> None:
    fresh = InsuranceGenerator(World(COUNT, SEED))
    for index in (3_999, 0, 1_234, 17):
        mine, theirs = generator.insured(index), fresh.insured(index)
        assert mine == theirs
        if mine is not None and theirs is not None:
            assert generator.participation(mine) == fresh.participation(theirs)
            assert generator.health_card(mine) == fresh.health_card(theirs)
    other = InsuranceGenerator(World(COUNT, SEED + 1))
    assert [other.insured(i) for i in range(20)] != [generator.insured(i) for i in range(20)]


def test_anyone_with_an_insured_job_or_a_card_is_held_and_nobody_else(
    world: World, everyone: list[Insured | None]
) -> None:
    for index, record in enumerate(everyone):
        if world.employment(index):
            assert record is not None and record.periods
        if record is not None:
            assert record.periods or record.card is not None
    held = sum(record is not None for record in everyone)
    assert 0.6 * COUNT < held < COUNT  # most are insured, not all


def test_social_insurance_numbers_are_ten_digits_unique_and_open_with_a_province(
    insured: list[Insured],
) -> None:
    numbers = [record.bhxh_number for record in insured]
    assert len(set(numbers)) == len(numbers)
    for number in numbers:
        assert len(number) == 10 and number.isdigit() and number.isascii()
        assert number[:2] in OLD_PROVINCES


def test_the_insured_are_the_worlds_citizens_with_names_in_upper_case(
    world: World, generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    for record in insured[:500]:
        facts = world.person(record.index)
        native = generator.participation(record)
        assert native["soDinhDanh"] == facts.personal_id
        assert native["maSoBHXH"] == record.bhxh_number
        assert native["hoTen"] == facts.full_name.upper()
        if facts.birth_date is not None:
            assert dmy(native["ngaySinh"]) == facts.birth_date
        else:
            assert native["ngaySinh"] == str(facts.birth_year)
        assert native.get("gioiTinh") == (facts.sex if facts.sex in (1, 2) else None)
        assert (native["maXa"], native["maTinh"]) == (
            facts.residence_commune,
            facts.residence_province,
        )
        for period in native["quaTrinhThamGia"]:
            if "tenDonVi" in period:
                assert period["tenDonVi"] == period["tenDonVi"].upper()
        card = generator.health_card(record)
        if card is not None:
            assert card["noiDKBD"]["tenCSKCB"] == card["noiDKBD"]["tenCSKCB"].upper()


def test_contribution_periods_follow_the_insured_jobs_with_the_employers_codes(
    world: World, generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    for record in insured:
        native = generator.participation(record)
        jobs = world.employment(record.index)
        compulsory = [p for p in native["quaTrinhThamGia"] if p["loaiDong"] == "BB"]
        employers = {world.enterprise(job.enterprise).code for job in jobs}
        # A job of a month or more has months paid (one cut short by retirement may have none).
        lasting = {
            world.enterprise(job.enterprise).code
            for job in jobs
            if job.until is None or (job.until - job.since).days >= 31
        }
        assert lasting <= {p["maSoThue"] for p in compulsory} <= employers
        ends = -1
        for period in native["quaTrinhThamGia"]:
            start = month_serial(period["tuThang"])
            end = month_serial(period["denThang"] or "06/2025")
            assert start > ends, "periods are in order and never overlap"
            assert period["soThang"] == end - start + 1
            assert period["mucLuong"] >= minimum_wage(start // 12) or period["loaiDong"] == "TN"
            ends = end
        assert native["tongSoThang"] == sum(p["soThang"] for p in native["quaTrinhThamGia"])


def test_employers_are_named_as_business_registration_names_them(
    world: World, generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    registry = EnterpriseRegistry(world)
    for record in insured[:300]:
        for period in generator.participation(record)["quaTrinhThamGia"]:
            if period["loaiDong"] == "BB":
                enterprise = world.enterprise_index(period["maSoThue"])
                assert enterprise is not None
                assert period["tenDonVi"] == registry.profile(enterprise)["NAME"]


def test_voluntary_periods_have_no_employer_and_begin_in_2008_at_the_earliest(
    generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    voluntary = [
        period
        for record in insured
        for period in generator.participation(record)["quaTrinhThamGia"]
        if period["loaiDong"] == "TN"
    ]
    assert voluntary
    for period in voluntary:
        assert "maSoThue" not in period and "tenDonVi" not in period
        assert period["denThang"] is None
        assert month_serial(period["tuThang"]) >= 2008 * 12


def test_a_dead_persons_participation_stops_by_death_and_their_card_ends_with_it(
    world: World, generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    dead = [record for record in insured if world.death(record.index) is not None]
    assert len(dead) > 20
    for record in dead:
        died = world.death(record.index)
        assert died is not None
        native = generator.participation(record)
        assert (native["trangThaiThamGia"], native["lyDoDung"]) == ("3", "1")
        assert dmy(native["ngayDung"]) == died
        for period in native["quaTrinhThamGia"]:
            assert period["denThang"] is not None
            assert month_serial(period["denThang"]) <= died.year * 12 + died.month - 1
        card = generator.health_card(record)
        if card is not None:
            assert card["conGiaTri"] is False
            assert dmy(card["gtTheDen"]) <= died


def test_children_under_six_have_a_free_te_card_without_any_job(
    world: World, generator: InsuranceGenerator, everyone: list[Insured | None]
) -> None:
    children = [
        index
        for index in range(COUNT)
        if world.alive_on(index, SNAPSHOT) and world.of_age_on(index, SNAPSHOT, 6) is None
    ]
    assert len(children) > 50
    for index in children:
        record = everyone[index]
        assert record is not None and not record.periods
        card = generator.health_card(record)
        assert card is not None
        assert (card["maDoiTuong"], card["mucHuong"], card["conGiaTri"]) == ("TE", "1", True)
        born = world.person(index).birth_date
        assert born is not None and dmy(card["gtTheTu"]) == born
        assert generator.participation(record)["trangThaiThamGia"] == "0"


def test_a_child_card_runs_to_the_sixth_birthday_or_to_the_start_of_school() -> None:
    assert child_card_end(date(2019, 3, 10)) == date(2025, 9, 30)
    assert child_card_end(date(2019, 9, 30)) == date(2025, 9, 30)
    assert child_card_end(date(2019, 11, 2)) == date(2025, 11, 1)


def test_the_employed_have_a_dn_card_of_their_employers_province(
    world: World, generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    employed = [
        record
        for record in insured
        if any(job.until is None for job in world.employment(record.index))
    ]
    assert len(employed) > 100
    for record in employed:
        job = world.employment(record.index)[-1]
        native = generator.participation(record)
        assert native["trangThaiThamGia"] == "1"
        assert native["quaTrinhThamGia"][-1]["denThang"] is None
        assert native["quaTrinhThamGia"][-1]["maSoThue"] == world.enterprise(job.enterprise).code
        card = generator.health_card(record)
        assert card is not None and card["maDoiTuong"] == "DN"
        assert card["maTinhCapThe"] == world.enterprise(job.enterprise).head_office.old_province
        assert card["conGiaTri"] is True


def test_who_reached_retirement_age_stops_with_a_pension_or_a_lump_sum(
    world: World, generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    retired = [
        record
        for record in insured
        if world.employment(record.index)
        and world.death(record.index) is None
        and world.of_age_on(record.index, SNAPSHOT, RETIREMENT_AGE)
    ]
    assert len(retired) > 20
    for record in retired:
        native = generator.participation(record)
        pension = native["tongSoThang"] >= PENSION_MONTHS
        assert (native["trangThaiThamGia"], native["lyDoDung"]) == ("3", "2" if pension else "3")
        assert dmy(native["ngayDung"]) == world.of_age_on(record.index, SNAPSHOT, RETIREMENT_AGE)
        card = generator.health_card(record)
        if pension:
            assert card is not None and (card["maDoiTuong"], card["mucHuong"]) == ("HT", "3")
        else:
            assert card is None or card["maDoiTuong"] != "HT"


def test_card_numbers_are_group_level_province_and_bhxh_number(
    generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    groups = load_code_list("insurance-beneficiary-group").codes
    seen: set[str] = set()
    for record in insured:
        card = generator.health_card(record)
        if card is None:
            continue
        number = card["maThe"]
        assert CARD_NUMBER.fullmatch(number)
        assert number[:2] == card["maDoiTuong"] and card["maDoiTuong"] in groups
        assert int(number[2]) == int(card["mucHuong"]) == BENEFIT_LEVEL[card["maDoiTuong"]]
        assert number[3:5] == card["maTinhCapThe"] and card["maTinhCapThe"] in OLD_PROVINCES
        assert number[5:] == card["maSoBHXH"] == record.bhxh_number
        assert dmy(card["gtTheTu"]) <= dmy(card["gtTheDen"])
        assert card["noiDKBD"]["maCSKCB"][:2] == card["maTinhCapThe"]
        seen.add(card["maDoiTuong"])
    assert {"TE", "DN", "HS", "GD"} <= seen


def test_a_living_holders_card_is_valid_on_the_snapshot_day_as_its_dates_say(
    world: World, generator: InsuranceGenerator, insured: list[Insured]
) -> None:
    for record in insured:
        card = generator.health_card(record)
        if card is None or world.death(record.index) is not None:
            continue
        in_dates = dmy(card["gtTheTu"]) <= SNAPSHOT <= dmy(card["gtTheDen"])
        assert card["conGiaTri"] is in_dates


def test_records_are_cheap_to_make(world: World) -> None:
    fresh = InsuranceGenerator(World(COUNT, SEED + 7))
    started = time.perf_counter()
    for index in range(1_000):
        record = fresh.insured(index)
        if record is not None:
            fresh.participation(record)
            fresh.health_card(record)
    assert time.perf_counter() - started < 2.0  # about 0.3 ms each, world facts included


# -- the REST service ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, InsuranceService]]:
    """The sandbox app on a real uvicorn, and its insurance source."""
    with served_sandbox(COUNT, SEED) as running:
        yield running.base_url, running.source("insurance")


@pytest.fixture
def service(served: tuple[str, InsuranceService]) -> InsuranceService:
    return served[1]


@pytest.fixture
def http(served: tuple[str, InsuranceService]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[0], timeout=10) as client:
        yield client
        client.put("/_sandbox/faults/insurance", json={})
        served[1].tokens.lifetime_s = 3600


def log_in(http: httpx.Client) -> dict[str, str]:
    answer = http.post("/bhxh/api/token", json=CREDENTIALS)
    assert answer.status_code == 200
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def lookup(personal_id: str, **extra: Any) -> dict[str, Any]:
    return {"soDinhDanh": personal_id, "maDonVi": "000.00.00.H26", "maYeuCau": "req-7", **extra}


def held_id(service: InsuranceService, seed: int = 1) -> str:
    return service.sample(1, seed=seed)[0]


def test_login_gives_a_bearer_token_with_its_lifetime(http: httpx.Client) -> None:
    answer = http.post("/bhxh/api/token", json=CREDENTIALS)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert len(body["access_token"]) >= 32


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"username": "tthc-bus", "password": "wrong"}, 401, "invalid_grant"),
        ({"username": "someone", "password": "sandbox-secret"}, 401, "invalid_grant"),
        ({"username": "tthc-bus"}, 400, "invalid_request"),
        (["tthc-bus", "sandbox-secret"], 400, "invalid_request"),
    ],
    ids=["wrong-password", "wrong-user", "no-password", "not-an-object"],
)
def test_a_bad_login_is_refused_with_a_json_error(
    http: httpx.Client, body: Any, status: int, error: str
) -> None:
    answer = http.post("/bhxh/api/token", json=body)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json()["error"] == error
    assert "access_token" not in answer.json()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-token-we-issued", "Basic dHRoYy1idXM6c2FuZGJveA=="],
    ids=["missing", "empty", "unknown", "not-bearer"],
)
def test_a_data_call_without_a_valid_token_is_401_with_a_json_body(
    http: httpx.Client, service: InsuranceService, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in (PARTICIPATION, HEALTH_CARD):
        answer = http.post(path, json=lookup(held_id(service)), headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["error"] == "invalid_token"


def test_an_expired_token_is_refused(http: httpx.Client, service: InsuranceService) -> None:
    service.tokens.lifetime_s = 0.2
    headers = log_in(http)
    personal_id = held_id(service)
    assert http.post(PARTICIPATION, json=lookup(personal_id), headers=headers).status_code == 200
    time.sleep(0.3)
    answer = http.post(PARTICIPATION, json=lookup(personal_id), headers=headers)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"


def test_a_found_citizen_answers_result_0_with_the_record(
    http: httpx.Client, service: InsuranceService
) -> None:
    headers = log_in(http)
    for personal_id in service.sample(10, seed=5):
        index = service.world.index_of(personal_id)
        assert index is not None
        record = service.generator.insured(index)
        assert record is not None
        answer = http.post(PARTICIPATION, json=lookup(personal_id), headers=headers)
        assert answer.status_code == 200
        body = answer.json()
        assert (body["maKetQua"], body["moTa"], body["maYeuCau"]) == ("0", "Thành công", "req-7")
        assert body["duLieu"] == service.generator.participation(record)
        assert datetime.strptime(body["thoiDiemDuLieu"], "%d/%m/%Y %H:%M:%S") == record.updated
        card = http.post(HEALTH_CARD, json=lookup(personal_id), headers=headers).json()
        if record.card is None:
            assert card["maKetQua"] == "1" and "duLieu" not in card
        else:
            assert card["maKetQua"] == "0"
            assert card["duLieu"] == service.generator.health_card(record)


def test_someone_the_database_does_not_hold_is_result_1(
    http: httpx.Client, service: InsuranceService
) -> None:
    headers = log_in(http)
    not_held = next(
        service.world.population.personal_id(i) for i in range(COUNT) if not service.holds(i)
    )
    nobody = next(
        f"001090{serial:06d}"
        for serial in range(999_999, 0, -1)
        if service.world.index_of(f"001090{serial:06d}") is None
    )
    for personal_id in (not_held, nobody):
        for path in (PARTICIPATION, HEALTH_CARD):
            answer = http.post(path, json=lookup(personal_id), headers=headers)
            assert answer.status_code == 200
            body = answer.json()
            assert body["maKetQua"] == "1" and "duLieu" not in body
            assert personal_id not in answer.text


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'["001085012345"]',
        orjson.dumps({"soDinhDanh": "001085012345", "maDonVi": "H26"}),
        orjson.dumps({"soDinhDanh": "00108501234", "maDonVi": "H26", "maYeuCau": "r"}),
        orjson.dumps({"soDinhDanh": 1085012345, "maDonVi": "H26", "maYeuCau": "r"}),
    ],
    ids=["not-json", "array", "missing-field", "eleven-digits", "a-number"],
)
def test_invalid_input_is_result_2_naming_the_rule_not_the_value(
    http: httpx.Client, body: bytes
) -> None:
    headers = {**log_in(http), "Content-Type": "application/json"}
    answer = http.post(PARTICIPATION, content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["maKetQua"] == "2"
    assert "108501234" not in answer.json()["moTa"]


def test_sample_lists_citizens_it_holds(http: httpx.Client, service: InsuranceService) -> None:
    ids = http.get("/_sandbox/sample", params={"source": "insurance", "n": 5, "seed": 2}).json()
    assert len(ids) == 5
    for personal_id in ids:
        index = service.world.index_of(personal_id)
        assert index is not None and service.holds(index)


# -- faults ----------------------------------------------------------------------------------
def test_an_outage_is_the_proxys_503_page_for_login_and_lookups(
    http: httpx.Client, service: InsuranceService
) -> None:
    headers = log_in(http)
    http.put("/_sandbox/faults/insurance", json={"outage": True})
    for path, body in (("/bhxh/api/token", CREDENTIALS), (PARTICIPATION, lookup(held_id(service)))):
        answer = http.post(path, json=body, headers=headers)
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("text/html")


def test_an_error_is_500_with_the_applications_json(
    http: httpx.Client, service: InsuranceService
) -> None:
    headers = log_in(http)
    http.put("/_sandbox/faults/insurance", json={"error_rate": 1})
    answer = http.post(HEALTH_CARD, json=lookup(held_id(service)), headers=headers)
    assert answer.status_code == 500
    assert answer.json()["maKetQua"] == "9"


@pytest.mark.parametrize("status", [502, 503])
def test_an_error_status_from_the_proxy_is_its_html_page(
    http: httpx.Client, service: InsuranceService, status: int
) -> None:
    headers = log_in(http)
    http.put("/_sandbox/faults/insurance", json={"error_rate": 1, "error_status": status})
    answer = http.post(PARTICIPATION, json=lookup(held_id(service)), headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")


def test_a_malformed_answer_is_not_the_json_it_should_be(
    http: httpx.Client, service: InsuranceService
) -> None:
    headers = log_in(http)
    http.put("/_sandbox/faults/insurance", json={"malformed_rate": 1})
    for _ in range(6):
        answer = http.post(PARTICIPATION, json=lookup(held_id(service)), headers=headers)
        assert answer.status_code == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(answer.content)


def test_latency_delays_the_answer(http: httpx.Client, service: InsuranceService) -> None:
    headers = log_in(http)
    http.put("/_sandbox/faults/insurance", json={"latency_ms": 300})
    started = time.monotonic()
    answer = http.post(PARTICIPATION, json=lookup(held_id(service)), headers=headers)
    assert answer.status_code == 200 and time.monotonic() - started >= 0.3


def test_a_hang_holds_the_call_until_the_client_gives_up(
    http: httpx.Client, service: InsuranceService
) -> None:
    headers = log_in(http)
    http.put("/_sandbox/faults/insurance", json={"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        http.post(PARTICIPATION, json=lookup(held_id(service)), headers=headers, timeout=0.3)
