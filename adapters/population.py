"""The population database (CSDL quốc gia về dân cư): SOAP 1.1 with zeep.

Operation `TraCuuThongTinCongDan(MaYeuCau, MaDonViYeuCau, SoDinhDanh)` answers `MaKetQua`
(00 found, 01 not found, 02 invalid input), `MoTaKetQua`, `ThoiDiemDuLieu` (yyyyMMddHHmmss,
Vietnam time) and, when found, `CongDan`.

The WSDL is read from `<url>?wsdl` on first use (again on the next call if that failed), with
zeep's protections against DTDs, entities and external references on. Calls go to the configured
URL whatever the WSDL's soap:address says.

Per-call timeouts: zeep's `Transport.operation_timeout` is one attribute shared by every thread
using the client (and `Transport.settings(timeout=...)` just swaps it, which races between
threads). `DeadlineTransport` makes it a context variable instead: each call sets its own
remaining time for the duration of the call, in its own thread, and zeep's `post` reads it there.
The same per-call state keeps the HTTP status, content type and length of the answer, so that an
answer that cannot be read is described without quoting it (it holds personal data). `post` is
ours, not zeep's: zeep's logs whole request and response bodies at DEBUG.

The WSDL is loaded by one call while the others wait for it, each no longer than its own timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import zeep
import zeep.exceptions
import zeep.helpers
from zeep.transports import Transport

from adapters.base import Adapter, NativeRecord, RawAnswer, describe_body, source_words
from bus.errors import (
    MalformedAnswer,
    SourceError,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings

OPERATION = "TraCuuThongTinCongDan"
VIETNAM_TIME = timezone(timedelta(hours=7))
DATA_TIME_FORMAT = "%Y%m%d%H%M%S"
FOUND, NOT_FOUND, INVALID_INPUT = "00", "01", "02"
_ZEEP_UNKNOWN_FAULT = "Unknown fault occured"  # zeep's message for a non-200 answer without Fault


@dataclass
class CallState:
    """One SOAP call: its timeout, and what can be said of the answer without quoting it."""

    timeout: float
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None

    def describe(self) -> str:
        return describe_body(self.status, self.content_type, self.body)


_call: ContextVar[CallState | None] = ContextVar("population_call", default=None)


class DeadlineTransport(Transport):
    """A zeep transport whose operation timeout is per call (see the module doc)."""

    poster: Callable[[str, bytes, dict[str, str], float], RawAnswer] | None = None

    @property
    def operation_timeout(self) -> float | None:
        call = _call.get()
        return None if call is None else call.timeout

    @operation_timeout.setter
    def operation_timeout(self, value: float | None) -> None:
        # Transport.__init__ assigns a default; the per-call value always comes from `deadline`.
        pass

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[CallState]:
        call = CallState(seconds)
        token = _call.set(call)
        try:
            yield call
        finally:
            _call.reset(token)

    def post(self, address: str, message: Any, headers: Any) -> Any:
        """POST through the adapter's lean pool (no zeep DEBUG logging of bodies, no per-call
        `requests` machinery); note what the answer looks like for error messages."""
        if self.poster is None:
            raise RuntimeError("DeadlineTransport.poster is not set")
        body = message if isinstance(message, bytes) else str(message).encode("utf-8")
        response = self.poster(
            address,
            body,
            dict(headers),
            30.0 if self.operation_timeout is None else self.operation_timeout,
        )
        call = _call.get()
        if call is not None:
            call.status = response.status_code
            call.content_type = response.headers.get("Content-Type")
            call.body = response.content
        return response


def describe_zeep_error(exc: zeep.exceptions.Error) -> str:
    """The kind of a zeep error and where it was, never its message (it may quote the answer)."""
    kind = type(exc).__name__
    if isinstance(exc, zeep.exceptions.TransportError | zeep.exceptions.XMLSyntaxError):
        kind = f"not well-formed XML ({kind})"
    path = getattr(exc, "path", None)
    if path:  # ValidationError: the element path
        return f"{kind} at {'.'.join(str(part) for part in path)}"
    line = getattr(exc, "sourceline", None)
    if line:  # XMLParseError
        return f"{kind} at line {line}"
    return kind


def zeep_settings() -> zeep.Settings:
    """Strict parsing, and no DTDs, entities, external references or huge trees from outside."""
    return zeep.Settings(
        strict=True,
        xml_huge_tree=False,
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )


def plain(value: Any) -> Any:
    """zeep's serialized objects (OrderedDicts, lists) as plain dicts and lists."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


