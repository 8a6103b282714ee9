"""Fault injection shared by the sandbox services.

Every simulated national database can be told, at run time, to be slow, to fail, to answer
garbage or to hang, so that the bus's retries, timeouts and circuit breakers meet the failures
they exist for. ``GET /_sandbox/faults/<source>`` shows a source's faults, ``PUT`` with a JSON
object of the ``Faults`` fields replaces them (missing fields fall back to their defaults);
``/_sandbox/faults`` without a source does the same for every source at once (sandbox.server).

A source can also be hostile (`HOSTILE_MODES`, one at a time): its answers come in a form
meant to hurt the caller. `HostileAnswers` wraps every route of every source (sandbox.server),
so the sources' own code does not change; what the route answered decides the form: an XML
answer (SOAP: population, civil) gets XML, anything else (REST/JSON: enterprise, insurance,
licence) JSON. Latency, a hang and an outage still come first, from the route itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import random
import struct
import zlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HANG_POLL_SECONDS = 0.1

# The hostile answers (see `Faults`), each a field of `Faults` that is true or false.
HOSTILE_MODES = ("trickle", "oversize", "xml_bomb", "xxe", "wrong_content_type", "gzip_bomb")
TRICKLE_BYTES = 8  # sent every TRICKLE_INTERVAL_S ...
TRICKLE_INTERVAL_S = 0.2
TRICKLE_SPAN_S = 30.0  # ... for this long at most (far past any caller's timeout), then the rest
OVERSIZE_BYTES = 8 * 1024 * 1024 + 64 * 1024  # just past the 8 MiB a bus adapter reads
GZIP_BOMB_MIB = 256  # what the gzip bomb inflates to (about 260 KB compressed)


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
    malformed answers, a hang until the client gives up, or a full outage.

    A slow source is ``latency_ms`` past the caller's timeout. The hostile answers, at most one
    at a time, to every request (with HTTP 200; a trickle keeps the route's own status):

    - ``trickle``: the route's own answer, its headers (Content-Length among them) at once, then
      `TRICKLE_BYTES` bytes every `TRICKLE_INTERVAL_S` s (for `TRICKLE_SPAN_S` s at most, then
      the rest), until the caller hangs up; every source;
    - ``oversize``: `OVERSIZE_BYTES` (just over 8 MiB) in chunked coding, no Content-Length: a
      well-formed SOAP envelope with one huge text node, or a JSON object with one huge string;
      every source;
    - ``xml_bomb``: a SOAP envelope with billion laughs in its DTD (ten entities, each ten of
      the one before: 3 GB once expanded); for SOAP sources (a JSON source sends the same XML,
      which is then also the wrong content type);
    - ``xxe``: a SOAP envelope whose DOCTYPE declares external entities, one on
      file:///etc/passwd, one on an http URL of the sandbox itself, and uses them; for SOAP
      sources, as ``xml_bomb``;
    - ``wrong_content_type``: a ``text/html`` page (a proxy's login page) with HTTP 200; every
      source;
    - ``gzip_bomb``: ``Content-Encoding: gzip`` although the caller asked for none, a body of
      about 260 KB that inflates to `GZIP_BOMB_MIB` MiB of zeros, the route's content type;
      every source.
    """

    latency_ms: float = 0
    jitter_ms: float = 0
    error_rate: float = 0
    error_status: int = 500
    malformed_rate: float = 0
    hang: bool = False
    outage: bool = False
    trickle: bool = False
    oversize: bool = False
    xml_bomb: bool = False
    xxe: bool = False
    wrong_content_type: bool = False
    gzip_bomb: bool = False

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
        for name in ("hang", "outage", *HOSTILE_MODES):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        hostile = [name for name in HOSTILE_MODES if getattr(self, name)]
        if len(hostile) > 1:
            raise ValueError(f"one hostile answer at a time, got {hostile}")
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

    @property
    def hostile(self) -> str | None:
        """The hostile answer set (a name of `HOSTILE_MODES`), or None."""
        return next((name for name in HOSTILE_MODES if getattr(self, name)), None)

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


# -- hostile answers ---------------------------------------------------------------------------

_XML_MEDIA_TYPE = b"text/xml; charset=utf-8"
_JSON_MEDIA_TYPE = b"application/json"
_SOAP_OPEN = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
)
_SOAP_CLOSE = b"</soap:Body></soap:Envelope>"
_FILLER = b"A" * (64 * 1024)
_OVERSIZE_PARTS = {  # (opening, closing) around the filler
    True: (_SOAP_OPEN + b"<DuLieu>", b"</DuLieu>" + _SOAP_CLOSE),
    False: (b'{"du_lieu": "', b'"}'),
}
_LAUGHS = b"".join(
    b'<!ENTITY lol%d "%s">' % (level, (b"&lol%d;" % (level - 1)) * 10) for level in range(1, 10)
)
XML_BOMB = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<!DOCTYPE soap:Envelope [<!ENTITY lol0 "lol">'
    + _LAUGHS
    + b"]>\n"
    + _SOAP_OPEN.split(b"\n", 1)[1]
    + b"<DuLieu>&lol9;</DuLieu>"
    + _SOAP_CLOSE
)
_LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>\xc4\x90\xc4\x83ng nh\xe1\xba\xadp</title></head>"
    b"<body><form method='post' action='/login'>Please log in to use this network</form>"
    b"</body></html>"
)


