"""The SOAP service of the simulated electronic civil status database (CSDL hộ tịch điện tử).

SOAP 1.1, document/literal, namespace ``urn:tthc-sandbox:csdl-ho-tich:v1``, service
``DichVuHoTich`` ("civil status service") with two lookups, both asked by ``SoDinhDanh``
(personal id) with the requester's message id ``MaYeuCau`` and unit code ``MaDonViYeuCau``:

- ``TraCuuSuKienHoTich`` (look up civil status events): ``DanhSachSuKien``, the list of
  ``SuKienHoTich`` records naming the person: ``LoaiSuKien`` (event code: 01 birth, 02
  marriage, 08 death, 16 divorce) and ``TenLoaiSuKien``, ``SoDangKy`` (entry number, số),
  ``QuyenSo`` (book, quyển số), ``NgaySuKien`` (event day), ``NgayDangKy`` (registration day),
  ``CoQuanDangKy`` (the registering commune people's committee: ``TenCoQuan``, old
  ``MaDonViHanhChinh`` and ``MaTinh``, ``QuocGia``), then by kind ``NguoiDuocKhaiSinh`` (the
  person born), ``Chong``/``Vo`` (husband and wife), ``BanAnQuyetDinh`` (the court decision a
  divorce is recorded from) and ``NguoiDaMat`` (the deceased);
- ``XacNhanTinhTrangHonNhan`` (certify marital status) as of ``NgayXacNhan`` (dd/MM/yyyy; blank:
  the day of the data): ``TinhTrangHonNhan`` with ``MaTinhTrang`` (1 never married, 2 married,
  3 divorced, 4 widowed) and ``TenTinhTrang``, ``NgayXacNhan``, ``CoGiaTriDen`` (valid until: 6
  months on), ``VoChong`` (the spouse, when married) and ``CanCu`` (the record it rests on);

and its change feed ``LayDanhSachThayDoi`` (list changes): the registrations after the cursor
``SauSoThuTu`` (the last ``SoThuTu`` read; empty: from the first), at most ``SoLuongToiDa``
(1..1000), answering ``SoThuTuCuoi`` (the cursor to ask after next), ``SoThuTuMoiNhat`` (the
latest sequence), ``ConNua`` (more follow) and ``DanhSachThayDoi``: each ``ThayDoi`` with
``SoThuTu``, ``LoaiThayDoi`` (KHAI_SINH, KHAI_TU, KET_HON, LY_HON), ``MaDoiTuong`` (the personal
id; a birth registration's number for a birth), ``ThoiDiemGhiNhan`` (yyyyMMddHHmmss) and the
native fields (sandbox.civil.feed). Deaths, births, marriages and divorces recorded through the
sandbox's admin route (`record`) show in the feed and, but for births, in the lookups.

Both answer ``MaKetQua`` (00 found, 01 not found, 02 invalid input), ``MoTaKetQua`` and
``ThoiDiemDuLieu`` (yyyyMMddHHmmss: the last registration touching the person). Dates are
dd/MM/yyyy. The quirk of this system: its text is stored and sent in Unicode NFD (decomposed), so
every name, office and description arrives decomposed. A request that is not a SOAP 1.1 envelope
of these operations is a soap:Client fault; an injected error is a soap:Server fault (HTTP 500).

Routes: ``POST /hotich`` (SOAP), ``GET /hotich?wsdl`` and ``GET /hotich/civil.wsdl`` (the WSDL,
its address rewritten to the URL it is served at), as every SOAP service of the sandbox serves
them (sandbox.soap).
"""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from sandbox.changes import Change, SandboxState, feed_cursor, soap_feed_page, vietnam_now
from sandbox.civil.feed import RECORDABLE, CivilFeed
from sandbox.civil.generator import (
    BIRTH,
    DEATH,
    EVENT_NAMES,
    STATUS_NAMES,
    CivilRecord,
    CivilRegister,
    MaritalStatusFacts,
)
from sandbox.faults import FaultInjector
from sandbox.registry import register
from sandbox.soap import SoapService, now_stamp, render_element
from sandbox.world import SNAPSHOT, World

