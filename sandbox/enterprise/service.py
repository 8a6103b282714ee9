"""The REST/JSON service of the simulated national business registration database.

JSON over POST, UPPER_SNAKE names (see generator.py for the record):

- ``POST /dkdn/api/enterprise/profile`` ``{"ENTERPRISE_CODE": "0101234567"}``: the enterprise's
  whole record (hồ sơ doanh nghiệp);
- ``POST /dkdn/api/enterprise/representatives`` ``{"ENTERPRISE_CODE": ...}``: its legal
  representatives (người đại diện theo pháp luật): ``ENTERPRISE_CODE``, ``NAME`` and
  ``REPRESENTATIVES``;
- ``POST /dkdn/api/representative/enterprises`` ``{"ID_NUMBER": "001085012345"}``: the
  enterprises a citizen legally represents: ``ID_NUMBER`` and ``ENTERPRISES``, each with
  ``ENTERPRISE_CODE``, ``NAME``, ``ENTERPRISE_STATUS_ID``, ``ENTERPRISE_STATUS_NAME``,
  ``POSITION`` and ``FROM_DATE``.

A request may also carry ``REQUEST_ID`` and ``REQUESTER_CODE``; they are not checked. Every answer
is ``{"RESULT_CODE", "RESULT_MESSAGE", "DATA"}`` with HTTP 200: ``00`` found, ``01`` not found
(``DATA`` null), ``02`` invalid input (a missing field, a code that is not 10 digits with an
optional -NNN suffix or fails the MST check digit, an id that is not 12 digits). A body that is
not a JSON object is HTTP 400 with ``02``. Messages never repeat the value asked about.

Choices an integrator relies on:

- a branch code (``0101234567-001``) asked of ``profile`` or ``representatives`` is answered with
  the parent enterprise's record (a branch is not a legal person: its legal representatives are
  the enterprise's) and ``REQUESTED_BRANCH_CODE`` naming the branch, which is among
  ``BRANCHES``; a suffix the enterprise has no branch for is ``01``;
- a dissolved enterprise (status 7) still answers ``00``, its branches ceased;
- ``representative/enterprises`` for a citizen who represents no enterprise is ``00`` with an
  empty ``ENTERPRISES``: the registry answers "none", which is what a procedure checking a
  person's enterprises needs; only a malformed id is refused.

Faults: an outage is the front proxy's 503 page; a server error is HTTP ``error_status``, with
the application's JSON ``RESULT_CODE`` 99 for 500 and the gateway's HTML page for 502 and 503.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.enterprise.generator import EnterpriseRegistry
from sandbox.faults import FaultInjector, FaultOutcome, outage_response, proxy_error_page
from sandbox.registry import SimulatedSource, register
from sandbox.world import World, mst_check_digit

PREFIX = "/dkdn/api"
PROFILE_PATH = f"{PREFIX}/enterprise/profile"
REPRESENTATIVES_PATH = f"{PREFIX}/enterprise/representatives"
BY_REPRESENTATIVE_PATH = f"{PREFIX}/representative/enterprises"

FOUND, NOT_FOUND, INVALID, SYSTEM_ERROR = "00", "01", "02", "99"
_JSON = "application/json; charset=utf-8"
_CODE = re.compile(r"([0-9]{10})(?:-([0-9]{3}))?")
_PERSONAL_ID = re.compile(r"[0-9]{12}")
_MESSAGES = {
    FOUND: "Thành công",
    NOT_FOUND: "Không tìm thấy thông tin doanh nghiệp",
}


class Refused(Exception):
    """The registry answers without data: not found, or invalid input."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def answer(self) -> bytes:
        return _answer_bytes(self.code, self.message, None)


def _answer_bytes(code: str, message: str, data: Any) -> bytes:
    return orjson.dumps({"RESULT_CODE": code, "RESULT_MESSAGE": message, "DATA": data})


def _found(data: Any) -> bytes:
    return _answer_bytes(FOUND, _MESSAGES[FOUND], data)


def enterprise_code_problem(value: Any) -> str | None:
    """Why ``value`` is not an enterprise or branch code, or None (it does not quote it)."""
    if value is None or value == "":
        return "Thiếu trường bắt buộc ENTERPRISE_CODE (missing required field ENTERPRISE_CODE)"
    match = _CODE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return (
            "ENTERPRISE_CODE phải gồm 10 chữ số, chi nhánh thêm -001..-999 "
            "(must be 10 digits, a branch adds -001..-999)"
        )
    digits, suffix = match.groups()
    if mst_check_digit(digits[:9]) != int(digits[9]):
        return "ENTERPRISE_CODE sai chữ số kiểm tra (fails the MST check digit)"
    if suffix == "000":
        return "Mã chi nhánh phải từ -001 đến -999 (branch suffix must be -001..-999)"
    return None


