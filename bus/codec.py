"""Encoding of bus messages on Kafka: JSON body, type and schema version in headers too.

Decoding never raises anything but `DecodeError`, whose message says what was wrong (which header
or field, what was expected) so the message can go to the dead-letter topic with that reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import orjson
from pydantic import ValidationError

from bus.errors import BusError
from bus.schemas.envelope import Envelope
from bus.schemas.lookup import LookupResponse

H_TYPE = "tthc-type"
H_SCHEMA_VERSION = "tthc-schema-version"
H_MESSAGE_ID = "tthc-message-id"
H_TRACEPARENT = "traceparent"
H_TRACESTATE = "tracestate"

M = TypeVar("M", bound=Envelope)
Headers = list[tuple[str, bytes]]


class DecodeError(BusError):
    """A message could not be read as the type its consumer expects."""


def encode(message: Envelope) -> tuple[bytes, Headers]:
    return message.model_dump_json().encode(), encode_headers(message)


def encode_response(response: LookupResponse) -> tuple[bytes, Headers]:
    """`encode` for a LookupResponse, the records' `data` serialized by orjson.

    pydantic serializes a `dict[str, Any]` value by value, inferring each type: for a citizen's
    record that was six times the cost of orjson, and the largest part of encoding a reply. The
    rest of the reply goes through the model as usual; the JSON is the same, keys aside.
    """
    headers = encode_headers(response)
    body = response.model_dump(mode="json", exclude={"results"})
    body["results"] = [
        result.model_dump(mode="json", exclude={"data"}) | {"data": result.data}
        for result in response.results
    ]
    return orjson.dumps(body), headers


def encode_headers(message: Envelope) -> Headers:
    """The Kafka headers of a message: its type, schema version, id and trace context."""
    headers: Headers = [
        (H_TYPE, message.type.encode()),
        (H_SCHEMA_VERSION, str(message.schema_version).encode()),
        (H_MESSAGE_ID, message.message_id.encode()),
    ]
    if message.traceparent:
        headers.append((H_TRACEPARENT, message.traceparent.encode()))
    if message.tracestate:
        headers.append((H_TRACESTATE, message.tracestate.encode()))
    return headers


def header_map(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, str]:
    """Headers as a str dict (faust gives a list of pairs or a dict, depending on the path)."""
    if not headers:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {key: (value or b"").decode("utf-8", "replace") for key, value in pairs}


def decode(model: type[M], body: bytes | None, headers: Mapping[str, str] | None = None) -> M:
    """Decode and validate `body` as `model`, checking the type and version headers if present."""
    expected_type = model.model_fields["type"].default
    if headers:
        sent_type = headers.get(H_TYPE)
        if sent_type is not None and sent_type != expected_type:
            raise DecodeError(f"header {H_TYPE}: got {sent_type!r}, expected {expected_type!r}")
        version = headers.get(H_SCHEMA_VERSION)
        if version is not None and version != "1":
            raise DecodeError(f"header {H_SCHEMA_VERSION}: got {version!r}, expected '1'")
    if not body:
        raise DecodeError("empty message body, expected a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise DecodeError(describe_errors(exc, expected_type)) from None


def describe_errors(exc: ValidationError, what: str) -> str:
    parts = []
    for item in exc.errors()[:5]:
        field = ".".join(str(p) for p in item["loc"]) or "(body)"
        parts.append(f"{field}: {item['msg']}")
    more = f" (+{exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
    return f"invalid {what}: " + "; ".join(parts) + more
