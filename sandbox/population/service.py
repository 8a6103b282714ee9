"""The SOAP service of the simulated national population database (CSDLQG về dân cư).

SOAP 1.1, document/literal, namespace ``urn:tthc-sandbox:csdl-dan-cu:v1``, service
``DichVuDanCu`` ("population service") with two operations:

- ``TraCuuThongTinCongDan`` (look up a citizen) by ``SoDinhDanh`` (personal id), sent with the
  requester's message id ``MaYeuCau`` and unit code ``MaDonViYeuCau``; answers ``MaKetQua``
  (result code: 00 found, 01 not found, 02 invalid input), ``MoTaKetQua`` (its description),
  ``ThoiDiemDuLieu`` (the data's timestamp) and ``CongDan`` (the citizen) when found;
- ``XacThucThongTinCongDan`` (verify a citizen): does this id belong to a person with this full
  name (``HoVaTen``) and birth date (``NgayThangNamSinh``)? Answers ``KetQuaXacThuc`` (true/false).

Routes: ``POST /dancu`` (SOAP), ``GET /dancu?wsdl`` and ``GET /dancu/population.wsdl`` (the WSDL,
its address rewritten to the URL it is served at). The sandbox's admin endpoints (health, sample,
faults) are sandbox.server's.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sandbox.faults import FaultInjector, FaultOutcome, outage_response
from sandbox.registry import SimulatedSource, register
from sandbox.world import World

NAMESPACE = "urn:tthc-sandbox:csdl-dan-cu:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_PATH = "/dancu"
WSDL_FILE = Path(__file__).with_name("population.wsdl")
_WSDL_DEFAULT_ADDRESS = '"http://localhost:8000/dancu"'
_XML_MEDIA_TYPE = "text/xml; charset=utf-8"
_VIETNAM_TIME = timezone(timedelta(hours=7))
_ID_PATTERN = re.compile(r"\d{12}")
_BIRTH_DATE_PATTERN = re.compile(r"\d{4}(\d{4})?")

_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{{body}}</soap:Body></soap:Envelope>'
)
_LOOKUP_RESPONSE = (
    f'<TraCuuThongTinCongDanResponse xmlns="{NAMESPACE}">'
    "<MaKetQua>{code}</MaKetQua><MoTaKetQua>{description}</MoTaKetQua>"
    "<ThoiDiemDuLieu>{data_time}</ThoiDiemDuLieu>{citizen}</TraCuuThongTinCongDanResponse>"
)
_VERIFY_RESPONSE = (
    f'<XacThucThongTinCongDanResponse xmlns="{NAMESPACE}">'
    "<MaKetQua>{code}</MaKetQua><MoTaKetQua>{description}</MoTaKetQua>"
    "<KetQuaXacThuc>{verified}</KetQuaXacThuc></XacThucThongTinCongDanResponse>"
)
_FAULT = (
    "<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{message}</faultstring>"
    "</soap:Fault>"
)

FOUND, NOT_FOUND, INVALID = "00", "01", "02"
_DESCRIPTIONS = {
    FOUND: "Thành công",
    NOT_FOUND: "Không tìm thấy thông tin công dân",
}


class SoapClientError(Exception):
    """The request is not something this service can answer (soap:Client fault)."""


def render_element(name: str, value: Any) -> str:
    """Render a native value as XML: dicts become nested elements in their insertion order."""
    if isinstance(value, dict):
        inner = "".join(render_element(key, child) for key, child in value.items())
        return f"<{name}>{inner}</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


def soap_fault(code: str, message: str) -> Response:
    """A SOAP 1.1 fault (HTTP 500); ``code`` is ``Client`` or ``Server``."""
    body = _ENVELOPE.format(body=_FAULT.format(code=code, message=escape(message)))
    return Response(body.encode(), status_code=500, media_type=_XML_MEDIA_TYPE)


def _now_stamp() -> str:
    return datetime.now(_VIETNAM_TIME).strftime("%Y%m%d%H%M%S")


def _comparable_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


@register
class PopulationService(SimulatedSource):
    """Answers the SOAP operations from the world's population, with injected faults."""

    name = "population"
    description = "SOAP at /dancu (CSDL quốc gia về dân cư)"

    def __init__(
        self,
        world: World,
        faults: FaultInjector | None = None,
        fragment_cache_size: int = 8_192,
    ) -> None:
        super().__init__(world, faults)
        self.generator = world.population
        self.injector = self.faults
        self._parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        self._wsdl_template = WSDL_FILE.read_text(encoding="utf-8")
        self._found_response = lru_cache(maxsize=fragment_cache_size)(self._render_found)
        self._operations: dict[str, Callable[[dict[str, str]], str]] = {
            "TraCuuThongTinCongDan": self.look_up,
            "XacThucThongTinCongDan": self.verify,
        }

    def routes(self) -> list[Route]:
        return [
            Route(SOAP_PATH, self._soap_endpoint, methods=["POST"]),
            Route(SOAP_PATH, self._wsdl_query_endpoint, methods=["GET"]),
            Route(f"{SOAP_PATH}/population.wsdl", self._wsdl_endpoint, methods=["GET"]),
        ]

    def holds(self, index: int) -> bool:
        return True  # every citizen

    # -- operations ---------------------------------------------------------------------------
    def look_up(self, fields: dict[str, str]) -> str:
        """TraCuuThongTinCongDan: the response element for these request fields."""
        problem = _missing(fields, ("MaYeuCau", "MaDonViYeuCau", "SoDinhDanh"))
        personal_id = fields.get("SoDinhDanh", "")
        if problem is None and not _ID_PATTERN.fullmatch(personal_id):
            problem = (
                f"SoDinhDanh phải gồm 12 chữ số (must be 12 digits), nhận được '{personal_id}'"
            )
        if problem is not None:
            return _LOOKUP_RESPONSE.format(
                code=INVALID, description=escape(problem), data_time=_now_stamp(), citizen=""
            )
        index = self.generator.candidate_index(personal_id)
        if index is not None:
            holder, found_response = self._found_response(index)
            if holder == personal_id:
                return found_response
        return _LOOKUP_RESPONSE.format(
            code=NOT_FOUND,
            description=_DESCRIPTIONS[NOT_FOUND],
            data_time=_now_stamp(),
            citizen="",
        )

    def verify(self, fields: dict[str, str]) -> str:
        """XacThucThongTinCongDan: true when id, full name and birth date all agree."""
        code, description, verified = self._verification(fields)
        return _VERIFY_RESPONSE.format(
            code=code, description=escape(description), verified="true" if verified else "false"
        )

    def _verification(self, fields: dict[str, str]) -> tuple[str, str, bool]:
        problem = _missing(fields, ("SoDinhDanh", "HoVaTen", "NgayThangNamSinh"))
        if problem is not None:
            return INVALID, problem, False
        personal_id, birth = fields["SoDinhDanh"], fields["NgayThangNamSinh"]
        if not _ID_PATTERN.fullmatch(personal_id):
            return INVALID, f"SoDinhDanh phải gồm 12 chữ số, nhận được '{personal_id}'", False
        if not _BIRTH_DATE_PATTERN.fullmatch(birth):
            return INVALID, f"NgayThangNamSinh phải có dạng yyyyMMdd hoặc yyyy: '{birth}'", False
        index = self.generator.index_of(personal_id)
        if index is None:
            return NOT_FOUND, _DESCRIPTIONS[NOT_FOUND], False
        citizen = self.generator.get_shared(index)
        full_name = " ".join(citizen["HoVaTen"].values())
        name_agrees = _comparable_name(full_name) == _comparable_name(fields["HoVaTen"])
        born = citizen["NgayThangNamSinh"]
        recorded = born.get("NgayThangNam") or born["Nam"]
        if len(birth) == 4 or len(recorded) == 4:
            birth_agrees = birth[:4] == recorded[:4]
        else:
            birth_agrees = birth == recorded
        if name_agrees and birth_agrees:
            return FOUND, "Thông tin công dân khớp", True
        return FOUND, "Thông tin công dân không khớp", False

    def _render_found(self, index: int) -> tuple[str, str]:
        """The id of citizen ``index`` and the whole "found" response element for it."""
        citizen = self.generator.get_shared(index)
        response = _LOOKUP_RESPONSE.format(
            code=FOUND,
            description=_DESCRIPTIONS[FOUND],
            data_time=self.generator.native_data_time(index),
            citizen=render_element("CongDan", citizen),
        )
        return citizen["SoDinhDanh"], response

    # -- HTTP ---------------------------------------------------------------------------------
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
        namespace, _, name = (
            operation.tag[1:].partition("}") if "}" in operation.tag else ("", "", operation.tag)
        )
        if namespace != NAMESPACE or name not in self._operations:
            raise SoapClientError(
                f"unknown operation {operation.tag}; this service offers "
                f"{sorted(self._operations)} in namespace {NAMESPACE}"
            )
        fields = {
            child.tag.rpartition("}")[2]: (child.text or "").strip()
            for child in operation
            if isinstance(child.tag, str)
        }
        return name, fields

    async def _soap_endpoint(self, request: Request) -> Response:
        body = await request.body()
        outcome = await self.injector.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        if outcome is FaultOutcome.ERROR:
            return soap_fault(
                "Server",
                "Lỗi hệ thống CSDL dân cư, vui lòng thử lại sau "
                "(population database internal error, try again later)",
            )
        try:
            operation, fields = self.parse_request(body)
        except SoapClientError as error:
            return soap_fault("Client", f"Yêu cầu không hợp lệ (invalid request): {error}")
        payload = _ENVELOPE.format(body=self._operations[operation](fields)).encode()
        if outcome is FaultOutcome.MALFORMED:
            payload = self.injector.malform(payload)
        return Response(payload, media_type=_XML_MEDIA_TYPE)

    def wsdl_text(self, base_url: str) -> str:
        """The WSDL with its soap:address pointing at ``base_url`` + ``/dancu``."""
        address = quoteattr(base_url.rstrip("/") + SOAP_PATH)
        return self._wsdl_template.replace(_WSDL_DEFAULT_ADDRESS, address)

    async def _wsdl_endpoint(self, request: Request) -> Response:
        if self.faults.faults.outage:
            return outage_response()
        return Response(self.wsdl_text(str(request.base_url)), media_type=_XML_MEDIA_TYPE)

    async def _wsdl_query_endpoint(self, request: Request) -> Response:
        if request.url.query.lower() == "wsdl":
            return await self._wsdl_endpoint(request)
        return PlainTextResponse(
            f"POST SOAP 1.1 envelopes to {SOAP_PATH}; GET {SOAP_PATH}?wsdl for the WSDL",
            status_code=400,
        )


def _missing(fields: dict[str, str], required: tuple[str, ...]) -> str | None:
    absent = [name for name in required if not fields.get(name)]
    if absent:
        return f"Thiếu trường bắt buộc (missing required fields): {', '.join(absent)}"
    return None
