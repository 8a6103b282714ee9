"""W3C trace context (https://www.w3.org/TR/trace-context/): carried, not yet exported.

The gateway continues the caller's trace (the `traceparent` HTTP header) or starts one; every
message of a lookup carries it in its envelope and its Kafka headers, so the hops of one lookup
can be joined in logs and, later, in a tracing backend.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def valid_traceparent(value: str | None) -> bool:
    return value is not None and _TRACEPARENT.fullmatch(value) is not None


def new_traceparent() -> str:
    """A new sampled trace: version 00, random trace id and span id."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def continue_trace(traceparent: str | None) -> str:
    """The caller's trace with a new span id for this hop, or a new trace if it sent none."""
    if not valid_traceparent(traceparent):
        return new_traceparent()
    assert traceparent is not None
    version, trace_id, _, flags = traceparent.split("-")
    return f"{version}-{trace_id}-{secrets.token_hex(8)}-{flags}"


MAX_TRACESTATE = 512


def carried_tracestate(headers: Mapping[str, str]) -> str | None:
    """The caller's tracestate, only when it comes with a valid traceparent, and bounded."""
    state = headers.get("tracestate")
    if not state or not valid_traceparent(headers.get("traceparent")):
        return None
    return state[:MAX_TRACESTATE]
