"""Every dataset of every configured source end to end, over HTTP and over Kafka, on the real
broker: the bus's answer is the sandbox's own record, mapped, field for field.

The expected data is what the source's adapter reads from the stack's own sandbox and its
mapping makes of it (the adapter tests compare that with the sandbox's records field by field);
here the same record must come back whole through the gateway, the router and the connector.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from bus.client import LookupClient, deadline_in
from bus.errors import SourceNotFound
from bus.schemas import LookupRequest, Subject
from bus.settings import load_settings
from bus.tooling.devstack import DevStack, example_lookup
from connectors.catalog import LoadedSource, load_sources
from sandbox.world import World
from tests.integration.conftest import SANDBOX_COUNT

pytestmark = pytest.mark.integration

SOURCES = load_sources(load_settings())
DATASETS = [
    (source, dataset.name) for source in sorted(SOURCES) for dataset, _ in SOURCES[source].datasets
]
REPLY_PARTITION = 3  # no gateway of the stack, and no other test, uses it
SUBJECTS_PER_DATASET = 3


def subjects(stack: DevStack, loaded: LoadedSource, kind: str) -> list[str]:
    """Subjects the stack's sandbox holds for this kind of dataset."""
    if kind == "enterprise_code" or loaded.name != "enterprise":
        answer = requests.get(
            f"{stack.sandbox_url}/_sandbox/sample",
            params={"source": loaded.name, "n": SUBJECTS_PER_DATASET, "seed": 17},
            timeout=10,
        )
        answer.raise_for_status()
        return list(answer.json())
    world = World(SANDBOX_COUNT, load_settings().sandbox.seed)  # representatives of enterprises
    people = (p for p in range(world.count) if world.represented_by(p))
    return [world.population.personal_id(next(people)) for _ in range(SUBJECTS_PER_DATASET)]


def expected(stack: DevStack, loaded: LoadedSource, dataset: str, kind: str, subject: str) -> Any:
    """The dataset as the adapter reads it from the stack's sandbox, mapped; None: not found."""
    path = loaded.settings.url.split("/", 3)[3]
    settings = loaded.settings.model_copy(update={"url": f"{stack.sandbox_url}/{path}"})
    mapping = {d.name: m for d, m in loaded.datasets}[dataset]
    with loaded.adapter_class(loaded.name, settings) as adapter:
        try:
            record = adapter.fetch(
                dataset,
                Subject(**{kind: subject}),
                timeout=5,
                request_id="e2e",
                requester_agency="H26.22",
            )
        except SourceNotFound:
            return None
    return mapping.apply(record.data).model_dump(mode="json", exclude_none=True)


def body_for(name: str, kind: str, subject: str) -> dict[str, Any]:
    return example_lookup("000000000000") | {"subject": {kind: subject}, "datasets": [name]}


@pytest.mark.parametrize(("source", "dataset"), DATASETS, ids=[f"{s}.{d}" for s, d in DATASETS])
def test_each_dataset_answers_its_sandbox_record_over_http_and_kafka(
    stack: DevStack, source: str, dataset: str
) -> None:
    loaded = SOURCES[source]
    kind = next(d.subject for d, _ in loaded.datasets if d.name == dataset)
    name = f"{source}.{dataset}"
    checked = 0
    for subject in subjects(stack, loaded, kind):
        want = expected(stack, loaded, dataset, kind, subject)
        body = body_for(name, kind, subject)
        http = requests.post(
            f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
        )
        kafka = asyncio.run(ask_over_kafka(stack, body))
        for reply in (http.json(), kafka):
            if want is None:
                assert reply["status"] == "not_found", reply
                continue
            assert reply["status"] == "complete", reply
            [result] = reply["results"]
            assert (result["dataset"], result["provenance"]["source"]) == (name, source)
            assert result["data"] == want
        if want is not None:
            assert http.status_code == 200
            checked += 1
    assert checked >= 1, f"{name}: no sampled subject was found"