def xxe_answer(local_url: str) -> bytes:
    """A SOAP envelope whose DTD declares two external entities, a file and `local_url`, and
    whose body uses them: what a caller that resolves entities would read into its answer."""
    return (
        b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE soap:Envelope [\n'
        b'<!ENTITY passwd SYSTEM "file:///etc/passwd">\n'
        b'<!ENTITY inside SYSTEM "'
        + local_url.encode()
        + b'">\n]>\n'
        + _SOAP_OPEN.split(b"\n", 1)[1]
        + b"<DuLieu>&passwd;&inside;</DuLieu>"
        + _SOAP_CLOSE
    )


@cache
def gzip_bomb() -> bytes:
    """A gzip member of about 260 KB that inflates to GZIP_BOMB_MIB MiB of zeros.

    A deflate block of a MiB of zeros, fully flushed, is the same bytes every time: repeating it
    is the member (a tenth of a second, where compressing 256 MiB would take seconds)."""
    mib = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressor.compress(mib)
    block = compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(GZIP_BOMB_MIB):
        crc = zlib.crc32(mib, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # gzip, deflate, no name, no time
    final = b"\x03\x00"  # an empty last block
    size = (GZIP_BOMB_MIB << 20) & 0xFFFFFFFF
    return header + block * GZIP_BOMB_MIB + final + struct.pack("<II", crc, size)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    return next((value for key, value in headers if key.lower() == name), b"")


def _start(status: int, headers: list[tuple[bytes, bytes]]) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(body: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": more}


async def _disconnected(receive: Receive) -> None:
    """Return once the caller has hung up (what is left of the request read and dropped)."""
    while (await receive())["type"] != "http.disconnect":
        continue


class HostileAnswers:
    """ASGI app around one route of a source: its answers in the hostile form its faults name
    (`Faults`), or untouched when they name none (one attribute read a request)."""

    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mode = self.injector.faults.hostile
        if mode is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, headers, body = await self._answer(scope, receive)
        xml = _header(headers, b"content-type").split(b";")[0].strip().endswith(b"xml")
        if mode == "trickle":
            await self._trickle(status, headers, body, receive, send)
        elif mode == "oversize":
            await self._oversize(xml, send)
        elif mode == "xml_bomb":
            await _whole(send, 200, _XML_MEDIA_TYPE, XML_BOMB)
        elif mode == "xxe":
            host, port = scope.get("server") or ("127.0.0.1", 80)
            await _whole(
                send, 200, _XML_MEDIA_TYPE, xxe_answer(f"http://{host}:{port}/_sandbox/health")
            )
        elif mode == "wrong_content_type":
            await _whole(send, 200, b"text/html; charset=utf-8", _LOGIN_PAGE)
        else:  # gzip_bomb
            bomb = await asyncio.to_thread(gzip_bomb)  # built once, off the event loop
            media_type = _XML_MEDIA_TYPE if xml else _JSON_MEDIA_TYPE
            await _whole(send, 200, media_type, bomb, [(b"content-encoding", b"gzip")])

    async def _answer(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """What the route answers (its latency, hang and outage included), kept, not sent."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        return int(start.get("status", 500)), list(start.get("headers", [])), b"".join(chunks)

    @staticmethod
    async def _trickle(
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        receive: Receive,
        send: Send,
    ) -> None:
        await send(_start(status, headers))  # the head at once: a caller sees a prompt answer
        hung_up = asyncio.ensure_future(_disconnected(receive))
        try:
            loop = asyncio.get_running_loop()
            ends, position = loop.time() + TRICKLE_SPAN_S, 0
            while position < len(body) and loop.time() < ends:
                done, _ = await asyncio.wait({hung_up}, timeout=TRICKLE_INTERVAL_S)
                if done:
                    return  # nobody left to trickle to
                await send(_body(body[position : position + TRICKLE_BYTES], more=True))
                position += TRICKLE_BYTES
            await send(_body(body[position:]))
        finally:
            hung_up.cancel()

    @staticmethod
    async def _oversize(xml: bool, send: Send) -> None:
        opening, closing = _OVERSIZE_PARTS[xml]
        media_type = _XML_MEDIA_TYPE if xml else _JSON_MEDIA_TYPE
        # No Content-Length: the caller finds out by counting, not from the head.
        await send(_start(200, [(b"content-type", media_type)]))
        await send(_body(opening, more=True))
        for _ in range(OVERSIZE_BYTES // len(_FILLER)):
            await send(_body(_FILLER, more=True))  # a no-op once the caller has hung up
        await send(_body(closing))


async def _whole(
    send: Send,
    status: int,
    media_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send(_start(status, headers))
    await send(_body(body))


def hostile_route(route: BaseRoute, injector: FaultInjector) -> BaseRoute:
    """`route` with its answers passed through `HostileAnswers` (a plain Route; others as
    they are)."""
    if isinstance(route, Route):
        route.app = HostileAnswers(route.app, injector)
    return route
