"""The shared base of every adapter: HTTP connections, per-call timeouts, error classification.

An adapter module says how to ask its national database and how to read the answer; this base
owns the rest. `Adapter.fetch` is synchronous: the lookup connector runs it in a thread pool
bounded by the source's concurrency, and the connection pools are sized to match so that
connections are reused rather than reopened: the `requests` session's (for WSDLs and the like)
and the kept-alive connections of `post_bytes` (`adapters.http11`), which per-call traffic uses.

Errors are classified once, here, into the `SourceError` family of bus/errors.py:

- connection refused or reset                    -> SourceUnavailable (retryable)
- connect or read timeout, or no time left       -> SourceTimeout (retryable); on
  `post_bytes`, whether nothing came (slow) or not the whole answer (trickling)
- an answer past MAX_ANSWER_BYTES, or compressed -> UnsafeAnswer (refused unread, not retried)
- HTTP 5xx (or 429) without a protocol error     -> SourceUnavailable (retryable)
- other HTTP 4xx                                 -> SourceRejected
- anything else `requests` raises                -> SourceUnavailable
Protocol modules add their own (SOAP fault, unparseable answers) by overriding `classify`; a
source's result code (found, not found, invalid input, anything else) is read by
`check_result_code`.

Error messages go into replies and logs, so they never quote the answer or the request URL (a
REST source may have the personal id in it): they name the kind of problem (`error_chain`), the
HTTP status, the content type and the body length. The source's own error words (a SOAP
faultstring, a result description) are passed on, cut to `SOURCE_WORDS_MAX` characters.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache, lru_cache
from typing import Any, ClassVar, Literal, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from adapters.http11 import (
    AnswerTooLarge,
    ConnectionBroken,
    EncodedAnswer,
    ExchangeTimeout,
    OriginPool,
    coding_names,
)
from bus.errors import (
    MalformedAnswer,
    SourceError,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
    UnsafeAnswer,
)
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings

USER_AGENT = "tthc-bus/0.1"
# National databases stamp their records in Vietnam time (UTC+7, no daylight saving).
VIETNAM_TIME = timezone(timedelta(hours=7))
T = TypeVar("T")
SOURCE_WORDS_MAX = 200  # characters of the source's own error words (fault string, description)


def source_words(text: object, limit: int = SOURCE_WORDS_MAX) -> str:
    """The source's own error words, on one line and cut to `limit` characters."""
    words = " ".join(str(text).split())
    return words if len(words) <= limit else words[: limit - 1] + "\u2026"


def error_chain(exc: BaseException, depth: int = 6) -> str:
    """The class names of an exception and what caused it, never its message.

    `requests` wraps urllib3 errors (in `args[0]` or `.reason`) that wrap OS errors, and their
    messages quote the URL; the names alone say what happened: "ConnectionError <-
    MaxRetryError <- NewConnectionError <- ConnectionRefusedError".
    """
    names: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(names) < depth:
        seen.add(id(current))
        names.append(type(current).__name__)
        reason = getattr(current, "reason", None)
        first = current.args[0] if current.args else None
        current = next(
            (
                candidate
                for candidate in (reason, first, current.__cause__, current.__context__)
                if isinstance(candidate, BaseException)
            ),
            None,
        )
    return " <- ".join(names)


def describe_body(status: int | None, content_type: str | None, body: bytes | None) -> str:
    """HTTP status, content type and body length of an answer: what can be said without it."""
    parts = [f"HTTP {status}" if status else "HTTP status unknown"]
    parts.append(content_type or "no content type")
    parts.append("no body" if body is None else f"{len(body)} bytes")
    return ", ".join(parts)


MAX_ANSWER_BYTES = 8 * 1024 * 1024


@lru_cache(maxsize=64)
def _origin_and_target(url: str) -> tuple[tuple[str, str, int | None], str]:
    """(scheme, host, port) and the request target (path and query) of a URL."""
    parsed = urllib3.util.parse_url(url)
    target = parsed.request_uri
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise requests.exceptions.InvalidURL("an http or https URL with a host is needed")
    if any(c in target for c in " \r\n"):
        raise requests.exceptions.InvalidURL("no spaces or line breaks in the path or query")
    return (parsed.scheme, parsed.host.strip("[]"), parsed.port), target