async def ask_over_kafka(stack: DevStack, body: dict[str, Any]) -> dict[str, Any]:
    request = LookupRequest(
        **{k: v for k, v in body.items() if k != "deadline_ms"},
        producer="e2e-datasets",
        deadline=deadline_in(10_000),
        reply_to={"partition": REPLY_PARTITION},
    )
    async with LookupClient(
        stack.bootstrap_servers, REPLY_PARTITION, "e2e-datasets", signer=stack.keys.gateway_signer()
    ) as client:
        reply = await client.lookup(request)
    assert reply is not None, "no reply over Kafka before the deadline"
    return reply.model_dump(mode="json")


def test_a_subject_of_the_wrong_kind_is_a_400_naming_the_dataset(stack: DevStack) -> None:
    body = body_for("enterprise.profile", "personal_id", "001090000001")
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    )
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["errors"][0]["type"] == "wrong_subject"
    assert "enterprise.profile" in problem["errors"][0]["message"]
    assert "enterprise code" in problem["errors"][0]["message"]


def test_one_request_for_several_sources_combines_their_answers_and_is_partial_on_a_failure(
    stack: DevStack,
) -> None:
    """Three databases in one request (asked at once by the worker that runs them all; the
    aggregator's path is in test_split_workers.py); with one of them down, the reply is
    partial, with that source's error and the others' data."""

    def held(source: str) -> set[str]:
        params: dict[str, Any] = {"source": source, "n": 400, "seed": 5}
        answer = requests.get(f"{stack.sandbox_url}/_sandbox/sample", params=params, timeout=10)
        return set(answer.json())

    both = sorted(held("insurance") & held("licence"))
    assert both, "no citizen both insured and licensed in the sample"
    names = ["population.identity", "insurance.participation", "licence.driver"]
    body = body_for(names[0], "personal_id", both[0]) | {"datasets": names}
    reply = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    ).json()
    assert reply["status"] == "complete", reply
    assert sorted(r["dataset"] for r in reply["results"]) == sorted(names)

    faults = f"{stack.sandbox_url}/_sandbox/faults/licence"
    requests.put(faults, json={"error_rate": 1.0, "error_status": 503}, timeout=10)
    try:
        reply = requests.post(
            f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
        ).json()
    finally:
        requests.put(faults, json={}, timeout=10)
    assert reply["status"] == "partial", reply
    assert sorted(r["dataset"] for r in reply["results"]) == sorted(names[:2])
    [error] = reply["errors"]
    assert (error["dataset"], error["source"], error["retryable"]) == (names[2], "licence", True)


def test_the_gateway_lists_the_procedures_with_the_datasets_each_needs(stack: DevStack) -> None:
    answer = requests.get(f"{stack.gateway_url}/v1/procedures", timeout=10)
    assert answer.status_code == 200
    procedures = {p["code"]: p for p in answer.json()}
    birth = next(p for p in procedures.values() if p.get("group") == "Decree 63/2024, group 1")
    assert "insurance.health_card" in birth["datasets"]
    served = {name for _, name in DATASETS}
    for procedure in procedures.values():
        assert {d.split(".", 1)[1] for d in procedure["datasets"]} <= served


def test_a_procedure_without_datasets_asks_for_the_datasets_it_needs(stack: DevStack) -> None:
    """Dossier prefill: the unemployment benefit procedure's datasets, from two sources."""
    params: dict[str, Any] = {"source": "insurance", "n": 1, "seed": 9}
    [insured] = requests.get(
        f"{stack.sandbox_url}/_sandbox/sample", params=params, timeout=10
    ).json()
    body = body_for("population.identity", "personal_id", insured)
    body.pop("datasets")
    body["procedure_code"] = "SB.TRO-CAP-THAT-NGHIEP"
    body["purpose"] = "Giải quyết hưởng trợ cấp thất nghiệp"
    reply = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    ).json()
    assert reply["status"] == "complete", reply
    got = sorted(r["dataset"] for r in reply["results"])
    assert got == ["insurance.participation", "population.identity"]


def test_no_datasets_and_a_procedure_outside_the_catalogue_is_a_400(stack: DevStack) -> None:
    body = body_for("population.identity", "personal_id", "001090000001")
    body.pop("datasets")
    body["procedure_code"] = "9.999999"
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    )
    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["field"] == "datasets"
    assert "'9.999999' is not in the catalogue" in error["message"]