@register
class EnterpriseService(SimulatedSource):
    """Answers the registry's JSON endpoints from the World's enterprises, with injected faults."""

    name = "enterprise"
    subject = "enterprise_code"
    description = "REST/JSON at /dkdn/api (CSDL quốc gia về đăng ký doanh nghiệp)"

    def __init__(
        self, world: World, faults: FaultInjector | None = None, answer_cache_size: int = 4096
    ) -> None:
        super().__init__(world, faults)
        self.registry = EnterpriseRegistry(world)
        self._profile_answer = lru_cache(maxsize=answer_cache_size)(self._render_profile)

    def routes(self) -> list[Route]:
        return [
            Route(PROFILE_PATH, self._endpoint(self.profile), methods=["POST"]),
            Route(REPRESENTATIVES_PATH, self._endpoint(self.representatives), methods=["POST"]),
            Route(BY_REPRESENTATIVE_PATH, self._endpoint(self.by_representative), methods=["POST"]),
        ]

    def holds(self, index: int) -> bool:
        return True  # every enterprise ever registered, dissolved ones too

    # -- operations -------------------------------------------------------------------------
    def _enterprise(self, fields: dict[str, Any]) -> tuple[int, str | None]:
        """The enterprise asked for, and the branch code when a branch was asked."""
        code = fields.get("ENTERPRISE_CODE")
        problem = enterprise_code_problem(code)
        if problem is not None:
            raise Refused(INVALID, problem)
        assert isinstance(code, str)
        index = self.registry.index_of(code)
        if index is None or ("-" in code and not self.registry.branch_exists(index, code)):
            raise Refused(NOT_FOUND, _MESSAGES[NOT_FOUND])
        return index, code if "-" in code else None

    def profile(self, fields: dict[str, Any]) -> bytes:
        return self._profile_answer(*self._enterprise(fields))

    def _render_profile(self, index: int, branch: str | None) -> bytes:
        data = self.registry.profile(index)
        if branch is not None:
            data = {**data, "REQUESTED_BRANCH_CODE": branch}
        return _found(data)

    def representatives(self, fields: dict[str, Any]) -> bytes:
        index, branch = self._enterprise(fields)
        profile = self.registry.profile(index)
        data = {
            "ENTERPRISE_CODE": profile["ENTERPRISE_CODE"],
            "NAME": profile["NAME"],
            "REPRESENTATIVES": profile["REPRESENTATIVES"],
        }
        if branch is not None:
            data["REQUESTED_BRANCH_CODE"] = branch
        return _found(data)

    def by_representative(self, fields: dict[str, Any]) -> bytes:
        personal_id = fields.get("ID_NUMBER")
        if personal_id is None or personal_id == "":
            raise Refused(
                INVALID, "Thiếu trường bắt buộc ID_NUMBER (missing required field ID_NUMBER)"
            )
        if not isinstance(personal_id, str) or not _PERSONAL_ID.fullmatch(personal_id):
            raise Refused(INVALID, "ID_NUMBER phải gồm 12 chữ số (must be 12 digits)")
        return _found(
            {"ID_NUMBER": personal_id, "ENTERPRISES": self.registry.represented_by(personal_id)}
        )

    # -- HTTP -------------------------------------------------------------------------------
    def _endpoint(
        self, operation: Callable[[dict[str, Any]], bytes]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            outcome = await self.faults.before_request(request)
            if outcome is FaultOutcome.OUTAGE:
                return outage_response()
            if outcome is FaultOutcome.ERROR:
                return self._server_error()
            try:
                fields = orjson.loads(body)
            except orjson.JSONDecodeError:
                fields = None
            if not isinstance(fields, dict):
                refusal = Refused(
                    INVALID,
                    "Dữ liệu yêu cầu phải là một đối tượng JSON "
                    "(the request body must be a JSON object)",
                )
                return Response(refusal.answer(), status_code=400, media_type=_JSON)
            try:
                payload = operation(fields)
            except Refused as refused:
                payload = refused.answer()
            if outcome is FaultOutcome.MALFORMED:
                payload = self.faults.malform(payload)
            return Response(payload, media_type=_JSON)

        return endpoint

    def _server_error(self) -> Response:
        status = self.faults.faults.error_status
        if status == 500:
            body = _answer_bytes(
                SYSTEM_ERROR,
                "Lỗi hệ thống, vui lòng thử lại sau (internal error, try again later)",
                None,
            )
            return Response(body, status_code=500, media_type=_JSON)
        page = proxy_error_page(status)
        assert page is not None  # Faults allows 500, 502 and 503 only
        return page
