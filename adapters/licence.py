"""The driver licence database (CSDL giấy phép lái xe, road traffic authority): REST/JSON.

One lookup, `POST <url>/tra-cuu` (the url ends in `/gplx/api/v1`) with `{"so_dinh_danh",
"don_vi_yeu_cau", "ma_yeu_cau"}` (personal id, requesting agency, request id), answered
`{"ma_loi", "thong_diep", "ma_yeu_cau", "du_lieu"}` (error code, message, echoed request id,
the licence):

- ma_loi 0 (found, HTTP 200)          -> the record `du_lieu`; its `cap_nhat_luc` (dd/MM/yyyy
                                         HH:mm:ss, Vietnam time, when it last changed) is the
                                         record time
- ma_loi 404 (HTTP 200)               -> SourceNotFound
- ma_loi 400 or 415 (HTTP 400, 415)   -> SourceRejected
- any other ma_loi                    -> SourceFault
- HTTP 5xx, 429                       -> SourceUnavailable (the REST base)
- other HTTP 4xx without a JSON answer (a wrong path, a proxy's refusal) -> SourceRejected
- not JSON; found without a du_lieu object; an answer for another request id or about another
  personal id                         -> MalformedAnswer

The source asks for no credentials (it identifies the requester by `don_vi_yeu_cau`). Nothing
logs or quotes a request or an answer: they hold personal data. The source's message
(`thong_diep`) is its own words and is passed on, cut short; it never carries the values asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from adapters.base import Dataset, NativeRecord, source_words, vietnam_time
from adapters.rest import JsonAnswer, RestAdapter
from bus.errors import MalformedAnswer, SourceFault, SourceNotFound, SourceRejected
from bus.schemas.lookup import Subject

LOOKUP_PATH = "/tra-cuu"
FOUND, NOT_FOUND = 0, 404


class LicenceAdapter(RestAdapter):
    name: ClassVar[str] = "licence"
    datasets: ClassVar[tuple[Dataset, ...]] = (
        Dataset(
            "driver",
            "licence-driver",
            description="Driver licence: number, holder, classes of Law 36/2024 and classes "
            "granted before 2025 (with their exchange) with their terms, points, suspension, "
            "revocation, and the status on the data's day.",
        ),
    )

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
            "so_dinh_danh": subject.key,
            "don_vi_yeu_cau": requester_agency,
            "ma_yeu_cau": request_id,
        }
        answer = self.post_json(LOOKUP_PATH, payload, timeout=timeout)
        return self.read_answer(dataset, answer, subject.key, request_id)

    def read_answer(
        self, dataset: str, answer: JsonAnswer, personal_id: str, request_id: str
    ) -> NativeRecord:
        """The record of a found answer, or the SourceError its error code says."""
        body = answer.body
        code = body.get("ma_loi")
        if code is None:
            if answer.status >= 400:
                raise self.http_status_error(answer.status, "without an error code")
            raise MalformedAnswer(self.source, f"no ma_loi in the answer (HTTP {answer.status})")
        if not isinstance(code, int) or isinstance(code, bool):
            raise MalformedAnswer(self.source, f"ma_loi is a {type(code).__name__}, not a number")
        message = source_words(body.get("thong_diep") or "")
        if code == NOT_FOUND:
            raise SourceNotFound(self.source, f"{code} {message}".strip())
        if 400 <= code < 500:
            raise SourceRejected(self.source, f"{code} {message}".strip())
        if code != FOUND:
            raise SourceFault(self.source, f"error code {code}: {message}".rstrip(": "))
        if body.get("ma_yeu_cau") != request_id:
            raise MalformedAnswer(self.source, "the answer is for another request (ma_yeu_cau)")
        record = body.get("du_lieu")
        if not isinstance(record, dict):
            raise MalformedAnswer(self.source, "ma_loi 0 (found) without a du_lieu object")
        if record.get("so_dinh_danh") != personal_id:
            raise MalformedAnswer(self.source, "the answer is about another holder (so_dinh_danh)")
        return NativeRecord(self.source, dataset, record, self.record_time(record))

    def record_time(self, record: dict[str, Any]) -> datetime | None:
        """cap_nhat_luc (dd/MM/yyyy HH:mm:ss, Vietnam time) as an aware datetime."""
        value = record.get("cap_nhat_luc")
        return vietnam_time(self.source, "cap_nhat_luc", value, "dd/MM/yyyy HH:mm:ss")
