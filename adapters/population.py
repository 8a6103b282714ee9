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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import zeep
import zeep.exceptions
import zeep.helpers
from zeep.transports import Transport

from adapters.base import Adapter, NativeRecord
from bus.errors import (
    MalformedAnswer,
    SourceError,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceUnavailable,
)
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings

OPERATION = "TraCuuThongTinCongDan"
VIETNAM_TIME = timezone(timedelta(hours=7))
DATA_TIME_FORMAT = "%Y%m%d%H%M%S"
FOUND, NOT_FOUND, INVALID_INPUT = "00", "01", "02"
_ZEEP_UNKNOWN_FAULT = "Unknown fault occured"  # zeep's message for a non-200 answer without Fault

_call_timeout: ContextVar[float | None] = ContextVar("population_call_timeout", default=None)


class DeadlineTransport(Transport):
    """A zeep transport whose operation timeout is per call (see the module doc)."""

    @property
    def operation_timeout(self) -> float | None:
        return _call_timeout.get()

    @operation_timeout.setter
    def operation_timeout(self, value: float | None) -> None:
        # Transport.__init__ assigns a default; the per-call value always comes from `deadline`.
        pass

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        token = _call_timeout.set(seconds)
        try:
            yield
        finally:
            _call_timeout.reset(token)


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
        self._service: Any = None
        self._service_lock = threading.Lock()

    # -- the client, loaded lazily ----------------------------------------------------------
    def service(self, timeout: float) -> Any:
        """The zeep service proxy bound to the configured URL, loading the WSDL if needed."""
        service = self._service
        if service is not None:
            return service
        with self._service_lock:
            if self._service is None:
                self._service = self._load_service(timeout)
            return self._service

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
        service = self.service(timeout)
        with self.transport.deadline(timeout):
            answer = service.TraCuuThongTinCongDan(
                MaYeuCau=request_id,
                MaDonViYeuCau=requester_agency,
                SoDinhDanh=subject.personal_id,
            )
        return self.read_answer(dataset, answer)

    def read_answer(self, dataset: str, answer: Any) -> NativeRecord:
        """Turn the zeep response into a NativeRecord, or raise the error its result code says."""
        serialized = zeep.helpers.serialize_object(answer, target_cls=dict)  # type: ignore[no-untyped-call]
        data = plain(serialized)
        if not isinstance(data, dict) or "MaKetQua" not in data:
            raise MalformedAnswer(self.source, f"no MaKetQua in the answer: {data!r:.200}")
        code, description = data["MaKetQua"], data.get("MoTaKetQua") or ""
        if code == NOT_FOUND:
            raise SourceNotFound(self.source, f"{code} {description}".strip())
        if code == INVALID_INPUT:
            raise SourceRejected(self.source, f"{code} {description}".strip())
        if code != FOUND:
            raise SourceFault(self.source, f"result code {code!r}: {description}")
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
                self.source, f"ThoiDiemDuLieu {value!r} is not yyyyMMddHHmmss"
            ) from None

    # -- errors -----------------------------------------------------------------------------
    def classify(self, exc: BaseException) -> SourceError | None:
        if isinstance(exc, zeep.exceptions.Fault):
            return self._fault(exc)
        if isinstance(exc, zeep.exceptions.TransportError):
            status = exc.status_code or 0
            if status == 200:
                return MalformedAnswer(self.source, f"unreadable answer: {exc.message:.300}")
            return self.http_status_error(status, "without a SOAP answer")
        if isinstance(exc, zeep.exceptions.Error):
            return MalformedAnswer(self.source, f"unreadable answer: {exc}"[:400])
        return super().classify(exc)

    def _fault(self, fault: zeep.exceptions.Fault) -> SourceError:
        if fault.code is None and fault.message == _ZEEP_UNKNOWN_FAULT:
            return SourceUnavailable(self.source, "HTTP error status with a SOAP body but no Fault")
        code = str(fault.code or "")
        if code.endswith("Client"):  # the source says our request is wrong: asking again won't do
            return SourceRejected(self.source, f"SOAP fault {code}: {fault.message}")
        return SourceFault(self.source, f"SOAP fault {code}: {fault.message}")
