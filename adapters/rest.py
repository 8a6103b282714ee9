"""The shared base of REST/JSON adapters: JSON over POST, answers checked, token login.

National REST services are asked with POST and a JSON body, never with the subject in the URL:
a URL ends up in access logs, proxies and error messages, and a personal id must not. An adapter
module calls `post_json(path, payload, timeout=...)` and reads the returned object; this base
sends it on the adapter's kept-alive connections (`Adapter.post_bytes`), and turns what is wrong
with the answer into the `SourceError` family (the answer's content is never quoted):

- HTTP 5xx or 429                              -> SourceUnavailable (retryable)
- HTTP 401 or 403 after a fresh login          -> SourceRejected ("not authorized")
- other HTTP 4xx that is not JSON              -> SourceRejected (a wrong path, a proxy's refusal)
- not JSON, or not a JSON object               -> MalformedAnswer (status, content type, length)
- larger than MAX_ANSWER_BYTES, or compressed  -> UnsafeAnswer (`Adapter.classify`)

Other statuses (200, 400, 404 ...) with a JSON object are returned with their status: each source
says "not found" or "invalid input" in its own way, and its module reads that.

Change feeds are read with GET (`get_json(path, query, ...)`: a cursor and a page size in the
query, never a subject), and `read_changes` turns a feed's list of changes into `NativeChange`s,
checking each one's sequence, kind, entity and time. `call` runs a feed read or an update within
the source's timeout and classifies what it raises as `Adapter.fetch` does.

Sources that need a login (`TokenLogin`) get a bearer token once and again when it expires or is
refused; the credentials come from the adapter's settings model (secrets from the environment).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson

from adapters.base import (
    Adapter,
    NativeChange,
    RawAnswer,
    describe_body,
    get_whole,
    source_words,
    vietnam_time,
)
from bus.errors import (
    MalformedAnswer,
    SourceError,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)

JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
TOKEN_EARLY_S = 30.0  # renew a token this long before it expires
Result = TypeVar("Result")


@dataclass(frozen=True)
class JsonAnswer:
    status: int
    body: dict[str, Any]


class RestAdapter(Adapter):
    """An adapter whose source speaks JSON over HTTP POST (see the module doc)."""

    login: TokenLogin | None = None
    #: The most changes the source's feed answers at once; a larger page is asked as this many
    #: (the page's `more` says the rest follows).
    feed_page_max: int = 1_000

    def url_of(self, path: str) -> str:
        return self.settings.url.rstrip("/") + path

    def post_json(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> JsonAnswer:
        """POST `payload` to the source's `path`; the JSON object answered, with its status."""
        url, body = self.url_of(path), orjson.dumps(payload)

        def send(all_headers: dict[str, str], remaining: float) -> RawAnswer:
            return self.post_bytes(url, body, all_headers, remaining)

        return self._exchange(send, timeout, {**JSON_HEADERS, **(headers or {})})

    def get_json(self, path: str, query: Mapping[str, str | int], *, timeout: float) -> JsonAnswer:
        """GET the source's `path` with `query` (a cursor, a page size: never a subject); the
        JSON object answered, with its status."""
        url = f"{self.url_of(path)}?{urlencode(query)}"

        def send(all_headers: dict[str, str], remaining: float) -> RawAnswer:
            return get_whole(self.session, url, remaining, all_headers)

        return self._exchange(send, timeout, {"Accept": "application/json"})

    def _exchange(
        self,
        send: Callable[[dict[str, str], float], RawAnswer],
        timeout: float,
        headers: dict[str, str],
    ) -> JsonAnswer:
        """One request by `send`, with the login's token when there is one (logging in once
        more when it is refused), read by `read_json`."""
        ends = time.monotonic() + timeout
        if self.login is not None:
            headers["Authorization"] = f"Bearer {self.login.token(self, ends)}"
        answer = send(headers, timeout)
        if answer.status_code in (401, 403) and self.login is not None:
            # The token may have been revoked early: log in once more, then give up.
            self.login.forget()
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise SourceTimeout(self.source, "no time left to log in again")
            headers["Authorization"] = f"Bearer {self.login.token(self, ends)}"
            answer = send(headers, remaining)
        return self.read_json(answer)

    def call(self, timeout: float, ask: Callable[[float], Result]) -> Result:
        """`ask(call_timeout)` within the source's timeout, its errors classified as `fetch`
        classifies them (a feed read, an update)."""
        call_timeout = min(timeout, self.settings.timeout_s)
        if call_timeout <= 0:
            raise SourceTimeout(self.source, "no time left before the deadline")
        try:
            return ask(call_timeout)
        except SourceError:
            raise
        except Exception as exc:
            classified = self.classify(exc)
            if classified is None:
                raise
            raise classified from exc

    def feed_after(self, cursor: str | None) -> int:
        """The sequence a cursor (the last sequence read, as text; None: none) stands for."""
        if cursor is None or cursor == "":
            return 0
        if not cursor.isdigit():
            raise SourceRejected(
                self.source, f"a feed cursor is a sequence number (got {len(cursor)} chars)"
            )
        return int(cursor)

    def read_changes(self, items: Any, after: int, fields: FeedFields) -> list[NativeChange]:
        """A feed's changes (`items`, a JSON list, named `fields.list`) after sequence `after`:
        each with an increasing integer sequence, a kind, an entity and a time; MalformedAnswer
        naming the field otherwise (never a value). The native fields are the rest of each."""
        if not isinstance(items, list):
            raise MalformedAnswer(self.source, f"{fields.list} is a {type(items).__name__}")
        changes: list[NativeChange] = []
        last = after
        envelope = {fields.sequence, fields.kind, fields.time}
        for position, item in enumerate(items):
            where = f"{fields.list}[{position}]"
            if not isinstance(item, dict):
                raise MalformedAnswer(self.source, f"{where} is not an object")
            sequence = item.get(fields.sequence)
            if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence <= last:
                raise MalformedAnswer(
                    self.source, f"{where}.{fields.sequence} is not a sequence after {last}"
                )
            kind, entity = item.get(fields.kind), item.get(fields.entity)
            if not isinstance(kind, str) or not kind:
                raise MalformedAnswer(self.source, f"{where}.{fields.kind} is missing")
            if not isinstance(entity, str) or not entity:
                raise MalformedAnswer(self.source, f"{where}.{fields.entity} is missing")
            at = vietnam_time(
                self.source, f"{where}.{fields.time}", item.get(fields.time), fields.time_form
            )
            if at is None:
                raise MalformedAnswer(self.source, f"{where}.{fields.time} is missing")
            data = {key: value for key, value in item.items() if key not in envelope}
            changes.append(
                NativeChange(self.source, sequence, source_words(kind, 60), entity, at, data)
            )
            last = sequence
        return changes

    def read_json(self, answer: RawAnswer) -> JsonAnswer:
        """The JSON object answered, with its status; the SourceError the module doc lists."""
        status = answer.status_code
        if status >= 500 or status == 429:
            raise SourceUnavailable(self.source, f"HTTP {status} ({self.describe(answer)})")
        if status in (401, 403):
            raise SourceRejected(self.source, f"HTTP {status}: not authorized by the source")
        content_type = (answer.headers.get("Content-Type") or "").lower()
        if 400 <= status < 500 and "json" not in content_type:
            # A wrong path, a proxy's refusal: the request refused, not a malformed answer.
            raise self.http_status_error(status, "without a JSON answer")
        media_type = content_type.split(";")[0].strip()
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise MalformedAnswer(
                self.source,
                f"unexpected content type {source_words(media_type, 60) or '(none)'}, not JSON "
                f"({self.describe(answer)})",
            )
        try:
            body = orjson.loads(answer.content)
        except orjson.JSONDecodeError:
            raise MalformedAnswer(
                self.source, f"not well-formed JSON ({self.describe(answer)})"
            ) from None
        if not isinstance(body, dict):
            raise MalformedAnswer(
                self.source,
                f"a JSON {type(body).__name__}, not an object ({self.describe(answer)})",
            )
        return JsonAnswer(status, body)

    @staticmethod
    def describe(answer: RawAnswer) -> str:
        return describe_body(answer.status_code, answer.headers.get("Content-Type"), answer.content)


