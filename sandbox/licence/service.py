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

The change feed and the revocation (see ``changes.py`` for the changes and their fields):

- ``GET /gplx/api/v1/thay-doi?sau_so=<last so_thu_tu read, empty: from the start>&so_luong=
  <1..1000>`` answers ``{"ma_loi": 0, "thong_diep", "du_lieu": {"thay_doi": [{"so_thu_tu",
  "loai_thay_doi", "so_gplx", "thoi_diem" (dd/MM/yyyy HH:mm:ss, Vietnam time), ...the change's
  fields}], "con_nua" (more follow), "so_cuoi" (the feed's last so_thu_tu)}}``; ``ma_loi`` 400
  (HTTP 400) for a bad parameter;
- ``POST /gplx/api/v1/thu-hoi`` with the header ``Idempotency-Key`` and ``{"so_dinh_danh",
  "ngay_thu_hoi" (dd/MM/yyyy), "ly_do", "can_cu" (the basis: the death registration),
  "don_vi_yeu_cau", "ma_yeu_cau"}`` revokes every licence of the holder: ``ma_loi`` 0 with
  ``du_lieu`` ``{"so_dinh_danh", "thu_hoi": [{"so_gplx", "ngay", "so_thu_tu"}],
  "da_xu_ly_truoc_do"}`` (true: this key was applied already, the first answer again), 404 when
  the holder has no licence, 400 for a bad request. The lookup then shows the licence revoked.
- ``record("suspend", {"so_dinh_danh", "tu_ngay", "den_ngay", "so_quyet_dinh"})``: an officer's
  suspension (served by the sandbox's admin route); the lookup then shows it.

Faults (``sandbox.faults``): an outage is the front proxy's 503 page; an error is HTTP
``error_status``, with the application's JSON ``{"ma_loi": 500, ...}`` for 500 and the proxy's
HTML page for 502 and 503; a malformed answer is the JSON cut short or an HTML page, with HTTP
200.
"""

from __future__ import annotations

import random
import re
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.changes import Change, SandboxState, feed_cursor, vietnam_now
from sandbox.faults import FaultInjector, FaultOutcome, outage_response, proxy_error_page
from sandbox.licence.changes import (
    DEATH_REASON,
    SUSPENDED,
    LicenceChanges,
    NoLicence,
    native_date,
    revoked_record,
)
from sandbox.licence.generator import LicenceGenerator
from sandbox.registry import SimulatedSource, register
from sandbox.world import World

LOOKUP_PATH = "/gplx/api/v1/tra-cuu"
FEED_PATH = "/gplx/api/v1/thay-doi"
REVOKE_PATH = "/gplx/api/v1/thu-hoi"
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
        self.feed = LicenceChanges(world, self.generator)
        self.facts: dict[str, Any] = self.state.of(self.name)

    def routes(self) -> list[Route]:
        return [
            Route(LOOKUP_PATH, self._lookup_endpoint, methods=["POST"]),
            Route(FEED_PATH, self._feed_endpoint, methods=["GET"]),
            Route(REVOKE_PATH, self._revoke_endpoint, methods=["POST"]),
        ]

    # -- the change feed, the revocation, an officer's suspension ------------------------------
    recordable = ("suspend",)

    def enable_changes(self, backlog: int, state: SandboxState) -> None:
        super().enable_changes(backlog, state)
        self.facts = state.of(self.name)

    def backlog_change(self, sequence: int) -> Change | None:
        return self.feed.backlog_change(sequence)

    def live_change(self, rng: random.Random) -> Change | None:
        return self.feed.live_change(rng)

    def feed_page(self, after: int, limit: int) -> dict[str, Any]:
        changes, more = self.changes.page(after, limit)
        items = [
            {
                "so_thu_tu": change.sequence,
                "loai_thay_doi": change.kind,
                "so_gplx": change.entity,
                "thoi_diem": change.occurred_at.strftime("%d/%m/%Y %H:%M:%S"),
                **change.data,
            }
            for change in changes
        ]
        return {
            "ma_loi": FOUND,
            "thong_diep": "Thành công",
            "du_lieu": {"thay_doi": items, "con_nua": more, "so_cuoi": self.changes.head},
        }

    def revoke(self, key: str, body: bytes, content_type: str | None) -> tuple[int, bytes]:
        """The HTTP status and answer of a revocation (applied once per idempotency key)."""
        try:
            fields = _json_fields(body, content_type)
            personal_id = _personal_id(fields)
            day = _date_field(fields, "ngay_thu_hoi")
            reason = str(fields.get("ly_do") or DEATH_REASON)
            basis = str(fields.get("can_cu") or "")
            if not key or len(key) > 200:
                raise LookupRefused(
                    400,
                    INVALID,
                    "Thiếu tiêu đề Idempotency-Key (an Idempotency-Key header is required)",
                )
        except LookupRefused as refused:
            return refused.status, refused.body()
        request_id = fields.get("ma_yeu_cau")

        def apply() -> dict[str, Any]:
            with self.state.lock:
                return self.feed.revoke_licences(
                    self.facts, self.changes, personal_id, day, reason, basis
                )

        try:
            first, result = self.state.once(self.name, key, "revoke_licences", apply)
        except NoLicence:
            return 200, _answer(
                NOT_FOUND, "Không tìm thấy giấy phép lái xe của công dân", request_id
            )
        return 200, orjson.dumps(
            {
                "ma_loi": FOUND,
                "thong_diep": "Thành công",
                "ma_yeu_cau": request_id,
                "du_lieu": {**result, "da_xu_ly_truoc_do": not first},
            }
        )

    def record(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``suspend``: a suspension an officer records (tước quyền sử dụng)."""
        if kind != "suspend":
            return super().record(kind, body)
        personal_id = body.get("so_dinh_danh")
        if not isinstance(personal_id, str) or not _ID_PATTERN.fullmatch(personal_id):
            raise ValueError("so_dinh_danh must be 12 digits")
        index = self.world.index_of(personal_id)
        licence = None if index is None else self.generator.licence(index)
        if licence is None:
            raise ValueError("no licence for this so_dinh_danh")
        try:
            start = _date_field(body, "tu_ngay")
            end = _date_field(body, "den_ngay")
        except LookupRefused as refused:
            raise ValueError(refused.message) from None
        decision = str(body.get("so_quyet_dinh") or "1/QĐ-CSGT")
        with self.state.lock:
            self.facts.setdefault("suspended", {})[personal_id] = {
                "tu_ngay": native_date(start),
                "den_ngay": native_date(end),
                "so_quyet_dinh": decision,
                "at": vietnam_now(),
            }
            change = self.changes.append(
                SUSPENDED,
                licence.number,
                {
                    "so_dinh_danh": personal_id,
                    "ngay_hieu_luc": native_date(start),
                    "den_ngay": native_date(end),
                    "so_quyet_dinh": decision,
                },
            )
        return {"so_thu_tu": change.sequence, "so_gplx": licence.number}

    def _updated_record(self, personal_id: str, record: bytes) -> bytes:
        """The record as the updates left it (a revocation, a suspension)."""
        with self.state.lock:
            revocation = self.facts.get("revoked", {}).get(personal_id)
            suspension = self.facts.get("suspended", {}).get(personal_id)
        if revocation is None and suspension is None:
            return record
        native = orjson.loads(record)
        if suspension is not None:
            native["tuoc_quyen"] = {
                key: suspension[key] for key in ("tu_ngay", "den_ngay", "so_quyet_dinh")
            }
            native["trang_thai"] = "bi_tuoc_quyen"
            native["cap_nhat_luc"] = suspension["at"].strftime("%d/%m/%Y %H:%M:%S")
            native["ngay_du_lieu"] = suspension["at"].strftime("%d/%m/%Y")  # data as of then
        if revocation is not None:
            native = revoked_record(native, revocation)
        return orjson.dumps(native)

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
        if record is not None and self.facts:
            record = self._updated_record(personal_id, record)
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

    async def _feed_endpoint(self, request: Request) -> Response:
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        if outcome is FaultOutcome.ERROR:
            return self._server_error()
        try:
            after, limit = feed_cursor(request.query_params, "sau_so", "so_luong")
        except ValueError as error:
            return Response(
                _answer(INVALID, str(error)), status_code=400, media_type=JSON_MEDIA_TYPE
            )
        payload = orjson.dumps(self.feed_page(after, limit))
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, media_type=JSON_MEDIA_TYPE)

    async def _revoke_endpoint(self, request: Request) -> Response:
        body = await request.body()
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        if outcome is FaultOutcome.ERROR:
            return self._server_error()
        key = request.headers.get("idempotency-key", "").strip()
        status, payload = self.revoke(key, body, request.headers.get("content-type"))
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


def _json_fields(body: bytes, content_type: str | None) -> dict[str, Any]:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise LookupRefused(
            415, UNSUPPORTED_MEDIA, "Content-Type phải là application/json (the body must be JSON)"
        )
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        fields = None
    if not isinstance(fields, dict):
        raise LookupRefused(
            400, INVALID, "Nội dung yêu cầu phải là một đối tượng JSON (a JSON object)"
        )
    return fields


def _personal_id(fields: dict[str, Any]) -> str:
    personal_id = fields.get("so_dinh_danh")
    if not isinstance(personal_id, str) or not _ID_PATTERN.fullmatch(personal_id):
        raise LookupRefused(
            400, INVALID, "so_dinh_danh phải gồm đúng 12 chữ số (must be exactly 12 digits)"
        )
    return personal_id


def _date_field(fields: dict[str, Any], name: str) -> date:
    value = fields.get(name)
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        raise LookupRefused(
            400, INVALID, f"{name} phải có dạng dd/mm/yyyy (must be dd/mm/yyyy)"
        ) from None
