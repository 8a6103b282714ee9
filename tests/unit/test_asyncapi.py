"""The AsyncAPI document is generated from the worker's declared consumers and is whole: every
topic the bus creates is a channel, every reference resolves, and every message has its schema."""

from __future__ import annotations

from typing import Any

import pytest

from bus import topics
from bus.asyncapi import asyncapi_document
from bus.settings import load_settings
from bus.tooling.cli import compose_worker


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi_document(compose_worker(load_settings()).subscribers)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, f"{ref}: no {part!r}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    found = refs(document)
    assert len(found) > 20
    for ref in found:
        resolve(document, ref)


def test_every_lookup_topic_is_a_channel_with_its_address(document: dict[str, Any]) -> None:
    addresses = {channel["address"] for channel in document["channels"].values()}
    wanted = {
        topics.LOOKUP_REQUEST,
        topics.LOOKUP_REPLY,
        topics.SOURCE_RESULT,
        topics.DEAD_LETTER,
        topics.source_request("population"),
    }
    assert wanted <= addresses


def test_the_router_takes_requests_and_answers_on_the_reply_topic(document: dict[str, Any]) -> None:
    operations = document["operations"]
    receive = operations["lookup-router.receive.LookupRequest"]
    assert receive["action"] == "receive"
    assert resolve(document, receive["channel"]["$ref"])["address"] == topics.LOOKUP_REQUEST
    sends = [
        resolve(document, op["channel"]["$ref"])["address"]
        for name, op in operations.items()
        if name.startswith("lookup-router.send.")
    ]
    assert topics.LOOKUP_REPLY in sends


def test_messages_carry_type_header_key_and_payload_schema(document: dict[str, Any]) -> None:
    request = document["components"]["messages"]["LookupRequest"]
    assert request["headers"]["properties"]["tthc-type"]["const"] == "lookup.request"
    assert request["bindings"]["kafka"]["key"]["type"] == "string"
    payload = resolve(document, request["payload"]["$ref"])
    assert {"requester", "subject", "datasets", "deadline", "purpose"} <= set(payload["properties"])


def test_dead_letters_document_their_origin_headers(document: dict[str, Any]) -> None:
    message = document["components"]["messages"]["DeadLetter"]
    assert {"tthc-dlq-origin-topic", "tthc-dlq-reason"} <= set(message["headers"]["required"])
