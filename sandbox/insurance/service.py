"""The REST/JSON service of the simulated social insurance database (Vietnam Social Security).

JSON over POST with camelCase Vietnamese names, behind a token login:

- ``POST /bhxh/api/token`` with ``{"username": ..., "password": ...}`` answers
  ``{"access_token": ..., "token_type": "Bearer", "expires_in": <seconds>}``; wrong credentials
  are HTTP 401, a body that is not such an object HTTP 400, both with an OAuth-style
  ``{"error": ..., "error_description": ...}``. The credentials are the sandbox's own: by
  default ``tthc-bus`` / ``sandbox-secret``, or ``SANDBOX_BHXH_USERNAME`` /
  ``SANDBOX_BHXH_PASSWORD`` from the environment; a token lasts ``SANDBOX_BHXH_TOKEN_TTL_S``
  (default 3600) seconds.
- ``POST /bhxh/api/tra-cuu/qua-trinh-tham-gia`` (look up the participation and contribution
  history) and ``POST /bhxh/api/tra-cuu/the-bhyt`` (look up the health insurance card) need
  ``Authorization: Bearer <token>``: without it, or with an unknown or expired one, HTTP 401 with
  ``WWW-Authenticate: Bearer error="invalid_token"`` and an OAuth-style JSON body. The request is
  ``{"soDinhDanh": <12-digit personal id>, "maDonVi": <requesting agency>, "maYeuCau": <request
  id>}``; the answer ``{"maKetQua", "moTa", "maYeuCau", "thoiDiemDuLieu", "duLieu"}``: result
  code ``0`` found (HTTP 200, ``duLieu`` the record, ``thoiDiemDuLieu`` when it last changed,
  ``dd/MM/yyyy HH:mm:ss`` Vietnam time), ``1`` not found (HTTP 200, no ``duLieu``), ``2`` invalid
  input (HTTP 400: not a JSON object, a field missing, the id not 12 digits).

The records (see ``generator.py``): ``maSoBHXH`` (10 digits), ``soDinhDanh``, ``hoTen`` (in UPPER
CASE: this database writes every name so, employers' and facilities' too), ``ngaySinh``
(``dd/MM/yyyy``, or ``yyyy`` when only the year is known), ``gioiTinh`` (1 male, 2 female; absent
when undetermined), ``diaChi`` with ``maXa``/``maTinh`` (the commune and its old province code).
Participation adds ``trangThaiThamGia`` (0 never, 1 participating, 2 paused, 3 stopped),
``lyDoDung`` and ``ngayDung`` when stopped (1 death, 2 pension, 3 lump sum), ``tongSoThang`` and
``quaTrinhThamGia`` (periods: ``tuThang``/``denThang`` ``MM/yyyy``, null while open, ``soThang``,
``maSoThue`` and ``tenDonVi`` of the employer, ``mucLuong`` VND, ``loaiDong`` BB compulsory or TN
voluntary). The card adds ``maThe``, its parts ``maDoiTuong``, ``mucHuong``, ``maTinhCapThe``,
``gtTheTu``/``gtTheDen``, ``noiDKBD`` {``maCSKCB``, ``tenCSKCB``} and ``conGiaTri`` (valid on the
snapshot day).

The change feed and updates (see ``changes.py`` for the changes and their fields), with the
same bearer token:

- ``GET /bhxh/api/bien-dong?sau=<last soThuTu read, empty: from the start>&soLuong=<1..1000>``
  answers ``{"maKetQua": "0", "moTa", "duLieu": [{"soThuTu", "loaiBienDong", "soDinhDanh",
  "thoiDiemGhiNhan" (dd/MM/yyyy HH:mm:ss, Vietnam time), ...the change's fields}], "conTiep"
  (more follow), "soThuTuCuoi" (the feed's last soThuTu)}``; a bad parameter is ``2`` (HTTP 400);
- ``POST /bhxh/api/cap-nhat/dung-tham-gia`` (stop participation after a death) and
  ``POST /bhxh/api/cap-nhat/mo-ho-so-mai-tang`` (open a funeral-allowance case) take
  ``{"soDinhDanh", "ngayChet" (dd/MM/yyyy), "soGiayChungTu" (the death registration), "maDonVi"}``;
  ``POST /bhxh/api/cap-nhat/cap-the-tre-em`` (a child's health card) takes ``{"soDinhDanh",
  "hoTen", "ngaySinh" (dd/MM/yyyy), "gioiTinh" (1, 2), "maDonVi"}``. Each needs the header
  ``Idempotency-Key``: an update sent again with the same key is applied once and answered as the
  first time, with ``"daXuLyTruocDo": true`` (already done). Answer ``{"maKetQua": "0", "moTa",
  "daXuLyTruocDo", "duLieu": {..., "soThuTu" of the change it appended}}``; ``1`` (HTTP 200) when
  the database holds no record of the person; ``2`` (HTTP 400) for a bad request. A person's
  death stops them once and opens one case, a child gets one card, whatever the key: asked again
  under another key, the database answers what it did the first time and records nothing new.

Faults (sandbox.faults) apply to every route: an outage is the front proxy's 503 page; an error
is HTTP 500 with the application's JSON (``maKetQua`` 9), or the proxy's 502/503 HTML page.
"""

