"""The change log of the simulated population database, and the updates other agencies send it.

A change (`sandbox.changes.Change`) of this database is one entry of its residence and identity
registers: ``LoaiThayDoi`` ``CAP_SO_DINH_DANH`` (a citizen recorded with a new personal id),
``DANG_KY_THUONG_TRU`` (permanent residence registered), ``XOA_DANG_KY_THUONG_TRU`` (permanent
residence removed), ``THAY_DOI_NOI_O_HIEN_TAI`` (current residence changed), about the citizen
``SoDinhDanh``, with native fields in the order of the WSDL's ``ThayDoiType``: ``NgayHieuLuc``
(yyyyMMdd, when it took effect), ``CongDan`` (for CAP_SO_DINH_DANH: name, sex, birth date and the
birth registration's number ``SoDangKyKhaiSinh``), ``DiaChi`` (the address registered),
``DiaChiCu`` (the one left, on a move) and ``LyDo`` (the reason).

The backlog (`PopulationFeed.backlog_change`) is a pure function of the world's seed and the
sequence: the youngest citizens getting their personal id, adults moving their permanent or
current residence, the permanent residence of the world's dead removed.

Updates (`PopulationFeed.register_birth`, `remove_permanent_residence`) change what the lookup
shows (`PopulationFeed.citizen`) and append their changes; the service applies each once per
idempotency key (`SandboxState.once`).
"""

from __future__ import annotations

import random
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from sandbox.changes import Change, ChangeLog, backlog_time, vietnam_now
from sandbox.population.generator import (
    MAX_COUNT,
    Citizen,
    PopulationGenerator,
    century_sex_digit,
)
from sandbox.reference import STREET_NAMES, Commune, communes_by_old_province
from sandbox.world import World

CAP_SO_DINH_DANH = "CAP_SO_DINH_DANH"
DANG_KY_THUONG_TRU = "DANG_KY_THUONG_TRU"
XOA_DANG_KY_THUONG_TRU = "XOA_DANG_KY_THUONG_TRU"
THAY_DOI_NOI_O_HIEN_TAI = "THAY_DOI_NOI_O_HIEN_TAI"
_KINDS = (CAP_SO_DINH_DANH, DANG_KY_THUONG_TRU, XOA_DANG_KY_THUONG_TRU, THAY_DOI_NOI_O_HIEN_TAI)
_WEIGHTS = (15, 30, 15, 40)
_BACKLOG_STREAM, _TRIES = 0xDA1C, 60
_NEWBORN_RESIDENCE = "Đăng ký thường trú cho trẻ em tại nơi thường trú của mẹ"
_DEATH_REASON = "Công dân đã chết"
_ID = re.compile(r"\d{12}")