NAMESPACE = "urn:tthc-sandbox:csdl-ho-tich:v1"
SOAP_PATH = "/hotich"
WSDL_FILE = Path(__file__).with_name("civil.wsdl")
_ID_PATTERN = re.compile(r"\d{12}")
_DAY_PATTERN = re.compile(r"(\d{2})/(\d{2})/(\d{4})")
_DATA_TIME_STREAM = 0xC1E0

_RESULT = "<MaKetQua>{code}</MaKetQua><MoTaKetQua>{description}</MoTaKetQua>"
_EVENTS_RESPONSE = (
    f'<TraCuuSuKienHoTichResponse xmlns="{NAMESPACE}">{_RESULT}'
    "<ThoiDiemDuLieu>{data_time}</ThoiDiemDuLieu>{found}</TraCuuSuKienHoTichResponse>"
)
_FEED_RESPONSE = (
    f'<LayDanhSachThayDoiResponse xmlns="{NAMESPACE}">{_RESULT}'
    "<ThoiDiemDuLieu>{data_time}</ThoiDiemDuLieu>{found}</LayDanhSachThayDoiResponse>"
)
_STATUS_RESPONSE = (
    f'<XacNhanTinhTrangHonNhanResponse xmlns="{NAMESPACE}">{_RESULT}'
    "<ThoiDiemDuLieu>{data_time}</ThoiDiemDuLieu>{found}</XacNhanTinhTrangHonNhanResponse>"
)

FOUND, NOT_FOUND, INVALID = "00", "01", "02"
_FOUND_TEXT = "Thành công"
_NOT_FOUND_TEXT = "Không tìm thấy thông tin hộ tịch của công dân"
_SERVER_ERROR_TEXT = (
    "Lỗi hệ thống CSDL hộ tịch điện tử, vui lòng thử lại sau "
    "(civil status database internal error, try again later)"
)


def decomposed(text: str) -> str:
    """This system's text: Unicode NFD."""
    return unicodedata.normalize("NFD", text)


def native_day(day: date) -> str:
    return day.strftime("%d/%m/%Y")


