"""The simulated driver licence database: its licences, drawn from the World, and its REST
service."""

from __future__ import annotations

import json
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.licence.generator import HeldClass, Licence, LicenceGenerator
from sandbox.licence.service import LOOKUP_PATH, LicenceService
from sandbox.world import SNAPSHOT, World, add_years
from tests.sandbox_server import served_sandbox

COUNT, SEED = 10_000, 20250701
REFORM_DAY = date(2025, 1, 1)
CODES = Path(__file__).resolve().parents[2] / "mappings" / "codes"

# The rules as the brief and the laws give them, written out here rather than read from the
# generator: minimum age at the grant and the term in years (None: no term).
NEW_RULES = {
    **dict.fromkeys(("A1", "A", "B1"), (18, None)),
    **dict.fromkeys(("B", "C1"), (18, 10)),
    **dict.fromkeys(("C", "BE"), (21, 5)),
    **dict.fromkeys(("D1", "D2", "C1E", "CE"), (24, 5)),
    **dict.fromkeys(("D", "D1E", "D2E", "DE"), (27, 5)),
}
OLD_RULES = {
    **dict.fromkeys(("A1", "A2", "A3"), (18, None)),
    **dict.fromkeys(("A4", "B2"), (18, 10)),
    "B1": (18, None),  # until 55 (women) or 60 (men); 10 years if granted over 45 / 50
    **dict.fromkeys(("C", "FB2"), (21, 5)),
    **dict.fromkeys(("D", "FC"), (24, 5)),
    **dict.fromkeys(("E", "FD", "FE"), (27, 5)),
}
STATUS_WORDS = {"con_hieu_luc", "bi_tuoc_quyen", "het_diem", "da_thu_hoi", "het_han"}


def code_list(name: str) -> dict[str, Any]:
    with (CODES / f"{name}.toml").open("rb") as fh:
        codes: dict[str, Any] = tomllib.load(fh)["codes"]
    return codes


@pytest.fixture(scope="module")
def world() -> World:
    return World(COUNT, SEED)


@pytest.fixture(scope="module")
def generator(world: World) -> LicenceGenerator:
    return LicenceGenerator(world, cache_size=COUNT)


@pytest.fixture(scope="module")
def licences(generator: LicenceGenerator) -> dict[int, Licence]:
    found = {index: generator.licence(index) for index in range(COUNT)}
    return {index: licence for index, licence in found.items() if licence is not None}


def born_on(world: World, index: int) -> date:
    """The birth day the rules count from: 31 December when only the year is known."""
    facts = world.person(index)
    return facts.birth_date or date(facts.birth_year, 12, 31)


def every_class(licences: dict[int, Licence]) -> Iterator[tuple[int, HeldClass]]:
    for index, licence in licences.items():
        for held in licence.classes:
            yield index, held


# -- the licences -------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_licences_and_another_seed_others(
    generator: LicenceGenerator,
) -> None:
    again = LicenceGenerator(World(COUNT, SEED))
    for index in (0, 1, 17, 4_321, COUNT - 1):
        assert again.native(index) == generator.native(index)
    other = LicenceGenerator(World(COUNT, SEED + 1))
    assert [other.holds(i) for i in range(200)] != [generator.holds(i) for i in range(200)]


def test_about_45_percent_of_adults_hold_one_and_no_minor_does(
    world: World, generator: LicenceGenerator, licences: dict[int, Licence]
) -> None:
    adults = [i for i in range(COUNT) if world.of_age_on(i, SNAPSHOT, 18)]
    held = [i for i in adults if i in licences]
    assert 0.42 < len(held) / len(adults) < 0.48
    assert set(licences) == set(held)  # nobody under 18 on the data's day
    assert all(generator.holds(i) == (i in licences) for i in range(COUNT))


def test_holders_are_the_worlds_citizens_with_their_name_and_birth_date(
    world: World, generator: LicenceGenerator, licences: dict[int, Licence]
) -> None:
    year_only = 0
    for index in licences:
        facts, record = world.person(index), generator.native(index)
        assert record is not None
        assert record["so_dinh_danh"] == facts.personal_id
        assert record["ho_ten"] == facts.full_name.upper()  # as printed on the card
        if facts.birth_date is None:
            assert record["ngay_sinh"] == f"{facts.birth_year:04d}"
        elif len(record["ngay_sinh"]) == 4:
            assert record["ngay_sinh"] == str(facts.birth_year)
            year_only += 1
        else:
            assert record["ngay_sinh"] == facts.birth_date.strftime("%d/%m/%Y")
        residence = record["noi_cu_tru"]
        assert (residence["ma_xa"], residence["ma_tinh"]) == (
            facts.residence_commune,
            facts.residence_province,
        )
    # The quirk: besides those the population knows only by the year, some older holders.
    assert 0.01 < year_only / len(licences) < 0.06


