"""The population database (CSDL quốc gia về dân cư): SOAP 1.1, its WSDL read with zeep.

Operation `TraCuuThongTinCongDan(MaYeuCau, MaDonViYeuCau, SoDinhDanh)` answers `MaKetQua`
(00 found, 01 not found, 02 invalid input), `MoTaKetQua`, `ThoiDiemDuLieu` (yyyyMMddHHmmss,
Vietnam time) and, when found, `CongDan`.

The WSDL loading, the lean calls, the result code and the classification of zeep's errors are the
SOAP adapter base's (`adapters.soap_adapter.SoapAdapter`): this module says what it asks and how
it reads the citizen. Nothing logs request or answer bodies (they hold personal data).
"""

from __future__ import annotations

from typing import Any, ClassVar

from adapters.base import Dataset, NativeRecord
from adapters.soap_adapter import SoapAdapter
from bus.errors import MalformedAnswer
from bus.schemas.lookup import Subject

OPERATION = "TraCuuThongTinCongDan"


class PopulationAdapter(SoapAdapter):
    name: ClassVar[str] = "population"
    operation_names: ClassVar[tuple[str, ...]] = (OPERATION,)
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

    def ask(
        self,
        dataset: str,
        subject: Subject,
        *,
        timeout: float,
        request_id: str,
        requester_agency: str,
    ) -> NativeRecord:
        values = {
            "MaYeuCau": request_id,
            "MaDonViYeuCau": requester_agency,
            "SoDinhDanh": subject.key,
        }
        return self.read_answer(dataset, self.call(OPERATION, values, timeout))

    def read_answer(self, dataset: str, data: Any) -> NativeRecord:
        """Turn the answer (plain dicts) into a NativeRecord, or raise what its result code says."""
        found = self.found(data)
        citizen = found.get("CongDan")
        if not isinstance(citizen, dict):
            raise MalformedAnswer(self.source, "MaKetQua 00 (found) without a CongDan element")
        return NativeRecord(
            self.source, dataset, citizen, self.data_time(found.get("ThoiDiemDuLieu"))
        )
