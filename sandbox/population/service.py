"""The SOAP service of the simulated national population database (CSDLQG về dân cư).

SOAP 1.1, document/literal, namespace ``urn:tthc-sandbox:csdl-dan-cu:v1``, service
``DichVuDanCu`` ("population service") with these operations:

- ``TraCuuThongTinCongDan`` (look up a citizen) by ``SoDinhDanh`` (personal id), sent with the
  requester's message id ``MaYeuCau`` and unit code ``MaDonViYeuCau``; answers ``MaKetQua``
  (result code: 00 found, 01 not found, 02 invalid input), ``MoTaKetQua`` (its description),
  ``ThoiDiemDuLieu`` (the data's timestamp) and ``CongDan`` (the citizen) when found;
- ``XacThucThongTinCongDan`` (verify a citizen): does this id belong to a person with this full
  name (``HoVaTen``) and birth date (``NgayThangNamSinh``)? Answers ``KetQuaXacThuc`` (true/false);
- ``LayDanhSachThayDoi`` (list changes): the changes after the cursor ``SauSoThuTu`` (the last
  ``SoThuTu`` read; empty: from the first), at most ``SoLuongToiDa`` (1..1000), answering
  ``SoThuTuCuoi``, ``SoThuTuMoiNhat``, ``ConNua`` and ``DanhSachThayDoi`` (each ``ThayDoi``:
  ``SoThuTu``, ``LoaiThayDoi``, ``SoDinhDanh``, ``ThoiDiemGhiNhan`` yyyyMMddHHmmss and the native
  fields of sandbox.population.feed);
- ``CapSoDinhDanhKhaiSinh`` (assign a personal id at birth registration) and
  ``XoaDangKyThuongTru`` (remove a permanent residence): updates other agencies send, each
  applied once per ``MaGiaoDich`` (the idempotency key), answering ``SoDinhDanh`` and
  ``DaXuLyTruocDo`` (true: done before, nothing new). The lookups show what they changed: the
  newborn with the mother's residence; no ``ThuongTru`` but ``XoaDangKyThuongTru`` once removed.

An officer's move (``POST /_sandbox/record/population/residence``: ``personal_id``, ``kind``
permanent or current, ``commune``, ``detail``) shows in the lookup and the feed too.

Routes: ``POST /dancu`` (SOAP), ``GET /dancu?wsdl`` and ``GET /dancu/population.wsdl`` (the WSDL,
its address rewritten to the URL it is served at), as every SOAP service of the sandbox serves
them (sandbox.soap). The sandbox's admin endpoints (health, sample, faults) are sandbox.server's.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from sandbox.changes import Change, SandboxState, feed_cursor, soap_feed_page
from sandbox.faults import FaultInjector
from sandbox.population.feed import PopulationFacts, PopulationFeed, Refused
from sandbox.registry import register
from sandbox.soap import SoapService, now_stamp, render_element
from sandbox.world import World

NAMESPACE = "urn:tthc-sandbox:csdl-dan-cu:v1"
SOAP_PATH = "/dancu"
WSDL_FILE = Path(__file__).with_name("population.wsdl")
_ID_PATTERN = re.compile(r"\d{12}")
_BIRTH_DATE_PATTERN = re.compile(r"\d{4}(\d{4})?")

_LOOKUP_RESPONSE = (
    f'<TraCuuThongTinCongDanResponse xmlns="{NAMESPACE}">'
    "<MaKetQua>{code}</MaKetQua><MoTaKetQua>{description}</MoTaKetQua>"
    "<ThoiDiemDuLieu>{data_time}</ThoiDiemDuLieu>{citizen}</TraCuuThongTinCongDanResponse>"
)
_VERIFY_RESPONSE = (
    f'<XacThucThongTinCongDanResponse xmlns="{NAMESPACE}">'
    "<MaKetQua>{code}</MaKetQua><MoTaKetQua>{description}</MoTaKetQua>"
    "<KetQuaXacThuc>{verified}</KetQuaXacThuc></XacThucThongTinCongDanResponse>"
)

_RESULT = "<MaKetQua>{code}</MaKetQua><MoTaKetQua>{description}</MoTaKetQua>"
_FEED_RESPONSE = (
    f'<LayDanhSachThayDoiResponse xmlns="{NAMESPACE}">{_RESULT}'
    "<ThoiDiemDuLieu>{data_time}</ThoiDiemDuLieu>{found}</LayDanhSachThayDoiResponse>"
)
_UPDATE_RESPONSE = (
    '<{operation}Response xmlns="' + NAMESPACE + '">' + _RESULT + "<ThoiDiemDuLieu>{data_time}"
    "</ThoiDiemDuLieu>{found}</{operation}Response>"
)
REGISTER_BIRTH = "CapSoDinhDanhKhaiSinh"
REMOVE_PERMANENT_RESIDENCE = "XoaDangKyThuongTru"

FOUND, NOT_FOUND, INVALID = "00", "01", "02"
_DESCRIPTIONS = {
    FOUND: "Thành công",
    NOT_FOUND: "Không tìm thấy thông tin công dân",
}


def _comparable_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


@register
class PopulationService(SoapService):
    """Answers the SOAP operations from the world's population, with injected faults."""

    name = "population"
    description = "SOAP at /dancu (CSDL quốc gia về dân cư)"
    namespace = NAMESPACE
    path = SOAP_PATH
    wsdl_file = WSDL_FILE
    server_error = (
        "Lỗi hệ thống CSDL dân cư, vui lòng thử lại sau "
        "(population database internal error, try again later)"
    )

    def __init__(
        self,
        world: World,
        faults: FaultInjector | None = None,
        fragment_cache_size: int = 8_192,
    ) -> None:
        super().__init__(world, faults)
        self.generator = world.population
        self._found_response = lru_cache(maxsize=fragment_cache_size)(self._render_found)
        self.feed = PopulationFeed(world)
        self.operations = {
            "TraCuuThongTinCongDan": self.look_up,
            "XacThucThongTinCongDan": self.verify,
            "LayDanhSachThayDoi": self.list_changes,
            REGISTER_BIRTH: self.register_birth,
            REMOVE_PERMANENT_RESIDENCE: self.remove_permanent_residence,
        }

    # -- the change feed and updates (sandbox.population.feed) --------------------------------
    def enable_changes(self, backlog: int, state: SandboxState) -> None:
        super().enable_changes(backlog, state)
        with state.lock:  # the sandbox's shared state keeps what updates changed here
            facts = state.of(self.name).setdefault("register", PopulationFacts())
        self.feed.facts = facts

    recordable: ClassVar[tuple[str, ...]] = ("residence",)

    def backlog_change(self, sequence: int) -> Change:
        return self.feed.backlog_change(sequence)

    def record(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        if kind != "residence":
            raise ValueError(f"population records {self.recordable}, not {kind!r}")
        return self.feed.record_residence(body, self.changes)

    def live_change(self, rng: random.Random) -> Change:
        return self.feed.live_change(rng, self.changes)

    def list_changes(self, fields: dict[str, str]) -> str:
        """LayDanhSachThayDoi: the changes after ``SauSoThuTu``, at most ``SoLuongToiDa``."""
        problem = _missing(fields, ("MaYeuCau", "MaDonViYeuCau"))
        try:
            after, limit = feed_cursor(fields, "SauSoThuTu", "SoLuongToiDa")
        except ValueError as error:
            problem = problem or str(error)
        if problem is not None:
            return _FEED_RESPONSE.format(
                code=INVALID, description=escape(problem), data_time=now_stamp(), found=""
            )
        page = soap_feed_page(self.changes, after, limit, "SoDinhDanh")
        found = "".join(render_element(name, value) for name, value in page.items())
        return _FEED_RESPONSE.format(
            code=FOUND, description=_DESCRIPTIONS[FOUND], data_time=now_stamp(), found=found
        )

    def register_birth(self, fields: dict[str, str]) -> str:
        """CapSoDinhDanhKhaiSinh: a personal id for a newborn, once per ``MaGiaoDich``."""
        return self._update(REGISTER_BIRTH, fields, self.feed.register_birth)

    def remove_permanent_residence(self, fields: dict[str, str]) -> str:
        """XoaDangKyThuongTru: remove a permanent residence, once per ``MaGiaoDich``."""
        return self._update(
            REMOVE_PERMANENT_RESIDENCE, fields, self.feed.remove_permanent_residence
        )

    def _update(
        self,
        operation: str,
        fields: dict[str, str],
        apply: Callable[[dict[str, str], Any], dict[str, str]],
    ) -> str:
        problem = _missing(fields, ("MaYeuCau", "MaDonViYeuCau", "MaGiaoDich"))
        code, description, found = FOUND, _DESCRIPTIONS[FOUND], ""
        try:
            if problem is not None:
                raise Refused(INVALID, problem)
            applied, result = self.state.once(
                self.name,
                f"{operation}:{fields['MaGiaoDich']}",
                operation,
                lambda: apply(fields, self.changes),
            )
            done_before = not applied or result.get("DaXuLyTruocDo") == "true"
            found = render_element("SoDinhDanh", result["SoDinhDanh"])
            found += render_element("DaXuLyTruocDo", "true" if done_before else "false")
        except Refused as refusal:
            code, description = refusal.code, str(refusal)
        return _UPDATE_RESPONSE.format(
            operation=operation,
            code=code,
            description=escape(description),
            data_time=now_stamp(),
            found=found,
        )

    def holds(self, index: int) -> bool:
        return True  # every citizen

    # -- operations ---------------------------------------------------------------------------
    def look_up(self, fields: dict[str, str]) -> str:
        """TraCuuThongTinCongDan: the response element for these request fields."""
        problem = _missing(fields, ("MaYeuCau", "MaDonViYeuCau", "SoDinhDanh"))
        personal_id = fields.get("SoDinhDanh", "")
        if problem is None and not _ID_PATTERN.fullmatch(personal_id):
            problem = (
                f"SoDinhDanh phải gồm 12 chữ số (must be 12 digits), nhận được '{personal_id}'"
            )
        if problem is not None:
            return _LOOKUP_RESPONSE.format(
                code=INVALID, description=escape(problem), data_time=now_stamp(), citizen=""
            )
        changed = self.feed.citizen(personal_id) if self._changed() else None
        if changed is not None:
            return _LOOKUP_RESPONSE.format(
                code=FOUND,
                description=_DESCRIPTIONS[FOUND],
                data_time=now_stamp(),
                citizen=render_element("CongDan", changed),
            )
        index = self.generator.candidate_index(personal_id)
        if index is not None:
            holder, found_response = self._found_response(index)
            if holder == personal_id:
                return found_response
        return _LOOKUP_RESPONSE.format(
            code=NOT_FOUND,
            description=_DESCRIPTIONS[NOT_FOUND],
            data_time=now_stamp(),
            citizen="",
        )

    def _changed(self) -> bool:
        return self.feed.any_changed

    def verify(self, fields: dict[str, str]) -> str:
        """XacThucThongTinCongDan: true when id, full name and birth date all agree."""
        code, description, verified = self._verification(fields)
        return _VERIFY_RESPONSE.format(
            code=code, description=escape(description), verified="true" if verified else "false"
        )

    def _verification(self, fields: dict[str, str]) -> tuple[str, str, bool]:
        problem = _missing(fields, ("SoDinhDanh", "HoVaTen", "NgayThangNamSinh"))
        if problem is not None:
            return INVALID, problem, False
        personal_id, birth = fields["SoDinhDanh"], fields["NgayThangNamSinh"]
        if not _ID_PATTERN.fullmatch(personal_id):
            return INVALID, f"SoDinhDanh phải gồm 12 chữ số, nhận được '{personal_id}'", False
        if not _BIRTH_DATE_PATTERN.fullmatch(birth):
            return INVALID, f"NgayThangNamSinh phải có dạng yyyyMMdd hoặc yyyy: '{birth}'", False
        citizen = self.feed.citizen(personal_id) if self._changed() else None
        if citizen is None:
            index = self.generator.index_of(personal_id)
            if index is None:
                return NOT_FOUND, _DESCRIPTIONS[NOT_FOUND], False
            citizen = self.generator.get_shared(index)
        full_name = " ".join(citizen["HoVaTen"].values())
        name_agrees = _comparable_name(full_name) == _comparable_name(fields["HoVaTen"])
        born = citizen["NgayThangNamSinh"]
        recorded = born.get("NgayThangNam") or born["Nam"]
        if len(birth) == 4 or len(recorded) == 4:
            birth_agrees = birth[:4] == recorded[:4]
        else:
            birth_agrees = birth == recorded
        if name_agrees and birth_agrees:
            return FOUND, "Thông tin công dân khớp", True
        return FOUND, "Thông tin công dân không khớp", False

    def _render_found(self, index: int) -> tuple[str, str]:
        """The id of citizen ``index`` and the whole "found" response element for it."""
        citizen = self.generator.get_shared(index)
        response = _LOOKUP_RESPONSE.format(
            code=FOUND,
            description=_DESCRIPTIONS[FOUND],
            data_time=self.generator.native_data_time(index),
            citizen=render_element("CongDan", citizen),
        )
        return citizen["SoDinhDanh"], response


def _missing(fields: dict[str, str], required: tuple[str, ...]) -> str | None:
    absent = [name for name in required if not fields.get(name)]
    if absent:
        return f"Thiếu trường bắt buộc (missing required fields): {', '.join(absent)}"
    return None