def test_every_class_is_granted_on_or_after_its_minimum_age(
    world: World, licences: dict[int, Licence]
) -> None:
    for index, held in every_class(licences):
        rules = NEW_RULES if held.scheme == "2025" else OLD_RULES
        minimum_age = rules[held.code][0]
        assert held.issued >= add_years(born_on(world, index), minimum_age), (index, held)
    new_list = code_list("licence-class-2025")
    assert {code: entry["minimum_age"] for code, entry in new_list.items()} == {
        code: rule[0] for code, rule in NEW_RULES.items()
    }


def test_terms_follow_the_class_rules(world: World, licences: dict[int, Licence]) -> None:
    old_b1 = 0
    for index, held in every_class(licences):
        if held.scheme == "pre-2025" and held.code == "B1":
            old_b1 += 1
            born, woman = born_on(world, index), world.person(index).sex == 2
            if held.issued > add_years(born, 45 if woman else 50):
                assert held.expires == add_years(held.issued, 10)
            else:
                assert held.expires == add_years(born, 55 if woman else 60)
            continue
        rules = NEW_RULES if held.scheme == "2025" else OLD_RULES
        years = rules[held.code][1]
        expected = None if years is None else add_years(held.issued, years)
        assert held.expires == expected, (index, held)
    assert old_b1 > 50


def test_classes_before_2025_are_of_the_old_scheme_and_since_then_of_law_36(
    licences: dict[int, Licence],
) -> None:
    schemes: Counter[str] = Counter()
    for _, held in every_class(licences):
        assert held.issued <= SNAPSHOT
        assert (held.issued >= REFORM_DAY) == (held.scheme == "2025")
        schemes[held.scheme] += 1
    assert schemes["2025"] > 100 and schemes["pre-2025"] > 1000
    mixed = [lic for lic in licences.values() if len({h.scheme for h in lic.classes}) == 2]
    assert len(mixed) > 20  # an old motorbike class beside a car class granted in 2025


def test_no_class_is_granted_on_or_after_death_and_a_dead_holders_licence_is_revoked(
    world: World, generator: LicenceGenerator, licences: dict[int, Licence]
) -> None:
    dead = 0
    for index, licence in licences.items():
        died = world.death(index)
        if died is None:
            continue
        dead += 1
        assert all(held.issued < died for held in licence.classes)
        assert licence.revocation is not None
        assert died <= licence.revocation.day <= SNAPSHOT
        assert "chết" in licence.revocation.reason
        record = generator.native(index)
        assert record is not None and record["trang_thai"] == "da_thu_hoi"
    assert dead > 30


def test_old_classes_carry_the_exchange_of_the_code_list(
    generator: LicenceGenerator, licences: dict[int, Licence]
) -> None:
    old_list = code_list("licence-class-pre2025")
    new_list = code_list("licence-class-2025")
    seen = set()
    for index in licences:
        record = generator.native(index)
        assert record is not None
        for entry in record["hang"]:
            assert entry["ma_hang"] in new_list and "doi_sang" not in entry
        for entry in record["hang_cu"]:
            assert entry["doi_sang"] == old_list[entry["ma_hang"]]["exchange_to"]
            seen.add(entry["ma_hang"])
    assert {"A1", "A2", "B1", "B2", "C", "D", "FB2", "FC"} <= seen


def test_renewed_since_2025_an_old_class_is_exchanged(licences: dict[int, Licence]) -> None:
    # A car class that ran out from 2025 on and was renewed is a class of Law 36 now.
    renewed = [
        held
        for _, held in every_class(licences)
        if held.scheme == "2025" and held.code in ("B", "C1", "C", "D2", "D", "CE", "BE")
    ]
    assert len(renewed) > 100
    assert all(held.issued >= REFORM_DAY for held in renewed)


