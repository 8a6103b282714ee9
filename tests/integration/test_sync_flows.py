"""The interconnected procedures of Decree 63/2024 as streams, end to end on the real broker.

An officer records a death, or a birth, in the civil-status sandbox (its own admin route); the
stack's worker polls civil's feed, puts the normalized event on its stream, and the
subscriptions of settings.toml deliver it as updates to the other databases. Each database's
effect is then read through the bus's own lookups (the gateway, the router, each source's
adapter over HTTP/SOAP): the death removes the permanent residence, stops the insurance
participation, opens a funeral-allowance case and revokes the licence; the birth gives the child
a personal id and a permanent residence, and then a health insurance card.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from bus import topics
from bus.tooling.devstack import DevStack, example_lookup
from tests.integration.test_sync_feeds import read_all

pytestmark = pytest.mark.integration

FLOW_TIMEOUT_S = 90.0


def sample(stack: DevStack, source: str, n: int, seed: int) -> list[str]:
    params: dict[str, Any] = {"source": source, "n": n, "seed": seed}
    answer = requests.get(f"{stack.sandbox_url}/_sandbox/sample", params=params, timeout=10)
    answer.raise_for_status()
    return list(answer.json())


def lookup(stack: DevStack, personal_id: str, dataset: str) -> dict[str, Any]:
    """One dataset about `personal_id` through the gateway: its record, or {} if not found."""
    body = example_lookup(personal_id) | {
        "datasets": [dataset],
        "procedure_code": "SB.LT-KT-XTT-MT",
        "purpose": "Đăng ký khai tử",
    }
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    )
    reply = answer.json()
    assert reply["status"] in ("complete", "not_found"), reply
    return reply["results"][0]["data"] if reply["results"] else {}


def eventually(what: str, check: Callable[[], Any], timeout: float = FLOW_TIMEOUT_S) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def record_death_of_living_insured_licensed(stack: DevStack) -> str:
    """Record the death of a citizen alive, participating in social insurance, holding a valid
    licence and with a permanent residence (the first of the sample whose death civil status
    takes: other tests of the session may have recorded some deaths already)."""
    licensed = set(sample(stack, "licence", 400, 91))
    for person in sample(stack, "insurance", 400, 92):
        if person not in licensed:
            continue
        participation = lookup(stack, person, "insurance.participation")
        licence = lookup(stack, person, "licence.driver")
        residence = lookup(stack, person, "population.residence")
        if not (
            participation.get("status", {}).get("code") == "1"  # participating now
            and licence.get("status") == "valid"
            and residence.get("permanent_address")
        ):
            continue
        answer = requests.post(
            f"{stack.sandbox_url}/_sandbox/record/civil/death",
            json={"personal_id": person, "date_of_death": "2026-11-28"},
            timeout=10,
        )
        if answer.status_code == 400 and "already" in answer.text:
            continue
        assert answer.status_code == 201, answer.text
        return person
    raise AssertionError("no living citizen both insured and licensed in the sample")


def test_a_death_reaches_population_insurance_and_licences(stack: DevStack) -> None:
    person = record_death_of_living_insured_licensed(stack)

    def residence_removed() -> bool:
        return not lookup(stack, person, "population.residence").get("permanent_address")

    def insurance_stopped() -> dict[str, Any] | None:
        data = lookup(stack, person, "insurance.participation")
        return data if data.get("status", {}).get("code") == "3" else None

    def licence_revoked() -> bool:
        return lookup(stack, person, "licence.driver").get("status") == "revoked"

    eventually("population removes the permanent residence", residence_removed)
    stopped = eventually("insurance stops the participation", insurance_stopped)
    assert stopped["stopped_on"] == {"year": 2026, "month": 11, "day": 28, "precision": "day"}
    eventually("the licence is revoked", licence_revoked)
    funeral = eventually(
        "insurance opens a funeral-allowance case",
        lambda: [
            read.event
            for read in read_all(stack.bootstrap_servers, topics.sync_change("insurance"))
            if read.event.event_type == "FuneralAllowanceCaseOpened" and read.event.entity == person
        ],
    )
    assert funeral[0].typed().model_dump()["date_of_death"].isoformat() == "2026-11-28"


def test_a_birth_reaches_population_and_then_a_child_health_card(stack: DevStack) -> None:
    mother = sample(stack, "insurance", 50, 93)[0]
    mother_residence = lookup(stack, mother, "population.residence")["permanent_address"]
    answer = requests.post(
        f"{stack.sandbox_url}/_sandbox/record/civil/birth",
        json={
            "full_name": "Nguyễn Thị Bình An",
            "sex": "female",
            "birth_date": "2026-11-20",
            "mother_personal_id": mother,
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    registration = answer.json()["birth_registration_id"]

    def registered() -> str | None:
        for read in read_all(stack.bootstrap_servers, topics.sync_change("population")):
            event = read.event
            if (
                event.event_type == "CitizenRegistered"
                and event.data.get("birth_registration_id") == registration
            ):
                return event.entity
        return None

    child = eventually("population registers the newborn", registered)
    identity = eventually("the child is found", lambda: lookup(stack, child, "population.identity"))
    assert identity["full_name"] == "Nguyễn Thị Bình An"
    residence = lookup(stack, child, "population.residence")["permanent_address"]
    assert residence == mother_residence  # the mother's permanent residence
    card = eventually(
        "insurance issues the child's health card",
        lambda: lookup(stack, child, "insurance.health_card"),
    )
    assert card["card_number"].startswith("TE")
