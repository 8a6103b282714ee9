"""The envelope every bus message carries.

The message type and schema version travel twice: in the JSON body (so a stored message explains
itself) and in Kafka headers (so a consumer can route or reject without decoding the body).
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

from pydantic import Field

from bus.schemas.common import Model, utc_now


class _RandomPool:
    """Random bytes read from the OS a page at a time.

    Message ids must be unguessable (a client that could guess another's request id could have
    its own request taken for a repeat of it), so they come from the OS's CSPRNG; but one
    `getrandom` call per id cost 20-25 us here, four times per lookup. A fork starts afresh, so
    that two processes never share bytes.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._buffer = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._buffer):
                self._buffer, self._at = os.urandom(self.SIZE), 0
            chunk = self._buffer[self._at : self._at + n]
            self._at += n
            return chunk


_random = _RandomPool()


def new_message_id() -> str:
    """128 random bits as 32 hex digits (the form of a uuid4's hex, not its version bits)."""
    return _random.take(16).hex()


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
