"""The gateway keeps the promises of its own OpenAPI document: schemathesis generates requests from
`/openapi.json` of the running bus (a real broker, sandbox and worker behind the gateway), valid
ones and invalid ones, and checks every answer against the document.

Valid requests are real lookups: they reach the sandbox and come back `not_found` (a well-formed id
nobody has), `complete`, or `failed` (a source refusing what it cannot carry).
"""

from __future__ import annotations

import copy
import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import jsonschema_rs  # schemathesis's own validator
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bus.gateway import create_gateway
from bus.identifiers import enterprise_check_digit
from bus.settings import load_settings
from bus.tooling.devstack import DevStack, example_lookup
from connectors.catalog import load_catalog
from sandbox.world import World
from tests.integration.conftest import SANDBOX_COUNT
from tests.keys import keyed_settings

pytestmark = pytest.mark.integration

# Examples per operation in the fuzzing phase, valid and invalid ones mixed; the coverage phase
# adds its boundary cases on top.
MAX_EXAMPLES = 150
SEED = 20250701
# A valid lookup reaches the bus, and on a loaded machine a slow one lasts its whole deadline: the
# deadlines drawn are cut to this (any deadline of 100 ms or more is valid, so the cut keeps it so).
MAX_DEADLINE_MS = 1500

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # A loaded shared machine is slow, not wrong: no time limit on a generated example.
        "suppress-health-check": ["too_slow"],
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # 502 (`failed`) and 504 (deadline) are lookup outcomes the document declares, with a
            # LookupResponse body; 503 a refusal with Retry-After. An unexpected error is a 500.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "502", "503", "504"]}
        },
    }
)


def mst_codes() -> st.SearchStrategy[str]:
    """Enterprise codes with a right MST check digit, some with a branch suffix: the `mst` format
    the document names, which a pattern cannot say (a code that fails it is a documented 400)."""

    def issued(nine: str) -> str:
        # No check digit fits a weighted sum of 0 mod 11; another 9th digit (weight 3) moves it.
        return (
            nine
            if enterprise_check_digit(nine) is not None
            else nine[:8] + str((int(nine[8]) + 1) % 10)
        )

    def code(nine: str, branch: int | None) -> str:
        return f"{nine}{enterprise_check_digit(nine)}" + (
            "" if branch is None else f"-{branch:03d}"
        )

    prefixes = st.text("0123456789", min_size=9, max_size=9).map(issued)
    return st.builds(code, prefixes, st.none() | st.integers(1, 999))


schemathesis.openapi.format("mst", mst_codes())


# The document the gateway serves, built by the same code from the same settings as the stack's
# gateway (`test_the_gateway_serves_the_document_tested` holds them equal). Loaded at collection,
# as schemathesis wants, rather than from a fixture: its `from_fixture` predates pytest 9.
SETTINGS, _ = keyed_settings()
DOCUMENT = create_gateway(SETTINGS, load_catalog(SETTINGS)).openapi()
# A copy: the bodies of the examples phase are the document's own examples, which
# `shorter_deadlines` below changes in place.
contract = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG)


@contract.hook("map_case")
def shorter_deadlines(
    context: schemathesis.HookContext, case: schemathesis.Case[Any]
) -> schemathesis.Case[Any]:
    body = case.body
    valid = case.meta is not None and case.meta.generation.mode.is_positive
    if valid and isinstance(body, dict):
        deadline = body.get("deadline_ms")
        if isinstance(deadline, int | float) and not isinstance(deadline, bool):
            body["deadline_ms"] = min(deadline, MAX_DEADLINE_MS)
    return case


@pytest.mark.timeout(600)
@contract.parametrize()
@hypothesis.settings(deadline=None)
def test_gateway_answers_as_its_openapi_document_says(
    case: schemathesis.Case[Any], stack: DevStack
) -> None:
    case.call_and_validate(
        base_url=stack.gateway_url, checks=CHECKS, timeout=90, headers=stack.keys.headers()
    )