def test_licence_numbers_are_12_digits_and_unique(licences: dict[int, Licence]) -> None:
    numbers = [licence.number for licence in licences.values()]
    assert all(len(number) == 12 and number.isdigit() for number in numbers)
    assert len(set(numbers)) == len(numbers)


def test_points_suspensions_revocations_and_statuses_have_their_shares(
    generator: LicenceGenerator, licences: dict[int, Licence]
) -> None:
    statuses: Counter[str] = Counter()
    for index, licence in licences.items():
        assert 0 <= licence.points <= 12
        record = generator.native(index)
        assert record is not None and record["trang_thai"] in STATUS_WORDS
        statuses[record["trang_thai"]] += 1
        if licence.suspension is not None:
            assert licence.suspension.start <= licence.suspension.end
            assert licence.revocation is None
        assert licence.updated.date() <= SNAPSHOT
    share = {word: count / len(licences) for word, count in statuses.items()}
    assert share["con_hieu_luc"] > 0.85
    assert 0.005 < share["bi_tuoc_quyen"] < 0.04
    assert 0.02 < share["da_thu_hoi"] < 0.06
    assert 0.003 < share["het_han"] < 0.03
    assert statuses["het_diem"] > 0
    deducted = sum(licence.points < 12 for licence in licences.values())
    assert 0.05 < deducted / len(licences) < 0.15


def test_issuing_authority_is_the_transport_department_then_the_police(
    licences: dict[int, Licence],
) -> None:
    for licence in licences.values():
        if licence.issued < date(2025, 3, 1):
            assert licence.authority.startswith("Sở Giao thông vận tải ")
        else:
            assert licence.authority.startswith("Phòng Cảnh sát giao thông, Công an ")


def test_an_answer_costs_well_under_a_millisecond(world: World) -> None:
    service = LicenceService(world)
    ids = service.sample(1_000, seed=5)
    bodies = [
        json.dumps({"so_dinh_danh": i, "don_vi_yeu_cau": "H01", "ma_yeu_cau": "r"}).encode()
        for i in ids
    ]
    started = time.perf_counter()
    for body in bodies:  # each answered for the first time: nothing cached yet
        status, _ = service.look_up(body, "application/json")
        assert status == 200
    assert (time.perf_counter() - started) / len(bodies) < 0.001


# -- the REST service ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    """The sandbox app served by a real uvicorn on a free loopback port."""
    with served_sandbox(COUNT, SEED) as running:
        yield running.base_url


