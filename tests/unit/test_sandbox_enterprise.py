"""The simulated business registration database: its records of the World's enterprises, the rules
they share with the population database, and its REST/JSON service."""

from __future__ import annotations

import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import httpx
import orjson
import pytest

from bus.identifiers import check_enterprise_code
from mappings.transforms import load_code_list, to_name
from mappings.units import COMMUNES, convert_unit, new_province_code
from sandbox.enterprise.generator import (
    ENTERPRISE_STATUSES,
    ENTERPRISE_TYPES,
    STATUS_IDS,
    TYPE_IDS,
    VSIC_CLASSES,
    EnterpriseRegistry,
    old_units,
)
from sandbox.enterprise.service import (
    BY_REPRESENTATIVE_PATH,
    PROFILE_PATH,
    REPRESENTATIVES_PATH,
    EnterpriseService,
)
from sandbox.world import World
from tests.sandbox_server import served_sandbox

COUNT, SEED = 10_000, 20250701

# What the World's kinds and statuses mean (sandbox/world.py), in the code lists' English words.
WORLD_KINDS = {
    1: "One-member limited liability company",
    2: "Multi-member limited liability company",
    3: "Joint-stock company",
    4: "Partnership",
    5: "Private enterprise",
}
WORLD_STATUSES = {
    1: "Operating",
    2: "Temporarily suspended",
    3: "Not operating at the registered address",
    4: "Registration certificate revoked for tax enforcement",
    5: "Dissolving, splitting, consolidating or merging",
    6: "Bankruptcy in progress",
    7: "Dissolved, bankrupt or ceased to exist",
}
NAME_PREFIXES = {
    1: ("CÔNG TY TNHH ",),
    2: ("CÔNG TY TNHH ",),
    3: ("CÔNG TY CỔ PHẦN ",),
    4: ("CÔNG TY HỢP DANH ",),
    5: ("DOANH NGHIỆP TƯ NHÂN ",),
}


def parse_date(text: str) -> date:
    return datetime.strptime(text, "%d/%m/%Y").date()


@pytest.fixture(scope="module")
def world() -> World:
    return World(count=COUNT, seed=SEED)


@pytest.fixture(scope="module")
def registry(world: World) -> EnterpriseRegistry:
    return EnterpriseRegistry(world, cache_size=world.enterprise_count)


@pytest.fixture(scope="module")
def profiles(world: World, registry: EnterpriseRegistry) -> list[dict[str, Any]]:
    return [registry.profile(j) for j in range(world.enterprise_count)]


# -- the records ----------------------------------------------------------------------------------
def test_enterprise_codes_pass_the_mst_check_and_branches_number_from_001(
    world: World, profiles: list[dict[str, Any]]
) -> None:
    for index, profile in enumerate(profiles):
        facts = world.enterprise(index)
        assert profile["ENTERPRISE_CODE"] == facts.code == check_enterprise_code(facts.code)
        codes = [branch["BRANCH_CODE"] for branch in profile["BRANCHES"]]
        assert codes == [f"{facts.code}-{n:03d}" for n in range(1, facts.branches + 1)]
        for code in codes:
            check_enterprise_code(code)
    assert any(profile["BRANCHES"] for profile in profiles)


def test_type_and_status_ids_are_the_bus_code_lists_codes_for_the_worlds_meaning(
    world: World, profiles: list[dict[str, Any]]
) -> None:
    types, statuses = load_code_list("enterprise-type"), load_code_list("enterprise-status")
    for kind, meaning in WORLD_KINDS.items():
        code = str(TYPE_IDS[kind])
        assert types.attributes[code]["name_en"] == meaning
        assert types.codes[code] == ENTERPRISE_TYPES[TYPE_IDS[kind]]
    for status, meaning in WORLD_STATUSES.items():
        code = str(STATUS_IDS[status])
        assert statuses.attributes[code]["name_en"] == meaning
        assert statuses.codes[code] == ENTERPRISE_STATUSES[STATUS_IDS[status]]
    for index, profile in enumerate(profiles):
        facts = world.enterprise(index)
        assert profile["ENTERPRISE_TYPE_ID"] == TYPE_IDS[facts.kind]
        assert profile["ENTERPRISE_STATUS_ID"] == STATUS_IDS[facts.status]
        assert profile["ENTERPRISE_TYPE_NAME"] == types.codes[str(profile["ENTERPRISE_TYPE_ID"])]
        for branch in profile["BRANCHES"]:
            assert str(branch["BRANCH_STATUS_ID"]) in statuses.codes
    assert {p["ENTERPRISE_STATUS_ID"] for p in profiles} == set(range(1, 8))


