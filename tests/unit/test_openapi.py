"""The gateway's OpenAPI document declares every answer it gives, with its content type and body,
and the request body's schema says what validation enforces."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from bus.gateway import LookupHttpRequest, create_gateway, invalid, overloaded, problem
from bus.schemas.common import NOT_BLANK
from bus.schemas.lookup import DATASET_PATTERN, ENTERPRISE_CODE_FORM, PERSONAL_ID_FORM
from bus.schemas.problem import Problem
from bus.settings import load_settings
from bus.tooling.devstack import example_lookup
from connectors.catalog import load_catalog
from tests.keys import keyed_settings

PROBLEM = "application/problem+json"
JSON = "application/json"
REF = "#/components/schemas/{}"

LOOKUP_STATUSES = {
    "200": (JSON, "LookupResponse"),
    "400": (PROBLEM, "Problem"),
    "401": (PROBLEM, "Problem"),
    "413": (PROBLEM, "Problem"),
    "500": (PROBLEM, "Problem"),
    "502": (JSON, "LookupResponse"),
    "503": (PROBLEM, "Problem"),
    "504": (JSON, "LookupResponse"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings, _ = keyed_settings()
    return create_gateway(settings, load_catalog(settings)).openapi()


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]
    return found


def schemas(response: dict[str, Any]) -> dict[str, Any]:
    """A response's schema by media type (its examples left aside)."""
    return {media: content["schema"] for media, content in response["content"].items()}


@pytest.mark.parametrize(("status", "declared"), sorted(LOOKUP_STATUSES.items()))
def test_lookup_declares_each_status_with_its_content_type_and_body(
    document: dict[str, Any], status: str, declared: tuple[str, str]
) -> None:
    media_type, model = declared
    responses = operation(document, "post", "/v1/lookups")["responses"]
    assert set(responses) == {*LOOKUP_STATUSES, "403"}
    assert schemas(responses[status]) == {media_type: {"$ref": REF.format(model)}}
    assert model in document["components"]["schemas"]


def test_forbidden_is_a_denial_or_a_problem(document: dict[str, Any]) -> None:
    responses = operation(document, "post", "/v1/lookups")["responses"]
    assert set(responses) == {*LOOKUP_STATUSES, "403"}
    assert schemas(responses["403"]) == {
        JSON: {"$ref": REF.format("LookupResponse")},
        PROBLEM: {"$ref": REF.format("Problem")},
    }


def test_lookups_and_audit_need_a_bearer_key(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path in (("post", "/v1/lookups"), ("get", "/v1/audit")):
        assert operation(document, method, path)["security"] == [{"apiKey": []}]
    unauthorized = operation(document, "post", "/v1/lookups")["responses"]["401"]
    assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True


def test_over_capacity_declares_its_retry_after_header(document: dict[str, Any]) -> None:
    headers = operation(document, "post", "/v1/lookups")["responses"]["503"]["headers"]
    assert headers["Retry-After"]["required"] is True
    assert headers["Retry-After"]["schema"]["type"] == "integer"


def test_lookup_answers_declare_their_traceparent_header(document: dict[str, Any]) -> None:
    responses = operation(document, "post", "/v1/lookups")["responses"]
    for status, (_, model) in LOOKUP_STATUSES.items():
        if model == "LookupResponse":
            assert responses[status]["headers"]["traceparent"]["required"] is True, status


def test_lookup_body_is_the_request_model(document: dict[str, Any]) -> None:
    body = operation(document, "post", "/v1/lookups")["requestBody"]
    assert body["required"] is True
    assert schemas(body) == {JSON: {"$ref": REF.format("LookupHttpRequest")}}


def test_metrics_are_declared_as_prometheus_text(document: dict[str, Any]) -> None:
    responses = operation(document, "get", "/metrics")["responses"]
    assert set(responses) == {"200", "500"}
    assert schemas(responses["200"]) == {CONTENT_TYPE_LATEST: {"type": "string"}}


def test_healthz_declares_healthy_and_unhealthy(document: dict[str, Any]) -> None:
    responses = operation(document, "get", "/healthz")["responses"]
    assert {status: schemas(r) for status, r in responses.items()} == {
        "200": {JSON: {"$ref": REF.format("Healthy")}},
        "503": {JSON: {"$ref": REF.format("Unhealthy")}},
        "500": {PROBLEM: {"$ref": REF.format("Problem")}},
    }


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    names = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))
    assert names
    assert names <= set(document["components"]["schemas"])


def test_request_schema_says_exactly_one_of_the_subjects_identifiers() -> None:
    subject = LookupHttpRequest.model_json_schema()["$defs"]["Subject"]
    assert subject["oneOf"] == [
        {"required": ["personal_id"], "properties": {"personal_id": {"type": "string"}}},
        {"required": ["enterprise_code"], "properties": {"enterprise_code": {"type": "string"}}},
    ]
    assert subject["additionalProperties"] is False
    forms = {
        name: next(o for o in prop["anyOf"] if o["type"] == "string")
        for name, prop in subject["properties"].items()
    }
    assert forms == {"personal_id": PERSONAL_ID_FORM, "enterprise_code": ENTERPRISE_CODE_FORM}


def test_request_schema_gives_the_dataset_name_pattern_once_each() -> None:
    datasets = LookupHttpRequest.model_json_schema()["properties"]["datasets"]
    assert datasets["items"] == {"type": "string", "pattern": DATASET_PATTERN.pattern}
    assert datasets["uniqueItems"] is True
    assert (datasets["minItems"], datasets["maxItems"]) == (1, 16)


def test_served_document_lists_the_datasets_of_the_gateway(document: dict[str, Any]) -> None:
    items = document["components"]["schemas"]["LookupHttpRequest"]["properties"]["datasets"]
    assert items["items"]["enum"] == load_catalog(load_settings()).names()


def test_required_text_must_hold_more_than_whitespace() -> None:
    properties = LookupHttpRequest.model_json_schema()["properties"]
    for name in ("procedure_code", "dossier_id", "purpose", "legal_basis"):
        assert properties[name]["pattern"] == NOT_BLANK, name
    assert properties["deadline_ms"]["anyOf"][0] == {"type": "integer", "minimum": 100}


@pytest.mark.parametrize(
    ("text", "blank"),
    [(" \t\n\u3000\u00a0\u2028", True), (" x ", False), ("\u200b", False), ("\x1c", False)],
)
def test_the_not_blank_pattern_is_what_stripping_leaves_non_empty(text: str, blank: bool) -> None:
    body = example_lookup("001090000001") | {"purpose": text}
    try:
        LookupHttpRequest.model_validate(body)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted is not blank
    assert (re.search(NOT_BLANK, text) is not None) is not blank


@pytest.mark.parametrize(
    "response",
    [
        problem(500, "Internal error", "the gateway could not handle the request"),
        invalid([{"field": "(body)", "message": "Invalid JSON", "type": "json_invalid"}]),
        overloaded("over capacity", 0.2),
    ],
    ids=["500", "400", "503"],
)
def test_the_problems_the_gateway_sends_are_problem_documents(response: Any) -> None:
    assert response.media_type == PROBLEM
    Problem.model_validate(orjson.loads(response.body))