@pytest.fixture
def http(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        yield client
        client.put("/_sandbox/faults/licence", json={})


def lookup(http: httpx.Client, personal_id: str, **extra: Any) -> httpx.Response:
    body = {"so_dinh_danh": personal_id, "don_vi_yeu_cau": "000.00.00.H26", "ma_yeu_cau": "y-1"}
    return http.post(LOOKUP_PATH, json={**body, **extra})


def a_holder(http: httpx.Client) -> str:
    personal_id: str = http.get("/_sandbox/sample", params={"source": "licence", "n": 1}).json()[0]
    return personal_id


def test_lookup_of_a_sampled_holder_answers_the_licence(
    http: httpx.Client, world: World, generator: LicenceGenerator
) -> None:
    sample = http.get("/_sandbox/sample", params={"source": "licence", "n": 5}).json()
    assert len(sample) == 5
    for personal_id in sample:
        response = lookup(http, personal_id)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        answer = response.json()
        assert (answer["ma_loi"], answer["thong_diep"], answer["ma_yeu_cau"]) == (
            0,
            "Thành công",
            "y-1",
        )
        index = world.index_of(personal_id)
        assert index is not None
        assert answer["du_lieu"] == generator.native(index)


def test_an_adult_without_a_licence_and_an_unknown_id_are_not_found(
    http: httpx.Client, world: World, generator: LicenceGenerator
) -> None:
    adult = next(
        i for i in range(COUNT) if world.of_age_on(i, SNAPSHOT, 30) and not generator.holds(i)
    )
    for personal_id in (world.population.personal_id(adult), "001090999999"):
        response = lookup(http, personal_id)
        assert response.status_code == 200
        assert response.json() == {
            "ma_loi": 404,
            "thong_diep": "Không tìm thấy giấy phép lái xe của công dân",
            "ma_yeu_cau": "y-1",
            "du_lieu": None,
        }


def test_a_wrong_request_is_a_400_naming_the_field_but_not_the_value(
    http: httpx.Client,
) -> None:
    response = lookup(http, "01234567890")
    assert response.status_code == 400
    answer = response.json()
    assert answer["ma_loi"] == 400 and "so_dinh_danh" in answer["thong_diep"]
    assert "01234567890" not in answer["thong_diep"]
    response = http.post(LOOKUP_PATH, json={"so_dinh_danh": "001090999999", "ma_yeu_cau": 7})
    assert response.status_code == 400
    assert "don_vi_yeu_cau, ma_yeu_cau" in response.json()["thong_diep"]
    for body in (b"{not json", b"[1, 2]"):
        response = http.post(
            LOOKUP_PATH, content=body, headers={"content-type": "application/json"}
        )
        assert (response.status_code, response.json()["ma_loi"]) == (400, 400)


def test_a_body_not_declared_as_json_is_a_415(http: httpx.Client) -> None:
    body = json.dumps({"so_dinh_danh": "001090999999"})
    response = http.post(LOOKUP_PATH, content=body, headers={"content-type": "text/plain"})
    assert (response.status_code, response.json()["ma_loi"]) == (415, 415)


def test_the_personal_id_is_never_taken_from_the_url(http: httpx.Client) -> None:
    personal_id = a_holder(http)
    assert http.get(LOOKUP_PATH, params={"so_dinh_danh": personal_id}).status_code == 405
    assert http.get(f"{LOOKUP_PATH}/{personal_id}").status_code == 404


def test_health_lists_the_licence_source(http: httpx.Client) -> None:
    assert "licence" in http.get("/_sandbox/health").json()["sources"]


# -- faults -------------------------------------------------------------------------------------
def test_error_500_is_the_applications_json_then_normal_again(http: httpx.Client) -> None:
    personal_id = a_holder(http)
    assert http.put("/_sandbox/faults/licence", json={"error_rate": 1}).status_code == 200
    response = lookup(http, personal_id)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["ma_loi"] == 500 and "Lỗi hệ thống" in response.json()["thong_diep"]
    http.put("/_sandbox/faults/licence", json={})
    assert lookup(http, personal_id).json()["ma_loi"] == 0


def test_errors_502_and_503_are_the_proxys_html_pages(http: httpx.Client) -> None:
    personal_id = a_holder(http)
    for status in (502, 503):
        http.put("/_sandbox/faults/licence", json={"error_rate": 1, "error_status": status})
        response = lookup(http, personal_id)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")
        assert b"nginx" in response.content


def test_an_outage_is_the_front_proxys_503_for_every_request(http: httpx.Client) -> None:
    http.put("/_sandbox/faults/licence", json={"outage": True})
    for personal_id in (a_holder(http), "001090999999", "bad"):
        response = lookup(http, personal_id)
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/html")


def test_a_malformed_answer_is_200_with_a_body_that_is_not_json(http: httpx.Client) -> None:
    personal_id = a_holder(http)
    http.put("/_sandbox/faults/licence", json={"malformed_rate": 1})
    for _ in range(6):
        response = lookup(http, personal_id)
        assert response.status_code == 200
        with pytest.raises(ValueError):  # cut short (perhaps inside a character), or HTML
            json.loads(response.content)


def test_latency_delays_the_answer(http: httpx.Client) -> None:
    http.put("/_sandbox/faults/licence", json={"latency_ms": 300, "jitter_ms": 50})
    started = time.perf_counter()
    response = lookup(http, "001090999999")
    assert time.perf_counter() - started >= 0.3
    assert response.json()["ma_loi"] == 404


def test_a_hang_holds_the_answer_until_the_client_gives_up(http: httpx.Client) -> None:
    http.put("/_sandbox/faults/licence", json={"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        http.post(
            LOOKUP_PATH,
            json={"so_dinh_danh": "001090999999", "don_vi_yeu_cau": "H", "ma_yeu_cau": "r"},
            timeout=0.5,
        )
    http.put("/_sandbox/faults/licence", json={"hang": False})
    assert lookup(http, "001090999999").json()["ma_loi"] == 404


def test_faults_of_the_licence_source_leave_the_others_alone(http: httpx.Client) -> None:
    http.put("/_sandbox/faults/licence", json={"outage": True})
    assert http.get("/_sandbox/faults/population").json()["outage"] is False