def test_names_say_the_enterprise_type_and_foreign_names_are_plain_ascii(
    world: World, profiles: list[dict[str, Any]]
) -> None:
    for index, profile in enumerate(profiles):
        type_id = TYPE_IDS[world.enterprise(index).kind]
        name = profile["NAME"]
        assert name.startswith(NAME_PREFIXES[type_id]) and name == name.upper()
        assert unicodedata.is_normalized("NFC", name)
        assert profile["NAME_F"].isascii() and profile["SHORT_NAME"].isascii()
        if type_id == 5:  # a private enterprise registers no foreign name here
            assert profile["NAME_F"] == profile["SHORT_NAME"] == ""
        if profile["SHORT_NAME"]:
            assert profile["NAME_F"]
    assert 0.5 < sum(bool(p["NAME_F"]) for p in profiles) / len(profiles) < 0.8
    assert len({p["NAME"] for p in profiles}) > 0.95 * len(profiles)


def test_exactly_one_main_activity_and_every_class_is_in_vsic_2018(
    profiles: list[dict[str, Any]],
) -> None:
    vsic = load_code_list("vsic-2018")
    assert {code: vsic.codes.get(code) for code in VSIC_CLASSES} == VSIC_CLASSES
    for profile in profiles:
        activities = profile["BUSINESS_ACTIVITIES"]
        assert [a["IS_MAIN"] for a in activities].count(1) == 1
        assert {a["IS_MAIN"] for a in activities} <= {0, 1}
        codes = [a["INDUSTRY_CODE"] for a in activities]
        assert len(set(codes)) == len(codes)
        for activity in activities:
            assert vsic.codes[activity["INDUSTRY_CODE"]] == activity["INDUSTRY_NAME"]


def test_capital_is_a_whole_number_of_vnd(profiles: list[dict[str, Any]]) -> None:
    for profile in profiles:
        capital = profile["CAPITAL_AMOUNT"]
        assert type(capital) is int and 10**8 <= capital <= 10**13
    assert b'"CAPITAL_AMOUNT":' + str(profiles[0]["CAPITAL_AMOUNT"]).encode() in orjson.dumps(
        profiles[0]
    )


def test_about_one_head_office_in_twenty_has_a_commune_merged_away_the_rest_convert_exactly(
    world: World, profiles: list[dict[str, Any]]
) -> None:
    conversions: Counter[str] = Counter()
    for index, profile in enumerate(profiles):
        office = world.enterprise(index).head_office
        address = profile["HO_ADDRESS"]
        assert address["CityID"] == office.old_province
        assert len(address["DistrictID"]) == 3 and address["DistrictID"].isdigit()
        unit = convert_unit(address["CityID"], address["WardID"])
        conversions[unit.conversion] += 1
        assert unit.province_code == new_province_code(office.old_province)
        if unit.conversion == "exact":
            assert address["WardID"] == office.code == unit.commune_code
            assert unit.commune_name == COMMUNES[office.code][0]
        else:
            assert unit.conversion == "ambiguous"
            assert address["WardID"] not in COMMUNES  # an old code no 2025 commune reused
            assert unit.original_commune_code == address["WardID"]
    assert set(conversions) == {"exact", "ambiguous"}
    assert 0.03 < conversions["ambiguous"] / len(profiles) < 0.08


def test_district_ids_group_neighbouring_communes_within_one_old_province() -> None:
    units = old_units()
    assert len(set(units.district_of.values())) < 999
    by_district: dict[str, set[str]] = {}
    for province, codes in units.codes.items():
        for code in codes:
            by_district.setdefault(units.district_of[f"{code:05d}"], set()).add(province)
    assert all(len(provinces) == 1 for provinces in by_district.values())


def test_branches_of_a_dissolved_enterprise_have_ceased_and_it_still_has_its_record(
    world: World, profiles: list[dict[str, Any]]
) -> None:
    dissolved = [p for p in profiles if p["ENTERPRISE_STATUS_ID"] == 7]
    assert dissolved
    for profile in dissolved:
        assert profile["REPRESENTATIVES"] and profile["BUSINESS_ACTIVITIES"]
        assert all(branch["BRANCH_STATUS_ID"] == 7 for branch in profile["BRANCHES"])


def test_records_are_the_same_for_the_same_seed_and_independent_of_order() -> None:
    first = EnterpriseRegistry(World(count=2_000, seed=5))
    second = EnterpriseRegistry(World(count=2_000, seed=5))
    indices = list(range(400))
    assert [first.profile(j) for j in indices] == [second.profile(j) for j in reversed(indices)][
        ::-1
    ]
    other = EnterpriseRegistry(World(count=2_000, seed=6))
    assert [first.profile(j) for j in indices] != [other.profile(j) for j in indices]


