"""The social insurance database (CSDL quốc gia về bảo hiểm, Vietnam Social Security): REST/JSON
behind a token login.

`POST <url>/api/token` with the configured username and password gives a bearer token
(`adapters.rest.TokenLogin`, renewed before it expires and again when refused). Each dataset is
one lookup, `POST <url>/api/tra-cuu/<operation>` with `{"soDinhDanh", "maDonVi", "maYeuCau"}`
(personal id, requesting agency, request id), answered `{"maKetQua", "moTa", "maYeuCau",
"thoiDiemDuLieu", "duLieu"}`:

- maKetQua 0 (found)          -> the record `duLieu`, its time `thoiDiemDuLieu` (dd/MM/yyyy
                                 HH:mm:ss, Vietnam time) as the record time
- maKetQua 1 (not found)      -> SourceNotFound
- maKetQua 2 (invalid input)  -> SourceRejected (HTTP 400)
- any other maKetQua          -> SourceFault
- HTTP 401/403 after a fresh login, or a refused login -> SourceRejected
- HTTP 5xx, 429               -> SourceUnavailable
- other HTTP 4xx without a result code -> SourceRejected
- not JSON, or found without a duLieu object -> MalformedAnswer

The change feed, `GET <url>/api/bien-dong?sau=<cursor>&soLuong=<limit>` (same token), answers
`duLieu`, a list of changes (`soThuTu` the sequence, `loaiBienDong` the kind, `soDinhDanh` the
person, `thoiDiemGhiNhan` dd/MM/yyyy HH:mm:ss Vietnam time), and `conTiep` (more follow). The
updates are POSTs to `<url>/api/cap-nhat/<operation>` with the header `Idempotency-Key`; their
answer's `daXuLyTruocDo` (already done under that key) makes `UpdateResult.applied` False:

- `stop_participation` (a death)   -> `dung-tham-gia` {soDinhDanh, ngayChet, soGiayChungTu}
- `open_funeral_case` (a death)    -> `mo-ho-so-mai-tang`, the same fields; the case's maHoSo
- `issue_child_health_card` (a child registered by population) -> `cap-the-tre-em`
                                      {soDinhDanh, hoTen, ngaySinh, gioiTinh}; the card's maThe
A person the database holds no record of (maKetQua 1: never insured) has nothing to update:
`UpdateResult(applied=False, detail={"not_held": True, ...})`, not an error (a subscription must
not dead-letter the death of someone who never contributed).

Nothing logs or quotes a request or an answer: they hold personal data. The source's result
description (`moTa`) is its own words and is passed on, cut short.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationError

from adapters.base import (
    ChangePage,
    Dataset,
    NativeRecord,
    UpdateResult,
    source_words,
    vietnam_time,
)
from adapters.rest import FeedFields, JsonAnswer, RestAdapter, TokenLogin
from bus.errors import (
    MalformedAnswer,
    SettingsError,
    SourceNotFound,
    SourceRejected,
)
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings

TOKEN_PATH = "/api/token"
OPERATIONS = {
    "participation": "/api/tra-cuu/qua-trinh-tham-gia",
    "health_card": "/api/tra-cuu/the-bhyt",
}
FOUND, NOT_FOUND, INVALID_INPUT = "0", "1", "2"
FEED_PATH = "/api/bien-dong"
FEED = FeedFields(
    list="duLieu",
    sequence="soThuTu",
    kind="loaiBienDong",
    entity="soDinhDanh",
    time="thoiDiemGhiNhan",
    time_form="dd/MM/yyyy HH:mm:ss",
)
UPDATES = {
    "stop_participation": "/api/cap-nhat/dung-tham-gia",
    "open_funeral_case": "/api/cap-nhat/mo-ho-so-mai-tang",
    "issue_child_health_card": "/api/cap-nhat/cap-the-tre-em",
}
_SEX = {"male": 1, "female": 2}


class InsuranceSettings(SourceSettings):
    """`[sources.insurance]`: the login's credentials besides the common settings."""

    username: str = Field(min_length=1, description="The bus's account at the source's login.")
    password: SecretStr = Field(
        description="Its password; from TTHC_BUS_SOURCES__<SOURCE>__PASSWORD in production."
    )


