"""Fault injection shared by the sandbox services.

Every simulated national database can be told, at run time, to be slow, to fail, to answer
garbage or to hang, so that the bus's retries, timeouts and circuit breakers meet the failures
they exist for. ``GET /_sandbox/faults/<source>`` shows a source's faults, ``PUT`` with a JSON
object of the ``Faults`` fields replaces them (missing fields fall back to their defaults);
``/_sandbox/faults`` without a source does the same for every source at once (sandbox.server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import random
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

_HANG_POLL_SECONDS = 0.1


class FaultOutcome(enum.Enum):
    """What one request suffers (besides latency)."""

    NONE = "none"
    ERROR = "error"  # an HTTP 5xx (``error_status``), or a SOAP fault from a SOAP source
    MALFORMED = "malformed"
    HANG = "hang"
    OUTAGE = "outage"  # the source is down: 503 from the front proxy for every request


ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True)
class Faults:
    """Faults applied to every request: a fixed latency plus up to ``jitter_ms`` more, a share of
    server errors (HTTP ``error_status``; a SOAP source answers a soap:Server fault), a share of
    malformed answers, a hang until the client gives up, or a full outage."""

    latency_ms: float = 0
    jitter_ms: float = 0
    error_rate: float = 0
    error_status: int = 500
    malformed_rate: float = 0
    hang: bool = False
    outage: bool = False

    def __post_init__(self) -> None:
        for name in ("latency_ms", "jitter_ms", "error_rate", "malformed_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        for name in ("error_rate", "malformed_rate"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} is a share between 0 and 1, got {getattr(self, name)!r}")
        for name in ("hang", "outage"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.error_status not in ERROR_STATUSES or isinstance(self.error_status, bool):
            raise ValueError(
                f"error_status must be one of {list(ERROR_STATUSES)}, got {self.error_status!r}"
            )

    @classmethod
    def from_mapping(cls, data: Any) -> Faults:
        """Build from a JSON object; unknown fields are an error that names them."""
        if not isinstance(data, dict):
            raise ValueError(f"faults must be a JSON object, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault fields {unknown}; expected some of {sorted(known)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def active(self) -> bool:
        return self != Faults()

    def delay_seconds(self, rng: random.Random) -> float:
        jitter = rng.uniform(0, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.latency_ms + jitter) / 1000

    def draw(self, rng: random.Random) -> FaultOutcome:
        """The outcome of one request: outage beats hang beats error beats malformed."""
        if self.outage:
            return FaultOutcome.OUTAGE
        if self.hang:
            return FaultOutcome.HANG
        roll = rng.random()
        if roll < self.error_rate:
            return FaultOutcome.ERROR
        if roll < self.error_rate + self.malformed_rate:
            return FaultOutcome.MALFORMED
        return FaultOutcome.NONE


class FaultInjector:
    """Holds the current ``Faults`` of one service and applies them to a request."""

    def __init__(self, faults: Faults | None = None, seed: int | None = None) -> None:
        self.faults = faults or Faults()
        self._rng = random.Random(seed)

    async def before_request(self, request: Request) -> FaultOutcome:
        """Sleep the latency, hang if told to, and say what else the answer should suffer."""
        faults = self.faults
        if not faults.active:
            return FaultOutcome.NONE
        if faults.outage:
            return FaultOutcome.OUTAGE
        delay = faults.delay_seconds(self._rng)
        if delay > 0:
            await asyncio.sleep(delay)
        outcome = faults.draw(self._rng)
        if outcome is FaultOutcome.HANG:
            await self._hang(request)
            # Hang switched off while the client was still waiting: answer normally.
            return FaultOutcome.NONE
        return outcome

    async def _hang(self, request: Request) -> None:
        while self.faults.hang and not await request.is_disconnected():
            await asyncio.sleep(_HANG_POLL_SECONDS)

    def malform(self, body: bytes) -> bytes:
        """A broken answer: the body cut short, or not XML at all."""
        if self._rng.random() < 0.5 and len(body) > 8:
            return body[: self._rng.randrange(1, len(body) // 2)]
        return b"<html><body>502 Bad Gateway \xe2\x80\x94 upstream reset</body>"

    def update(self, data: Any) -> None:
        """Replace the faults from a JSON object (ValueError naming what is wrong)."""
        try:
            self.faults = Faults.from_mapping(data)
        except TypeError as error:
            raise ValueError(str(error)) from None


_PROXY_PAGES = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><center>"
    b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    503: b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
    b"<h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body>"
    b"</html>",
}


def proxy_error_page(status: int) -> Response | None:
    """The front proxy's own HTML page for a 502 or 503 (the application never answered), or
    None for a status the application answers itself (a 500 in its own format)."""
    page = _PROXY_PAGES.get(status)
    return None if page is None else Response(page, status_code=status, media_type="text/html")


def outage_response() -> Response:
    """What a client sees of a source that is down: its front proxy's 503 page."""
    return Response(
        b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
        b"<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
        status_code=503,
        media_type="text/html",
    )
