"""The gateway's OpenAPI document is honest: every status it answers is declared with its body
(no FastAPI 422, a 413 past `gateway.max_body_bytes`, problem+json for what goes wrong), the
records are typed by dataset, every example is valid for its model and for the document, and
/docs and /redoc need nothing from outside."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jsonschema_rs  # schemathesis's validator: the document is JSON Schema 2020-12
import orjson
import pytest
from pydantic import BaseModel, ValidationError

from bus.apidocs import ASSET_NAMES, DOCS_PATH, REDOC_PATH, STATIC_PATH
from bus.audit.access import AuditAnswer
from bus.gateway import (
    Healthy,
    LookupHttpRequest,
    Readiness,
    Unhealthy,
    create_gateway,
    create_gateway_asgi,
    field_errors,
    invalid,
)
from bus.openapi import AUDIT_PARAMETERS, CITIZEN, LOOKUP_REQUESTS, MAX_BODY_BYTES
from bus.procedures import Procedure
from bus.schemas import LookupResponse
from bus.schemas.discovery import AllowedDatasets, DatasetDescription
from bus.schemas.problem import Problem
from bus.settings import load_settings
from connectors.catalog import load_catalog
from tests.keys import keyed_settings

PROBLEM = "application/problem+json"
JSON = "application/json"
REF = "#/components/schemas/{}"
MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        LookupHttpRequest,
        LookupResponse,
        Problem,
        AuditAnswer,
        Procedure,
        Healthy,
        Unhealthy,
        Readiness,
        DatasetDescription,
        AllowedDatasets,
    )
}
# The operations of bus/gateway.py, each with examples of every answer (bus/openapi.py).
EXAMPLED = [
    ("post", "/v1/lookups"),
    ("get", "/v1/audit"),
    ("get", "/v1/procedures"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v1/ops/status"),
    ("get", "/v1/datasets"),
    ("get", "/v1/datasets/allowed"),
]


def test_the_example_checks_cover_every_operation(document: dict[str, Any]) -> None:
    operations = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert operations == set(EXAMPLED)


@pytest.fixture(scope="module")
def keyed() -> Any:
    return keyed_settings()


@pytest.fixture(scope="module")
def document(keyed: Any) -> dict[str, Any]:
    settings, _ = keyed
    return create_gateway(settings, load_catalog(settings)).openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A validator of `schema` whose `#/components/...` references resolve in `document`."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": document["components"]})


def schema_errors(document: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    return [error.message[:300] for error in validator(document, schema).iter_errors(value)]


def model_check(schema: dict[str, Any]) -> Callable[[Any], object] | None:
    """Validation by the pydantic model (or list of one) a media type's schema names, or None
    when it names no model (the ops report, the metrics text)."""
    if "$ref" in schema:
        return MODELS[schema["$ref"].rsplit("/", 1)[1]].model_validate
    items = schema.get("items", {})
    if schema.get("type") == "array" and "$ref" in items:
        model = MODELS[items["$ref"].rsplit("/", 1)[1]]
        return lambda values: [model.model_validate(value) for value in values]
    return None


def test_no_operation_declares_fastapis_422(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_operation_declares_its_unexpected_failure_as_a_problem(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        failure = operation["responses"]["500"]["content"]
        assert set(failure) == {PROBLEM}, (method, path)
        assert failure[PROBLEM]["schema"] == {"$ref": REF.format("Problem")}


def test_an_operation_with_parameters_declares_their_400(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        if operation.get("parameters"):
            content = operation["responses"]["400"]["content"]
            assert content[PROBLEM]["schema"] == {"$ref": REF.format("Problem")}, (method, path)


def test_audit_declares_exactly_what_it_answers(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/audit"]["get"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "500"}
    assert responses["200"]["content"][JSON]["schema"] == {"$ref": REF.format("AuditAnswer")}
    for status in ("400", "401", "403"):
        assert set(responses[status]["content"]) == {PROBLEM}, status


def test_a_dataset_result_is_typed_by_its_dataset(document: dict[str, Any]) -> None:
    catalog = load_catalog(load_settings())
    components = document["components"]["schemas"]
    result = components["DatasetResult"]
    variants = {name: REF.format(f"DatasetResult.{name}") for name in catalog.names()}
    assert result["discriminator"] == {"propertyName": "dataset", "mapping": variants}
    assert result["oneOf"] == [{"$ref": ref} for ref in variants.values()]
    for name, info in catalog.datasets.items():
        variant = components[f"DatasetResult.{name}"]
        assert variant["properties"]["dataset"] == {"type": "string", "const": name}
        assert variant["properties"]["data"]["$ref"] == REF.format(info.schema.__name__)
        assert f"`{name}` -> {info.schema.__name__}" in result["description"]


def test_a_record_may_lack_any_top_level_field_and_is_never_null(
    document: dict[str, Any],
) -> None:
    components = document["components"]["schemas"]
    for info in load_catalog(load_settings()).datasets.values():
        record = components[info.schema.__name__]
        assert "required" not in record, info.name  # policy may withhold any field
        for name, prop in record["properties"].items():
            assert {"type": "null"} not in prop.get("anyOf", []), (info.name, name)


def test_records_are_checked_against_their_datasets_schema(document: dict[str, Any]) -> None:
    schema = {"$ref": REF.format("DatasetResult")}
    result = {
        "dataset": "population.identity",
        "data": CITIZEN.model_dump(mode="json", exclude_none=True),
        "provenance": {
            "source": "population",
            "fetched_at": "2026-03-12T02:15:04Z",
            "latency_ms": 9,
        },
        "withheld": [],
    }
    assert schema_errors(document, schema, result) == []
    granted = {"personal_id", "full_name"}
    result_withheld = result | {"data": {k: v for k, v in result["data"].items() if k in granted}}
    assert schema_errors(document, schema, result_withheld) == []
    for wrong in (
        result | {"dataset": "enterprise.profile"},  # a citizen is no enterprise record
        result | {"data": result["data"] | {"full_name": None}},  # no value: left out, not null
        result | {"data": result["data"] | {"shoe_size": 42}},  # a field the schema does not have
    ):
        assert schema_errors(document, schema, wrong) != [], wrong


@pytest.mark.parametrize(("method", "path"), EXAMPLED)
def test_every_answer_and_request_has_examples(
    document: dict[str, Any], method: str, path: str
) -> None:
    operation = document["paths"][path][method]
    for status, response in operation["responses"].items():
        for media, content in response["content"].items():
            assert content.get("examples"), (status, media)
    if "requestBody" in operation:
        assert operation["requestBody"]["content"][JSON]["examples"]
    for parameter in operation.get("parameters", []):
        assert "example" in parameter, parameter["name"]


def test_lookup_examples_show_each_kind_of_answer(document: dict[str, Any]) -> None:
    responses = document["paths"]["/v1/lookups"]["post"]["responses"]
    names = {
        (status, media): set(content["examples"])
        for status, response in responses.items()
        for media, content in response["content"].items()
    }
    assert {"complete", "partial", "not_found"} <= names[("200", JSON)]
    assert "denied" in names[("403", JSON)]
    assert "forbidden" in names[("403", PROBLEM)]
    assert "invalid" in names[("400", PROBLEM)]
    statuses = {
        status: example["value"]["status"]
        for status in ("200", "502", "504")
        for example in responses[status]["content"][JSON]["examples"].values()
    }
    assert statuses["502"] == "failed"


@pytest.mark.parametrize(("method", "path"), EXAMPLED)
def test_every_example_is_valid_for_its_model_and_for_the_document(
    document: dict[str, Any], method: str, path: str
) -> None:
    operation = document["paths"][path][method]
    contents = [
        (status, media, content)
        for status, response in operation["responses"].items()
        for media, content in response["content"].items()
    ]
    if "requestBody" in operation:
        contents.append(("request", JSON, operation["requestBody"]["content"][JSON]))
    checked = 0
    for status, media, content in contents:
        check = model_check(content["schema"])
        for name, example in content["examples"].items():
            where = (status, media, name)
            assert schema_errors(document, content["schema"], example["value"]) == [], where
            if check is not None:
                check(example["value"])
            checked += 1
    assert checked
    for parameter in operation.get("parameters", []):
        assert schema_errors(document, parameter["schema"], parameter["example"]) == []


def test_the_examples_people_have_consistent_ids() -> None:
    for example in LOOKUP_REQUESTS.values():
        LookupHttpRequest.model_validate(example["value"])
    subject = LOOKUP_REQUESTS["identity"]["value"]["subject"]
    assert len(subject["personal_id"]) == 12
    assert len(LOOKUP_REQUESTS["enterprise"]["value"]["subject"]["enterprise_code"]) == 10


def test_the_invalid_lookup_example_is_what_the_gateway_answers(document: dict[str, Any]) -> None:
    example = document["paths"]["/v1/lookups"]["post"]["responses"]["400"]["content"][PROBLEM]
    body = LOOKUP_REQUESTS["identity"]["value"] | {"subject": {"personal_id": "00109001234"}}
    with pytest.raises(ValidationError) as caught:
        LookupHttpRequest.model_validate_json(json.dumps(body))
    answer = invalid(field_errors(list(caught.value.errors())))
    assert orjson.loads(answer.body) == example["examples"]["invalid"]["value"]


def test_the_413_example_names_the_default_limit() -> None:
    assert load_settings().gateway.max_body_bytes == MAX_BODY_BYTES


# --- What the gateway answers, in process (no broker: these answers come before any lookup) --


@pytest.fixture
async def gateway(keyed: Any) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    settings, keys = keyed
    app = create_gateway_asgi(settings, load_catalog(settings))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client, keys.headers()


async def test_a_body_declared_past_the_limit_is_a_413(gateway: Any) -> None:
    client, headers = gateway
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    answer = await client.post(
        "/v1/lookups", content=body, headers=headers | {"content-type": JSON}
    )
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem = Problem.model_validate(answer.json())
    assert problem.status == 413
    assert "gateway.max_body_bytes" in problem.detail


async def test_a_chunked_body_is_cut_at_the_limit(gateway: Any) -> None:
    client, headers = gateway
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):  # 4 MiB, past the 1 MiB limit: no Content-Length, only chunks
            sent.append(1)
            yield b" " * 65536

    answer = await client.post(
        "/v1/lookups", content=chunks(), headers=headers | {"content-type": JSON}
    )
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert len(sent) == MAX_BODY_BYTES // 65536 + 1  # read no further than past the limit


async def test_a_body_within_the_limit_is_read_and_validated(gateway: Any) -> None:
    client, headers = gateway
    answer = await client.post(
        "/v1/lookups", content=b"[]" + b" " * 1000, headers=headers | {"content-type": JSON}
    )
    assert answer.status_code == 400, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["(body)"]


async def test_invalid_audit_parameters_are_a_400_problem_as_the_example_says(
    gateway: Any, document: dict[str, Any]
) -> None:
    client, _ = gateway
    query = AUDIT_PARAMETERS | {"limit": 5000}
    answer = await client.get("/v1/audit", params=query)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == PROBLEM
    example = document["paths"]["/v1/audit"]["get"]["responses"]["400"]["content"][PROBLEM]
    assert answer.json() == example["examples"]["invalid"]["value"]


async def test_an_unexpected_failure_is_a_500_problem(keyed: Any) -> None:
    settings, _ = keyed
    app = create_gateway(settings, load_catalog(settings))

    async def broken() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        answer = await client.get("/broken")
    assert answer.status_code == 500
    assert answer.headers["content-type"] == PROBLEM
    assert Problem.model_validate(answer.json()).status == 500


@pytest.mark.parametrize("path", [DOCS_PATH, REDOC_PATH])
async def test_the_docs_pages_name_nothing_outside_the_gateway(gateway: Any, path: str) -> None:
    client, _ = gateway
    page = await client.get(path)
    assert page.status_code == 200
    assert "://" not in page.text  # every script, style and icon is the gateway's own
    assert f"{STATIC_PATH}/" in page.text
    assert "/openapi.json" in page.text


async def test_the_docs_assets_are_served_by_the_gateway(gateway: Any) -> None:
    client, _ = gateway
    for name in ASSET_NAMES:
        asset = await client.get(f"{STATIC_PATH}/{name}")
        assert asset.status_code == 200, name
        assert len(asset.content) > 1000, name
