"""The electronic civil status database (CSDL hộ tịch điện tử, Ministry of Justice): SOAP 1.1.

Two operations of one WSDL, both asked by `SoDinhDanh` with `MaYeuCau` (our request id) and
`MaDonViYeuCau` (the requesting agency):

- `TraCuuSuKienHoTich` (look up civil status events) for the dataset `events`: `SoDinhDanh` and
  `DanhSachSuKien` (births, marriages, divorces and deaths naming the person);
- `XacNhanTinhTrangHonNhan` (certify marital status) for the dataset `marital_status`: the
  element `TinhTrangHonNhan`. Its `NgayXacNhan` (the day to certify) is sent blank: the source
  answers as of the day of its data, as a certificate issued that day would.

Both answer `MaKetQua` (00 found, 01 not found, 02 invalid input), `MoTaKetQua` and
`ThoiDiemDuLieu` (yyyyMMddHHmmss, Vietnam time). The source's text is Unicode NFD; the mappings
normalize names and text to NFC, and its result descriptions and fault strings are made NFC here
before they go into an error message.

As for the population database, the WSDL is read once with zeep (its protections on), by one call
while the others wait no longer than their own timeout, and each call goes through
`adapters.soap.SoapOperation` on the adapter's kept-alive connections. The WSDL loading and the
classification of zeep's errors are the population adapter's, reused by subclassing until they move
to a shared SOAP adapter base. Nothing logs request or answer bodies (they hold personal data).
"""

from __future__ import annotations

import time
import unicodedata
from typing import Any, ClassVar

import zeep
import zeep.exceptions

from adapters.base import SOURCE_WORDS_MAX, Dataset, NativeRecord, source_words
from adapters.population import PopulationAdapter, zeep_settings
from adapters.soap import SchemaNotSupported, SoapOperation
from bus.errors import (
    MalformedAnswer,
    SourceError,
    SourceFault,
    SourceNotFound,
    SourceRejected,
    SourceTimeout,
)
from bus.schemas.lookup import Subject
from bus.settings import SourceSettings

LOOK_UP_EVENTS = "TraCuuSuKienHoTich"
CERTIFY_MARITAL_STATUS = "XacNhanTinhTrangHonNhan"
FOUND, NOT_FOUND, INVALID_INPUT = "00", "01", "02"
# The operation each dataset is asked with.
_ASKED_BY = {"events": LOOK_UP_EVENTS, "marital_status": CERTIFY_MARITAL_STATUS}


def nfc_words(text: object, limit: int = SOURCE_WORDS_MAX) -> str:
    """The source's own words (NFD) in NFC, on one line, cut short."""
    return source_words(unicodedata.normalize("NFC", str(text)), limit)


class CivilStatusAdapter(PopulationAdapter):
    name: ClassVar[str] = "civil"
    datasets: ClassVar[tuple[Dataset, ...]] = (
        Dataset(
            "marital_status",
            "civil-marital-status",
            description="Marital status as a certificate states it: never married, married "
            "(with the spouse), divorced or widowed, the record it rests on, valid 6 months.",
        ),
        Dataset(
            "events",
            "civil-events",
            description="Civil status records naming the citizen: birth, marriage, divorce, "
            "death, with the registering office, book and entry numbers and dates.",
        ),
    )

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self._by_operation: dict[str, SoapOperation] = {}

    def _load_operation(self, timeout: float) -> SoapOperation:
        """Both operations from one reading of the WSDL; the lookup is the one returned (and
        kept by `operation`), the certificate is kept beside it before it is."""
        self.transport.load_timeout = timeout
        client = zeep.Client(  # type: ignore[no-untyped-call]
            wsdl=f"{self.settings.url}?wsdl", transport=self.transport, settings=zeep_settings()
        )
        try:
            loaded = {name: SoapOperation.from_client(client, name) for name in _ASKED_BY.values()}
        except SchemaNotSupported as exc:
            raise MalformedAnswer(self.source, str(exc)) from None
        self._by_operation = loaded
        return loaded[LOOK_UP_EVENTS]

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
            raise SourceRejected(self.source, "the civil status database is asked by personal id")
        deadline = time.monotonic() + timeout
        self.operation(timeout)  # loads the WSDL on first use
        operation = self._by_operation[_ASKED_BY[dataset]]
        remaining = deadline - time.monotonic()  # loading the WSDL took some of it
        if remaining <= 0:
            raise SourceTimeout(self.source, "no time left after loading the WSDL")
        values = {
            "MaYeuCau": request_id,
            "MaDonViYeuCau": requester_agency,
            "SoDinhDanh": subject.personal_id,
        }
        if operation.name == CERTIFY_MARITAL_STATUS:
            values["NgayXacNhan"] = ""  # the day of the source's data
        body = operation.render(values)
        answer = self.post_bytes(self.settings.url, body, operation.headers, remaining)
        try:
            result = operation.read(answer)
        except zeep.exceptions.Error as exc:
            # Not `from exc`: a zeep error may carry the answer (see adapters.population).
            raise self.classify_zeep(exc, answer) from None
        return self.read_answer(dataset, result)

    def read_answer(self, dataset: str, data: Any) -> NativeRecord:
        """The answer (plain dicts) as a NativeRecord, or what its result code says."""
        if not isinstance(data, dict) or "MaKetQua" not in data:
            raise MalformedAnswer(self.source, "no MaKetQua in the answer")
        code = source_words("" if data["MaKetQua"] is None else data["MaKetQua"], 10)
        description = nfc_words(data.get("MoTaKetQua") or "")
        if code == NOT_FOUND:
            raise SourceNotFound(self.source, f"{code} {description}".strip())
        if code == INVALID_INPUT:
            raise SourceRejected(self.source, f"{code} {description}".strip())
        if code != FOUND:
            raise SourceFault(self.source, f"result code {code!r}: {description}".rstrip(": "))
        return NativeRecord(
            self.source,
            dataset,
            self._found(dataset, data),
            self.data_time(data.get("ThoiDiemDuLieu")),
        )

    def _found(self, dataset: str, data: dict[str, Any]) -> dict[str, Any]:
        """The native record of a found answer: what the dataset's mapping reads."""
        if dataset == "events":
            events = data.get("DanhSachSuKien")
            if not data.get("SoDinhDanh") or not isinstance(events, dict):
                raise MalformedAnswer(
                    self.source, "MaKetQua 00 (found) without SoDinhDanh and DanhSachSuKien"
                )
            return {"SoDinhDanh": data["SoDinhDanh"], "DanhSachSuKien": events}
        status = data.get("TinhTrangHonNhan")
        if not isinstance(status, dict):
            raise MalformedAnswer(
                self.source, "MaKetQua 00 (found) without a TinhTrangHonNhan element"
            )
        return status

    def _fault(self, fault: zeep.exceptions.Fault) -> SourceError:
        """A SOAP fault, its faultcode and faultstring (NFD in this source) read as NFC."""
        message = fault.message
        if isinstance(message, str):
            message = unicodedata.normalize("NFC", message)
        return super()._fault(
            zeep.exceptions.Fault(message, code=fault.code)  # type: ignore[no-untyped-call]
        )