@register
class CivilStatusService(SoapService):
    """Answers the SOAP operations from the world's civil status register, with injected faults."""

    name = "civil"
    description = "SOAP at /hotich (CSDL hộ tịch điện tử, Bộ Tư pháp)"
    namespace = NAMESPACE
    path = SOAP_PATH
    wsdl_file = WSDL_FILE
    server_error = _SERVER_ERROR_TEXT

    def __init__(
        self, world: World, faults: FaultInjector | None = None, cache_size: int = 8_192
    ) -> None:
        super().__init__(world, faults)
        self.register = CivilRegister(world, cache_size)
        self._events_response = lru_cache(maxsize=cache_size)(self._render_events)
        self._status_today = lru_cache(maxsize=cache_size)(self._render_status)
        self.feed = CivilFeed(self.register, self._event)
        self.operations = {
            "TraCuuSuKienHoTich": self.look_up,
            "XacNhanTinhTrangHonNhan": self.certify,
            "LayDanhSachThayDoi": self.list_changes,
        }

    # -- the change feed (sandbox.civil.feed) -------------------------------------------------
    recordable: ClassVar[tuple[str, ...]] = RECORDABLE

    def enable_changes(self, backlog: int, state: SandboxState) -> None:
        super().enable_changes(backlog, state)
        with state.lock:  # what officers record here lives in the shared state (sandbox.persist)
            self.register.recorded = state.of(self.name).setdefault("recorded", {})

    def backlog_change(self, sequence: int) -> Change:
        return self.feed.backlog_change(sequence)

    def live_change(self, rng: random.Random) -> Change:
        return self.feed.live_change(rng, self.changes)

    def record(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        recorded = self.feed.record(kind, body, self.changes)
        self._events_response.cache_clear()  # the lookups show what was recorded
        self._status_today.cache_clear()
        return recorded

    def text(self, text: str) -> str:
        return decomposed(text)

    def holds(self, index: int) -> bool:
        return self.register.holds(index)

    # -- operations ---------------------------------------------------------------------------
    def look_up(self, fields: dict[str, str]) -> str:
        """TraCuuSuKienHoTich: the response element (NFD) for these request fields."""
        try:
            index = self._subject(fields)
        except Refusal as refusal:
            return refusal.render(_EVENTS_RESPONSE)
        return self._events_response(index)

    def certify(self, fields: dict[str, str]) -> str:
        """XacNhanTinhTrangHonNhan: the response element (NFD) for these request fields."""
        try:
            index = self._subject(fields)
            day = _certificate_day(fields["NgayXacNhan"]) if fields.get("NgayXacNhan") else None
        except Refusal as refusal:
            return refusal.render(_STATUS_RESPONSE)
        if day is None and index in self.register.recorded:
            # Its data is as of its last registration, made while the sandbox runs.
            return self._render_status(index, vietnam_now().date())
        if day is None or day == SNAPSHOT:
            return self._status_today(index)
        return self._render_status(index, day)

    def list_changes(self, fields: dict[str, str]) -> str:
        """LayDanhSachThayDoi: the changes after ``SauSoThuTu``, at most ``SoLuongToiDa``."""
        try:
            absent = [name for name in ("MaYeuCau", "MaDonViYeuCau") if not fields.get(name)]
            if absent:
                raise Refusal(INVALID, f"Thiếu trường bắt buộc: {', '.join(absent)}")
            try:
                after, limit = feed_cursor(fields, "SauSoThuTu", "SoLuongToiDa")
            except ValueError as error:
                raise Refusal(INVALID, str(error)) from None
        except Refusal as refusal:
            return refusal.render(_FEED_RESPONSE)
        page = soap_feed_page(self.changes, after, limit, "MaDoiTuong")
        found = "".join(render_element(name, value) for name, value in page.items())
        response = _FEED_RESPONSE.format(
            code=FOUND, description=_FOUND_TEXT, data_time=now_stamp(), found=found
        )
        return decomposed(response)

    def _subject(self, fields: dict[str, str]) -> int:
        """The index of the held citizen the request asks about, or a Refusal."""
        required = ("MaYeuCau", "MaDonViYeuCau", "SoDinhDanh")
        absent = [name for name in required if not fields.get(name)]
        if absent:
            raise Refusal(
                INVALID,
                f"Thiếu trường bắt buộc (missing required fields): {', '.join(absent)}",
            )
        personal_id = fields["SoDinhDanh"]
        if not _ID_PATTERN.fullmatch(personal_id):
            raise Refusal(INVALID, "SoDinhDanh phải gồm 12 chữ số (must be 12 digits)")
        index = self.world.index_of(personal_id)
        if index is None or not self.register.holds(index):
            raise Refusal(NOT_FOUND, _NOT_FOUND_TEXT)
        return index

    # -- rendering ----------------------------------------------------------------------------
    def _render_events(self, index: int) -> str:
        records = self.register.records(index)
        found = render_element("SoDinhDanh", self.world.population.personal_id(index))
        found += render_element(
            "DanhSachSuKien", {"SuKienHoTich": [self._event(record) for record in records]}
        )
        return decomposed(
            _EVENTS_RESPONSE.format(
                code=FOUND,
                description=_FOUND_TEXT,
                data_time=self.native_data_time(index),
                found=found,
            )
        )

    def _render_status(self, index: int, day: date = SNAPSHOT) -> str:
        status = self.register.marital_status(index, day)
        return decomposed(
            _STATUS_RESPONSE.format(
                code=FOUND,
                description=_FOUND_TEXT,
                data_time=self.native_data_time(index),
                found=render_element("TinhTrangHonNhan", self._status(index, status)),
            )
        )

    def _status(self, index: int, status: MaritalStatusFacts) -> dict[str, Any]:
        facts = self.world.person(index)
        native: dict[str, Any] = {
            "SoDinhDanh": facts.personal_id,
            "HoVaTen": facts.full_name,
            "MaTinhTrang": status.code,
            "TenTinhTrang": STATUS_NAMES[status.code],
            "NgayXacNhan": native_day(status.as_of),
            "CoGiaTriDen": native_day(status.valid_until),
        }
        if status.spouse is not None:
            native["VoChong"] = self._party(status.spouse)
        record = status.record
        if record is not None:
            native["CanCu"] = {
                "LoaiSuKien": record.kind,
                "TenLoaiSuKien": EVENT_NAMES[record.kind],
                "SoDangKy": record.entry,
                "QuyenSo": record.book,
                "NgayDangKy": native_day(record.registered_on),
                "TenCoQuan": _office_name(record),
            }
        return native

    def _event(self, record: CivilRecord) -> dict[str, Any]:
        office = record.office
        native: dict[str, Any] = {
            "LoaiSuKien": record.kind,
            "TenLoaiSuKien": EVENT_NAMES[record.kind],
            "SoDangKy": record.entry,
            "QuyenSo": record.book,
            "NgaySuKien": native_day(record.event_date),
            "NgayDangKy": native_day(record.registered_on),
            "CoQuanDangKy": {
                "TenCoQuan": _office_name(record),
                "MaDonViHanhChinh": office.code,
                "MaTinh": office.old_province,
                "QuocGia": "VN",
            },
        }
        if record.kind == BIRTH and record.person is not None:
            native["NguoiDuocKhaiSinh"] = self._party(record.person)
        if record.husband is not None and record.wife is not None:
            native["Chong"] = self._party(record.husband)
            native["Vo"] = self._party(record.wife)
        if record.decision is not None:
            native["BanAnQuyetDinh"] = record.decision
        if record.kind == DEATH and record.person is not None:
            native["NguoiDaMat"] = self._party(record.person)
        return native

    def _party(self, index: int) -> dict[str, str]:
        facts = self.world.person(index)
        return {"HoVaTen": facts.full_name, "SoDinhDanh": facts.personal_id}

    def native_data_time(self, index: int) -> str:
        """ThoiDiemDuLieu: the day of the last registration naming the person, at some hour."""
        last = max(record.registered_on for record in self.register.records(index))
        rng = self.world.rng(_DATA_TIME_STREAM, index)
        hour, minute, second = rng.randint(7, 17), rng.randrange(60), rng.randrange(60)
        return f"{last:%Y%m%d}{hour:02d}{minute:02d}{second:02d}"


def _office_name(record: CivilRecord) -> str:
    """The registering office: the people's committee (Ủy ban nhân dân) of the commune."""
    name = record.office.name  # "Xã Phú Thịnh": the kind of commune is lower case after it
    return f"Ủy ban nhân dân {name[:1].lower()}{name[1:]}"


class Refusal(Exception):
    """A request answered with a result code other than found: not found or invalid input."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description

    def render(self, template: str) -> str:
        response = template.format(
            code=self.code, description=escape(self.description), data_time=now_stamp(), found=""
        )
        return decomposed(response)


def _certificate_day(text: str) -> date:
    """NgayXacNhan as a day; a Refusal when it is not dd/MM/yyyy or after the data's day."""
    match = _DAY_PATTERN.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        day = date(int(match[3]), int(match[2]), int(match[1]))
    except ValueError:
        raise Refusal(INVALID, "NgayXacNhan phải có dạng dd/MM/yyyy (must be dd/MM/yyyy)") from None
    if day > SNAPSHOT:
        raise Refusal(
            INVALID,
            f"NgayXacNhan không được sau ngày dữ liệu {native_day(SNAPSHOT)} "
            "(must not be after the day of the data)",
        )
    return day