class InsuranceAdapter(RestAdapter):
    name: ClassVar[str] = "insurance"
    settings_model: ClassVar[type[SourceSettings]] = InsuranceSettings
    datasets: ClassVar[tuple[Dataset, ...]] = (
        Dataset(
            "participation",
            "insurance-participation",
            description="Social insurance participation: BHXH number, status (stopped by death, "
            "retirement or lump sum), contribution periods by employer, months contributed.",
        ),
        Dataset(
            "health_card",
            "insurance-health-card",
            description="Health insurance card: number and its parts (beneficiary group, benefit "
            "level, province), validity, primary care facility, valid now or not.",
        ),
    )

    update_operations: ClassVar[tuple[str, ...]] = tuple(UPDATES)

    def __init__(self, name: str, settings: SourceSettings) -> None:
        own = _own_settings(name, settings)
        super().__init__(name, own)
        self.login = TokenLogin(TOKEN_PATH, own.username, own.password.get_secret_value())

    def ask(
        self,
        dataset: str,
        subject: Subject,
        *,
        timeout: float,
        request_id: str,
        requester_agency: str,
    ) -> NativeRecord:
        payload = {
            "soDinhDanh": subject.key,
            "maDonVi": requester_agency,
            "maYeuCau": request_id,
        }
        answer = self.post_json(OPERATIONS[dataset], payload, timeout=timeout)
        return self.read_answer(dataset, answer)

    # -- the change feed and updates ----------------------------------------------------------
    def changes(self, cursor: str | None, limit: int, *, timeout: float) -> ChangePage:
        after = self.feed_after(cursor)

        def ask(call_timeout: float) -> ChangePage:
            query = {"sau": after, "soLuong": min(limit, self.feed_page_max)}
            body = self.checked(self.get_json(FEED_PATH, query, timeout=call_timeout))
            changes = self.read_changes(body.get(FEED.list), after, FEED)
            more = body.get("conTiep")
            if not isinstance(more, bool):
                raise MalformedAnswer(self.source, "conTiep is not a boolean")
            last = changes[-1].sequence if changes else after
            return ChangePage(changes, str(last), more)

        return self.call(timeout, ask)

    def update(
        self, operation: str, payload: dict[str, Any], *, idempotency_key: str, timeout: float
    ) -> UpdateResult:
        path = UPDATES.get(operation)
        if path is None:
            raise SourceRejected(self.source, f"no update {operation!r}; known: {sorted(UPDATES)}")
        request = self.native_update(operation, payload)
        headers = {"Idempotency-Key": idempotency_key}

        def ask(call_timeout: float) -> UpdateResult:
            answer = self.post_json(path, request, timeout=call_timeout, headers=headers)
            try:
                body = self.checked(answer)
            except SourceNotFound as exc:  # a person never insured: nothing to stop or open
                return UpdateResult(applied=False, detail={"not_held": True, "source": exc.detail})
            detail = body.get("duLieu")
            done_before = body.get("daXuLyTruocDo")
            if not isinstance(detail, dict) or not isinstance(done_before, bool):
                raise MalformedAnswer(self.source, "an update answer without duLieu/daXuLyTruocDo")
            return UpdateResult(applied=not done_before, detail=detail)

        return self.call(timeout, ask)

    def native_update(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The update's request in the source's names, from the subscription's payload."""
        agency = str(payload.get("requester") or "tthc-bus")
        if operation == "issue_child_health_card":
            sex = _SEX.get(str(payload.get("sex")))
            request: dict[str, Any] = {
                "soDinhDanh": _payload_text(self.source, payload, "personal_id", "entity"),
                "hoTen": _payload_text(self.source, payload, "full_name"),
                "ngaySinh": _payload_date(self.source, payload, "birth_date"),
                "maDonVi": agency,
            }
            if sex is not None:
                request["gioiTinh"] = sex
            return request
        return {
            "soDinhDanh": _payload_text(self.source, payload, "entity"),
            "ngayChet": _payload_date(self.source, payload, "date_of_death"),
            "soGiayChungTu": str(payload.get("death_registration_id") or ""),
            "maDonVi": agency,
        }

    def checked(self, answer: JsonAnswer) -> dict[str, Any]:
        """The body of an answer whose maKetQua is 0, or the SourceError its code says."""
        body = answer.body
        code = body.get("maKetQua")
        if code is None:
            if answer.status >= 400:
                raise self.http_status_error(answer.status, "without a result code")
            raise MalformedAnswer(self.source, f"no maKetQua in the answer (HTTP {answer.status})")
        self.check_result_code(
            source_words(code, 10),
            source_words(body.get("moTa") or ""),
            found=FOUND,
            not_found=NOT_FOUND,
            invalid_input=INVALID_INPUT,
        )
        return body

    def read_answer(self, dataset: str, answer: JsonAnswer) -> NativeRecord:
        """The record of a found answer, or the SourceError its result code says."""
        body = self.checked(answer)
        record = body.get("duLieu")
        if not isinstance(record, dict):
            raise MalformedAnswer(self.source, "maKetQua 0 (found) without a duLieu object")
        return NativeRecord(
            self.source, dataset, record, self.data_time(body.get("thoiDiemDuLieu"))
        )

    def data_time(self, value: Any) -> datetime | None:
        """thoiDiemDuLieu (dd/MM/yyyy HH:mm:ss, Vietnam time) as an aware datetime."""
        return vietnam_time(self.source, "thoiDiemDuLieu", value, "dd/MM/yyyy HH:mm:ss")


def _own_settings(name: str, settings: SourceSettings) -> InsuranceSettings:
    """The adapter's own settings model, from whatever settings it was given."""
    if isinstance(settings, InsuranceSettings):
        return settings
    try:
        return InsuranceSettings.model_validate(settings.model_dump())
    except ValidationError as exc:
        problems = "; ".join(
            f"sources.{name}.{'.'.join(str(p) for p in error['loc'])} (env TTHC_BUS_SOURCES__"
            f"{name.upper()}__{'__'.join(str(p).upper() for p in error['loc'])}): {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(problems) from None


def _payload_text(source: str, payload: dict[str, Any], *names: str) -> str:
    """The first of `names` the payload has as non-empty text; SourceRejected naming them."""
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
    raise SourceRejected(source, f"the update's payload has no {' or '.join(names)}")


def _payload_date(source: str, payload: dict[str, Any], name: str) -> str:
    """An ISO date of the payload in the source's dd/mm/yyyy; SourceRejected naming it."""
    value = payload.get(name)
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise SourceRejected(source, f"the update's payload has no ISO date {name}") from None
    return day.strftime("%d/%m/%Y")