from __future__ import annotations

import hmac
import os
import random
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.changes import Change, SandboxState, feed_cursor
from sandbox.faults import FaultInjector, FaultOutcome, outage_response, proxy_error_page
from sandbox.insurance.changes import (
    InsuranceChanges,
    NotInsured,
    ended_card,
    read_native_date,
    stopped_participation,
)
from sandbox.insurance.generator import InsuranceGenerator, Insured
from sandbox.registry import SimulatedSource, register
from sandbox.world import World

PREFIX = "/bhxh/api"
TOKEN_PATH = f"{PREFIX}/token"
PARTICIPATION_PATH = f"{PREFIX}/tra-cuu/qua-trinh-tham-gia"
HEALTH_CARD_PATH = f"{PREFIX}/tra-cuu/the-bhyt"
FEED_PATH = f"{PREFIX}/bien-dong"
STOP_PATH = f"{PREFIX}/cap-nhat/dung-tham-gia"
FUNERAL_PATH = f"{PREFIX}/cap-nhat/mo-ho-so-mai-tang"
CHILD_CARD_PATH = f"{PREFIX}/cap-nhat/cap-the-tre-em"
DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_TOKEN_TTL_S = "tthc-bus", "sandbox-secret", 3600.0
FOUND, NOT_FOUND, INVALID, SYSTEM_ERROR = "0", "1", "2", "9"
MAX_REQUEST_BYTES = 16 * 1024
MAX_TOKENS = 10_000
_ID_PATTERN = re.compile(r"[0-9]{12}")
_REQUIRED = ("soDinhDanh", "maDonVi", "maYeuCau")
_JSON = "application/json"
_FOUND_HEAD = f'{{"maKetQua":"{FOUND}","moTa":"Thành công","maYeuCau":'.encode()
_NOT_FOUND_WORDS = {
    PARTICIPATION_PATH: "Không tìm thấy thông tin tham gia BHXH (no social insurance record)",
    HEALTH_CARD_PATH: "Không tìm thấy thẻ BHYT (no health insurance card)",
}


class InvalidRequest(Exception):
    """The request cannot be answered: result code 2, with these words."""