@dataclass(frozen=True)
class RawAnswer:
    """An HTTP answer read in full: the part of `requests.Response` that protocol code reads."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]  # looked up whatever the case of the name
    encoding: str | None = None

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", "replace")


def get_whole(
    session: requests.Session,
    url: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    *,
    raise_for_status: bool = False,
) -> RawAnswer:
    """GET on a `requests` session (a WSDL, a change feed's page), read as `post_bytes` reads
    an answer: in no content coding (identity asked for, any other refused unread: `requests`
    would inflate a gzip bomb whole), at most MAX_ANSWER_BYTES, and whole within `timeout`
    (checked between reads; each read is bounded by `timeout` too). Errors as `post_bytes`
    raises them; `raise_for_status`: an error status raises requests.HTTPError first."""
    ends = time.monotonic() + timeout
    asked = {"Accept-Encoding": "identity", **(headers or {})}
    with session.get(url, headers=asked, timeout=timeout, stream=True) as response:
        if raise_for_status:
            response.raise_for_status()
        coding = response.headers.get("Content-Encoding", "")
        if coding.strip().lower() not in ("", "identity"):
            raise EncodedAnswer(
                f"compressed answer refused: Content-Encoding {coding_names(coding)} "
                "(we asked for identity)"
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(
                f"answer too large: more than {MAX_ANSWER_BYTES} bytes (Content-Length {declared})"
            )
        chunks: list[bytes] = []
        total, late = 0, False
        try:
            # read1: what one recv gives, so that a trickle meets the clock (read(amt) would
            # wait for the whole amount, a trickle of bytes at a time included).
            while chunk := response.raw.read1(64 * 1024, decode_content=False):
                total += len(chunk)
                if total > MAX_ANSWER_BYTES:
                    raise AnswerTooLarge(f"answer too large: more than {MAX_ANSWER_BYTES} bytes")
                chunks.append(chunk)
                if time.monotonic() > ends:
                    late = True
                    break
        except urllib3.exceptions.ReadTimeoutError:
            late = True
        except urllib3.exceptions.HTTPError as exc:  # its message may quote the URL
            raise ConnectionBroken(f"reading the answer failed ({type(exc).__name__})") from None
        if late:
            raise ExchangeTimeout(
                f"the whole answer did not come within {timeout:.1f} s ({total} bytes came)"
            )
        return RawAnswer(response.status_code, b"".join(chunks), response.headers)


SubjectKind = Literal["personal_id", "enterprise_code"]


@dataclass(frozen=True)
class Dataset:
    """One dataset an adapter serves, declared once, in the adapter.

    The bus's name for it is `<source>.<name>`. `mapping` is the file `mappings/<mapping>.toml`
    that turns the native record into the normalized schema the file names as its target;
    `subject` is the kind of identifier the dataset is asked by. `call` names the native call
    that answers it when several datasets of the adapter come from one call (population's
    identity and residence are both one `TraCuuThongTinCongDan`): asked together for the same
    subject in one request (a dossier prefill), they are answered by one call. Empty: a call of
    its own.
    """

    name: str
    mapping: str
    subject: SubjectKind = "personal_id"
    description: str = ""
    call: str = ""


@dataclass(frozen=True)
class NativeRecord:
    """A record as the national database gave it, before mapping."""

    source: str
    dataset: str
    data: dict[str, Any]
    record_time: datetime | None


@dataclass(frozen=True)
class NativeChange:
    """One change from a national database's change feed, as the database gave it.

    `sequence` is the source's own, increasing sequence number; `kind` its own name of the
    change (e.g. "KHAI_TU"); `entity` the id the change is about (personal id, enterprise code,
    licence number) in the source's words; `data` the native fields, before mapping.
    """

    source: str
    sequence: int
    kind: str
    entity: str
    occurred_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class ChangePage:
    """A page of a change feed: the changes after a cursor, in order, and the cursor after them
    (the one to ask with next, and to commit once the page's events are acknowledged)."""

    changes: list[NativeChange]
    cursor: str
    more: bool  # True: the feed had more than the page's limit after the cursor


@dataclass(frozen=True)
class UpdateResult:
    """What a national database answered to an update a subscription sent it."""

    applied: bool  # False: it had applied this idempotency key already (nothing new done)
    detail: dict[str, Any]


@cache
def _dataset_subjects(cls: type[Adapter]) -> dict[str, SubjectKind]:
    return {dataset.name: dataset.subject for dataset in cls.datasets}


# Native time formats: the form a source documents -> the strptime pattern that reads it.
_TIME_FORMATS = {
    "dd/MM/yyyy HH:mm:ss": "%d/%m/%Y %H:%M:%S",
    "yyyy-MM-dd HH:mm:ss": "%Y-%m-%d %H:%M:%S",
}


def vietnam_time(source: str, field: str, value: Any, form: str) -> datetime | None:
    """A source's timestamp `field` in `form` (a key of _TIME_FORMATS), Vietnam time, as an aware
    datetime; None when absent; MalformedAnswer naming the field and the form, never the value."""
    if value is None or value == "":
        return None
    try:
        if not isinstance(value, str) or not value.isascii() or len(value) != len(form):
            raise ValueError(form)
        return datetime.strptime(value, _TIME_FORMATS[form]).replace(tzinfo=VIETNAM_TIME)
    except ValueError:
        raise MalformedAnswer(
            source,
            f"{field} is not {form} (got {type(value).__name__} of {len(str(value))} chars)",
        ) from None


class Adapter(ABC):
    """One national database. Subclasses set `name` and `datasets`, and implement `ask`.

    `name` is the kind of database (e.g. "population"); the instance's `source` is the name it is
    configured under in settings (usually the same). `datasets` declares what it serves (the one
    place they are declared). `settings_model` is the adapter's own settings: a subclass of
    `SourceSettings` with the fields it needs (credentials as `SecretStr`, from the environment:
    `TTHC_BUS_SOURCES__<SOURCE>__<FIELD>`); the bus validates `[sources.<source>]` with it.
    """

    name: ClassVar[str]
    datasets: ClassVar[tuple[Dataset, ...]]
    settings_model: ClassVar[type[SourceSettings]] = SourceSettings

    def __init__(self, name: str, settings: SourceSettings) -> None:
        self.source = name
        self.settings = settings
        self.session = self._new_session(settings.concurrency)
        self._pools: dict[tuple[str, str, int | None], OriginPool] = {}
        self._pools_lock = threading.Lock()

    @staticmethod
    def _new_session(concurrency: int) -> requests.Session:
        session = requests.Session()
        # One pool per host, as many kept-alive connections as calls may run at once. No urllib3
        # retries: retrying is the connector's job, bounded by the request's deadline.
        pool = HTTPAdapter(pool_connections=4, pool_maxsize=concurrency, max_retries=0)
        session.mount("http://", pool)
        session.mount("https://", pool)
        session.headers["User-Agent"] = USER_AGENT
        return session

    def post_bytes(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> RawAnswer:
        """POST on the adapter's own kept-alive connections (`adapters.http11`), without
        `requests`, urllib3 or http.client.

        Their per-request work cost about 1 ms of CPU a call (`requests.Session`), then 0.4 ms
        (urllib3 and http.client), more than the SOAP work itself. The whole call, answer body
        included, must finish within `timeout` (socket timeouts alone are per read, so a
        trickling answer could hold a pool thread far past the deadline), and the answer may not
        exceed `MAX_ANSWER_BYTES`. Errors come out as `requests` exceptions, so `classify`
        treats both paths alike. Plain HTTP, or HTTPS with the system's CAs; proxies and client
        certificates are not supported on this path.
        """
        ends = time.monotonic() + timeout
        origin, target = _origin_and_target(url)
        pool = self._pools.get(origin)
        if pool is None:
            with self._pools_lock:
                pool = self._pools.setdefault(
                    origin, OriginPool(*origin, maxsize=self.settings.concurrency)
                )
        answer = pool.post(
            target,
            body,
            {"User-Agent": USER_AGENT, **headers},
            ends=ends,
            max_bytes=MAX_ANSWER_BYTES,
        )
        return RawAnswer(answer.status, answer.body, answer.headers)

    def fetch(
        self,
        dataset: str,
        subject: Subject,
        *,
        timeout: float,
        request_id: str,
        requester_agency: str,
    ) -> NativeRecord:
        """Ask the source for one dataset about `subject`, within `timeout` seconds.

        Returns the native record or raises a `SourceError` (see the module doc).
        """
        kind = self.dataset_subjects().get(dataset)
        if kind is None:
            raise SourceRejected(
                self.source,
                f"dataset {dataset!r} is not served; known: {sorted(self.dataset_subjects())}",
            )
        if getattr(subject, kind) is None:  # checked here once, for every adapter's `ask`
            words = "a personal id" if kind == "personal_id" else "an enterprise code"
            raise SourceRejected(self.source, f"dataset {dataset!r} is asked by {words}")
        return self.classified_call(
            lambda call_timeout: self.ask(
                dataset,
                subject,
                timeout=call_timeout,
                request_id=request_id,
                requester_agency=requester_agency,
            ),
            timeout,
        )

    def classified_call(self, call: Callable[[float], T], timeout: float) -> T:
        """`call(call_timeout)`, the timeout cut to the source's own, its errors raised as
        `SourceError`s (`classify`): how `fetch` asks, and `changes` and `update` may too."""
        call_timeout = min(timeout, self.settings.timeout_s)
        if call_timeout <= 0:
            raise SourceTimeout(self.source, "no time left before the deadline")
        try:
            return call(call_timeout)
        except SourceError:
            raise
        except Exception as exc:
            classified = self.classify(exc)
            if classified is None:
                raise
            raise classified from exc

    @classmethod
    def dataset_names(cls) -> frozenset[str]:
        return frozenset(cls.dataset_subjects())

    @classmethod
    def dataset_subjects(cls) -> dict[str, SubjectKind]:
        """Dataset name -> the kind of subject it is asked by (built once per class)."""
        return _dataset_subjects(cls)

    @abstractmethod
    def ask(
        self,
        dataset: str,
        subject: Subject,
        *,
        timeout: float,
        request_id: str,
        requester_agency: str,
    ) -> NativeRecord:
        """Protocol-specific: ask and read the answer. Raise freely; `classify` sorts it out.

        `subject` is of the kind `dataset` is declared with (`fetch` checked): its id is
        `subject.key`."""

    # -- sync: the change feed (source connectors) and updates (sink connectors) ----------------

    #: The update operations this database accepts from a subscription's sink (see `update`).
    update_operations: ClassVar[tuple[str, ...]] = ()

    def changes(self, cursor: str | None, limit: int, *, timeout: float) -> ChangePage:
        """Up to `limit` changes after `cursor` (None: from the start of the feed), within
        `timeout` seconds; raise a `SourceError` as `fetch` does. A database without a change
        feed raises SourceRejected."""
        raise SourceRejected(self.source, "this database has no change feed")

    def update(
        self, operation: str, payload: dict[str, Any], *, idempotency_key: str, timeout: float
    ) -> UpdateResult:
        """Apply `operation` (one of `update_operations`) with `payload` (normalized names; the
        adapter renders them natively), at most once per `idempotency_key`; raise a
        `SourceError` as `fetch` does."""
        raise SourceRejected(self.source, f"this database accepts no update {operation!r}")

    def classify(self, exc: BaseException) -> SourceError | None:
        """The `SourceError` for an exception raised while asking; None for a bug (re-raised)."""
        # adapters.http11's own errors say what went wrong and never quote the answer or the URL.
        if isinstance(exc, AnswerTooLarge | EncodedAnswer):
            return UnsafeAnswer(self.source, str(exc))
        if isinstance(exc, ExchangeTimeout):
            return SourceTimeout(self.source, str(exc))
        # str(exc) of requests errors quotes the URL: name the error classes instead.
        if isinstance(exc, requests.Timeout):  # ConnectTimeout and ReadTimeout
            return SourceTimeout(self.source, f"no answer in time ({error_chain(exc)})")
        if isinstance(exc, requests.ConnectionError):
            return SourceUnavailable(self.source, f"cannot connect ({error_chain(exc)})")
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return self.http_status_error(exc.response.status_code, exc.response.reason)
        if isinstance(exc, requests.RequestException):
            return SourceUnavailable(self.source, f"HTTP request failed ({error_chain(exc)})")
        return None

    def check_result_code(
        self, code: str, description: str, *, found: str, not_found: str, invalid_input: str
    ) -> None:
        """Return when a source's result code is `found`; else raise what it says: `not_found`
        SourceNotFound, `invalid_input` SourceRejected, any other code SourceFault. `code` and
        `description` are the source's own words, already cut short (`source_words`)."""
        if code == not_found:
            raise SourceNotFound(self.source, f"{code} {description}".strip())
        if code == invalid_input:
            raise SourceRejected(self.source, f"{code} {description}".strip())
        if code != found:
            raise SourceFault(self.source, f"result code {code!r}: {description}".rstrip(": "))

    def http_status_error(self, status: int, reason: str | None) -> SourceError:
        """An HTTP error status that carries no protocol-level answer."""
        message = f"HTTP {status} {source_words(reason or '', 60)}".rstrip()
        if status >= 500 or status == 429:  # 429: the source's quota, try again later
            return SourceUnavailable(self.source, message)
        return SourceRejected(self.source, message)

    def close(self) -> None:
        """Close the pooled connections; the adapter must not be used afterwards."""
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        self.session.close()

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