def test_an_answer_costs_well_under_a_millisecond() -> None:
    world = World(count=COUNT, seed=99)
    service = EnterpriseService(world)
    codes = [world.enterprise_code(j) for j in range(world.enterprise_count)]
    for index in range(world.enterprise_count):  # the World's own facts, not this database's
        world.enterprise(index)
    service.profile({"ENTERPRISE_CODE": codes[0]})  # the code index is built once
    started = time.perf_counter()
    for code in codes:
        service.profile({"ENTERPRISE_CODE": code})
    cold = (time.perf_counter() - started) / len(codes)
    started = time.perf_counter()
    for code in codes:
        service.profile({"ENTERPRISE_CODE": code})
    warm = (time.perf_counter() - started) / len(codes)
    assert cold < 0.0008 and warm < 0.0001


# -- rules shared with the population database ----------------------------------------------------
def test_every_representative_is_a_citizen_with_the_same_id_name_and_birth_date(
    world: World, profiles: list[dict[str, Any]]
) -> None:
    upper = 0
    for index, profile in enumerate(profiles):
        facts = world.enterprise(index)
        representatives = profile["REPRESENTATIVES"]
        assert [r["ID_NUMBER"] for r in representatives] == [
            world.population.personal_id(r.person) for r in facts.representatives
        ]
        for native in representatives:
            person_index = world.index_of(native["ID_NUMBER"])
            assert person_index is not None
            person = world.person(person_index)
            assert to_name(native["FULL_NAME"]) == person.full_name
            upper += native["FULL_NAME"] != person.full_name
            if person.birth_date is None:
                assert native["BIRTH_DATE"] == f"{person.birth_year:04d}"
            else:
                assert parse_date(native["BIRTH_DATE"]) == person.birth_date
            since = parse_date(native["FROM_DATE"])
            assert world.alive_on(person_index, since)
            assert world.of_age_on(person_index, since, 18) is not None
            assert since >= facts.founded
    assert upper > 0  # the quirk: names in upper case in some older records


def test_upper_case_names_come_only_from_records_entered_before_2010(
    world: World, profiles: list[dict[str, Any]]
) -> None:
    for index, profile in enumerate(profiles):
        for native in profile["REPRESENTATIVES"]:
            person = world.person(world.index_of(native["ID_NUMBER"]) or 0)
            if native["FULL_NAME"] != person.full_name:
                assert native["FULL_NAME"] == person.full_name.upper()
                assert world.enterprise(index).founded.year < 2010


def test_by_representative_agrees_with_the_representatives_answers(
    world: World, registry: EnterpriseRegistry, profiles: list[dict[str, Any]]
) -> None:
    people = {r["ID_NUMBER"] for p in profiles for r in p["REPRESENTATIVES"]}
    for personal_id in people:
        summaries = registry.represented_by(personal_id)
        person = world.index_of(personal_id)
        assert person is not None
        assert sorted(s["ENTERPRISE_CODE"] for s in summaries) == sorted(
            world.enterprise_code(j) for j in world.represented_by(person)
        )
        for summary in summaries:
            index = registry.index_of(summary["ENTERPRISE_CODE"])
            assert index is not None
            profile = profiles[index]
            own = [r for r in profile["REPRESENTATIVES"] if r["ID_NUMBER"] == personal_id]
            assert len(own) == 1
            assert (summary["POSITION"], summary["FROM_DATE"]) == (
                own[0]["POSITION"],
                own[0]["FROM_DATE"],
            )
            assert summary["NAME"] == profile["NAME"]
            assert summary["ENTERPRISE_STATUS_ID"] == profile["ENTERPRISE_STATUS_ID"]
    assert any(len(registry.represented_by(pid)) > 1 for pid in people)


def test_a_citizen_who_represents_no_enterprise_has_an_empty_list(
    world: World, registry: EnterpriseRegistry
) -> None:
    nobody = next(i for i in range(world.count) if not world.represented_by(i))
    assert registry.represented_by(world.population.personal_id(nobody)) == []
    assert registry.represented_by("001099999999") == []


# -- the service over HTTP ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with served_sandbox(COUNT, SEED) as running:
        yield running.base_url


