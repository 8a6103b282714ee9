"""Messages on Kafka: a JSON body, with type, version and id also in headers; bad input says why."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from bus.codec import (
    H_MESSAGE_ID,
    H_SCHEMA_VERSION,
    H_TRACEPARENT,
    H_TYPE,
    DecodeError,
    decode,
    encode,
    header_map,
)
from bus.schemas import LookupRequest, LookupResponse

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def lookup_request(**overrides: object) -> LookupRequest:
    fields: dict[str, object] = {
        "requester": {"agency_code": "UBND-HN", "system": "dvc-hanoi", "officer": "Lê Văn C"},
        "procedure_code": "1.001234",
        "dossier_id": "HS-1",
        "purpose": "Xác minh nhân thân",
        "legal_basis": "Nghị định 194/2025/NĐ-CP",
        "subject": {"personal_id": "001090000001"},
        "datasets": ["population.identity"],
        "deadline": datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
    }
    return LookupRequest(**(fields | overrides))


def encoded_body(request: LookupRequest) -> dict[str, object]:
    body, _ = encode(request)
    decoded: dict[str, object] = json.loads(body)
    return decoded


def test_encode_puts_type_version_and_message_id_in_headers() -> None:
    request = lookup_request()
    _, headers = encode(request)
    assert header_map(headers) == {
        H_TYPE: "lookup.request",
        H_SCHEMA_VERSION: "1",
        H_MESSAGE_ID: request.message_id,
    }


def test_encode_adds_the_traceparent_header_when_there_is_one() -> None:
    _, headers = encode(lookup_request(traceparent=TRACEPARENT))
    assert header_map(headers)[H_TRACEPARENT] == TRACEPARENT


def test_body_is_the_json_of_the_message_and_carries_the_type_too() -> None:
    body = encoded_body(lookup_request())
    assert body["type"] == "lookup.request"
    assert body["schema_version"] == 1
    assert body["purpose"] == "Xác minh nhân thân"


def test_decode_gives_back_the_encoded_message() -> None:
    request = lookup_request(traceparent=TRACEPARENT)
    body, headers = encode(request)
    assert decode(LookupRequest, body, header_map(headers)) == request


def test_decode_without_headers_reads_the_body_alone() -> None:
    request = lookup_request()
    body, _ = encode(request)
    assert decode(LookupRequest, body) == request


def test_header_map_reads_pairs_dicts_and_nothing() -> None:
    assert header_map([(H_TYPE, b"lookup.request")]) == {H_TYPE: "lookup.request"}
    assert header_map({H_TYPE: b"lookup.request"}) == {H_TYPE: "lookup.request"}
    assert header_map(None) == {}


def test_wrong_type_header_is_refused_naming_the_header_and_both_types() -> None:
    body, _ = encode(lookup_request())
    with pytest.raises(DecodeError) as info:
        decode(LookupResponse, body, {H_TYPE: "lookup.request"})
    assert str(info.value) == (f"header {H_TYPE}: got 'lookup.request', expected 'lookup.response'")


def test_wrong_schema_version_header_is_refused_naming_the_header() -> None:
    body, _ = encode(lookup_request())
    with pytest.raises(DecodeError) as info:
        decode(LookupRequest, body, {H_TYPE: "lookup.request", H_SCHEMA_VERSION: "2"})
    assert str(info.value) == f"header {H_SCHEMA_VERSION}: got '2', expected '1'"


@pytest.mark.parametrize("body", [b"", None])
def test_empty_body_is_refused(body: bytes | None) -> None:
    with pytest.raises(DecodeError, match="empty message body"):
        decode(LookupRequest, body, {H_TYPE: "lookup.request"})


def test_invalid_json_is_refused_saying_it_is_not_json() -> None:
    with pytest.raises(DecodeError) as info:
        decode(LookupRequest, b'{"type": "lookup.request",', {H_TYPE: "lookup.request"})
    assert str(info.value).startswith("invalid lookup.request: (body): Invalid JSON")


def test_body_missing_a_required_field_is_refused_naming_the_field() -> None:
    body = encoded_body(lookup_request())
    del body["legal_basis"]
    with pytest.raises(DecodeError) as info:
        decode(LookupRequest, json.dumps(body).encode())
    assert str(info.value) == "invalid lookup.request: legal_basis: Field required"


def test_body_with_a_bad_nested_field_is_refused_naming_its_path() -> None:
    body = encoded_body(lookup_request())
    body["subject"] = {"personal_id": "12345"}
    with pytest.raises(DecodeError, match=r"subject\.personal_id: .*12 digits"):
        decode(LookupRequest, json.dumps(body).encode())


def test_body_of_another_type_is_refused_even_without_headers() -> None:
    body = encoded_body(lookup_request())
    with pytest.raises(DecodeError, match=r"^invalid lookup.response: type: "):
        decode(LookupResponse, json.dumps(body).encode())


def test_many_problems_are_summarised_with_a_count_of_the_rest() -> None:
    with pytest.raises(DecodeError) as info:
        decode(LookupRequest, b"{}")
    message = str(info.value)
    assert message.count("Field required") == 5
    assert re.search(r"\(\+\d+ more\)$", message)


def test_a_reply_encoded_for_speed_is_the_same_json_as_the_models() -> None:
    from datetime import UTC, datetime

    from bus.codec import encode_response
    from bus.schemas import DatasetError, DatasetResult, LookupResponse, Provenance

    reply = LookupResponse(
        request_id="r1",
        status="partial",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        results=[
            DatasetResult(
                dataset="population.identity",
                data={"full_name": "Nguyễn Văn A", "birth_date": {"year": 1990}, "tags": [1, None]},
                provenance=Provenance(
                    source="population", fetched_at=datetime.now(UTC), latency_ms=1.5
                ),
            )
        ],
        errors=[
            DatasetError(
                dataset="insurance.card",
                source="insurance",
                code="timeout",
                message="late",
                retryable=True,
            )
        ],
    )
    body, headers = encode_response(reply)
    assert json.loads(body) == json.loads(reply.model_dump_json())
    assert headers == encode(reply)[1]
    assert decode(LookupResponse, body, header_map(headers)) == reply
