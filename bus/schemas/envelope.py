"""The envelope every bus message carries.

The message type and schema version travel twice: in the JSON body (so a stored message explains
itself) and in Kafka headers (so a consumer can route or reject without decoding the body).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from bus.schemas.common import Model, utc_now


def new_message_id() -> str:
    return uuid.uuid4().hex


class Envelope(Model):
    """Fields common to all messages. Each subclass fixes `type` with a Literal default."""

    message_id: str = Field(default_factory=new_message_id, min_length=1, max_length=64)
    correlation_id: str | None = Field(
        default=None, description="Id of the message this one answers or was caused by."
    )
    type: str
    schema_version: int = 1
    time: datetime = Field(default_factory=utc_now)
    producer: str = Field(default="", description="Process that produced the message.")
    traceparent: str | None = Field(default=None, description="W3C trace context traceparent.")
    tracestate: str | None = Field(default=None, description="W3C trace context tracestate.")