def test_the_gateway_serves_the_document_tested(stack: DevStack) -> None:
    served = requests.get(f"{stack.gateway_url}/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(DOCUMENT))


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b'{"requester": ', b"\xff\xfe{}", b'{"purpose": "\xc3"}', b"[]", b"null"],
    ids=["empty", "not-json", "truncated", "not-utf8", "bad-utf8-in-string", "array", "null"],
)
def test_a_body_that_is_not_a_json_object_is_a_400_naming_the_body(
    stack: DevStack, body: bytes
) -> None:
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups",
        data=body,
        headers={"content-type": "application/json", **stack.keys.headers()},
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == 400
    assert [e["field"] for e in problem["errors"]] == ["(body)"], problem


def test_an_enterprise_code_failing_its_check_digit_is_a_400_naming_it(stack: DevStack) -> None:
    nine = "010010910"
    wrong = (int(str(enterprise_check_digit(nine))) + 1) % 10
    body = example_lookup("001090000001") | {"subject": {"enterprise_code": f"{nine}{wrong}"}}
    answer = requests.post(
        f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=10
    )
    assert answer.status_code == 400, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["subject.enterprise_code"]


def post_unsent(stack: DevStack, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, Any]:
    """POST /v1/lookups written by hand: the headers, then as many of `chunks` as the gateway
    takes before it answers (it may answer, and stop reading, before the body has come)."""
    url = urlsplit(stack.gateway_url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.putrequest("POST", "/v1/lookups")
        for name, value in (headers | {"content-type": "application/json"}).items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            for chunk in chunks:
                connection.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the rest came
        answer = connection.getresponse()
        assert (answer.getheader("content-type") or "").startswith("application/problem+json")
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_a_body_declared_past_the_limit_is_a_413_before_it_is_sent(stack: DevStack) -> None:
    limit = SETTINGS.gateway.max_body_bytes
    headers = stack.keys.headers() | {"content-length": str(limit + 1)}
    status, problem = post_unsent(stack, headers, [])  # the length said is enough
    assert status == 413, problem
    assert "gateway.max_body_bytes" in problem["detail"]


def test_a_chunked_body_past_the_limit_is_a_413(stack: DevStack) -> None:
    limit = SETTINGS.gateway.max_body_bytes
    piece = b" " * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (2 * limit // len(piece)) + [b"0\r\n\r\n"]
    headers = stack.keys.headers() | {"transfer-encoding": "chunked"}
    status, problem = post_unsent(stack, headers, chunks)
    assert status == 413, problem


CATALOG = load_catalog(SETTINGS)


def sandbox_subjects(stack: DevStack, dataset: str) -> list[str]:
    """Subjects the stack's sandbox holds a record of `dataset` for."""
    info = CATALOG.datasets[dataset]
    if info.source == "enterprise" and info.subject == "personal_id":
        world = World(SANDBOX_COUNT, load_settings().sandbox.seed)  # representatives
        people = (p for p in range(world.count) if world.represented_by(p))
        return [world.population.personal_id(next(people)) for _ in range(2)]
    answer = requests.get(
        f"{stack.sandbox_url}/_sandbox/sample",
        params={"source": info.source, "n": 2, "seed": 23},
        timeout=10,
    )
    answer.raise_for_status()
    return list(answer.json())


@pytest.mark.parametrize("dataset", CATALOG.names())
def test_real_records_are_what_the_document_types_them(stack: DevStack, dataset: str) -> None:
    """The record of each dataset, as the sandbox's data makes it, is valid for that dataset's
    schema in the document (and schemathesis, drawing random ids, rarely finds one)."""
    kind = CATALOG.datasets[dataset].subject
    reply_schema = {"$ref": "#/components/schemas/LookupResponse"}
    validator = jsonschema_rs.Draft202012Validator(
        reply_schema | {"components": DOCUMENT["components"]}
    )
    found = 0
    for subject in sandbox_subjects(stack, dataset):
        body = example_lookup("000000000000") | {"subject": {kind: subject}, "datasets": [dataset]}
        answer = requests.post(
            f"{stack.gateway_url}/v1/lookups", json=body, headers=stack.keys.headers(), timeout=30
        )
        reply = answer.json()
        assert [e.message[:300] for e in validator.iter_errors(reply)] == [], subject
        found += len(reply["results"])
    assert found, f"no {dataset} record came back: nothing was checked"