class Refused(ValueError):
    """An update the database refuses: `code` is its result code (01 not found, 02 invalid)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code


@dataclass
class PopulationFacts:
    """What updates changed: citizens registered at birth, permanent residences removed."""

    born: dict[str, Citizen] = field(default_factory=dict)  # by the personal id assigned
    removed: dict[str, dict[str, str]] = field(default_factory=dict)  # pid -> XoaDangKyThuongTru
    by_registration: dict[str, str] = field(default_factory=dict)  # SoDangKyKhaiSinh -> pid
    moved: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # pid -> addresses
    next_serial: int = 0  # births registered so far: serials count + n are theirs
    lock: threading.Lock = field(default_factory=threading.Lock)


def native_day(day: date) -> str:
    return day.strftime("%Y%m%d")


class PopulationFeed:
    """The population database's changes and updates over the world's population."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.generator: PopulationGenerator = world.population
        self.facts = PopulationFacts()

    # -- what the lookup shows ----------------------------------------------------------------
    def citizen(self, personal_id: str) -> Citizen | None:
        """The record an update or an officer changed (a newborn, a residence removed or
        moved); None: the world's own, unchanged record stands."""
        born = self.facts.born.get(personal_id)
        removed = self.facts.removed.get(personal_id)
        moved = self.facts.moved.get(personal_id)
        if removed is None and moved is None:
            return born
        record = born
        if record is None:
            index = self.generator.index_of(personal_id)
            if index is None:
                return None
            record = self.generator.get_shared(index)
        changed = dict(record)
        changed.update(moved or {})  # in place: the elements keep the schema's order
        if removed is not None:
            del changed["ThuongTru"]
            changed["XoaDangKyThuongTru"] = removed
        return changed

    @property
    def any_changed(self) -> bool:
        """Whether anything changed a citizen (the usual lookup skips looking)."""
        return bool(self.facts.born or self.facts.removed or self.facts.moved)

    # -- the backlog and live changes -----------------------------------------------------------
    def backlog_change(self, sequence: int) -> Change:
        rng = self.world.rng(_BACKLOG_STREAM, sequence)
        at = backlog_time(sequence, rng)
        kind, entity, data = self._draw(rng, at.date())
        return Change(sequence, kind, entity, at, data)

    def live_change(self, rng: random.Random, log: ChangeLog) -> Change:
        now = vietnam_now()
        kind, entity, data = self._draw(rng, now.date())
        return Change(log.head + 1, kind, entity, now, data)

    def _draw(self, rng: random.Random, day: date) -> tuple[str, str, dict[str, Any]]:
        first = rng.choices(_KINDS, _WEIGHTS)[0]
        for kind in (first, THAY_DOI_NOI_O_HIEN_TAI):
            for _ in range(_TRIES):
                index = rng.randrange(self.world.count)
                data = self._change_of(kind, index, rng, day)
                if data is not None:
                    return kind, self.generator.personal_id(index), data
        raise LookupError("population: no change drawn")

    def _change_of(
        self, kind: str, index: int, rng: random.Random, day: date
    ) -> dict[str, Any] | None:
        facts = self.world.person(index)
        died = self.world.death(index)
        if kind == XOA_DANG_KY_THUONG_TRU:
            if died is None:
                return None
            record = self.generator.core(index)
            return {
                "NgayHieuLuc": native_day(died),
                "DiaChiCu": record["ThuongTru"],
                "LyDo": _DEATH_REASON,
            }
        if died is not None:
            return None
        record = self.generator.core(index)
        if kind == CAP_SO_DINH_DANH:
            if facts.birth_year < 2020 or facts.sex not in (1, 2):
                return None
            return {
                "NgayHieuLuc": native_day(day),
                "CongDan": {
                    "HoVaTen": record["HoVaTen"],
                    "GioiTinh": record["GioiTinh"],
                    "NgayThangNamSinh": record["NgayThangNamSinh"],
                },
                "DiaChi": record["ThuongTru"],
            }
        if day.year - facts.birth_year < 18:
            return None
        moved_to = _address(rng, rng.choice(tuple(communes_by_old_province())))
        if kind == DANG_KY_THUONG_TRU:
            return {
                "NgayHieuLuc": native_day(day),
                "DiaChi": moved_to,
                "DiaChiCu": record["ThuongTru"],
                "LyDo": "Chuyển nơi thường trú",
            }
        return {
            "NgayHieuLuc": native_day(day),
            "DiaChi": moved_to,
            "DiaChiCu": record["NoiOHienTai"],
            "LyDo": rng.choice(("Thay đổi nơi tạm trú", "Chuyển chỗ ở hợp pháp")),
        }

    # -- updates ----------------------------------------------------------------------------------
    def register_birth(self, fields: dict[str, str], log: ChangeLog) -> dict[str, str]:
        """CapSoDinhDanhKhaiSinh: a newborn from a birth registration gets a personal id and the
        mother's permanent residence; two changes are appended. Refused if the fields are wrong."""
        registration = _required(fields, "SoDangKyKhaiSinh")
        known = self.facts.by_registration.get(registration)
        if known is not None:  # one personal id per birth registration, whatever the key
            return {"SoDinhDanh": known, "DaXuLyTruocDo": "true"}
        family, middle, given = _name_parts(_required(fields, "HoVaTen"))
        sex = {"1": 1, "2": 2}.get(fields.get("GioiTinh", ""))
        if sex is None:
            raise Refused("02", "GioiTinh phải là 1 (nam) hoặc 2 (nữ)")
        born = _day(fields, "NgayThangNamSinh")
        mother = self._world_citizen(fields, "SoDinhDanhMe")
        father = (
            self._world_citizen(fields, "SoDinhDanhCha") if fields.get("SoDinhDanhCha") else None
        )
        mother_record = self.generator.get_shared(mother)
        commune = _communes().get(fields.get("NoiDangKyKhaiSinh", ""))
        province = commune.old_province if commune else mother_record["ThuongTru"]["MaTinh"]
        personal_id = self._new_id(province, sex, born.year)
        name = {"Ho": family, **({"ChuDem": middle} if middle else {}), "Ten": given}
        citizen = self._newborn(personal_id, name, sex, born, mother_record, father)
        today = vietnam_now().date()
        with log.lock:
            self.facts.born[personal_id] = citizen
            self.facts.by_registration[registration] = personal_id
            log.append(
                CAP_SO_DINH_DANH,
                personal_id,
                {
                    "NgayHieuLuc": native_day(today),
                    "CongDan": {
                        "HoVaTen": name,
                        "GioiTinh": sex,
                        "NgayThangNamSinh": citizen["NgayThangNamSinh"],
                        "SoDangKyKhaiSinh": registration,
                    },
                    "DiaChi": citizen["ThuongTru"],
                },
            )
            change = log.append(
                DANG_KY_THUONG_TRU,
                personal_id,
                {
                    "NgayHieuLuc": native_day(today),
                    "DiaChi": citizen["ThuongTru"],
                    "LyDo": _NEWBORN_RESIDENCE,
                },
            )
        return {"SoDinhDanh": personal_id, "SoThuTu": str(change.sequence)}

    def remove_permanent_residence(self, fields: dict[str, str], log: ChangeLog) -> dict[str, str]:
        """XoaDangKyThuongTru: the citizen's permanent residence removed from NgayHieuLuc."""
        personal_id = _required(fields, "SoDinhDanh")
        if not _ID.fullmatch(personal_id):
            raise Refused("02", "SoDinhDanh phải gồm 12 chữ số (must be 12 digits)")
        effective = _day(fields, "NgayHieuLuc")
        reason = unicodedata.normalize("NFC", fields.get("LyDo", "")).strip() or _DEATH_REASON
        record = self.citizen(personal_id)
        if record is None:
            index = self.generator.index_of(personal_id)
            if index is None:
                raise Refused("01", "Không tìm thấy thông tin công dân")
            record = self.generator.get_shared(index)
        if personal_id in self.facts.removed:
            return {"SoDinhDanh": personal_id, "DaXuLyTruocDo": "true"}
        with log.lock:
            self.facts.removed[personal_id] = {"NgayXoa": native_day(effective), "LyDo": reason}
            change = log.append(
                XOA_DANG_KY_THUONG_TRU,
                personal_id,
                {
                    "NgayHieuLuc": native_day(effective),
                    "DiaChiCu": record["ThuongTru"],
                    "LyDo": reason,
                },
            )
        return {"SoDinhDanh": personal_id, "SoThuTu": str(change.sequence)}

    def record_residence(self, body: dict[str, Any], log: ChangeLog) -> dict[str, Any]:
        """An officer registers a move (`record` kind "residence"): `personal_id`, `kind`
        (permanent, the default, or current), `commune` (a commune code), `detail`; the lookup
        shows the new address and the log appends DANG_KY_THUONG_TRU or
        THAY_DOI_NOI_O_HIEN_TAI. ValueError naming a wrong field."""
        personal_id = str(body.get("personal_id") or "")
        record = self.citizen(personal_id) if _ID.fullmatch(personal_id) else None
        if record is None and _ID.fullmatch(personal_id):
            index = self.generator.index_of(personal_id)
            record = self.generator.get_shared(index) if index is not None else None
        if record is None:
            raise ValueError("personal_id: no citizen holds this personal id")
        kind = body.get("kind", "permanent")
        if kind not in ("permanent", "current"):
            raise ValueError("kind: expected 'permanent' or 'current'")
        commune = _communes().get(str(body.get("commune") or ""))
        if commune is None:
            raise ValueError("commune: not a commune code this database knows")
        detail = body.get("detail")
        if not isinstance(detail, str) or not detail.strip():
            raise ValueError("detail: the address within the commune is required")
        element = "ThuongTru" if kind == "permanent" else "NoiOHienTai"
        address = {
            "ChiTiet": unicodedata.normalize("NFC", detail).strip(),
            "MaDonViHanhChinh": commune.code,
            "MaTinh": commune.old_province,
            "QuocGia": "VN",
        }
        native = DANG_KY_THUONG_TRU if kind == "permanent" else THAY_DOI_NOI_O_HIEN_TAI
        data: dict[str, Any] = {"NgayHieuLuc": native_day(vietnam_now().date()), "DiaChi": address}
        if record.get(element):
            data["DiaChiCu"] = record[element]
        data["LyDo"] = "Chuyển nơi thường trú" if kind == "permanent" else "Chuyển chỗ ở hợp pháp"
        with log.lock:
            self.facts.moved.setdefault(personal_id, {})[element] = address
            if kind == "permanent":  # a new permanent residence ends a removal
                self.facts.removed.pop(personal_id, None)
            change = log.append(native, personal_id, data)
        return {"sequence": change.sequence, "kind": native, "entity": personal_id}

    def _world_citizen(self, fields: dict[str, str], name: str) -> int:
        personal_id = fields.get(name, "")
        if not _ID.fullmatch(personal_id):
            raise Refused("02", f"{name} phải gồm 12 chữ số (must be 12 digits)")
        index = self.generator.index_of(personal_id)
        if index is None:
            raise Refused("01", f"Không tìm thấy công dân {name}")
        return index

    def _new_id(self, province: str, sex: int, year: int) -> str:
        """A personal id no citizen of the world holds: its serial is that of an index past the
        world's count (the serials are a permutation of the indices)."""
        with self.facts.lock:
            index = self.generator.count + self.facts.next_serial
            if index >= MAX_COUNT:
                raise Refused("03", "Hết số định danh để cấp (no personal id left to assign)")
            self.facts.next_serial += 1
        serial = self.generator._serials.forward(index)
        return f"0{province}{century_sex_digit(year, sex)}{year % 100:02d}{serial:06d}"

    def _newborn(
        self,
        personal_id: str,
        name: dict[str, str],
        sex: int,
        born: date,
        mother: Citizen,
        father: int | None,
    ) -> Citizen:
        father_record = self.generator.get_shared(father) if father is not None else None
        head = mother["ChuHo"]
        relation = "Con" if head["QuanHeVoiChuHo"] in ("Chủ hộ", "Vợ") else "Cháu"
        citizen: Citizen = {
            "SoDinhDanh": personal_id,
            "HoVaTen": name,
            "GioiTinh": sex,
            "DanToc": dict(mother["DanToc"]),
            "TonGiao": dict(mother["TonGiao"]),
            "QuocTich": "VN",
            "NgayThangNamSinh": {"NgayThangNam": native_day(born)},
            "QueQuan": dict((father_record or mother)["QueQuan"]),
            "ThuongTru": dict(mother["ThuongTru"]),
            "NoiOHienTai": dict(mother["NoiOHienTai"]),
        }
        if father_record is not None:
            citizen["Cha"] = _relative(father_record)
        citizen["Me"] = _relative(mother)
        citizen["ChuHo"] = {
            "HoVaTen": head["HoVaTen"],
            "SoDinhDanh": head["SoDinhDanh"],
            "QuanHeVoiChuHo": relation,
        }
        return citizen