class TokenStore:
    """Bearer tokens issued by the login, each until its expiry (monotonic seconds)."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            self._expiry[token] = now + self.lifetime_s
            while len(self._expiry) > MAX_TOKENS:  # the oldest go first
                self._expiry.popitem(last=False)
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(token)
            if expiry is None:
                return False
            if expiry <= time.monotonic():
                del self._expiry[token]
                return False
            return True

    def revoke_all(self) -> None:
        with self._lock:
            self._expiry.clear()


def json_response(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON, headers=headers)


def _auth_error(description: str) -> Response:
    return json_response(
        {"error": "invalid_token", "error_description": description},
        401,
        **{"WWW-Authenticate": 'Bearer realm="bhxh", error="invalid_token"'},
    )


@register
class InsuranceService(SimulatedSource):
    """Answers the lookups from the world's insured, behind a token login, with faults."""

    name = "insurance"
    description = "REST/JSON at /bhxh/api (CSDL quốc gia về bảo hiểm, BHXH Việt Nam)"

    def __init__(
        self,
        world: World,
        faults: FaultInjector | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        token_lifetime_s: float | None = None,
        cache_size: int = 8192,
    ) -> None:
        super().__init__(world, faults)
        self.generator = InsuranceGenerator(world, cache_size)
        self.username = username or os.environ.get("SANDBOX_BHXH_USERNAME", DEFAULT_USERNAME)
        self.password = password or os.environ.get("SANDBOX_BHXH_PASSWORD", DEFAULT_PASSWORD)
        lifetime = token_lifetime_s or float(
            os.environ.get("SANDBOX_BHXH_TOKEN_TTL_S", DEFAULT_TOKEN_TTL_S)
        )
        self.tokens = TokenStore(lifetime)
        self.feed = InsuranceChanges(world, self.generator)
        self.facts: dict[str, Any] = self.state.of(self.name)
        self._renderers: dict[str, Callable[[int], tuple[str, bytes, str] | None]] = {
            PARTICIPATION_PATH: lru_cache(maxsize=cache_size)(self._render_participation),
            HEALTH_CARD_PATH: lru_cache(maxsize=cache_size)(self._render_health_card),
        }

    def routes(self) -> list[Route]:
        return [
            Route(TOKEN_PATH, self._token_endpoint, methods=["POST"]),
            Route(PARTICIPATION_PATH, self._lookup_endpoint, methods=["POST"]),
            Route(HEALTH_CARD_PATH, self._lookup_endpoint, methods=["POST"]),
            Route(FEED_PATH, self._feed_endpoint, methods=["GET"]),
            Route(STOP_PATH, self._update_endpoint, methods=["POST"]),
            Route(FUNERAL_PATH, self._update_endpoint, methods=["POST"]),
            Route(CHILD_CARD_PATH, self._update_endpoint, methods=["POST"]),
        ]

    # -- the change feed and updates ----------------------------------------------------------
    def enable_changes(self, backlog: int, state: SandboxState) -> None:
        super().enable_changes(backlog, state)
        self.facts = state.of(self.name)

    def backlog_change(self, sequence: int) -> Change | None:
        return self.feed.backlog_change(sequence)

    def live_change(self, rng: random.Random) -> Change | None:
        return self.feed.live_change(rng)

    def feed_page(self, after: int, limit: int) -> dict[str, Any]:
        """The feed's answer: up to ``limit`` changes after ``after``."""
        changes, more = self.changes.page(after, limit)
        return {
            "maKetQua": FOUND,
            "moTa": "Thành công",
            "duLieu": [
                {
                    "soThuTu": change.sequence,
                    "loaiBienDong": change.kind,
                    "soDinhDanh": change.entity,
                    "thoiDiemGhiNhan": change.occurred_at.strftime("%d/%m/%Y %H:%M:%S"),
                    **change.data,
                }
                for change in changes
            ],
            "conTiep": more,
            "soThuTuCuoi": self.changes.head,
        }

    def apply_update(self, path: str, key: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The HTTP status and answer of one update (applied once per idempotency key)."""
        fields = _json_object(body)
        personal_id = fields.get("soDinhDanh")
        if not isinstance(personal_id, str) or not _ID_PATTERN.fullmatch(personal_id):
            raise InvalidRequest("soDinhDanh phải gồm 12 chữ số (must be 12 digits)")
        apply = self._update_of(path, personal_id, fields)
        try:
            first, result = self.state.once(self.name, key, path, apply)
        except NotInsured:
            return 200, {"maKetQua": NOT_FOUND, "moTa": _NOT_FOUND_WORDS[PARTICIPATION_PATH]}
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
        return 200, {
            "maKetQua": FOUND,
            "moTa": "Thành công",
            "daXuLyTruocDo": not first,
            "duLieu": result,
        }

    def _update_of(
        self, path: str, personal_id: str, fields: dict[str, Any]
    ) -> Callable[[], dict[str, Any]]:
        """The update a request asks for, checked, to be applied (once) later."""
        log = self.changes
        if path == CHILD_CARD_PATH:
            name = fields.get("hoTen")
            if not isinstance(name, str) or not name.strip():
                raise InvalidRequest("Thiếu trường bắt buộc (missing required field): hoTen")
            child = {
                "soDinhDanh": personal_id,
                "hoTen": name,
                "ngaySinh": _date_field(fields, "ngaySinh"),
                "gioiTinh": fields.get("gioiTinh"),
            }
            return lambda: self.feed.issue_child_health_card(self.facts, log, child)
        died = _date_field(fields, "ngayChet")
        if path == FUNERAL_PATH:
            return lambda: self.feed.open_funeral_case(self.facts, log, personal_id, died)
        proof = str(fields.get("soGiayChungTu") or "")
        return lambda: self.feed.stop_participation(self.facts, log, personal_id, died, proof)

    def holds(self, index: int) -> bool:
        """Whoever has (or had) an insured job or a health insurance card."""
        return self.generator.insured(index) is not None

    # -- records ------------------------------------------------------------------------------
    def _render_participation(self, index: int) -> tuple[str, bytes, str] | None:
        insured = self.generator.insured(index)
        if insured is None:
            return None
        return self._rendered(insured, self.generator.participation(insured))

    def _render_health_card(self, index: int) -> tuple[str, bytes, str] | None:
        insured = self.generator.insured(index)
        record = None if insured is None else self.generator.health_card(insured)
        if insured is None or record is None:
            return None
        return self._rendered(insured, record)

    def _rendered(self, insured: Insured, record: dict[str, Any]) -> tuple[str, bytes, str]:
        """The holder's id, the record as JSON, and when it last changed."""
        updated = insured.updated.strftime("%d/%m/%Y %H:%M:%S")
        return record["soDinhDanh"], orjson.dumps(record), updated

    def answer(self, path: str, fields: dict[str, str]) -> bytes:
        """The JSON answer of a lookup whose request is valid."""
        personal_id = fields["soDinhDanh"]
        request_id = orjson.dumps(fields["maYeuCau"])
        if self.facts:
            overlay = self._updated_answer(path, personal_id)
            if overlay is not None:
                changed, changed_at = overlay
                return orjson.dumps(
                    {
                        "maKetQua": FOUND,
                        "moTa": "Thành công",
                        "maYeuCau": fields["maYeuCau"],
                        "thoiDiemDuLieu": changed_at.strftime("%d/%m/%Y %H:%M:%S"),
                        "duLieu": changed,
                    }
                )
        index = self.world.population.candidate_index(personal_id)
        rendered = None if index is None else self._renderers[path](index)
        if rendered is None or rendered[0] != personal_id:
            return orjson.dumps(
                {
                    "maKetQua": NOT_FOUND,
                    "moTa": _NOT_FOUND_WORDS[path],
                    "maYeuCau": fields["maYeuCau"],
                }
            )
        _, record, updated = rendered
        return b"".join(
            (
                _FOUND_HEAD,
                request_id,
                b',"thoiDiemDuLieu":"',
                updated.encode(),
                b'","duLieu":',
                record,
                b"}",
            )
        )

    def _updated_answer(
        self, path: str, personal_id: str
    ) -> tuple[dict[str, Any], datetime] | None:
        """The record an update changed, and when; None: the generated record stands."""
        with self.state.lock:
            card = self.facts.get("cards", {}).get(personal_id)
            stop = self.facts.get("stopped", {}).get(personal_id)
        if path == HEALTH_CARD_PATH and card is not None:
            return card["record"], card["at"]
        if stop is None:
            return None
        insured = self.feed.insured_of(personal_id)
        if path == HEALTH_CARD_PATH:
            held = self.generator.health_card(insured)
            return None if held is None else (ended_card(held, stop), stop["at"])
        record = stopped_participation(self.generator.participation(insured), stop)
        return record, stop["at"]

    # -- HTTP ---------------------------------------------------------------------------------
    @staticmethod
    def parse_lookup(body: bytes) -> dict[str, str]:
        """The lookup's fields, or InvalidRequest naming what is wrong (never a value)."""
        if len(body) > MAX_REQUEST_BYTES:
            raise InvalidRequest(f"Yêu cầu quá lớn (request over {MAX_REQUEST_BYTES} bytes)")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("Yêu cầu không phải JSON hợp lệ (not well-formed JSON)") from None
        if not isinstance(data, dict):
            raise InvalidRequest("Yêu cầu phải là một đối tượng JSON (must be a JSON object)")
        missing = [
            name for name in _REQUIRED if not isinstance(data.get(name), str) or not data[name]
        ]
        if missing:
            raise InvalidRequest(
                f"Thiếu trường bắt buộc (missing required fields): {', '.join(missing)}"
            )
        if not _ID_PATTERN.fullmatch(data["soDinhDanh"]):
            raise InvalidRequest("soDinhDanh phải gồm 12 chữ số (must be 12 digits)")
        return {name: data[name] for name in _REQUIRED}

    def _authorized(self, request: Request) -> Response | None:
        """None for a valid bearer token, else the 401 answer."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _auth_error("Thiếu access token (an Authorization: Bearer token is required)")
        if not self.tokens.valid(token.strip()):
            return _auth_error("Token không hợp lệ hoặc đã hết hạn (invalid or expired token)")
        return None

    def _error_response(self) -> Response:
        status = self.faults.faults.error_status
        page = proxy_error_page(status)
        if page is not None:
            return page
        return json_response(
            {
                "maKetQua": SYSTEM_ERROR,
                "moTa": "Lỗi hệ thống, vui lòng thử lại sau (internal error, try again later)",
            },
            status,
        )

    async def _lookup_endpoint(self, request: Request) -> Response:
        body = await request.body()
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        refused = self._authorized(request)
        if refused is not None:
            return refused
        if outcome is FaultOutcome.ERROR:
            return self._error_response()
        try:
            fields = self.parse_lookup(body)
        except InvalidRequest as error:
            return json_response({"maKetQua": INVALID, "moTa": str(error)}, 400)
        payload = self.answer(request.url.path, fields)
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, media_type=_JSON)

    async def _feed_endpoint(self, request: Request) -> Response:
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        refused = self._authorized(request)
        if refused is not None:
            return refused
        if outcome is FaultOutcome.ERROR:
            return self._error_response()
        try:
            after, limit = feed_cursor(request.query_params, "sau", "soLuong")
        except ValueError as error:
            return json_response({"maKetQua": INVALID, "moTa": str(error)}, 400)
        payload = orjson.dumps(self.feed_page(after, limit))
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, media_type=_JSON)

    async def _update_endpoint(self, request: Request) -> Response:
        body = await request.body()
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        refused = self._authorized(request)
        if refused is not None:
            return refused
        if outcome is FaultOutcome.ERROR:
            return self._error_response()
        key = request.headers.get("idempotency-key", "").strip()
        try:
            if not key or len(key) > 200:
                raise InvalidRequest(
                    "Thiếu tiêu đề Idempotency-Key (an Idempotency-Key header is required)"
                )
            status, answer = self.apply_update(request.url.path, key, body)
        except InvalidRequest as error:
            return json_response({"maKetQua": INVALID, "moTa": str(error)}, 400)
        payload = orjson.dumps(answer)
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, status_code=status, media_type=_JSON)

    async def _token_endpoint(self, request: Request) -> Response:
        body = await request.body()
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        if outcome is FaultOutcome.ERROR:
            return self._error_response()
        try:
            data = orjson.loads(body) if len(body) <= MAX_REQUEST_BYTES else None
        except orjson.JSONDecodeError:
            data = None
        username = data.get("username") if isinstance(data, dict) else None
        password = data.get("password") if isinstance(data, dict) else None
        if not isinstance(username, str) or not isinstance(password, str):
            return json_response(
                {
                    "error": "invalid_request",
                    "error_description": "Cần username và password (a JSON object with "
                    "username and password is required)",
                },
                400,
            )
        agrees = hmac.compare_digest(username.encode(), self.username.encode())
        agrees &= hmac.compare_digest(password.encode(), self.password.encode())
        if not agrees:
            return json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "Sai tên đăng nhập hoặc mật khẩu (wrong credentials)",
                },
                401,
            )
        payload = orjson.dumps(
            {
                "access_token": self.tokens.issue(),
                "token_type": "Bearer",
                "expires_in": int(self.tokens.lifetime_s),
            }
        )
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, media_type=_JSON)


def _json_object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_REQUEST_BYTES:
        raise InvalidRequest(f"Yêu cầu quá lớn (request over {MAX_REQUEST_BYTES} bytes)")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Yêu cầu không phải JSON hợp lệ (not well-formed JSON)") from None
    if not isinstance(data, dict):
        raise InvalidRequest("Yêu cầu phải là một đối tượng JSON (must be a JSON object)")
    return data


def _date_field(fields: dict[str, Any], name: str) -> Any:
    try:
        return read_native_date(fields.get(name), name)
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
