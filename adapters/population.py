"""The population database (CSDL quốc gia về dân cư): SOAP 1.1, its WSDL read with zeep.

Operation `TraCuuThongTinCongDan(MaYeuCau, MaDonViYeuCau, SoDinhDanh)` answers `MaKetQua`
(00 found, 01 not found, 02 invalid input), `MoTaKetQua`, `ThoiDiemDuLieu` (yyyyMMddHHmmss,
Vietnam time) and, when found, `CongDan`.

The WSDL is read from `<url>?wsdl` on first use (again on the next call if that failed), with
zeep's protections against DTDs, entities and external references on, by one call while the
others wait for it, each no longer than its own timeout. A call does not go through zeep's
per-call machinery (it cost about a millisecond of CPU): `adapters.soap.SoapOperation` fills the
request into the envelope zeep rendered once, `post_bytes` sends it on the adapter's kept-alive
connections within the call's own timeout, and `SoapOperation` reads the answer with a hardened
lxml parser into the plain dicts zeep would have given, raising zeep's exceptions where zeep
would. Calls go to the configured URL whatever the WSDL's soap:address says. Nothing logs request
or answer bodies (they hold personal data).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import zeep
import zeep.exceptions
from zeep.transports import Transport

from adapters.base import Adapter, Dataset, NativeRecord, RawAnswer, describe_body, source_words
from adapters.soap import UNKNOWN_FAULT, RequestValueError, SchemaNotSupported, SoapOperation
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
FOUND, NOT_FOUND, INVALID_INPUT = "00", "01", "02"


class WsdlTransport(Transport):
    """zeep's transport for reading the WSDL on the adapter's session; it never posts (calls go
    through `SoapOperation`, and zeep's own `post` logs whole bodies at DEBUG)."""

    def post(self, address: str, message: Any, headers: Any) -> Any:
        raise RuntimeError("the population adapter posts through SoapOperation, not zeep")


def describe_answer(answer: RawAnswer) -> str:
    """HTTP status, content type and length of an answer, never its content."""
    return describe_body(answer.status_code, answer.headers.get("Content-Type"), answer.content)


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


class PopulationAdapter(Adapter):
    name: ClassVar[str] = "population"
    datasets: ClassVar[tuple[Dataset, ...]] = (
        Dataset(
            "identity",
            "population",
            description="Who the citizen is: name, birth, sex, ethnicity, religion, "
            "nationality, addresses and relatives.",
        ),
        Dataset(
            "residence",
            "population-residence",
            description="Where the citizen lives: permanent and current residence in the 2025 "
            "units, and the head of the household.",
        ),
    )

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self.transport = WsdlTransport(session=self.session)  # type: ignore[no-untyped-call]
        self._operation: SoapOperation | None = None
        self._operation_lock = threading.Lock()

    # -- the operation, loaded lazily from the WSDL ----------------------------------------------
    def operation(self, timeout: float) -> SoapOperation:
        """The lookup operation as the WSDL declares it, loading the WSDL if needed.

        One call loads the WSDL; the others wait for it, but no longer than `timeout` seconds
        (SourceTimeout), so a slow WSDL cannot hold them past their deadline.
        """
        operation = self._operation
        if operation is not None:
            return operation
        started = time.monotonic()
        if not self._operation_lock.acquire(timeout=max(timeout, 0.0)):
            raise SourceTimeout(
                self.source,
                f"the WSDL was still being loaded by another call after {timeout:.3g} s",
            )
        try:
            if self._operation is None:
                remaining = timeout - (time.monotonic() - started)
                if remaining <= 0:
                    raise SourceTimeout(self.source, "no time left to load the WSDL")
                self._operation = self._load_operation(remaining)
            return self._operation
        finally:
            self._operation_lock.release()

    def _load_operation(self, timeout: float) -> SoapOperation:
        self.transport.load_timeout = timeout
        client = zeep.Client(  # type: ignore[no-untyped-call]
            wsdl=f"{self.settings.url}?wsdl", transport=self.transport, settings=zeep_settings()
        )
        try:
            return SoapOperation.from_client(client, OPERATION)
        except SchemaNotSupported as exc:
            raise MalformedAnswer(self.source, str(exc)) from None

    # -- asking ----------------------------------------------------------------------------------
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
        operation = self.operation(timeout)
        remaining = deadline - time.monotonic()  # loading the WSDL took some of it
        if remaining <= 0:
            raise SourceTimeout(self.source, "no time left after loading the WSDL")
        body = operation.render(
            {
                "MaYeuCau": request_id,
                "MaDonViYeuCau": requester_agency,
                "SoDinhDanh": subject.personal_id,
            }
        )
        answer = self.post_bytes(self.settings.url, body, operation.headers, remaining)
        try:
            result = operation.read(answer)
        except zeep.exceptions.Error as exc:
            # Not `from exc`: a zeep error may carry the answer, and a logged traceback would
            # show it. The classified error says what can be said.
            raise self.classify_zeep(exc, answer) from None
        return self.read_answer(dataset, result)

    def read_answer(self, dataset: str, data: Any) -> NativeRecord:
        """Turn the answer (plain dicts) into a NativeRecord, or raise what its result code says."""
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
        text = str(value)
        try:
            if len(text) != 14 or not text.isdigit() or not text.isascii():
                raise ValueError(text)
            # Slicing, not strptime (a tenth of the CPU); the same checks of each field.
            return datetime(
                int(text[:4]),
                int(text[4:6]),
                int(text[6:8]),
                int(text[8:10]),
                int(text[10:12]),
                int(text[12:]),
                tzinfo=VIETNAM_TIME,
            )
        except ValueError:
            raise MalformedAnswer(
                self.source,
                f"ThoiDiemDuLieu is not yyyyMMddHHmmss (got {type(value).__name__} of "
                f"{len(str(value))} chars)",
            ) from None

    # -- errors ----------------------------------------------------------------------------------
    # zeep's messages may quote the answer (TransportError carries the whole body,
    # EntitiesForbidden the entity's content): never pass them on. A SOAP faultstring is the
    # source's own words.
    def classify(self, exc: BaseException) -> SourceError | None:
        if isinstance(exc, zeep.exceptions.Error):
            return self.classify_zeep(exc, None)
        if isinstance(exc, RequestValueError):
            return SourceRejected(self.source, f"cannot be asked: {exc}")
        return super().classify(exc)

    def classify_zeep(self, exc: zeep.exceptions.Error, answer: RawAnswer | None) -> SourceError:
        """A zeep error as a SourceError; `answer` describes the answer when there was one."""
        if isinstance(exc, zeep.exceptions.Fault):
            return self._fault(exc)
        if isinstance(exc, zeep.exceptions.TransportError):
            status = exc.status_code or 0
            if status != 200:
                return self.http_status_error(status, "without a SOAP answer")
        if answer is not None:
            described = describe_answer(answer)
        elif isinstance(exc, zeep.exceptions.TransportError | zeep.exceptions.XMLSyntaxError):
            described = describe_body(getattr(exc, "status_code", None), None, exc.content)
        else:
            described = "no answer details"
        return MalformedAnswer(
            self.source, f"unreadable answer: {describe_zeep_error(exc)} ({described})"
        )

    def _fault(self, fault: zeep.exceptions.Fault) -> SourceError:
        if fault.code is None and fault.message == UNKNOWN_FAULT:
            return SourceUnavailable(self.source, "HTTP error status with a SOAP body but no Fault")
        code = source_words(fault.code or "", 60)
        message = f"SOAP fault {code}: {source_words(fault.message or '')}"
        if code.endswith("Client"):  # the source says our request is wrong: asking again won't do
            return SourceRejected(self.source, message)
        return SourceFault(self.source, message)