@dataclass(frozen=True)
class FeedFields:
    """How a source names the parts of its change feed's changes."""

    list: str  # the list of changes, e.g. "duLieu"
    sequence: str  # e.g. "soThuTu"
    kind: str  # e.g. "loaiBienDong"
    entity: str  # e.g. "soDinhDanh" (kept in the native fields too)
    time: str  # e.g. "thoiDiemGhiNhan"
    time_form: str  # a form of adapters.base.vietnam_time, e.g. "dd/MM/yyyy HH:mm:ss"


class TokenLogin:
    """A bearer token from the source's login endpoint, shared by the adapter's threads.

    `path` takes `{"username": ..., "password": ...}` (named `user_field` and `password_field`
    in the source's own words) and answers the token and its lifetime in seconds.
    """

    def __init__(
        self,
        path: str,
        username: str,
        password: str,
        *,
        user_field: str = "username",
        password_field: str = "password",
        token_field: str = "access_token",
        expires_field: str = "expires_in",
    ) -> None:
        self.path = path
        self._credentials = {user_field: username, password_field: password}
        self._token_field = token_field
        self._expires_field = expires_field
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self.logins = 0  # how many times a token was fetched (for tests and status)

    def forget(self) -> None:
        with self._lock:
            self._token = None

    def token(self, adapter: RestAdapter, ends: float) -> str:
        """The current token, logging in first when there is none or it is about to expire."""
        with self._lock:
            if self._token is not None and time.monotonic() < self._expires - TOKEN_EARLY_S:
                return self._token
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise SourceTimeout(adapter.source, "no time left to log in")
            answer = adapter.post_bytes(
                adapter.url_of(self.path),
                orjson.dumps(self._credentials),
                JSON_HEADERS,
                remaining,
            )
            if answer.status_code in (400, 401, 403):
                raise SourceRejected(
                    adapter.source, f"login refused: HTTP {answer.status_code} (check credentials)"
                )
            body = adapter.read_json(answer).body
            token = body.get(self._token_field)
            lifetime = body.get(self._expires_field)
            if not isinstance(token, str) or not token:
                raise MalformedAnswer(adapter.source, f"login answer has no {self._token_field}")
            if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
                lifetime = 300
            self._token, self._expires = token, time.monotonic() + float(lifetime)
            self.logins += 1
            return token
