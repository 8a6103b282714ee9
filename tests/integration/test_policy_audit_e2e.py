"""Dossier lookups under policy, with API keys and the audit ledger, end to end on the stack.

Only what a grant gives an agency for a procedure leaves the bus (the rest is listed as
withheld); a wrong key is a 401 and an ungranted dataset a 403, both in the ledger; an auditor
reads who accessed a subject's data; an agency's own Kafka client gets its replies on its own
topic; and when the broker cannot take the audit event, no data leaves.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest
import requests

from bus import topics
from bus.client import LookupClient, deadline_in
from bus.schemas import LookupRequest
from bus.tooling.devstack import AUDITOR_AGENCY, DEMO_AGENCY, DevStack, example_lookup
from bus.topics import bus_topics, ensure_topics

pytestmark = pytest.mark.integration

COMMUNE = "H26.30"  # granted a part of population.identity, for marriage registration only
MARRIAGE = {"procedure_code": "SB.KET-HON", "purpose": "Đăng ký kết hôn"}


def sample(stack: DevStack, source: str, seed: int, n: int = 1) -> list[str]:
    params: dict[str, Any] = {"source": source, "n": n, "seed": seed}
    found = requests.get(f"{stack.sandbox_url}/_sandbox/sample", params=params, timeout=10)
    return list(found.json())


def post(stack: DevStack, body: dict[str, Any], agency: str = DEMO_AGENCY) -> requests.Response:
    return requests.post(
        f"{stack.gateway_url}/v1/lookups",
        json=body,
        headers=stack.keys.headers(agency),
        timeout=30,
    )


def marriage_body(subject: str, agency: str, **changes: Any) -> dict[str, Any]:
    body = example_lookup(subject) | MARRIAGE | changes
    body["requester"] = body["requester"] | {"agency_code": agency}
    return body


def ledger_rows(stack: DevStack, where: str, *args: Any) -> list[sqlite3.Row]:
    """Rows of the stack's SQLite ledger, waiting a little for the ledger writer."""
    path = stack.root / "audit.db"
    rows: list[sqlite3.Row] = []
    for _ in range(50):
        if path.exists():
            with sqlite3.connect(path) as db:
                db.row_factory = sqlite3.Row
                rows = db.execute(f"SELECT * FROM audit_event WHERE {where}", args).fetchall()
            if rows:
                return rows
        time.sleep(0.2)
    return rows


def test_a_marriage_prefill_returns_both_datasets_from_two_sources(stack: DevStack) -> None:
    [married] = sample(stack, "civil", seed=3)
    body = marriage_body(married, DEMO_AGENCY)
    body.pop("datasets")
    reply = post(stack, body).json()
    assert reply["status"] == "complete", reply
    assert sorted(r["dataset"] for r in reply["results"]) == [
        "civil.marital_status",
        "population.identity",
    ]
    assert all(r["withheld"] == [] for r in reply["results"])


def test_a_field_grant_releases_only_its_fields_and_lists_the_others_as_withheld(
    stack: DevStack,
) -> None:
    [person] = sample(stack, "population", seed=5)
    reply = post(stack, marriage_body(person, COMMUNE), agency=COMMUNE).json()
    assert reply["status"] == "complete", reply
    [result] = reply["results"]
    assert "ethnicity" not in result["data"] and "religion" not in result["data"]
    assert result["data"]["personal_id"] == person
    withheld = {item["field"]: item["reason"] for item in result["withheld"]}
    assert {"ethnicity", "religion", "father", "mother"} <= set(withheld)
    assert "full_name" not in withheld
    assert withheld["ethnicity"] == "not granted to agency 'H26.30' for procedure 'SB.KET-HON'"


def test_an_unknown_key_is_a_401_and_is_in_the_ledger(stack: DevStack) -> None:
    wrong = "tthc_0123456789abcdef_" + "A" * 43
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups",
        json=example_lookup("001090000001"),
        headers={"Authorization": f"Bearer {wrong}"},
        timeout=30,
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "no key with id 0123456789abcdef" in answer.json()["detail"]
    [row] = ledger_rows(stack, "outcome = 'unauthenticated' AND key_id = ?", "0123456789abcdef")
    assert (row["kind"], row["channel"]) == ("authentication", "http")


def test_an_ungranted_dataset_is_a_403_with_the_reason_and_is_in_the_ledger(
    stack: DevStack,
) -> None:
    [person] = sample(stack, "insurance", seed=7)
    body = marriage_body(person, COMMUNE, datasets=["insurance.participation"])
    body["dossier_id"] = "HS-403-CHECK"
    answer = post(stack, body, agency=COMMUNE)
    assert answer.status_code == 403
    reply = answer.json()
    assert reply["status"] == "denied" and reply["results"] == []
    [error] = reply["errors"]
    assert error["code"] == "not_granted"
    assert "'insurance.participation'" in error["message"]
    [row] = ledger_rows(stack, "dossier_id = ? AND kind = 'decision'", "HS-403-CHECK")
    assert (row["outcome"], row["agency"]) == ("denied", COMMUNE)
    assert person not in row["subject"]  # pseudonymized


