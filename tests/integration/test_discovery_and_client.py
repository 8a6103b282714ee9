"""Discovery and the Python client, as integrators use them against the running bus: what the
bus serves and what an agency may ask for, the same over HTTP and over Kafka (the library's
`datasets()` and `allowed()`); the library's lookups (async and sync); and one validation for
every entry point: the library refuses, before sending, what the gateway answers 400, with the
same message."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from bus.client import AsyncBusClient, BusClient, InvalidLookup
from bus.tooling.devstack import DEMO_AGENCY, DevStack, example_lookup

pytestmark = pytest.mark.integration

PURPOSE = "Xác minh nhân thân khi giải quyết hồ sơ"
LEGAL_BASIS = "Nghị định 194/2025/NĐ-CP"


def sample(stack: DevStack, source: str, n: int = 1) -> list[str]:
    answer = requests.get(
        f"{stack.sandbox_url}/_sandbox/sample", params={"source": source, "n": n}, timeout=10
    )
    answer.raise_for_status()
    return list(answer.json())


def library(stack: DevStack, **options: Any) -> AsyncBusClient:
    return AsyncBusClient(
        stack.bootstrap_servers,
        key=stack.keys.agencies[DEMO_AGENCY],
        agency=DEMO_AGENCY,
        system="e2e-backend",
        **options,
    )


def lookup_fields(subject: str, **changes: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "procedure": "1.004222",
        "purpose": PURPOSE,
        "legal_basis": LEGAL_BASIS,
        "dossier_id": "HS-LIB-0001",
        "officer": "can-bo-01",
        **changes,
    }


def http_lookup(stack: DevStack, **changes: Any) -> requests.Response:
    body = example_lookup("000000000000") | changes
    body = {name: value for name, value in body.items() if value is not None}  # None: left out
    return requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
    )


def test_every_dataset_is_listed_with_its_source_subject_fields_and_procedures(
    stack: DevStack,
) -> None:
    listed = requests.get(f"{stack.gateway_url}/v1/datasets", timeout=10)
    assert listed.status_code == 200
    by_name = {d["name"]: d for d in listed.json()}
    assert {"population.identity", "enterprise.profile", "licence.driver"} <= set(by_name)
    identity = by_name["population.identity"]
    assert identity["source"] == "population" and identity["subject"] == "personal_id"
    assert "1.004222" in identity["procedures"]
    fields = {f["name"]: f for f in identity["fields"]}
    assert fields["personal_id"]["type"] == "string" and fields["personal_id"]["required"]
    assert by_name["enterprise.profile"]["subject"] == "enterprise_code"

    async def over_kafka() -> list[Any]:
        async with library(stack) as bus:
            return await bus.datasets()

    # The same answer over Kafka (a signed discovery.request on tthc.lookup.request).
    kafka = asyncio.run(over_kafka())
    assert [d.model_dump(mode="json") for d in kafka] == listed.json()


def test_allowed_lists_what_the_calling_agency_may_ask_for(stack: DevStack) -> None:
    refused = requests.get(f"{stack.gateway_url}/v1/datasets/allowed", timeout=10)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    answer = requests.get(
        f"{stack.gateway_url}/v1/datasets/allowed", headers=stack.keys.headers(), timeout=10
    )
    assert answer.status_code == 200, answer.text
    allowed = answer.json()
    assert allowed["agency"] == DEMO_AGENCY
    identity = next(d for d in allowed["datasets"] if d["dataset"] == "population.identity")
    procedure = next(p for p in identity["procedures"] if p["code"] == "1.004222")
    assert PURPOSE in procedure["purposes"]
    # Another agency's grants are its own: the answers differ.
    others = [a for a in stack.keys.agencies if a not in (DEMO_AGENCY, "AUDIT")]
    if others:
        other = requests.get(
            f"{stack.gateway_url}/v1/datasets/allowed",
            headers=stack.keys.headers(others[0]),
            timeout=10,
        ).json()
        assert other["agency"] == others[0]

    async def over_kafka() -> Any:
        async with library(stack) as bus:
            return await bus.allowed()

    assert asyncio.run(over_kafka()).model_dump(mode="json") == allowed


def test_the_library_looks_up_async_and_sync(stack: DevStack) -> None:
    [person] = sample(stack, "population")

    async def run() -> Any:
        async with library(stack) as bus:
            return await bus.lookup(**lookup_fields(person, datasets=["population.identity"]))

    answer = asyncio.run(run())
    assert answer.status == "complete"
    assert answer.results[0].dataset == "population.identity"
    assert answer.results[0].data["personal_id"] == person

    with BusClient(
        stack.bootstrap_servers,
        key=stack.keys.agencies[DEMO_AGENCY],
        agency=DEMO_AGENCY,
        system="e2e-backend",
    ) as bus:
        prefill = bus.lookup(**lookup_fields(person))  # no datasets: the procedure's
        assert prefill.status == "complete"
        assert {r.dataset for r in prefill.results} >= {"population.identity"}
        unknown = bus.lookup(**lookup_fields("001099000017", datasets=["population.identity"]))
        assert unknown.status == "not_found"


@pytest.mark.parametrize(
    ("library_changes", "http_changes"),
    [
        # An enterprise code asked of a population dataset: a 400, never a 502.
        (
            {"subject": "ENTERPRISE", "datasets": ["population.identity"]},
            {"subject": {"enterprise_code": "ENTERPRISE"}, "datasets": ["population.identity"]},
        ),
        ({"datasets": ["population.nothing"]}, {"datasets": ["population.nothing"]}),
        ({"subject": "123"}, {"subject": {"personal_id": "123"}}),
        ({"procedure": "9.999999", "datasets": None}, {"procedure_code": "9.999999"}),
        ({"deadline_ms": 0}, {"deadline_ms": 0}),
    ],
)
def test_the_library_refuses_what_the_gateway_answers_400_with_the_same_message(
    stack: DevStack, library_changes: dict[str, Any], http_changes: dict[str, Any]
) -> None:
    [person] = sample(stack, "population")
    [enterprise] = sample(stack, "enterprise")
    if library_changes.get("subject") == "ENTERPRISE":
        library_changes = library_changes | {"subject": enterprise}
        http_changes = http_changes | {"subject": {"enterprise_code": enterprise}}
    base: dict[str, Any] = {"subject": {"personal_id": person}, "datasets": ["population.identity"]}
    if "procedure_code" in http_changes:
        base["datasets"] = None  # a prefill: the procedure's datasets
    answer = http_lookup(stack, **(base | http_changes))
    assert answer.status_code == 400, answer.text
    problem = answer.json()

    async def run() -> None:
        async with library(stack) as bus:
            fields = lookup_fields(person, datasets=["population.identity"]) | library_changes
            if fields.get("datasets") is None:
                fields.pop("datasets")
            await bus.lookup(**fields)

    with pytest.raises(InvalidLookup) as refused:
        asyncio.run(run())
    assert refused.value.problems == problem["errors"]
    assert str(refused.value) == f"invalid lookup request: {problem['detail']}"


@pytest.mark.parametrize(
    ("cli_args", "http_changes"),
    [
        (["--subject", "123"], {"subject": {"personal_id": "123"}}),
        (["--dataset", "population.nothing"], {"datasets": ["population.nothing"]}),
        (["--subject", "ENTERPRISE"], {"subject": {"enterprise_code": "ENTERPRISE"}}),
    ],
)
def test_the_cli_refuses_what_the_gateway_answers_400_with_the_same_message(
    stack: DevStack, cli_args: list[str], http_changes: dict[str, Any]
) -> None:
    import os
    import subprocess
    import sys

    [person] = sample(stack, "population")
    [enterprise] = sample(stack, "enterprise")
    cli_args = [enterprise if arg == "ENTERPRISE" else arg for arg in cli_args]
    if http_changes.get("subject", {}).get("enterprise_code") == "ENTERPRISE":
        http_changes = {"subject": {"enterprise_code": enterprise}}
    base = {"subject": {"personal_id": person}, "datasets": ["population.identity"]}
    problem = http_lookup(stack, **(base | http_changes)).json()
    args = {"--subject": person, "--dataset": "population.identity"}
    for i in range(0, len(cli_args), 2):
        args[cli_args[i]] = cli_args[i + 1]
    command = [sys.executable, "-m", "bus.tooling.cli", "lookup", "--procedure", "1.004222"]
    command += ["--purpose", PURPOSE, "--legal-basis", LEGAL_BASIS]
    command += [part for pair in args.items() for part in pair]
    done = subprocess.run(
        command,
        env=dict(
            os.environ,
            TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=stack.bootstrap_servers,
            TTHC_API_KEY=stack.keys.agencies[DEMO_AGENCY],
            TTHC_AGENCY=DEMO_AGENCY,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert line == f"error: invalid lookup request: {problem['detail']}"
