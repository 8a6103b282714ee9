"""The change logs of the simulated insurance, licence and enterprise databases: a backlog that
is a pure function of (seed, sequence), cheap to page, consistent with the World; live changes;
an officer's records."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
import pytest

from sandbox.changes import SandboxState
from sandbox.enterprise.service import EnterpriseService
from sandbox.insurance.changes import CARD_ISSUED, FUNERAL_CASE, STARTED, STOPPED_KIND
from sandbox.insurance.service import InsuranceService
from sandbox.licence.changes import ISSUED, REVOKED_KIND, SUSPENDED
from sandbox.licence.generator import NEW_CLASSES, OLD_CLASSES
from sandbox.licence.service import LicenceService
from sandbox.world import World

MILLION = 1_000_000
SERVICES = {
    "insurance": InsuranceService,
    "licence": LicenceService,
    "enterprise": EnterpriseService,
}
KINDS = {
    "insurance": {STARTED, STOPPED_KIND, CARD_ISSUED, FUNERAL_CASE},
    "licence": {ISSUED, SUSPENDED, REVOKED_KIND},
    "enterprise": {"STATUS_CHANGE"},
}


def service(name: str, count: int = 600, seed: int = 5, backlog: int = MILLION) -> Any:
    source = SERVICES[name](World(count=count, seed=seed))
    source.enable_changes(backlog, SandboxState())
    return source


def feed(source: Any, after: int, limit: int) -> list[dict[str, Any]]:
    """The items of one page, as the service renders them."""
    if isinstance(source, InsuranceService):
        page: list[dict[str, Any]] = source.feed_page(after, limit)["duLieu"]
        return page
    if isinstance(source, LicenceService):
        return list(source.feed_page(after, limit)["du_lieu"]["thay_doi"])
    return list(orjson.loads(source.changes_page(after, limit))["DATA"]["CHANGES"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_backlog_is_a_pure_function_of_seed_and_sequence(name: str) -> None:
    one, other = service(name), service(name)
    assert feed(one, 123_456, 50) == feed(other, 123_456, 50)
    assert feed(one, 10, 5) != feed(service(name, seed=6), 10, 5)
    assert one.backlog_change(999_999) == other.backlog_change(999_999)
    changes, more = one.changes.page(0, 400)
    assert more and {change.kind for change in changes} <= KINDS[name]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_page_of_500_from_a_million_is_cheap(name: str) -> None:
    source = service(name, count=2_000, seed=9)
    started = time.perf_counter()
    items = feed(source, 734_000, 500)
    assert time.perf_counter() - started < 2.0
    assert len(items) == 500 and source.changes.head == MILLION


def test_insurance_backlog_changes_are_about_its_insured() -> None:
    source = service("insurance")
    world = source.world
    for change in source.changes.page(5_000, 200)[0]:
        index = world.index_of(change.entity)
        assert index is not None
        insured = source.generator.insured(index)
        assert insured is not None and change.data["maSoBHXH"] == insured.bhxh_number
        if change.kind == CARD_ISSUED:
            assert insured.card is not None
            assert change.data["maThe"] == insured.card.number(insured.bhxh_number)
        if change.kind == FUNERAL_CASE:
            assert world.death(index) is not None


def test_licence_backlog_changes_are_about_its_licences_and_classes() -> None:
    source = service("licence")
    for change in source.changes.page(77_000, 200)[0]:
        index = source.world.index_of(change.data["so_dinh_danh"])
        assert index is not None
        licence = source.generator.licence(index)
        assert licence is not None and change.entity == licence.number
        if change.kind == ISSUED:
            classes = NEW_CLASSES if change.data["he_hang"] == "2025" else OLD_CLASSES
            assert change.data["hang"] in classes
        if change.kind == REVOKED_KIND:
            assert licence.revocation is not None


def test_enterprise_histories_end_at_the_status_the_profile_shows() -> None:
    source = service("enterprise")
    world = source.world
    for index in range(world.enterprise_count):
        history = source.status_history(index)
        assert history[0][0] is None and history[-1][1] == world.enterprise(index).status
        assert [step[2] for step in history] == sorted(step[2] for step in history)
    for change in source.changes.page(0, 100)[0]:
        assert 1 <= change.data["ENTERPRISE_STATUS_ID"] <= 7


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_live_changes_are_plausible_and_recorded_now(name: str) -> None:
    source = service(name, backlog=0)
    rng = random.Random(3)
    made = [change for _ in range(30) if (change := source.live_change(rng)) is not None]
    assert made and {change.kind for change in made} <= KINDS[name]
    assert all(change.occurred_at.year >= 2026 for change in made)


def test_a_recorded_enterprise_status_changes_the_profile_and_appends_a_change() -> None:
    source = service("enterprise", backlog=10)
    code = source.world.enterprise_code(0)
    previous = source.current_status(0)
    recorded = source.record("status", {"ENTERPRISE_CODE": code, "ENTERPRISE_STATUS_ID": 6})
    assert recorded["SEQ"] == 11 and recorded["PREVIOUS_STATUS_ID"] == previous
    profile = orjson.loads(source.profile({"ENTERPRISE_CODE": code}))["DATA"]
    assert profile["ENTERPRISE_STATUS_ID"] == 6
    with pytest.raises(ValueError, match="ENTERPRISE_STATUS_ID"):
        source.record("status", {"ENTERPRISE_CODE": code, "ENTERPRISE_STATUS_ID": 9})


def test_a_recorded_licence_suspension_shows_in_the_lookup() -> None:
    source = service("licence", backlog=0)
    index = next(
        i
        for i in range(source.world.count)
        if (licence := source.generator.licence(i)) is not None and licence.revocation is None
    )
    holder = source.world.population.personal_id(index)
    recorded = source.record(
        "suspend",
        {"so_dinh_danh": holder, "tu_ngay": "01/12/2026", "den_ngay": "01/03/2027"},
    )
    assert recorded["so_thu_tu"] == 1
    body = {"so_dinh_danh": holder, "don_vi_yeu_cau": "H26", "ma_yeu_cau": "r-1"}
    status, answer = source.look_up(orjson.dumps(body), "application/json")
    record = orjson.loads(answer)["du_lieu"]
    assert status == 200 and record["trang_thai"] == "bi_tuoc_quyen"
    assert record["tuoc_quyen"]["den_ngay"] == "01/03/2027"