class PopulationAdapter(Adapter):
    name: ClassVar[str] = "population"
    mapping: ClassVar[dict[str, str]] = {"identity": "population"}

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self.transport = DeadlineTransport(session=self.session)  # type: ignore[no-untyped-call]
        self.transport.poster = self.post_bytes
        self._service: Any = None
        self._service_lock = threading.Lock()

    # -- the client, loaded lazily ----------------------------------------------------------
    def service(self, timeout: float) -> Any:
        """The zeep service proxy bound to the configured URL, loading the WSDL if needed.

        One call loads the WSDL; the others wait for it, but no longer than `timeout` seconds
        (SourceTimeout), so a slow WSDL cannot hold them past their deadline.
        """
        service = self._service
        if service is not None:
            return service
        started = time.monotonic()
        if not self._service_lock.acquire(timeout=max(timeout, 0.0)):
            raise SourceTimeout(
                self.source,
                f"the WSDL was still being loaded by another call after {timeout:.3g} s",
            )
        try:
            if self._service is None:
                remaining = timeout - (time.monotonic() - started)
                if remaining <= 0:
                    raise SourceTimeout(self.source, "no time left to load the WSDL")
                self._service = self._load_service(remaining)
            return self._service
        finally:
            self._service_lock.release()

    def _load_service(self, timeout: float) -> Any:
        self.transport.load_timeout = timeout
        client = zeep.Client(  # type: ignore[no-untyped-call]
            wsdl=f"{self.settings.url}?wsdl", transport=self.transport, settings=zeep_settings()
        )
        for qname, binding in client.wsdl.bindings.items():
            if OPERATION in binding._operations:
                return client.create_service(qname, self.settings.url)  # type: ignore[no-untyped-call]
        raise MalformedAnswer(self.source, f"the WSDL has no binding with operation {OPERATION}")

    # -- asking -----------------------------------------------------------------------------
    def ask(
        self,
        dataset: str,
        subject: Subject,
        *,
        timeout: float,
        request_id: str,
        requester_agency: str,
    ) -> NativeRecord:
        if subject.personal_id is None:
            raise SourceRejected(self.source, "the population database is asked by personal id")
        deadline = time.monotonic() + timeout
        service = self.service(timeout)
        remaining = deadline - time.monotonic()  # loading the WSDL took some of it
        if remaining <= 0:
            raise SourceTimeout(self.source, "no time left after loading the WSDL")
        with self.transport.deadline(remaining) as call:
            try:
                answer = service.TraCuuThongTinCongDan(
                    MaYeuCau=request_id,
                    MaDonViYeuCau=requester_agency,
                    SoDinhDanh=subject.personal_id,
                )
            except zeep.exceptions.Error as exc:
                # Not `from exc`: zeep's message quotes the answer, and a logged traceback
                # would show it. The classified error says what can be said.
                raise self.classify_zeep(exc, call) from None
        return self.read_answer(dataset, answer)

    def read_answer(self, dataset: str, answer: Any) -> NativeRecord:
        """Turn the zeep response into a NativeRecord, or raise the error its result code says."""
        serialized = zeep.helpers.serialize_object(answer, target_cls=dict)  # type: ignore[no-untyped-call]
        data = plain(serialized)
        if not isinstance(data, dict):
            raise MalformedAnswer(
                self.source, f"no MaKetQua in the answer: a {type(data).__name__}, not a record"
            )
        if "MaKetQua" not in data:
            elements = ", ".join(source_words(key, 40) for key in list(data)[:10]) or "none"
            raise MalformedAnswer(self.source, f"no MaKetQua in the answer (elements: {elements})")
        # The result code and its description are the source's own words, not personal data.
        code = source_words("" if data["MaKetQua"] is None else data["MaKetQua"], 10)
        description = source_words(data.get("MoTaKetQua") or "")
        if code == NOT_FOUND:
            raise SourceNotFound(self.source, f"{code} {description}".strip())
        if code == INVALID_INPUT:
            raise SourceRejected(self.source, f"{code} {description}".strip())
        if code != FOUND:
            raise SourceFault(self.source, f"result code {code!r}: {description}".rstrip(": "))
        citizen = data.get("CongDan")
        if not isinstance(citizen, dict):
            raise MalformedAnswer(self.source, "MaKetQua 00 (found) without a CongDan element")
        return NativeRecord(
            self.source, dataset, citizen, self.data_time(data.get("ThoiDiemDuLieu"))
        )

    def data_time(self, value: Any) -> datetime | None:
        """ThoiDiemDuLieu (yyyyMMddHHmmss, Vietnam time) as an aware datetime."""
        if value is None or value == "":
            return None
        try:
            return datetime.strptime(str(value), DATA_TIME_FORMAT).replace(tzinfo=VIETNAM_TIME)
        except ValueError:
            raise MalformedAnswer(
                self.source,
                f"ThoiDiemDuLieu is not yyyyMMddHHmmss (got {type(value).__name__} of "
                f"{len(str(value))} chars)",
            ) from None

    # -- errors -----------------------------------------------------------------------------
    # zeep's messages quote the answer (TransportError carries the whole body, EntitiesForbidden
    # the entity's content): never pass them on. A SOAP faultstring is the source's own words.
    def classify(self, exc: BaseException) -> SourceError | None:
        if isinstance(exc, zeep.exceptions.Error):
            return self.classify_zeep(exc, None)
        return super().classify(exc)

    def classify_zeep(self, exc: zeep.exceptions.Error, call: CallState | None) -> SourceError:
        """A zeep error as a SourceError; `call` describes the answer when there was one."""
        if isinstance(exc, zeep.exceptions.Fault):
            return self._fault(exc)
        if isinstance(exc, zeep.exceptions.TransportError):
            status = exc.status_code or 0
            if status != 200:
                return self.http_status_error(status, "without a SOAP answer")
        if call is not None and call.status is not None:
            answer = call.describe()
        elif isinstance(exc, zeep.exceptions.TransportError | zeep.exceptions.XMLSyntaxError):
            answer = describe_body(getattr(exc, "status_code", None), None, exc.content)
        else:
            answer = "no answer details"
        return MalformedAnswer(
            self.source, f"unreadable answer: {describe_zeep_error(exc)} ({answer})"
        )

    def _fault(self, fault: zeep.exceptions.Fault) -> SourceError:
        if fault.code is None and fault.message == _ZEEP_UNKNOWN_FAULT:
            return SourceUnavailable(self.source, "HTTP error status with a SOAP body but no Fault")
        code = source_words(fault.code or "", 60)
        message = f"SOAP fault {code}: {source_words(fault.message or '')}"
        if code.endswith("Client"):  # the source says our request is wrong: asking again won't do
            return SourceRejected(self.source, message)
        return SourceFault(self.source, message)
