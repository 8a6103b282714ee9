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

The change feed, `GET <url>/thay-doi?sau_so=<cursor>&so_luong=<limit>`, answers `du_lieu`
`{"thay_doi": [...], "con_nua"}`: each change with `so_thu_tu` (sequence), `loai_thay_doi`
(kind), `so_gplx` (the licence: the entity), `thoi_diem` (dd/MM/yyyy HH:mm:ss, Vietnam time)
and its fields. The one update, `revoke_licences` (a death), is `POST <url>/thu-hoi` with the
header `Idempotency-Key` and `{"so_dinh_danh", "ngay_thu_hoi", "ly_do", "can_cu"}`: every
licence of the holder revoked; `da_xu_ly_truoc_do` (already done under that key) makes
`UpdateResult.applied` False; so does a holder without a licence (ma_loi 404): nothing to revoke,
`detail` `{"not_held": True, ...}`, not an error.

The source asks for no credentials (it identifies the requester by `don_vi_yeu_cau`). Nothing
logs or quotes a request or an answer: they hold personal data. The source's message
(`thong_diep`) is its own words and is passed on, cut short; it never carries the values asked.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from adapters.base import (
    ChangePage,
    Dataset,
    NativeRecord,
    UpdateResult,
    source_words,
    vietnam_time,
)
from adapters.rest import FeedFields, JsonAnswer, RestAdapter
from bus.errors import MalformedAnswer, SourceFault, SourceNotFound, SourceRejected
from bus.schemas.lookup import Subject

LOOKUP_PATH = "/tra-cuu"
FOUND, NOT_FOUND = 0, 404
FEED_PATH, REVOKE_PATH = "/thay-doi", "/thu-hoi"
FEED = FeedFields(
    list="thay_doi",
    sequence="so_thu_tu",
    kind="loai_thay_doi",
    entity="so_gplx",
    time="thoi_diem",
    time_form="dd/MM/yyyy HH:mm:ss",
)
DEATH_REASON = "Người được cấp giấy phép lái xe đã chết"


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

    update_operations: ClassVar[tuple[str, ...]] = ("revoke_licences",)

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

    # -- the change feed and the revocation -------------------------------------------------
    def changes(self, cursor: str | None, limit: int, *, timeout: float) -> ChangePage:
        after = self.feed_after(cursor)

        def ask(call_timeout: float) -> ChangePage:
            query = {"sau_so": after, "so_luong": min(limit, self.feed_page_max)}
            data = self.checked(self.get_json(FEED_PATH, query, timeout=call_timeout))
            if not isinstance(data, dict):
                raise MalformedAnswer(self.source, "ma_loi 0 without a du_lieu object")
            changes = self.read_changes(data.get(FEED.list), after, FEED)
            more = data.get("con_nua")
            if not isinstance(more, bool):
                raise MalformedAnswer(self.source, "du_lieu.con_nua is not a boolean")
            last = changes[-1].sequence if changes else after
            return ChangePage(changes, str(last), more)

        return self.call(timeout, ask)

    def update(
        self, operation: str, payload: dict[str, Any], *, idempotency_key: str, timeout: float
    ) -> UpdateResult:
        if operation not in self.update_operations:
            raise SourceRejected(
                self.source, f"no update {operation!r}; known: {list(self.update_operations)}"
            )
        holder = payload.get("entity")
        if not isinstance(holder, str) or not holder:
            raise SourceRejected(self.source, "the update's payload has no entity")
        try:
            day = date.fromisoformat(str(payload.get("date_of_death")))
        except ValueError:
            raise SourceRejected(
                self.source, "the update's payload has no ISO date date_of_death"
            ) from None
        request = {
            "so_dinh_danh": holder,
            "ngay_thu_hoi": day.strftime("%d/%m/%Y"),
            "ly_do": DEATH_REASON,
            "can_cu": str(payload.get("death_registration_id") or ""),
            "don_vi_yeu_cau": str(payload.get("requester") or "tthc-bus"),
            "ma_yeu_cau": idempotency_key,
        }
        headers = {"Idempotency-Key": idempotency_key}

        def ask(call_timeout: float) -> UpdateResult:
            answer = self.post_json(REVOKE_PATH, request, timeout=call_timeout, headers=headers)
            try:
                data = self.checked(answer)
            except SourceNotFound as exc:  # no licence: nothing to revoke
                return UpdateResult(applied=False, detail={"not_held": True, "source": exc.detail})
            done_before = data.get("da_xu_ly_truoc_do") if isinstance(data, dict) else None
            if not isinstance(data, dict) or not isinstance(done_before, bool):
                raise MalformedAnswer(self.source, "a revocation answer without da_xu_ly_truoc_do")
            return UpdateResult(applied=not done_before, detail=data)

        return self.call(timeout, ask)

    def checked(self, answer: JsonAnswer) -> Any:
        """`du_lieu` of an answer whose ma_loi is 0, or the SourceError its code says."""
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
        return body.get("du_lieu")

    def read_answer(
        self, dataset: str, answer: JsonAnswer, personal_id: str, request_id: str
    ) -> NativeRecord:
        """The record of a found answer, or the SourceError its error code says."""
        self.checked(answer)
        body = answer.body
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
