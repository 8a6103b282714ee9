"""The national business registration database (CSDL quốc gia về đăng ký doanh nghiệp): REST/JSON.

JSON over POST with UPPER_SNAKE names; the subject goes in the body, never in the URL:

- `profile`: `POST <url>/enterprise/profile {"ENTERPRISE_CODE": ...}`, the whole record;
- `representatives`: `POST <url>/enterprise/representatives {"ENTERPRISE_CODE": ...}`;
- `by_representative`: `POST <url>/representative/enterprises {"ID_NUMBER": <personal id>}`.

Each request also carries `REQUEST_ID` and `REQUESTER_CODE` (the requesting agency). The answer
is `{"RESULT_CODE", "RESULT_MESSAGE", "DATA"}`: 00 found, 01 not found (SourceNotFound), 02
invalid input (SourceRejected), any other code a SourceFault. A branch code asked of `profile` or
`representatives` is answered with the parent enterprise's record and `REQUESTED_BRANCH_CODE`.
A citizen who represents no enterprise is found with an empty list. `LAST_UPDATE_TIME`
(yyyy-MM-dd HH:mm:ss, Vietnam time) of a profile is the record's time.

The change feed, `GET <url>/changes?AFTER_SEQ=<cursor>&LIMIT=<limit>`, answers `DATA`
`{"CHANGES": [...], "HAS_MORE"}`: each change with `SEQ`, `CHANGE_TYPE` (STATUS_CHANGE),
`ENTERPRISE_CODE` (the entity), `CHANGED_AT` (yyyy-MM-dd HH:mm:ss, Vietnam time) and its fields
(`ENTERPRISE_STATUS_ID`, `PREVIOUS_STATUS_ID`, `EFFECTIVE_DATE`). The registry takes no updates.

HTTP errors, non-JSON answers and timeouts are classified by adapters/rest.py and
adapters/base.py. Nothing here logs or quotes a request or an answer (they hold personal data);
`RESULT_MESSAGE` is the source's own words and is passed on, cut short.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from adapters.base import ChangePage, Dataset, NativeRecord, source_words, vietnam_time
from adapters.rest import FeedFields, JsonAnswer, RestAdapter
from bus.errors import MalformedAnswer, SourceFault, SourceNotFound, SourceRejected
from bus.schemas.lookup import Subject

FOUND, NOT_FOUND, INVALID_INPUT = "00", "01", "02"
FEED_PATH = "/changes"
FEED = FeedFields(
    list="CHANGES",
    sequence="SEQ",
    kind="CHANGE_TYPE",
    entity="ENTERPRISE_CODE",
    time="CHANGED_AT",
    time_form="yyyy-MM-dd HH:mm:ss",
)

# dataset -> (path under the source's url, the request field holding the subject)
_REQUESTS: dict[str, tuple[str, str]] = {
    "profile": ("/enterprise/profile", "ENTERPRISE_CODE"),
    "representatives": ("/enterprise/representatives", "ENTERPRISE_CODE"),
    "by_representative": ("/representative/enterprises", "ID_NUMBER"),
}


class EnterpriseAdapter(RestAdapter):
    name: ClassVar[str] = "enterprise"
    datasets: ClassVar[tuple[Dataset, ...]] = (
        Dataset(
            "profile",
            "enterprise-profile",
            subject="enterprise_code",
            description="An enterprise's registration record: names, type, legal status, "
            "founding date, charter capital, head office, legal representatives, branches and "
            "business lines. A branch code answers its parent enterprise, the branch marked.",
        ),
        Dataset(
            "representatives",
            "enterprise-representatives",
            subject="enterprise_code",
            description="The legal representatives of an enterprise (a branch code: of its "
            "parent enterprise).",
        ),
        Dataset(
            "by_representative",
            "enterprise-by-representative",
            subject="personal_id",
            description="The enterprises a citizen legally represents, dissolved ones included; "
            "an empty list when none.",
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
        path, field = _REQUESTS[dataset]
        payload = {field: subject.key, "REQUEST_ID": request_id, "REQUESTER_CODE": requester_agency}
        answer = self.post_json(path, payload, timeout=timeout)
        data = self.read_answer(answer)
        return NativeRecord(self.source, dataset, data, self.record_time(data))

    def changes(self, cursor: str | None, limit: int, *, timeout: float) -> ChangePage:
        after = self.feed_after(cursor)

        def ask(call_timeout: float) -> ChangePage:
            query = {"AFTER_SEQ": after, "LIMIT": min(limit, self.feed_page_max)}
            data = self.read_answer(self.get_json(FEED_PATH, query, timeout=call_timeout))
            changes = self.read_changes(data.get(FEED.list), after, FEED)
            more = data.get("HAS_MORE")
            if not isinstance(more, bool):
                raise MalformedAnswer(self.source, "DATA.HAS_MORE is not a boolean")
            last = changes[-1].sequence if changes else after
            return ChangePage(changes, str(last), more)

        return self.call(timeout, ask)

    def read_answer(self, answer: JsonAnswer) -> dict[str, Any]:
        """DATA of a found answer, or the error its RESULT_CODE (or HTTP status) says."""
        body = answer.body
        if "RESULT_CODE" not in body:
            if answer.status != 200:  # e.g. a gateway's own JSON error
                raise self.http_status_error(answer.status, "without a RESULT_CODE")
            names = ", ".join(source_words(key, 40) for key in list(body)[:10]) or "none"
            raise MalformedAnswer(self.source, f"no RESULT_CODE in the answer (keys: {names})")
        code = source_words("" if body["RESULT_CODE"] is None else body["RESULT_CODE"], 10)
        words = f"{code} {source_words(body.get('RESULT_MESSAGE') or '')}".strip()
        if code == NOT_FOUND:
            raise SourceNotFound(self.source, words)
        if code == INVALID_INPUT:
            raise SourceRejected(self.source, words)
        if code != FOUND:
            raise SourceFault(self.source, f"result code {words}")
        if answer.status != 200:
            raise self.http_status_error(answer.status, "with RESULT_CODE 00")
        data = body.get("DATA")
        if not isinstance(data, dict):
            raise MalformedAnswer(
                self.source, f"RESULT_CODE 00 (found) with DATA a {type(data).__name__}"
            )
        return data

    def record_time(self, data: dict[str, Any]) -> datetime | None:
        """LAST_UPDATE_TIME (yyyy-MM-dd HH:mm:ss, Vietnam time) as an aware datetime, or None."""
        value = data.get("LAST_UPDATE_TIME")
        return vietnam_time(self.source, "LAST_UPDATE_TIME", value, "yyyy-MM-dd HH:mm:ss")
