"""SOAP 1.1 as the simulated national databases speak it: the base of their SOAP services.

A `SoapService` is a simulated source served as SOAP 1.1 document/literal under its `path`:

- ``POST <path>``: a request envelope, read by a hardened lxml parser (no entities resolved, no
  DTD loaded, no network, no huge trees) into the operation's name and its fields by local name.
  Anything but an envelope of one of its `operations` in its `namespace` is a soap:Client fault;
- ``GET <path>?wsdl`` and ``GET <path>/<WSDL file name>``: its WSDL, the soap:address rewritten
  to the URL it is served at.

Injected faults (sandbox.faults): an outage is the front proxy's 503 (for the WSDL too), an error
a soap:Server fault (HTTP 500) saying `server_error`, a malformed answer the injector's garbage.
A subclass gives its namespace, path, WSDL file and operations, and `text` when the source writes
its text its own way (the civil status database: NFD).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape, quoteattr

from lxml import etree
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sandbox.faults import FaultInjector, FaultOutcome, outage_response
from sandbox.registry import SimulatedSource
from sandbox.world import World

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XML_MEDIA_TYPE = "text/xml; charset=utf-8"
VIETNAM_TIME = timezone(timedelta(hours=7))
WSDL_DEFAULT_HOST = "http://localhost:8000"  # the soap:address host the WSDL files are written with

_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{{body}}</soap:Body></soap:Envelope>'
)
_FAULT = (
    "<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{message}</faultstring>"
    "</soap:Fault>"
)

Operation = Callable[[dict[str, str]], str]  # request fields -> the response element


class SoapClientError(Exception):
    """The request is not something this service can answer (soap:Client fault)."""


def render_element(name: str, value: Any) -> str:
    """A native value as XML: a dict is nested elements in its order, a list repeats the element."""
    if isinstance(value, list):
        return "".join(render_element(name, item) for item in value)
    if isinstance(value, dict):
        inner = "".join(render_element(key, child) for key, child in value.items())
        return f"<{name}>{inner}</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def envelope(body: str) -> bytes:
    """A SOAP 1.1 envelope around the body element(s) `body`, in UTF-8."""
    return _ENVELOPE.format(body=body).encode()


def soap_fault(code: str, message: str) -> Response:
    """A SOAP 1.1 fault (HTTP 500); ``code`` is ``Client`` or ``Server``."""
    body = envelope(_FAULT.format(code=code, message=escape(message)))
    return Response(body, status_code=500, media_type=XML_MEDIA_TYPE)


def now_stamp() -> str:
    """The time now in Vietnam as yyyyMMddHHmmss (ThoiDiemDuLieu of an answer without data)."""
    return datetime.now(VIETNAM_TIME).strftime("%Y%m%d%H%M%S")


class SoapService(SimulatedSource):
    """A simulated national database that speaks SOAP 1.1 (see the module doc)."""

    namespace: ClassVar[str]  # of the operations' elements
    path: ClassVar[str]  # where it is served, e.g. "/dancu"
    wsdl_file: ClassVar[Path]  # its soap:address is WSDL_DEFAULT_HOST + path
    server_error: ClassVar[str]  # the faultstring of an injected error

    def __init__(self, world: World, faults: FaultInjector | None = None) -> None:
        super().__init__(world, faults)
        self.operations: dict[str, Operation] = {}  # by name: the subclass fills it in
        self._parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        self._wsdl_template = self.wsdl_file.read_text(encoding="utf-8")

    def text(self, text: str) -> str:
        """Text (a fault string) as this source writes it."""
        return text

    def routes(self) -> list[Route]:
        return [
            Route(self.path, self._soap_endpoint, methods=["POST"]),
            Route(self.path, self._wsdl_query_endpoint, methods=["GET"]),
            Route(f"{self.path}/{self.wsdl_file.name}", self._wsdl_endpoint, methods=["GET"]),
        ]

    def parse_request(self, body: bytes) -> tuple[str, dict[str, str]]:
        """The operation name and its child fields (by local name) of a SOAP 1.1 request."""
        try:
            root = etree.fromstring(body, self._parser)
        except etree.XMLSyntaxError as error:
            raise SoapClientError(f"request is not well-formed XML: {error}") from None
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise SoapClientError(f"expected a SOAP 1.1 {{{SOAP_ENV}}}Envelope, got {root.tag}")
        body_element = root.find(f"{{{SOAP_ENV}}}Body")
        if body_element is None:
            raise SoapClientError("the SOAP envelope has no Body")
        operation = next((el for el in body_element if isinstance(el.tag, str)), None)
        if operation is None:
            raise SoapClientError("the SOAP Body is empty: no operation element")
        qname = etree.QName(operation)
        if qname.namespace != self.namespace or qname.localname not in self.operations:
            raise SoapClientError(
                f"unknown operation {operation.tag}; this service offers "
                f"{sorted(self.operations)} in namespace {self.namespace}"
            )
        fields = {
            etree.QName(child).localname: (child.text or "").strip()
            for child in operation
            if isinstance(child.tag, str)
        }
        return qname.localname, fields

    async def _soap_endpoint(self, request: Request) -> Response:
        body = await request.body()
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        if outcome is FaultOutcome.ERROR:
            return soap_fault("Server", self.text(self.server_error))
        try:
            operation, fields = self.parse_request(body)
        except SoapClientError as error:
            message = f"Yêu cầu không hợp lệ (invalid request): {error}"
            return soap_fault("Client", self.text(message))
        payload = envelope(self.operations[operation](fields))
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, media_type=XML_MEDIA_TYPE)

    def wsdl_text(self, base_url: str) -> str:
        """The WSDL with its soap:address pointing at ``base_url`` + `path`."""
        address = quoteattr(base_url.rstrip("/") + self.path)
        return self._wsdl_template.replace(quoteattr(WSDL_DEFAULT_HOST + self.path), address)

    async def _wsdl_endpoint(self, request: Request) -> Response:
        if self.faults.faults.outage:
            return outage_response()
        return Response(self.wsdl_text(str(request.base_url)), media_type=XML_MEDIA_TYPE)

    async def _wsdl_query_endpoint(self, request: Request) -> Response:
        if request.url.query.lower() == "wsdl":
            return await self._wsdl_endpoint(request)
        return PlainTextResponse(
            f"POST SOAP 1.1 envelopes to {self.path}; GET {self.path}?wsdl for the WSDL",
            status_code=400,
        )
