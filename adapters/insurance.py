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

Nothing logs or quotes a request or an answer: they hold personal data. The source's result
description (`moTa`) is its own words and is passed on, cut short.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr, ValidationError

from adapters.base import Dataset, NativeRecord, source_words, vietnam_time
from adapters.rest import JsonAnswer, RestAdapter, TokenLogin
from bus.errors import (
    MalformedAnswer,
    SettingsError,
)
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings

TOKEN_PATH = "/api/token"
OPERATIONS = {
    "participation": "/api/tra-cuu/qua-trinh-tham-gia",
    "health_card": "/api/tra-cuu/the-bhyt",
}
FOUND, NOT_FOUND, INVALID_INPUT = "0", "1", "2"


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

    def read_answer(self, dataset: str, answer: JsonAnswer) -> NativeRecord:
        """The record of a found answer, or the SourceError its result code says."""
        body = answer.body
        code = body.get("maKetQua")
        if code is None:
            if answer.status >= 400:
                raise self.http_status_error(answer.status, "without a result code")
            raise MalformedAnswer(self.source, f"no maKetQua in the answer (HTTP {answer.status})")
        code = source_words(code, 10)
        description = source_words(body.get("moTa") or "")
        self.check_result_code(
            code, description, found=FOUND, not_found=NOT_FOUND, invalid_input=INVALID_INPUT
        )
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
