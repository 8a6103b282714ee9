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

The change feed: ``GET /dkdn/api/changes?AFTER_SEQ=<last SEQ read, empty: from the
start>&LIMIT=<1..1000>`` answers ``{"RESULT_CODE": "00", "RESULT_MESSAGE", "DATA": {"CHANGES":
[{"SEQ", "CHANGE_TYPE": "STATUS_CHANGE", "ENTERPRISE_CODE", "ENTERPRISE_STATUS_ID",
"PREVIOUS_STATUS_ID" (null for the first status, at the founding), "EFFECTIVE_DATE"
(dd/MM/yyyy), "CHANGED_AT" (yyyy-MM-dd HH:mm:ss, Vietnam time)}], "HAS_MORE", "LAST_SEQ"}}``;
a bad parameter is ``02`` with HTTP 400. The backlog's change ``s`` is one step of the legal
status history of an enterprise drawn from ``(seed, s)``, ending at the status its profile
shows. ``record("status", {"ENTERPRISE_CODE", "ENTERPRISE_STATUS_ID", "EFFECTIVE_DATE"})`` is a
status change an officer records (served by the sandbox's admin route): the profile then shows
it. The registry accepts no updates from other agencies.

Faults: an outage is the front proxy's 503 page; a server error is HTTP ``error_status``, with
the application's JSON ``RESULT_CODE`` 99 for 500 and the gateway's HTML page for 502 and 503.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.changes import Change, SandboxState, backlog_time, feed_cursor, vietnam_now
from sandbox.enterprise.generator import (
    ENTERPRISE_STATUSES,
    OPERATING,
    EnterpriseRegistry,
)
from sandbox.faults import FaultInjector, FaultOutcome, outage_response, proxy_error_page
from sandbox.registry import SimulatedSource, register
from sandbox.world import SNAPSHOT, World, mst_check_digit

PREFIX = "/dkdn/api"
PROFILE_PATH = f"{PREFIX}/enterprise/profile"
REPRESENTATIVES_PATH = f"{PREFIX}/enterprise/representatives"
BY_REPRESENTATIVE_PATH = f"{PREFIX}/representative/enterprises"
CHANGES_PATH = f"{PREFIX}/changes"
STATUS_CHANGE = "STATUS_CHANGE"
_FEED_STREAM, _BACKLOG_STREAM = 0xDD0F, 0xDD10  # an enterprise's history; a change's draw
# The statuses an enterprise passes through on its way to its current one (from operating).
_PATHS_TO: dict[int, tuple[int, ...]] = {
    1: (),
    2: (2,),
    3: (3,),
    4: (3, 4),
    5: (5,),
    6: (6,),
    7: (5, 7),
}
# A live change: from a status, the statuses it may go to.
_NEXT: dict[int, tuple[int, ...]] = {
    1: (2, 2, 2, 3, 5),
    2: (1, 1, 5),
    3: (1, 4),
    4: (1, 5),
    5: (7, 1),
    6: (7,),
    7: (),
}

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
        self.facts: dict[str, Any] = self.state.of(self.name)

    def routes(self) -> list[Route]:
        return [
            Route(CHANGES_PATH, self._changes_endpoint, methods=["GET"]),
            Route(PROFILE_PATH, self._endpoint(self.profile), methods=["POST"]),
            Route(REPRESENTATIVES_PATH, self._endpoint(self.representatives), methods=["POST"]),
            Route(BY_REPRESENTATIVE_PATH, self._endpoint(self.by_representative), methods=["POST"]),
        ]

    def holds(self, index: int) -> bool:
        return True  # every enterprise ever registered, dissolved ones too

    # -- the change feed ---------------------------------------------------------------------
    recordable = ("status",)

    def enable_changes(self, backlog: int, state: SandboxState) -> None:
        super().enable_changes(backlog, state)
        self.facts = state.of(self.name)

    def status_history(self, index: int) -> list[tuple[int | None, int, date]]:
        """(previous status, status, day) of each status change of enterprise ``index``, from
        its founding (operating) to the status its profile shows, in order."""
        facts = self.world.enterprise(index)
        rng = self.world.rng(_FEED_STREAM, index)
        history: list[tuple[int | None, int, date]] = [(None, OPERATING, facts.founded)]
        steps = _PATHS_TO[facts.status]
        if not steps and rng.random() < 0.25 and facts.founded < SNAPSHOT:  # paused, resumed
            steps = (2, 1)
        day, previous = facts.founded, OPERATING
        for step in steps:
            span = max(1, (SNAPSHOT - day).days // 2)
            day = min(SNAPSHOT, day + timedelta(days=rng.randint(1, span)))
            history.append((previous, step, day))
            previous = step
        return history

    def backlog_change(self, sequence: int) -> Change | None:
        rng = self.world.rng(_BACKLOG_STREAM, sequence)
        index = rng.randrange(self.world.enterprise_count)
        previous, status, day = rng.choice(self.status_history(index))
        return self._status_change(
            sequence, index, previous, status, day, backlog_time(sequence, rng)
        )

    def live_change(self, rng: random.Random) -> Change | None:
        index = rng.randrange(self.world.enterprise_count)
        previous = self.current_status(index)
        options = _NEXT[previous]
        if not options:
            return None
        now = vietnam_now()
        return self._status_change(0, index, previous, rng.choice(options), now.date(), now)

    def _status_change(
        self,
        sequence: int,
        index: int,
        previous: int | None,
        status: int,
        day: date,
        at: datetime,
    ) -> Change:
        code = self.world.enterprise_code(index)
        data = {
            "ENTERPRISE_STATUS_ID": status,
            "PREVIOUS_STATUS_ID": previous,
            "EFFECTIVE_DATE": day.strftime("%d/%m/%Y"),
        }
        return Change(sequence, STATUS_CHANGE, code, at, data)

    def current_status(self, index: int) -> int:
        """The status the profile shows: the last one recorded, else the World's."""
        recorded = self.facts.get("status", {}).get(self.world.enterprise_code(index))
        return int(recorded["status"]) if recorded else self.world.enterprise(index).status

    def record(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """``status``: an officer records a new legal status of an enterprise."""
        if kind != "status":
            return super().record(kind, body)
        code = body.get("ENTERPRISE_CODE")
        problem = enterprise_code_problem(code)
        if problem is not None or not isinstance(code, str) or "-" in code:
            raise ValueError(problem or "ENTERPRISE_CODE must be an enterprise's, not a branch's")
        index = self.registry.index_of(code)
        if index is None:
            raise ValueError("no enterprise with this ENTERPRISE_CODE")
        status = body.get("ENTERPRISE_STATUS_ID")
        if not isinstance(status, int) or status not in ENTERPRISE_STATUSES:
            raise ValueError(f"ENTERPRISE_STATUS_ID must be one of {sorted(ENTERPRISE_STATUSES)}")
        now = vietnam_now()
        raw_day = body.get("EFFECTIVE_DATE")
        try:
            day = datetime.strptime(raw_day, "%d/%m/%Y").date() if raw_day else now.date()
        except (TypeError, ValueError):
            raise ValueError("EFFECTIVE_DATE must be dd/MM/yyyy") from None
        with self.state.lock:
            previous = self.current_status(index)
            self.facts.setdefault("status", {})[code] = {"status": status, "at": now}
            change = self.changes.append(
                STATUS_CHANGE,
                code,
                {
                    "ENTERPRISE_STATUS_ID": status,
                    "PREVIOUS_STATUS_ID": previous,
                    "EFFECTIVE_DATE": day.strftime("%d/%m/%Y"),
                },
                occurred_at=now,
            )
        return {"SEQ": change.sequence, "ENTERPRISE_CODE": code, "PREVIOUS_STATUS_ID": previous}

    def changes_page(self, after: int, limit: int) -> bytes:
        changes, more = self.changes.page(after, limit)
        items = [
            {
                "SEQ": change.sequence,
                "CHANGE_TYPE": change.kind,
                "ENTERPRISE_CODE": change.entity,
                **change.data,
                "CHANGED_AT": change.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            }
            for change in changes
        ]
        return _found({"CHANGES": items, "HAS_MORE": more, "LAST_SEQ": self.changes.head})

    async def _changes_endpoint(self, request: Request) -> Response:
        outcome = await self.faults.before_request(request)
        if outcome is FaultOutcome.OUTAGE:
            return outage_response()
        if outcome is FaultOutcome.ERROR:
            return self._server_error()
        try:
            after, limit = feed_cursor(request.query_params, "AFTER_SEQ", "LIMIT")
        except ValueError as error:
            refusal = Refused(INVALID, str(error))
            return Response(refusal.answer(), status_code=400, media_type=_JSON)
        payload = self.changes_page(after, limit)
        if outcome is FaultOutcome.MALFORMED:
            payload = self.faults.malform(payload)
        return Response(payload, media_type=_JSON)

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
        index, branch = self._enterprise(fields)
        if self.facts:
            with self.state.lock:
                recorded = self.facts.get("status", {}).get(self.world.enterprise_code(index))
            if recorded is not None:
                status = int(recorded["status"])
                data = {
                    **self.registry.profile(index),
                    "ENTERPRISE_STATUS_ID": status,
                    "ENTERPRISE_STATUS_NAME": ENTERPRISE_STATUSES[status],
                    "LAST_UPDATE_TIME": recorded["at"].strftime("%Y-%m-%d %H:%M:%S"),
                }
                if branch is not None:
                    data["REQUESTED_BRANCH_CODE"] = branch
                return _found(data)
        return self._profile_answer(index, branch)

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
