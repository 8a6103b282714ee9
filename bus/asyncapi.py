"""The AsyncAPI 3 document of the bus's Kafka interface, generated from the declared consumers.

Nothing here is written by hand: the channels, operations and messages come from the
`Subscriber` declarations (what each consumer takes and publishes), the message schemas from the
pydantic models, the headers from the codec, and the dead-letter headers from the outbox. A
Kafka-native client's view (send a request, read the reply partition it named) is added as the
operations of `client`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bus import topics
from bus.codec import H_MESSAGE_ID, H_SCHEMA_VERSION, H_TRACEPARENT, H_TRACESTATE, H_TYPE
from bus.outbox import (
    H_CONSUMER,
    H_ORIGIN_OFFSET,
    H_ORIGIN_PARTITION,
    H_ORIGIN_TOPIC,
    H_REASON,
    H_TIME,
)
from bus.runtime import Subscriber
from bus.schemas import LookupRequest, LookupResponse
from bus.schemas.envelope import Envelope

ASYNCAPI_VERSION = "3.0.0"
SCHEMA_REF = "#/components/schemas/{model}"
DEAD_LETTER_MESSAGE = "DeadLetter"


def _channel_id(topic: str) -> str:
    return topic.replace(".", "-")


def _headers(model: type[Envelope]) -> dict[str, Any]:
    type_name = model.model_fields["type"].default
    return {
        "type": "object",
        "required": [H_TYPE, H_SCHEMA_VERSION, H_MESSAGE_ID],
        "properties": {
            H_TYPE: {"type": "string", "const": type_name, "description": "Message type."},
            H_SCHEMA_VERSION: {"type": "string", "const": "1"},
            H_MESSAGE_ID: {"type": "string", "description": "The envelope's message_id."},
            H_TRACEPARENT: {"type": "string", "description": "W3C trace context."},
            H_TRACESTATE: {"type": "string", "description": "W3C trace context."},
        },
    }


class _Document:
    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def message(self, model: type[Envelope], key: str) -> str:
        name = model.__name__
        if name not in self.messages:
            schema = model.model_json_schema(ref_template=SCHEMA_REF)
            self.schemas.update(schema.pop("$defs", {}))
            self.schemas[name] = schema
            self.messages[name] = {
                "name": name,
                "title": name,
                "summary": (model.__doc__ or name).strip().splitlines()[0],
                "contentType": "application/json",
                "headers": _headers(model),
                "payload": {"$ref": f"#/components/schemas/{name}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": key}}},
            }
        return name

    def channel(self, topic: str, description: str = "") -> dict[str, Any]:
        channel_id = _channel_id(topic)
        channel: dict[str, Any] = self.channels.setdefault(
            channel_id, {"address": topic, "messages": {}, "description": description}
        )
        if description and not channel["description"]:
            channel["description"] = description
        return channel

    def operation(
        self, name: str, action: str, topic: str, model: type[Envelope], key: str, summary: str
    ) -> None:
        message = self.message(model, key)
        channel_id = _channel_id(topic)
        self.channel(topic)["messages"][message] = {"$ref": f"#/components/messages/{message}"}
        self.operations[name] = {
            "action": action,
            "summary": summary,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message}"}],
        }

    def dead_letters(self, consumer: str) -> None:
        channel_id = _channel_id(topics.DEAD_LETTER)
        channel = self.channel(
            topics.DEAD_LETTER,
            "Records a consumer could not process: the original key, value and headers, plus "
            "where they came from and why.",
        )
        channel["messages"][DEAD_LETTER_MESSAGE] = {
            "$ref": f"#/components/messages/{DEAD_LETTER_MESSAGE}"
        }
        self.messages.setdefault(DEAD_LETTER_MESSAGE, _dead_letter_message())
        self.operations[f"{consumer}.dead-letter"] = {
            "action": "send",
            "summary": f"{consumer} parks what it cannot process.",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{DEAD_LETTER_MESSAGE}"}],
        }


def _dead_letter_message() -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "Dead letter",
        "summary": "The original record, unchanged, with headers saying where it came from.",
        "headers": {
            "type": "object",
            "required": [H_ORIGIN_TOPIC, H_ORIGIN_PARTITION, H_ORIGIN_OFFSET, H_REASON, H_CONSUMER],
            "properties": {
                H_ORIGIN_TOPIC: string | {"description": "Topic the record was read from."},
                H_ORIGIN_PARTITION: string | {"description": "Its partition."},
                H_ORIGIN_OFFSET: string | {"description": "Its offset."},
                H_REASON: string | {"description": "Why it could not be processed."},
                H_CONSUMER: string | {"description": "The consumer that parked it."},
                H_TIME: string | {"description": "When, in ms since the epoch."},
            },
        },
        "payload": {"description": "The original value, byte for byte (may not be JSON)."},
    }


def asyncapi_document(subscribers: Iterable[Subscriber], version: str = "1") -> dict[str, Any]:
    """The AsyncAPI 3 document of `subscribers` and of a Kafka-native client."""
    doc = _Document()
    for subscriber in subscribers:
        doc.channel(subscriber.topic, subscriber.description)
        for route in subscriber.routes:
            doc.operation(
                f"{subscriber.name}.receive.{route.model.__name__}",
                "receive",
                subscriber.topic,
                route.model,
                subscriber.key,
                f"{subscriber.name} takes {route.type_name} messages.",
            )
        for out in subscriber.publishes:
            doc.operation(
                f"{subscriber.name}.send.{out.model.__name__}.{_channel_id(out.topic)}",
                "send",
                out.topic,
                out.model,
                out.key,
                out.description,
            )
        doc.dead_letters(subscriber.name)
    doc.operation(
        "client.send.LookupRequest",
        "send",
        topics.LOOKUP_REQUEST,
        LookupRequest,
        "request id (the message_id)",
        "A Kafka-native client asks: it names its reply partition in reply_to.",
    )
    doc.operation(
        "client.receive.LookupResponse",
        "receive",
        topics.LOOKUP_REPLY,
        LookupResponse,
        "request id",
        "A Kafka-native client reads the partition it named (assigned, no consumer group) and "
        "matches replies by key; exactly one per request as it sees it (repeats are dropped).",
    )
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "tthc-bus Kafka interface",
            "version": version,
            "description": "Topics, keys, headers and payloads of the tthc-bus lookup path, "
            "generated from the bus's consumer declarations.",
        },
        "defaultContentType": "application/json",
        "channels": doc.channels,
        "operations": doc.operations,
        "components": {"messages": doc.messages, "schemas": doc.schemas},
    }