def test_a_purpose_the_procedure_does_not_allow_is_denied(stack: DevStack) -> None:
    [person] = sample(stack, "population", seed=8)
    answer = post(stack, marriage_body(person, DEMO_AGENCY, purpose="Tò mò"))
    assert answer.status_code == 403
    [error] = answer.json()["errors"]
    assert error["code"] == "purpose_not_allowed"


def test_the_body_cannot_name_another_agency_than_the_key(stack: DevStack) -> None:
    body = marriage_body("001090000001", COMMUNE)  # sent with the portal's key
    answer = post(stack, body, agency=DEMO_AGENCY)
    assert answer.status_code == 403
    assert "is not the agency of the API key" in answer.json()["detail"]


def test_an_auditor_reads_who_accessed_a_subjects_data(stack: DevStack) -> None:
    [person] = sample(stack, "population", seed=11)
    body = marriage_body(person, COMMUNE, dossier_id="HS-RIGHT-TO-KNOW")
    assert post(stack, body, agency=COMMUNE).status_code == 200
    url = f"{stack.gateway_url}/v1/audit"
    accesses: list[dict[str, Any]] = []
    for _ in range(50):  # the ledger writer stores the events a moment after the reply
        answer = requests.get(
            url, params={"subject": person}, headers=stack.keys.headers(AUDITOR_AGENCY), timeout=10
        )
        assert answer.status_code == 200, answer.text
        accesses = [a for a in answer.json()["accesses"] if a["dossier_id"] == "HS-RIGHT-TO-KNOW"]
        if len(accesses) == 2:
            break
        time.sleep(0.2)
    assert sorted(a["kind"] for a in accesses) == ["decision", "release"]
    release = next(a for a in accesses if a["kind"] == "release")
    assert (release["agency"], release["procedure_code"], release["purpose"]) == (
        COMMUNE,
        "SB.KET-HON",
        "Đăng ký kết hôn",
    )
    [dataset] = release["datasets"]
    assert "ethnicity" in dataset["withheld"] and "full_name" in dataset["fields"]
    forbidden = requests.get(
        url, params={"subject": person}, headers=stack.keys.headers(DEMO_AGENCY), timeout=10
    )
    assert forbidden.status_code == 403  # a lookup key is not an auditor's


def test_an_agency_on_kafka_gets_its_replies_on_its_own_topic(stack: DevStack) -> None:
    [person] = sample(stack, "population", seed=13)

    async def ask() -> Any:
        client = LookupClient.for_agency(
            stack.bootstrap_servers, stack.keys.agencies[DEMO_AGENCY], DEMO_AGENCY, "e2e-agency"
        )
        body = {k: v for k, v in example_lookup(person).items() if k != "deadline_ms"}
        async with client:
            request = LookupRequest(
                **body,
                producer="e2e-agency",
                deadline=deadline_in(10_000),
                reply_to=client.reply_to,
            )
            return client.reply_to, await client.lookup(request)

    reply_to, reply = asyncio.run(ask())
    assert reply_to.topic == topics.agency_reply_topic(DEMO_AGENCY)
    assert reply is not None and reply.status == "complete"


def test_no_data_leaves_when_the_audit_topic_is_gone(stack: DevStack) -> None:
    """A real broker refusing the audit trail: `tthc.audit` deleted (the local broker creates no
    topic on its own), so no audit event can be acknowledged. Then the topic comes back, and so
    does the data."""
    from kafka import KafkaAdminClient

    [person] = sample(stack, "population", seed=17)
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    try:
        admin.delete_topics([topics.AUDIT])
        time.sleep(2.0)  # the brokers' metadata catches up
        answer = post(stack, example_lookup(person) | {"deadline_ms": 4000})
    finally:
        admin.close()
        spec = [
            t for t in bus_topics([], stack.settings.kafka.partitions) if t.name == topics.AUDIT
        ]
        for _ in range(30):  # the deletion completes before the name can be used again
            try:
                ensure_topics(stack.bootstrap_servers, spec)
                break
            except Exception:
                time.sleep(0.5)
    assert answer.status_code == 502, answer.text
    reply = answer.json()
    assert (reply["status"], reply["results"]) == ("failed", [])
    [error] = reply["errors"]
    assert error["code"] == "audit_unavailable"
    assert "could not be recorded in the audit trail" in error["message"]
    for _ in range(60):
        if post(stack, example_lookup(person)).status_code == 200:
            return
        time.sleep(0.5)
    pytest.fail("lookups did not recover once tthc.audit was back")


def test_the_ledger_of_the_stack_verifies(stack: DevStack) -> None:
    from bus.audit.ledger import Ledger

    with Ledger.open(f"sqlite:///{stack.root / 'audit.db'}") as ledger:
        report = ledger.verify()
    assert report.rows > 0
    assert report.intact, report.broken
