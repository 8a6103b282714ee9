"""The electronic civil status database (CSDL hộ tịch điện tử, Ministry of Justice): SOAP 1.1.

Two operations of one WSDL, both asked by `SoDinhDanh` with `MaYeuCau` (our request id) and
`MaDonViYeuCau` (the requesting agency):

- `TraCuuSuKienHoTich` (look up civil status events) for the dataset `events`: `SoDinhDanh` and
  `DanhSachSuKien` (births, marriages, divorces and deaths naming the person);
- `XacNhanTinhTrangHonNhan` (certify marital status) for the dataset `marital_status`: the
  element `TinhTrangHonNhan`. Its `NgayXacNhan` (the day to certify) is sent blank: the source
  answers as of the day of its data, as a certificate issued that day would.

Its change feed, `LayDanhSachThayDoi` (`changes`): the registrations after the cursor
`SauSoThuTu` (the last `SoThuTu` read), each a `ThayDoi` with its `LoaiThayDoi` (KHAI_SINH,
KHAI_TU, KET_HON, LY_HON), `MaDoiTuong` (the personal id; a birth registration's number for a
birth), `ThoiDiemGhiNhan` (yyyyMMddHHmmss) and the native fields `SuKienHoTich` (the record),
`ThongTinKhaiSinh` and `NoiChet`. It takes no updates.

All answer `MaKetQua` (00 found, 01 not found, 02 invalid input), `MoTaKetQua` and
`ThoiDiemDuLieu` (yyyyMMddHHmmss, Vietnam time). The source's text is Unicode NFD; the mappings
normalize names and text to NFC, and its result descriptions and fault strings are made NFC here
before they go into an error message.

The WSDL loading (both operations from one reading), the lean calls, the result code and the
classification of zeep's errors are the SOAP adapter base's (`adapters.soap_adapter.SoapAdapter`):
this module says what it asks and how it reads the two answers, and reads the source's words as
NFC (`words`). Nothing logs request or answer bodies (they hold personal data).
"""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

from adapters.base import SOURCE_WORDS_MAX, ChangePage, Dataset, NativeRecord, source_words
from adapters.soap_adapter import LIST_CHANGES, SoapAdapter
from bus.errors import MalformedAnswer
from bus.schemas.lookup import Subject

LOOK_UP_EVENTS = "TraCuuSuKienHoTich"
CERTIFY_MARITAL_STATUS = "XacNhanTinhTrangHonNhan"
# The operation each dataset is asked with.
_ASKED_BY = {"events": LOOK_UP_EVENTS, "marital_status": CERTIFY_MARITAL_STATUS}


class CivilStatusAdapter(SoapAdapter):
    name: ClassVar[str] = "civil"
    operation_names: ClassVar[tuple[str, ...]] = (
        LOOK_UP_EVENTS,
        CERTIFY_MARITAL_STATUS,
        LIST_CHANGES,
    )
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

    def ask(
        self,
        dataset: str,
        subject: Subject,
        *,
        timeout: float,
        request_id: str,
        requester_agency: str,
    ) -> NativeRecord:
        operation = _ASKED_BY[dataset]
        values = {
            "MaYeuCau": request_id,
            "MaDonViYeuCau": requester_agency,
            "SoDinhDanh": subject.key,
        }
        if operation == CERTIFY_MARITAL_STATUS:
            values["NgayXacNhan"] = ""  # the day of the source's data
        return self.read_answer(dataset, self.call(operation, values, timeout))

    def changes(self, cursor: str | None, limit: int, *, timeout: float) -> ChangePage:
        return self.classified_call(
            lambda left: self.list_changes(cursor, limit, left, "MaDoiTuong"), timeout
        )

    def read_answer(self, dataset: str, data: Any) -> NativeRecord:
        """The answer (plain dicts) as a NativeRecord, or what its result code says."""
        found = self.found(data)
        return NativeRecord(
            self.source,
            dataset,
            self._found(dataset, found),
            self.data_time(found.get("ThoiDiemDuLieu")),
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

    def words(self, text: object, limit: int = SOURCE_WORDS_MAX) -> str:
        """The source's own words (NFD in this source) in NFC, on one line, cut short."""
        return source_words(unicodedata.normalize("NFC", str(text)), limit)
