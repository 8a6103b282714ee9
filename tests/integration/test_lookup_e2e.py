"""A citizen lookup end to end: HTTP gateway -> Kafka -> router -> lookup connector -> SOAP
sandbox -> aggregator -> Kafka -> gateway, on a real Apache Kafka broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unicodedata
import uuid
from typing import Any

import pytest
import requests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from bus import topics
from bus.tooling.devstack import DEMO_AGENCY, DevStack, example_lookup
from sandbox.population.generator import PopulationGenerator
from sandbox.reference import OLD_TO_NEW_PROVINCE

pytestmark = pytest.mark.integration

SEX = {1: "male", 2: "female", 0: "unknown"}


def post_lookup(stack: DevStack, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    )


def as_written(name: str | None) -> str | None:
    """What the bus should make of a native name part: NFC, and title case if it was all caps."""
    if name is None:
        return None
    name = unicodedata.normalize("NFC", name)
    return name.title() if name.isupper() else name


def expected_address(native: dict[str, Any]) -> dict[str, Any]:
    return {
        "province_code": OLD_TO_NEW_PROVINCE[native["MaTinh"]],
        "commune_code": native["MaDonViHanhChinh"],
        "original": {
            "province_code": native["MaTinh"],
            "commune_code": native["MaDonViHanhChinh"],
            "scheme": "pre-2025",
        },
        "conversion": "exact",
        "country": native["QuocGia"],
    }


def test_lookup_returns_the_sandbox_citizen_normalized(
    stack: DevStack, population: PopulationGenerator
) -> None:
    for personal_id in population.sample(5, rng_seed=11):
        native = population.find(personal_id)
        assert native is not None
        answer = post_lookup(stack, example_lookup(personal_id))
        assert answer.status_code == 200, answer.text
        reply = answer.json()
        assert reply["status"] == "complete"
        assert reply["errors"] == []
        [result] = reply["results"]
        assert result["dataset"] == "population.identity"
        assert result["provenance"]["source"] == "population"
        assert result["provenance"]["source_record_time"].startswith(
            f"{native['ThoiDiemDuLieu'][:4]}-" if "ThoiDiemDuLieu" in native else ""
        )
        citizen = result["data"]

        assert citizen["personal_id"] == native["SoDinhDanh"]
        assert citizen.get("old_id_number") == native.get("SoCMND")
        name = native["HoVaTen"]
        assert citizen["family_name"] == as_written(name["Ho"])
        assert citizen.get("middle_name") == as_written(name.get("ChuDem"))
        assert citizen["given_name"] == as_written(name["Ten"])
        parts = [as_written(name["Ho"]), as_written(name.get("ChuDem")), as_written(name["Ten"])]
        assert citizen["full_name"] == " ".join(p for p in parts if p)
        assert citizen["sex"] == SEX[int(native["GioiTinh"])]

        born = native["NgayThangNamSinh"]
        if "NgayThangNam" in born:
            ymd = born["NgayThangNam"]
            assert citizen["birth_date"] == {
                "year": int(ymd[:4]),
                "month": int(ymd[4:6]),
                "day": int(ymd[6:]),
                "precision": "day",
            }
        else:
            assert citizen["birth_date"] == {"year": int(born["Nam"]), "precision": "year"}

        assert citizen["ethnicity"]["code"] == native["DanToc"]["MaDanToc"]
        assert citizen["ethnicity"]["code_list"] == "ethnicity-2008"
        religion = native["TonGiao"]["MaTonGiao"]
        assert citizen.get("religion", {}).get("code") == (None if religion == "00" else religion)
        assert citizen["nationality"] == native["QuocTich"]

        for field, native_field in [
            ("hometown", "QueQuan"),
            ("permanent_address", "ThuongTru"),
            ("current_address", "NoiOHienTai"),
        ]:
            address = citizen[field]
            for key, value in expected_address(native[native_field]).items():
                assert address[key] == value, (field, key)
            assert address["detail"] == unicodedata.normalize(
                "NFC", native[native_field]["ChiTiet"]
            )
        for field, native_field in [("father", "Cha"), ("mother", "Me"), ("spouse", "VoChong")]:
            if native_field in native:
                relative = native[native_field]
                assert citizen[field]["full_name"] == as_written(relative["HoVaTen"])
                assert citizen[field].get("personal_id") == relative.get("SoDinhDanh")
            else:
                assert field not in citizen
        head = native["ChuHo"]
        assert citizen["household_head"]["full_name"] == as_written(head["HoVaTen"])
        assert citizen["household_head"]["personal_id"] == head["SoDinhDanh"]
        assert citizen["household_head"]["relation"] == head["QuanHeVoiChuHo"]


def test_unknown_subject_gives_not_found(stack: DevStack, population: PopulationGenerator) -> None:
    known = set(population.sample(50))
    unknown = next(
        f"0010900{n:05d}"
        for n in range(99999)
        if f"0010900{n:05d}" not in known and population.find(f"0010900{n:05d}") is None
    )
    answer = post_lookup(stack, example_lookup(unknown))
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["status"] == "not_found"
    assert reply["results"] == []
    assert [e["code"] for e in reply["errors"]] == ["not_found"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"purpose": None}, "purpose"),
        ({"procedure_code": None}, "procedure_code"),
        ({"purpose": ""}, "purpose"),
        ({"subject": {"personal_id": "12345"}}, "subject.personal_id"),
        ({"datasets": ["population.nothing"]}, "datasets.0"),
        ({"datasets": []}, "datasets"),
    ],
)
def test_invalid_request_gives_400_naming_the_field(
    stack: DevStack, change: dict[str, Any], field: str
) -> None:
    body = example_lookup("001090000001")
    for key, value in change.items():
        if value is None:
            del body[key]
        else:
            body[key] = value
    answer = post_lookup(stack, body)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["status"] == 400
    assert field in [e["field"] for e in problem["errors"]], problem


def test_malformed_request_goes_to_dead_letter_and_worker_keeps_answering(
    stack: DevStack, population: PopulationGenerator
) -> None:
    marker = f"not json {uuid.uuid4().hex}".encode()
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    producer.send(
        topics.LOOKUP_REQUEST,
        value=marker,
        key=b"garbage",
        headers=[("tthc-type", b"lookup.request")],
    ).get(timeout=10)
    producer.send(topics.LOOKUP_REQUEST, value=b'{"type": "lookup.request"}', key=b"half").get(
        timeout=10
    )
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap_servers, consumer_timeout_ms=1000)
    partitions = [
        TopicPartition(topics.DEAD_LETTER, p)
        for p in consumer.partitions_for_topic(topics.DEAD_LETTER) or []
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: dict[bytes, dict[str, str]] = {}
    deadline = time.monotonic() + 30
    while len(found) < 2 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if record.key in (b"garbage", b"half") and (
                    record.key != b"garbage" or record.value == marker
                ):
                    found[record.key] = {k: v.decode() for k, v in record.headers}
    consumer.close()
    assert set(found) == {b"garbage", b"half"}
    for headers in found.values():
        assert headers["tthc-dlq-origin-topic"] == topics.LOOKUP_REQUEST
        assert int(headers["tthc-dlq-origin-offset"]) >= 0
        assert headers["tthc-dlq-consumer"] == "lookup-router"
    assert "JSON" in found[b"garbage"]["tthc-dlq-reason"]
    assert "requester" in found[b"half"]["tthc-dlq-reason"]

    answer = post_lookup(stack, example_lookup(population.sample(1, rng_seed=3)[0]))
    assert answer.status_code == 200 and answer.json()["status"] == "complete"


def test_slow_source_ends_in_504_at_the_deadline(
    stack: DevStack, population: PopulationGenerator
) -> None:
    faults = f"{stack.sandbox_url}/_sandbox/faults"
    requests.put(faults, json={"latency_ms": 3000}, timeout=5).raise_for_status()
    try:
        body = example_lookup(population.sample(1, rng_seed=5)[0]) | {"deadline_ms": 800}
        started = time.monotonic()
        answer = post_lookup(stack, body)
        elapsed = time.monotonic() - started
    finally:
        requests.put(faults, json={}, timeout=5).raise_for_status()
    assert answer.status_code == 504, answer.text
    reply = answer.json()
    assert reply["status"] == "failed"
    assert reply["errors"][0]["code"] in ("timeout", "deadline_exceeded")
    assert reply["errors"][0]["retryable"] is True
    # The bus itself answered at the deadline (a worker produced the reply), not the gateway's
    # backstop half a second later; the time bound is loose because CI machines are shared.
    assert reply["producer"].startswith("worker-"), reply
    assert 0.7 < elapsed < 2.0


def test_sandbox_stopped_gives_failed_with_source_error_within_deadline(
    stack: DevStack, population: PopulationGenerator
) -> None:
    subject = population.sample(1, rng_seed=9)[0]
    stack.stop_child("sandbox")
    try:
        started = time.monotonic()
        answer = post_lookup(stack, example_lookup(subject) | {"deadline_ms": 3000})
        elapsed = time.monotonic() - started
    finally:
        stack.spawn("sandbox", ["sandbox", "serve"])
        stack.wait_http("sandbox", f"{stack.sandbox_url}/_sandbox/health")
    assert answer.status_code == 502, answer.text
    reply = answer.json()
    assert reply["status"] == "failed"
    [error] = reply["errors"]
    assert error["code"] == "unavailable"
    assert error["source"] == "population"
    assert elapsed < 3.0
    # and the bus recovers once the source is back
    answer = post_lookup(stack, example_lookup(subject))
    assert answer.status_code == 200 and answer.json()["status"] == "complete"


def test_cli_lookup_over_kafka(stack: DevStack, population: PopulationGenerator) -> None:
    subject = population.sample(1, rng_seed=21)[0]
    env = dict(
        os.environ,
        TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=stack.bootstrap_servers,
        TTHC_API_KEY=stack.keys.agencies[DEMO_AGENCY],
        TTHC_AGENCY=DEMO_AGENCY,
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bus.tooling.cli",
            "lookup",
            "--subject",
            subject,
            "--dataset",
            "population.identity",
            "--procedure",
            "1.004222",
            "--purpose",
            "xác minh nhân thân khi giải quyết hồ sơ",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["status"] == "complete"
    assert reply["results"][0]["data"]["personal_id"] == subject


def test_openapi_document_is_served(stack: DevStack) -> None:
    spec = requests.get(f"{stack.gateway_url}/openapi.json", timeout=5).json()
    assert "/v1/lookups" in spec["paths"]
    assert "LookupHttpRequest" in spec["components"]["schemas"]


def test_gateway_restart_creates_no_topics(
    stack: DevStack, population: PopulationGenerator
) -> None:
    def topic_names() -> set[str]:
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
        try:
            return set(admin.list_topics())
        finally:
            admin.close()

    before = topic_names()
    stack.stop_child("gateway")
    stack.spawn("gateway", ["gateway"])
    stack.wait_http("gateway", f"{stack.gateway_url}/healthz")
    for subject in population.sample(3, rng_seed=33):
        answer = post_lookup(stack, example_lookup(subject))
        assert answer.status_code == 200 and answer.json()["status"] == "complete"
    after = topic_names()
    assert after == before
    provisioned = {
        topics.LOOKUP_REPLY,
        *map(topics.agency_reply_topic, stack.settings.auth.kafka_agencies),
    }
    assert not [name for name in after if "reply" in name and name not in provisioned]


def test_the_callers_trace_runs_through_the_lookup(
    stack: DevStack, population: PopulationGenerator
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups",
        json=example_lookup(population.sample(1, rng_seed=51)[0]),
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", **stack.keys.headers()},
        timeout=30,
    )
    assert answer.status_code == 200
    assert answer.headers["traceparent"].split("-")[1] == trace_id
    assert answer.json()["traceparent"].split("-")[1] == trace_id


def test_worker_down_gives_504_at_the_deadline_and_the_bus_recovers(
    stack: DevStack, population: PopulationGenerator
) -> None:
    subject = population.sample(1, rng_seed=61)[0]
    stack.stop_child("worker")
    try:
        started = time.monotonic()
        answer = post_lookup(stack, example_lookup(subject) | {"deadline_ms": 1000})
        elapsed = time.monotonic() - started
    finally:
        stack.spawn("worker", ["worker"])
        stack.wait_lookup_ready()
    assert answer.status_code == 504, answer.text
    reply = answer.json()
    assert reply["status"] == "failed"
    assert [e["code"] for e in reply["errors"]] == ["deadline_exceeded"]
    assert elapsed < 3.0  # deadline plus the gateway's grace, not a hang
    answer = post_lookup(stack, example_lookup(subject))
    assert answer.status_code == 200 and answer.json()["status"] == "complete"
