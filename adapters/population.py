"""The population database (CSDL quốc gia về dân cư): SOAP 1.1, its WSDL read with zeep.

Operation `TraCuuThongTinCongDan(MaYeuCau, MaDonViYeuCau, SoDinhDanh)` answers `MaKetQua`
(00 found, 01 not found, 02 invalid input), `MoTaKetQua`, `ThoiDiemDuLieu` (yyyyMMddHHmmss,
Vietnam time) and, when found, `CongDan`.

Its change feed, `LayDanhSachThayDoi` (`changes`): the changes after the cursor `SauSoThuTu`
(the last `SoThuTu` read), each a `ThayDoi` with its `LoaiThayDoi` (CAP_SO_DINH_DANH,
DANG_KY_THUONG_TRU, XOA_DANG_KY_THUONG_TRU, THAY_DOI_NOI_O_HIEN_TAI), `SoDinhDanh`,
`ThoiDiemGhiNhan` (yyyyMMddHHmmss) and the native fields `NgayHieuLuc`, `CongDan`, `DiaChi`,
`DiaChiCu`, `LyDo`.

Its updates (`update`), each applied once per `MaGiaoDich` (the idempotency key), answering
`SoDinhDanh` and `DaXuLyTruocDo` (true: done before, nothing new):
- `register_birth` -> `CapSoDinhDanhKhaiSinh`: a newborn of a birth registration (the payload is
  a CitizenBorn event's data) gets a personal id and the mother's permanent residence;
- `remove_permanent_residence` -> `XoaDangKyThuongTru`: the citizen `entity`'s permanent
  residence is removed from `date_of_death` (or `effective_on`), for `reason`.

The WSDL loading, the lean calls, the result code and the classification of zeep's errors are the
SOAP adapter base's (`adapters.soap_adapter.SoapAdapter`): this module says what it asks and how
it reads the citizen. Nothing logs request or answer bodies (they hold personal data).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, ClassVar

from adapters.base import ChangePage, Dataset, NativeRecord, UpdateResult
from adapters.soap_adapter import LIST_CHANGES, SYNC_AGENCY, SoapAdapter
from bus.errors import MalformedAnswer, SourceRejected
from bus.schemas.lookup import Subject

OPERATION = "TraCuuThongTinCongDan"
REGISTER_BIRTH = "CapSoDinhDanhKhaiSinh"
REMOVE_PERMANENT_RESIDENCE = "XoaDangKyThuongTru"
_SEX = {"male": "1", "female": "2"}


class PopulationAdapter(SoapAdapter):
    name: ClassVar[str] = "population"
    operation_names: ClassVar[tuple[str, ...]] = (
        OPERATION,
        LIST_CHANGES,
        REGISTER_BIRTH,
        REMOVE_PERMANENT_RESIDENCE,
    )
    update_operations: ClassVar[tuple[str, ...]] = ("register_birth", "remove_permanent_residence")
    datasets: ClassVar[tuple[Dataset, ...]] = (
        Dataset(
            "identity",
            "population",
            description="Who the citizen is: name, birth, sex, ethnicity, religion, "
            "nationality, addresses and relatives.",
            call=OPERATION,
        ),
        Dataset(
            "residence",
            "population-residence",
            description="Where the citizen lives: permanent and current residence in the 2025 "
            "units, and the head of the household.",
            call=OPERATION,
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

    # -- sync ----------------------------------------------------------------------------------
    def changes(self, cursor: str | None, limit: int, *, timeout: float) -> ChangePage:
        return self.classified_call(
            lambda left: self.list_changes(cursor, limit, left, "SoDinhDanh"), timeout
        )

    def update(
        self, operation: str, payload: dict[str, Any], *, idempotency_key: str, timeout: float
    ) -> UpdateResult:
        render = self._renderers().get(operation)
        if render is None:
            raise SourceRejected(
                self.source, f"no update {operation!r}; known: {list(self.update_operations)}"
            )
        native, values = render(payload)
        values = {"MaYeuCau": idempotency_key, "MaDonViYeuCau": SYNC_AGENCY, **values}
        values["MaGiaoDich"] = idempotency_key
        return self.classified_call(
            lambda left: self.read_update(self.call(native, values, left)), timeout
        )

    def _renderers(self) -> dict[str, Callable[[dict[str, Any]], tuple[str, dict[str, str]]]]:
        return {
            "register_birth": self._register_birth,
            "remove_permanent_residence": self._remove_permanent_residence,
        }

    def _register_birth(self, payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
        sex = _SEX.get(str(payload.get("sex")))
        if sex is None:
            raise SourceRejected(self.source, "register_birth: sex must be male or female")
        return REGISTER_BIRTH, {
            "SoDangKyKhaiSinh": self._text(payload, "birth_registration_id", "entity"),
            "HoVaTen": self._text(payload, "full_name"),
            "GioiTinh": sex,
            "NgayThangNamSinh": self._day(payload, "birth_date"),
            "NoiDangKyKhaiSinh": str(payload.get("birth_place_commune") or ""),
            "SoDinhDanhCha": str(payload.get("father_personal_id") or ""),
            "SoDinhDanhMe": self._text(payload, "mother_personal_id"),
            "NgayDangKy": self._day(payload, "registered_on", required=False),
        }

    def _remove_permanent_residence(self, payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
        field = "date_of_death" if payload.get("date_of_death") else "effective_on"
        return REMOVE_PERMANENT_RESIDENCE, {
            "SoDinhDanh": self._text(payload, "entity"),
            "LyDo": str(payload.get("reason") or ""),
            "NgayHieuLuc": self._day(payload, field),
        }

    def read_update(self, data: Any) -> UpdateResult:
        """An update's answer as an UpdateResult, or what its result code says."""
        found = self.found(data)
        personal_id = found.get("SoDinhDanh")
        if not personal_id:
            raise MalformedAnswer(self.source, "MaKetQua 00 (done) without SoDinhDanh")
        return UpdateResult(
            applied=not found.get("DaXuLyTruocDo"), detail={"personal_id": str(personal_id)}
        )

    def _text(self, payload: dict[str, Any], *names: str) -> str:
        """The first of `names` the payload has, as text; SourceRejected naming it if none."""
        for name in names:
            value = payload.get(name)
            if value is not None and str(value).strip():
                return str(value).strip()
        raise SourceRejected(self.source, f"the update needs {' or '.join(names)}")

    def _day(self, payload: dict[str, Any], name: str, required: bool = True) -> str:
        """An ISO day of the payload as this source writes days (yyyyMMdd)."""
        value = payload.get(name)
        if value is None or value == "":
            if required:
                raise SourceRejected(self.source, f"the update needs {name}")
            return ""
        try:
            day = value if isinstance(value, date) else date.fromisoformat(str(value))
        except ValueError:
            raise SourceRejected(self.source, f"{name}: expected a day yyyy-mm-dd") from None
        return day.strftime("%Y%m%d")
