"""The REST/JSON service of the simulated driver licence database (CSDL giấy phép lái xe).

One operation, a lookup (tra cứu) by personal id, with the personal id in the JSON body and never
in the URL:

``POST /gplx/api/v1/tra-cuu`` with ``Content-Type: application/json`` and the body
``{"so_dinh_danh": "<12 digits>", "don_vi_yeu_cau": "<requesting agency>", "ma_yeu_cau":
"<request id>"}`` (personal id, requesting unit, request id: all required, non-empty strings).

The answer is a JSON object ``{"ma_loi": <int>, "thong_diep": <text>, "ma_yeu_cau": <echoed>,
"du_lieu": <licence or null>}`` (error code, message, request id, data):

- ``ma_loi`` 0, HTTP 200: found; ``du_lieu`` is the licence (see ``generator.LicenceGenerator``:
  ``so_gplx``, ``so_dinh_danh``, ``ho_ten`` in upper case as printed on the card, ``ngay_sinh``
  ``dd/mm/yyyy`` or ``yyyy`` alone when the database knows only the year, ``noi_cu_tru``,
  ``hang`` (classes of Law 36/2024) and ``hang_cu`` (classes granted before 2025, with
  ``doi_sang``, the new classes each exchanges to), ``ngay_cap``, ``noi_cap``, ``diem``,
  ``tuoc_quyen``, ``thu_hoi``, ``trang_thai``, ``ngay_du_lieu``, ``cap_nhat_luc``);
- ``ma_loi`` 404, HTTP 200: no licence for this personal id;
- ``ma_loi`` 400, HTTP 400: the request is wrong (not JSON, a field missing or malformed); the
  message names the field and the rule, never the value;
- ``ma_loi`` 415, HTTP 415: the body is not declared as JSON.

Faults (``sandbox.faults``): an outage is the front proxy's 503 page; an error is HTTP
``error_status``, with the application's JSON ``{"ma_loi": 500, ...}`` for 500 and the proxy's
HTML page for 502 and 503; a malformed answer is the JSON cut short or an HTML page, with HTTP
200.
"""

from __future__ import annotations

import re
from functools import lru_cache

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.faults import FaultInjector, FaultOutcome, outage_response, proxy_error_page
from sandbox.licence.generator import LicenceGenerator
from sandbox.registry import SimulatedSource, register
from sandbox.world import World

LOOKUP_PATH = "/gplx/api/v1/tra-cuu"
JSON_MEDIA_TYPE = "application/json"
FOUND, NOT_FOUND, INVALID, UNSUPPORTED_MEDIA, SERVER_ERROR = 0, 404, 400, 415, 500
_ID_PATTERN = re.compile(r"[0-9]{12}")
_REQUIRED = ("so_dinh_danh", "don_vi_yeu_cau", "ma_yeu_cau")


def _answer(code: int, message: str, request_id: object = None) -> bytes:
    return orjson.dumps(
        {"ma_loi": code, "thong_diep": message, "ma_yeu_cau": request_id, "du_lieu": None}
    )


class LookupRefused(Exception):
    """The request cannot be answered: its HTTP status, error code and message."""

    def __init__(self, status: int, code: int, message: str, request_id: object = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.request_id = status, code, message, request_id

    def body(self) -> bytes:
        return _answer(self.code, self.message, self.request_id)


@register
class LicenceService(SimulatedSource):
    """Answers licence lookups from the world's citizens, with injected faults."""

    name = "licence"
    description = "REST/JSON at /gplx/api/v1 (CSDL giấy phép lái xe)"

    def __init__(
        self, world: World, faults: FaultInjector | None = None, cache_size: int = 8192
    ) -> None:
        super().__init__(world, faults)
        self.generator = LicenceGenerator(world, cache_size)
        self._record_bytes = lru_cache(maxsize=cache_size)(self._render_record)

    def routes(self) -> list[Route]:
        return [Route(LOOKUP_PATH, self._lookup_endpoint, methods=["POST"])]

    def holds(self, index: int) -> bool:
        return self.generator.holds(index)

    # -- the operation ------------------------------------------------------------------------
    def look_up(self, body: bytes, content_type: str | None) -> tuple[int, bytes]:
        """The HTTP status and JSON body answering one lookup request."""
        try:
            personal_id, request_id = self._read_request(body, content_type)
        except LookupRefused as refused:
            return refused.status, refused.body()
        index = self.world.index_of(personal_id)
        record = None if index is None else self._record_bytes(index)
        if record is None:
            return 200, _answer(
                NOT_FOUND, "Không tìm thấy giấy phép lái xe của công dân", request_id
            )
        head = orjson.dumps({"ma_loi": FOUND, "thong_diep": "Thành công", "ma_yeu_cau": request_id})
        return 200, head[:-1] + b',"du_lieu":' + record + b"}"

    @staticmethod
    def _read_request(body: bytes, content_type: str | None) -> tuple[str, str]:
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            raise LookupRefused(
                415,
                UNSUPPORTED_MEDIA,
                "Content-Type phải là application/json (the body must be JSON)",
            )
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise LookupRefused(
                400, INVALID, "Nội dung yêu cầu không phải JSON hợp lệ (not well-formed JSON)"
            ) from None
        if not isinstance(fields, dict):
            raise LookupRefused(
                400, INVALID, "Nội dung yêu cầu phải là một đối tượng JSON (a JSON object)"
            )
        request_id = fields.get("ma_yeu_cau")
        echoed = request_id if isinstance(request_id, str) else None
        absent = [
            name
            for name in _REQUIRED
            if not isinstance(fields.get(name), str) or not fields[name].strip()
        ]
        if absent:
            raise LookupRefused(
                400,
                INVALID,
                "Thiếu hoặc sai kiểu trường bắt buộc (missing, empty or not text): "
                + ", ".join(absent),
                echoed,
            )
        personal_id: str = fields["so_dinh_danh"]
        request_id = fields["ma_yeu_cau"]
        if not _ID_PATTERN.fullmatch(personal_id):
            raise LookupRefused(
                400,
                INVALID,
                "so_dinh_danh phải gồm đúng 12 chữ số (must be exactly 12 digits)",
                echoed,
            )
        return personal_id, str(request_id)

    def _render_record(self, index: int) -> bytes | None:
        record = self.generator.native(index)
        return None if record is None else orjson.dumps(record)

    # -- HTTP ---------------------------------------------------------------------------------
    async def _lookup_endpoint(self, request: Request) -> Response:
        body = await request.body()
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        if outcome is FaultOutcome.ERROR:
            return self._server_error()
        status, payload = self.look_up(body, request.headers.get("content-type"))
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, status_code=status, media_type=JSON_MEDIA_TYPE)

    def _server_error(self) -> Response:
        """The application's JSON error for 500; the proxy's HTML page for 502 and 503."""
        status = self.faults.faults.error_status
        page = proxy_error_page(status)
        if page is not None:
            return page
        body = _answer(
            SERVER_ERROR,
            "Lỗi hệ thống, vui lòng thử lại sau (internal error, try again later)",
        )
        return Response(body, status_code=status, media_type=JSON_MEDIA_TYPE)