def _relative(record: Citizen) -> dict[str, str]:
    return {"HoVaTen": " ".join(record["HoVaTen"].values()), "SoDinhDanh": record["SoDinhDanh"]}


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value:
        raise Refused("02", f"Thiếu trường bắt buộc (missing required field): {name}")
    return unicodedata.normalize("NFC", value)


def _name_parts(full_name: str) -> tuple[str, str | None, str]:
    words = full_name.split()
    if len(words) < 2:
        raise Refused("02", "HoVaTen phải có họ và tên (family and given name)")
    return words[0], " ".join(words[1:-1]) or None, words[-1]


def _day(fields: dict[str, str], name: str) -> date:
    value = fields.get(name, "")
    try:
        if len(value) != 8 or not value.isdigit():
            raise ValueError(value)
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise Refused("02", f"{name} phải có dạng yyyyMMdd (must be yyyyMMdd)") from None


def _address(rng: random.Random, old_province: str) -> dict[str, str]:
    commune = rng.choice(communes_by_old_province()[old_province])
    if commune.urban:
        detail = f"Số {rng.randint(1, 300)} đường {rng.choice(STREET_NAMES)}"
    else:
        detail = f"Thôn {rng.randint(1, 15)}"
    return {
        "ChiTiet": detail,
        "MaDonViHanhChinh": commune.code,
        "MaTinh": commune.old_province,
        "QuocGia": "VN",
    }


@cache
def _communes() -> dict[str, Commune]:
    return {c.code: c for communes in communes_by_old_province().values() for c in communes}