@pytest.fixture
def http(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        client.put("/_sandbox/faults/enterprise", json={})
        yield client
        client.put("/_sandbox/faults/enterprise", json={})


def ask(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post(path, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    answer: dict[str, Any] = response.json()
    return answer


def with_branches(world: World) -> int:
    return next(j for j in range(world.enterprise_count) if world.enterprise(j).branches >= 2)


def test_profile_of_a_sampled_code_answers_00_with_its_record(
    http: httpx.Client, registry: EnterpriseRegistry
) -> None:
    codes = http.get("/_sandbox/sample", params={"source": "enterprise", "n": 5}).json()
    assert len(codes) == 5
    for code in codes:
        answer = ask(http, PROFILE_PATH, {"ENTERPRISE_CODE": code, "REQUEST_ID": "r-1"})
        assert answer["RESULT_CODE"] == "00" and answer["RESULT_MESSAGE"]
        index = registry.index_of(code)
        assert index is not None
        assert answer["DATA"] == registry.profile(index)


def test_a_dissolved_enterprise_still_answers_00_with_status_7(
    http: httpx.Client, world: World
) -> None:
    index = next(j for j in range(world.enterprise_count) if world.enterprise(j).status == 7)
    answer = ask(http, PROFILE_PATH, {"ENTERPRISE_CODE": world.enterprise_code(index)})
    assert answer["RESULT_CODE"] == "00"
    assert answer["DATA"]["ENTERPRISE_STATUS_ID"] == 7


def test_an_unknown_code_with_a_valid_check_digit_answers_01(http: httpx.Client) -> None:
    answer = ask(http, PROFILE_PATH, {"ENTERPRISE_CODE": "0100047516"})
    assert answer == {
        "RESULT_CODE": "01",
        "RESULT_MESSAGE": "Không tìm thấy thông tin doanh nghiệp",
        "DATA": None,
    }
    answer = ask(http, REPRESENTATIVES_PATH, {"ENTERPRISE_CODE": "0100047516"})
    assert answer["RESULT_CODE"] == "01"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("0100047517", "check digit"),
        ("010004751", "10 digits"),
        ("01000475160", "10 digits"),
        ("0100047516-000", "-001..-999"),
        ("0100047516-1", "10 digits"),
        (100047516, "10 digits"),
        ("", "missing"),
        (None, "missing"),
    ],
)
def test_a_malformed_code_answers_02_naming_the_rule_not_the_value(
    http: httpx.Client, code: Any, words: str
) -> None:
    for path in (PROFILE_PATH, REPRESENTATIVES_PATH):
        answer = ask(http, path, {"ENTERPRISE_CODE": code})
        assert answer["RESULT_CODE"] == "02" and answer["DATA"] is None
        assert words in answer["RESULT_MESSAGE"]
        assert not code or str(code) not in answer["RESULT_MESSAGE"]


def test_a_body_that_is_not_a_json_object_is_http_400_with_02(http: httpx.Client) -> None:
    for body in (b"not json", b"[1, 2]", b'"0100047516"'):
        response = http.post(PROFILE_PATH, content=body)
        assert response.status_code == 400
        assert response.json()["RESULT_CODE"] == "02"


def test_a_branch_code_answers_the_parent_enterprise_with_the_branch_marked(
    http: httpx.Client, world: World, registry: EnterpriseRegistry
) -> None:
    index = with_branches(world)
    branch = f"{world.enterprise_code(index)}-002"
    answer = ask(http, PROFILE_PATH, {"ENTERPRISE_CODE": branch})
    assert answer["RESULT_CODE"] == "00"
    data = answer["DATA"]
    assert data["REQUESTED_BRANCH_CODE"] == branch
    assert {key: value for key, value in data.items() if key != "REQUESTED_BRANCH_CODE"} == (
        registry.profile(index)
    )
    assert branch in [b["BRANCH_CODE"] for b in data["BRANCHES"]]
    assert "REQUESTED_BRANCH_CODE" not in registry.profile(index)  # the cache is not changed
    answer = ask(http, REPRESENTATIVES_PATH, {"ENTERPRISE_CODE": branch})
    assert answer["DATA"]["REQUESTED_BRANCH_CODE"] == branch
    assert answer["DATA"]["REPRESENTATIVES"] == registry.representatives(index)


def test_a_branch_the_enterprise_does_not_have_answers_01(http: httpx.Client, world: World) -> None:
    index = with_branches(world)
    missing = f"{world.enterprise_code(index)}-{world.enterprise(index).branches + 1:03d}"
    assert ask(http, PROFILE_PATH, {"ENTERPRISE_CODE": missing})["RESULT_CODE"] == "01"


def test_representatives_answer_the_enterprises_code_name_and_representatives(
    http: httpx.Client, world: World, registry: EnterpriseRegistry
) -> None:
    code = world.enterprise_code(3)
    answer = ask(http, REPRESENTATIVES_PATH, {"ENTERPRISE_CODE": code})
    assert answer["RESULT_CODE"] == "00"
    assert answer["DATA"] == {
        "ENTERPRISE_CODE": code,
        "NAME": registry.profile(3)["NAME"],
        "REPRESENTATIVES": registry.representatives(3),
    }


def test_enterprises_of_a_representative_and_of_nobody(
    http: httpx.Client, world: World, registry: EnterpriseRegistry
) -> None:
    person = world.enterprise(0).representatives[0].person
    personal_id = world.population.personal_id(person)
    answer = ask(http, BY_REPRESENTATIVE_PATH, {"ID_NUMBER": personal_id})
    assert answer["RESULT_CODE"] == "00"
    assert answer["DATA"] == {
        "ID_NUMBER": personal_id,
        "ENTERPRISES": registry.represented_by(personal_id),
    }
    assert world.enterprise_code(0) in [e["ENTERPRISE_CODE"] for e in answer["DATA"]["ENTERPRISES"]]
    nobody = next(i for i in range(world.count) if not world.represented_by(i))
    answer = ask(http, BY_REPRESENTATIVE_PATH, {"ID_NUMBER": world.population.personal_id(nobody)})
    assert answer["RESULT_CODE"] == "00" and answer["DATA"]["ENTERPRISES"] == []


@pytest.mark.parametrize("personal_id", ["00108501234", "00108501234X", 1085012345, None, ""])
def test_a_malformed_personal_id_answers_02_without_repeating_it(
    http: httpx.Client, personal_id: Any
) -> None:
    answer = ask(http, BY_REPRESENTATIVE_PATH, {"ID_NUMBER": personal_id})
    assert answer["RESULT_CODE"] == "02" and answer["DATA"] is None
    assert "ID_NUMBER" in answer["RESULT_MESSAGE"]
    assert not personal_id or str(personal_id) not in answer["RESULT_MESSAGE"]


def test_only_post_is_answered(http: httpx.Client) -> None:
    assert http.get(PROFILE_PATH).status_code == 405


# -- faults ---------------------------------------------------------------------------------------
def test_an_outage_is_the_front_proxys_503_page(http: httpx.Client, world: World) -> None:
    http.put("/_sandbox/faults/enterprise", json={"outage": True})
    response = http.post(PROFILE_PATH, json={"ENTERPRISE_CODE": world.enterprise_code(0)})
    assert response.status_code == 503 and response.headers["content-type"].startswith("text/html")


def test_a_server_error_is_json_99_for_500_and_the_gateways_page_for_502_and_503(
    http: httpx.Client, world: World
) -> None:
    body = {"ENTERPRISE_CODE": world.enterprise_code(0)}
    http.put("/_sandbox/faults/enterprise", json={"error_rate": 1})
    response = http.post(PROFILE_PATH, json=body)
    assert response.status_code == 500
    assert response.json()["RESULT_CODE"] == "99" and response.json()["DATA"] is None
    for status in (502, 503):
        http.put("/_sandbox/faults/enterprise", json={"error_rate": 1, "error_status": status})
        response = http.post(BY_REPRESENTATIVE_PATH, json={"ID_NUMBER": "001085012345"})
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/html")
    http.put("/_sandbox/faults/enterprise", json={})
    assert http.post(PROFILE_PATH, json=body).status_code == 200


def test_a_malformed_answer_is_http_200_and_not_a_json_object(
    http: httpx.Client, world: World
) -> None:
    http.put("/_sandbox/faults/enterprise", json={"malformed_rate": 1})
    for index in range(6):
        response = http.post(PROFILE_PATH, json={"ENTERPRISE_CODE": world.enterprise_code(index)})
        assert response.status_code == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(response.content)


def test_latency_delays_the_answer(http: httpx.Client, world: World) -> None:
    http.put("/_sandbox/faults/enterprise", json={"latency_ms": 300})
    started = time.monotonic()
    response = http.post(PROFILE_PATH, json={"ENTERPRISE_CODE": world.enterprise_code(0)})
    assert response.status_code == 200 and time.monotonic() - started >= 0.3


def test_a_hang_holds_the_answer_until_the_client_gives_up(
    http: httpx.Client, world: World
) -> None:
    http.put("/_sandbox/faults/enterprise", json={"hang": True})
    with pytest.raises(httpx.ReadTimeout):
        http.post(PROFILE_PATH, json={"ENTERPRISE_CODE": world.enterprise_code(0)}, timeout=0.3)


def test_faults_of_this_source_leave_the_population_database_alone(
    http: httpx.Client,
) -> None:
    http.put("/_sandbox/faults/enterprise", json={"outage": True})
    assert http.get("/_sandbox/faults/population").json()["outage"] is False
