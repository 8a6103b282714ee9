"""The enterprises of the World as the national business registration database records them.

The national business registration database (CSDL quốc gia về đăng ký doanh nghiệp, behind the
national business registration portal) keeps each enterprise of ``World.enterprise`` as a JSON
object with UPPER_SNAKE names:

- ``ENTERPRISE_CODE`` (mã số doanh nghiệp, the tax code MST), ``NAME`` (tên doanh nghiệp),
  ``NAME_F`` (tên bằng tiếng nước ngoài, foreign name), ``SHORT_NAME`` (tên viết tắt), both ""
  when not registered;
- ``ENTERPRISE_TYPE_ID`` (loại hình doanh nghiệp) and ``ENTERPRISE_STATUS_ID`` (tình trạng pháp
  lý, legal status), numbers, each with its ``..._NAME``;
- ``FOUNDING_DATE`` (ngày thành lập, dd/MM/yyyy), ``CAPITAL_AMOUNT`` (vốn điều lệ, charter
  capital; for a private enterprise vốn đầu tư, invested capital) as a JSON number of VND;
- ``HO_ADDRESS`` (trụ sở chính, head office): ``AddressDetail`` (house number and street, or
  hamlet), ``WardID``, ``DistrictID``, ``CityID``: the three-level codes in force before 1 July
  2025, which the registry has not converted. ``CityID`` is the old 2-digit province the commune
  is filed under, ``DistrictID`` a synthetic 3-digit district (the 2025 reform abolished
  districts and the sandbox has no table of the old ones), ``WardID`` the 5-digit commune. About
  one head office in twenty has an old commune code that no 2025 commune reused (the commune was
  merged away), so it cannot be converted on its own;
- ``REPRESENTATIVES`` (người đại diện theo pháp luật, legal representatives): citizens of the
  population database, ``ID_NUMBER`` (their personal id), ``FULL_NAME``, ``BIRTH_DATE``
  (dd/MM/yyyy, or yyyy when only the year is known), ``POSITION`` (chức danh), ``FROM_DATE``;
  the quirk: records entered before 2010 often have the names in upper case;
- ``BRANCHES`` (chi nhánh): ``BRANCH_CODE`` (the enterprise code and -001..-NNN),
  ``BRANCH_NAME``, ``BRANCH_STATUS_ID`` and an ``ADDRESS`` like the head office's;
- ``BUSINESS_ACTIVITIES`` (ngành, nghề kinh doanh): VSIC 2018 4-digit ``INDUSTRY_CODE`` with its
  ``INDUSTRY_NAME`` and ``IS_MAIN`` (1 for exactly one, the main line, else 0);
- ``LAST_UPDATE_TIME`` (yyyy-MM-dd HH:mm:ss, Vietnam time): when the record last changed.

Names come from the enterprise's ``name_seed``; everything else the registry adds comes from its
own random stream of ``World.rng``. A record is a pure function of ``(seed, index)``; records are
built on demand and the recent ones kept in an LRU cache.
"""

from __future__ import annotations

import random
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from itertools import pairwise
from typing import Any

from sandbox.reference import (
    HAMLET_WORDS_NORTH,
    HAMLET_WORDS_SOUTH,
    OLD_PROVINCES,
    STREET_NAMES,
    Commune,
    communes_by_old_province,
)
from sandbox.world import SNAPSHOT, EnterpriseFacts, World

_REGISTRATION = 0xDD0E  # this database's own random stream (World.rng)
OBSOLETE_WARD_SHARE = 0.05  # head offices still filed under a commune merged away in 2025
_UPPER_NAMES_BEFORE = 2010  # records entered before this year: names often in upper case
_UPPER_NAMES_SHARE = 0.5
_COMMUNES_PER_DISTRICT = 5

Record = dict[str, Any]

# Enterprise types (loại hình doanh nghiệp), by the native ENTERPRISE_TYPE_ID. The World's kinds
# 1..5 (one-member LLC, multi-member LLC, joint-stock, partnership, private enterprise) have these
# ids: `TYPE_IDS` translates, and is the identity because the bus's code list
# (mappings/codes/enterprise-type.toml) numbers them as the World does.
ENTERPRISE_TYPES: dict[int, str] = {
    1: "Công ty trách nhiệm hữu hạn một thành viên",
    2: "Công ty trách nhiệm hữu hạn hai thành viên trở lên",
    3: "Công ty cổ phần",
    4: "Công ty hợp danh",
    5: "Doanh nghiệp tư nhân",
}
TYPE_IDS: dict[int, int] = {kind: kind for kind in ENTERPRISE_TYPES}

# Legal statuses (tình trạng pháp lý), by the native ENTERPRISE_STATUS_ID; the World's statuses
# 1..7 have the same numbers (mappings/codes/enterprise-status.toml).
ENTERPRISE_STATUSES: dict[int, str] = {
    1: "Đang hoạt động",
    2: "Tạm ngừng kinh doanh",
    3: "Không hoạt động tại địa chỉ đã đăng ký",
    4: "Bị thu hồi Giấy chứng nhận đăng ký doanh nghiệp do cưỡng chế về quản lý thuế",
    5: "Đang làm thủ tục giải thể, chia, hợp nhất, sáp nhập",
    6: "Đang làm thủ tục phá sản",
    7: "Đã giải thể, phá sản, chấm dứt tồn tại",
}
STATUS_IDS: dict[int, int] = {status: status for status in ENTERPRISE_STATUSES}
OPERATING, CEASED = 1, 7

# VSIC 2018 classes (ngành cấp 4) the registry's enterprises carry, with their names.
VSIC_CLASSES: dict[str, str] = {
    "0111": "Trồng lúa",
    "0118": "Trồng rau, đậu các loại và trồng hoa",
    "0145": "Chăn nuôi lợn và sản xuất giống lợn",
    "0146": "Chăn nuôi gia cầm",
    "0322": "Nuôi trồng thủy sản nội địa",
    "1010": "Chế biến, bảo quản thịt và các sản phẩm từ thịt",
    "1071": "Sản xuất các loại bánh từ bột",
    "1079": "Sản xuất thực phẩm khác chưa được phân vào đâu",
    "1410": "May trang phục (trừ trang phục từ da lông thú)",
    "2511": "Sản xuất các cấu kiện kim loại",
    "3100": "Sản xuất giường, tủ, bàn, ghế",
    "4101": "Xây dựng nhà để ở",
    "4102": "Xây dựng nhà không để ở",
    "4321": "Lắp đặt hệ thống điện",
    "4322": "Lắp đặt hệ thống cấp, thoát nước, hệ thống sưởi và điều hoà không khí",
    "4330": "Hoàn thiện công trình xây dựng",
    "4390": "Hoạt động xây dựng chuyên dụng khác",
    "4520": "Bảo dưỡng, sửa chữa ô tô và xe có động cơ khác",
    "4610": "Đại lý, môi giới, đấu giá hàng hóa",
    "4620": "Bán buôn nông, lâm sản nguyên liệu (trừ gỗ, tre, nứa) và động vật sống",
    "4632": "Bán buôn thực phẩm",
    "4633": "Bán buôn đồ uống",
    "4641": "Bán buôn vải, hàng may mặc, giày dép",
    "4649": "Bán buôn đồ dùng khác cho gia đình",
    "4651": "Bán buôn máy vi tính, thiết bị ngoại vi và phần mềm",
    "4659": "Bán buôn máy móc, thiết bị và phụ tùng máy khác",
    "4663": "Bán buôn vật liệu, thiết bị lắp đặt khác trong xây dựng",
    "4669": "Bán buôn chuyên doanh khác chưa được phân vào đâu",
    "4690": "Bán buôn tổng hợp",
    "4719": "Bán lẻ khác trong các cửa hàng kinh doanh tổng hợp",
    "4722": "Bán lẻ thực phẩm trong các cửa hàng chuyên doanh",
    "4771": "Bán lẻ hàng may mặc, giày dép, hàng da và giả da trong các cửa hàng chuyên doanh",
    "4772": (
        "Bán lẻ thuốc, dụng cụ y tế, mỹ phẩm và vật phẩm vệ sinh trong các cửa hàng chuyên doanh"
    ),
    "4791": "Bán lẻ theo yêu cầu đặt hàng qua bưu điện hoặc internet",
    "4932": "Vận tải hành khách đường bộ khác",
    "4933": "Vận tải hàng hóa bằng đường bộ",
    "5210": "Kho bãi và lưu giữ hàng hóa",
    "5229": "Hoạt động dịch vụ hỗ trợ khác liên quan đến vận tải",
    "5510": "Dịch vụ lưu trú ngắn ngày",
    "5610": "Nhà hàng và các dịch vụ ăn uống phục vụ lưu động",
    "5630": "Dịch vụ phục vụ đồ uống",
    "6201": "Lập trình máy vi tính",
    "6202": "Tư vấn máy vi tính và quản trị hệ thống máy vi tính",
    "6209": "Hoạt động dịch vụ công nghệ thông tin và dịch vụ khác liên quan đến máy vi tính",
    "6311": "Xử lý dữ liệu, cho thuê và các hoạt động liên quan",
    "6810": "Kinh doanh bất động sản, quyền sử dụng đất thuộc chủ sở hữu, chủ sử dụng hoặc đi thuê",
    "6820": "Tư vấn, môi giới, đấu giá bất động sản, đấu giá quyền sử dụng đất",
    "6920": "Hoạt động liên quan đến kế toán, kiểm toán và tư vấn về thuế",
    "7020": "Hoạt động tư vấn quản lý",
    "7110": "Hoạt động kiến trúc và tư vấn kỹ thuật có liên quan",
    "7310": "Quảng cáo",
    "8299": "Hoạt động dịch vụ hỗ trợ kinh doanh khác còn lại chưa được phân vào đâu",
    "8559": "Giáo dục khác chưa được phân vào đâu",
    "8620": "Hoạt động của các phòng khám đa khoa, chuyên khoa và nha khoa",
    "9631": "Cắt tóc, làm đầu, gội đầu",
}


@dataclass(frozen=True, slots=True)
class LineOfBusiness:
    """What an enterprise's name says it does (ngành nghề trong tên), and its VSIC classes: the
    first is the usual main line."""

    words: str  # in the Vietnamese name, upper case
    words_en: str  # in the foreign name
    weight: int  # how common the line is among names, relative to the others
    classes: tuple[str, ...]


LINES_OF_BUSINESS: tuple[LineOfBusiness, ...] = (
    LineOfBusiness(
        "THƯƠNG MẠI VÀ DỊCH VỤ",
        "TRADING AND SERVICES",
        14,
        ("4690", "4649", "4610", "4669", "4719", "4791", "8299"),
    ),
    LineOfBusiness("THƯƠNG MẠI", "TRADING", 8, ("4690", "4610", "4649", "4669", "4791")),
    LineOfBusiness(
        "XÂY DỰNG", "CONSTRUCTION", 9, ("4102", "4101", "4330", "4390", "4321", "4322", "4663")
    ),
    LineOfBusiness(
        "ĐẦU TƯ XÂY DỰNG", "CONSTRUCTION INVESTMENT", 4, ("4101", "4102", "6810", "7110", "4330")
    ),
    LineOfBusiness("BẤT ĐỘNG SẢN", "REAL ESTATE", 4, ("6810", "6820", "4101", "7110")),
    LineOfBusiness("CÔNG NGHỆ", "TECHNOLOGY", 6, ("6201", "6202", "6209", "6311", "4651")),
    LineOfBusiness("GIẢI PHÁP PHẦN MỀM", "SOFTWARE SOLUTIONS", 2, ("6201", "6209", "6311", "6202")),
    LineOfBusiness("VẬN TẢI", "TRANSPORT", 5, ("4933", "4932", "5229", "5210", "4520")),
    LineOfBusiness("LOGISTICS", "LOGISTICS", 2, ("5229", "5210", "4933")),
    LineOfBusiness("THỰC PHẨM", "FOOD", 5, ("1079", "4632", "4633", "1071", "1010", "4722")),
    LineOfBusiness("DU LỊCH", "TRAVEL", 3, ("5510", "5610", "4932", "5630")),
    LineOfBusiness("NHÀ HÀNG", "RESTAURANT", 3, ("5610", "5630", "4722", "4633")),
    LineOfBusiness("NỘI THẤT", "FURNITURE", 3, ("3100", "4649", "4663", "4330")),
    LineOfBusiness("TƯ VẤN", "CONSULTING", 4, ("7020", "6920", "7110", "8299")),
    LineOfBusiness("TƯ VẤN THUẾ", "TAX CONSULTING", 1, ("6920", "7020")),
    LineOfBusiness("CƠ KHÍ", "MECHANICAL ENGINEERING", 3, ("2511", "4659", "4520", "4390")),
    LineOfBusiness(
        "NÔNG NGHIỆP", "AGRICULTURE", 3, ("0118", "0111", "0146", "0145", "0322", "4620")
    ),
    LineOfBusiness("GIÁO DỤC", "EDUCATION", 2, ("8559", "7020")),
    LineOfBusiness("THIẾT BỊ Y TẾ", "MEDICAL EQUIPMENT", 2, ("4659", "4772", "8620")),
    LineOfBusiness("DƯỢC PHẨM", "PHARMACEUTICAL", 2, ("4772", "4669")),
    LineOfBusiness("MAY MẶC", "GARMENT", 3, ("1410", "4641", "4771")),
    LineOfBusiness("QUẢNG CÁO", "ADVERTISING", 2, ("7310", "8299")),
    LineOfBusiness("XUẤT NHẬP KHẨU", "IMPORT EXPORT", 4, ("4690", "4610", "4620", "4632")),
    LineOfBusiness("THẨM MỸ", "BEAUTY", 2, ("9631", "4772")),
)
_LINE_WEIGHTS = tuple(line.weight for line in LINES_OF_BUSINESS)

# The distinctive part of a name (tên riêng): two syllables, sometimes a place or a number after.
_FIRST_SYLLABLES: tuple[str, ...] = (
    "AN", "BẢO", "ĐẠI", "ĐỨC", "GIA", "HẢI", "HOÀNG", "HÒA", "HỒNG", "HƯNG", "KIM", "LỘC",
    "MINH", "NAM", "NGỌC", "PHÚ", "PHÚC", "PHƯƠNG", "QUANG", "SAO", "TÂN", "THÀNH", "THIÊN",
    "TIẾN", "TRÍ", "TRƯỜNG", "VẠN", "VIỆT", "ÁNH", "ĐÔNG",
)  # fmt: skip
_SECOND_SYLLABLES: tuple[str, ...] = (
    "AN", "BÌNH", "CƯỜNG", "DƯƠNG", "ĐẠT", "ĐÔNG", "GIA", "HÀ", "HÒA", "HƯNG", "KHANG",
    "KHÁNH", "LINH", "LONG", "LỘC", "MAI", "MINH", "NAM", "NGUYÊN", "PHÁT", "PHONG", "PHÚ",
    "QUANG", "SƠN", "TÂM", "THỊNH", "THÀNH", "TIẾN", "TÍN", "VIỆT", "VƯỢNG", "XUÂN",
)  # fmt: skip
_PLACE_WORDS: tuple[str, ...] = (
    "VIỆT NAM",
    "SÀI GÒN",
    "HÀ NỘI",
    "MIỀN TRUNG",
    "MIỀN NAM",
    "QUỐC TẾ",
)

# Name prefix, foreign-name suffix, short-name suffix, by native type id.
_NAME_FORMS: dict[int, tuple[str, str, str]] = {
    1: ("CÔNG TY TNHH", "COMPANY LIMITED", "CO., LTD"),
    2: ("CÔNG TY TNHH", "COMPANY LIMITED", "CO., LTD"),
    3: ("CÔNG TY CỔ PHẦN", "JOINT STOCK COMPANY", "JSC"),
    4: ("CÔNG TY HỢP DANH", "PARTNERSHIP", "PARTNERSHIP"),
    5: ("DOANH NGHIỆP TƯ NHÂN", "", ""),
}
_ONE_MEMBER_LONG_FORM = "CÔNG TY TNHH MỘT THÀNH VIÊN"

# Charter capital: a round mantissa times a power of ten in VND, by native type id.
_CAPITAL_MANTISSAS = (1, 1, 1.5, 2, 2, 3, 5, 5, 8)
_CAPITAL_EXPONENTS: dict[int, tuple[int, ...]] = {
    1: (8, 9, 9, 9, 10),
    2: (8, 9, 9, 10, 10),
    3: (9, 10, 10, 11, 12),
    4: (8, 9, 9),
    5: (8, 8, 9, 9),
}


def ascii_upper(text: str) -> str:
    """Upper-case text without its Vietnamese diacritics (Đ becomes D), for foreign names."""
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn").upper()


def _date_text(day: date) -> str:
    return day.strftime("%d/%m/%Y")


# -- addresses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OldUnits:
    """The pre-2025 units the registry files its addresses under."""

    district_of: dict[str, str]  # commune code -> synthetic 3-digit district id
    # old province -> the sorted codes of its communes, and the old commune codes in between
    # that no 2025 commune reused (communes merged away)
    codes: dict[str, tuple[int, ...]]
    obsolete: dict[str, tuple[int, ...]]


@cache
def old_units() -> _OldUnits:
    """District ids numbered province by province in code order, as the old list was; each
    district a run of about five communes (the sandbox keeps no table of the real ones)."""
    grouped = communes_by_old_province()
    every_code = {int(c.code) for communes in grouped.values() for c in communes}
    district_of: dict[str, str] = {}
    codes: dict[str, tuple[int, ...]] = {}
    obsolete: dict[str, tuple[int, ...]] = {}
    next_district = 1
    for province in sorted(grouped):
        communes = sorted(grouped[province], key=lambda c: int(c.code))
        for position, commune in enumerate(communes):
            district = next_district + position // _COMMUNES_PER_DISTRICT
            district_of[commune.code] = f"{district:03d}"
        next_district += -(-len(communes) // _COMMUNES_PER_DISTRICT)
        numbers = tuple(int(c.code) for c in communes)
        codes[province] = numbers
        obsolete[province] = tuple(
            code
            for low, high in pairwise(numbers)
            for code in range(low + 1, high)
            if code not in every_code
        )
    return _OldUnits(district_of, codes, obsolete)


def _street_detail(rng: random.Random, urban: bool, southern: bool) -> str:
    if urban:
        street = rng.choice(STREET_NAMES)
        number = rng.randint(1, 400)
        roll = rng.random()
        if roll < 0.15:
            return f"Tầng {rng.randint(2, 25)}, tòa nhà số {number} đường {street}"
        if roll < 0.45:
            return f"Số {number}, ngõ {rng.randint(1, 150)} phố {street}"
        return f"Số {number} đường {street}"
    words = HAMLET_WORDS_SOUTH if southern else HAMLET_WORDS_NORTH
    return f"{rng.choice(words)} {rng.randint(1, 15)}"


def render_address(rng: random.Random, commune: Commune, obsolete_share: float) -> Record:
    """An address in the old three-level codes: ``commune`` (a 2025 commune filed under its old
    province), or with ``obsolete_share`` an old commune of that province merged away in 2025."""
    units = old_units()
    province = commune.old_province
    ward, urban = commune.code, commune.urban
    candidates = units.obsolete[province]
    if candidates and rng.random() < obsolete_share:
        code = rng.choice(candidates)
        numbers = units.codes[province]
        below = numbers[bisect_right(numbers, code) - 1]
        ward = f"{code:05d}"
        district = units.district_of[f"{below:05d}"]
    else:
        district = units.district_of[ward]
    return {
        "AddressDetail": _street_detail(rng, urban, int(province) >= 48),
        "WardID": ward,
        "DistrictID": district,
        "CityID": province,
    }


def _province_word(old_province: str) -> str:
    name = OLD_PROVINCES[old_province]
    for prefix in ("Thành phố ", "Tỉnh "):
        name = name.removeprefix(prefix)
    return unicodedata.normalize("NFC", name.upper())


# -- names ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnterpriseName:
    name: str
    foreign_name: str  # "" when none is registered
    short_name: str
    line: LineOfBusiness


def enterprise_name(facts: EnterpriseFacts) -> EnterpriseName:
    """The registered names, drawn from the enterprise's ``name_seed``."""
    rng = random.Random(facts.name_seed)
    type_id = TYPE_IDS[facts.kind]
    line = rng.choices(LINES_OF_BUSINESS, _LINE_WEIGHTS)[0]
    first, second = rng.choice(_FIRST_SYLLABLES), rng.choice(_SECOND_SYLLABLES)
    while second == first:
        second = rng.choice(_SECOND_SYLLABLES)
    distinctive = f"{first} {second}"
    roll = rng.random()
    if roll < 0.12:
        distinctive = f"{distinctive} {rng.choice(_PLACE_WORDS)}"
    elif roll < 0.18:
        distinctive = f"{distinctive} {rng.randint(1, 99)}"
    prefix, foreign_suffix, short_suffix = _NAME_FORMS[type_id]
    if type_id == 1 and rng.random() < 0.3:
        prefix = _ONE_MEMBER_LONG_FORM
    name = unicodedata.normalize("NFC", f"{prefix} {line.words} {distinctive}")
    foreign = short = ""
    if foreign_suffix and rng.random() < 0.7:
        plain = ascii_upper(distinctive)
        foreign = f"{plain} {line.words_en} {foreign_suffix}"
        if rng.random() < 0.8:
            short = f"{plain} {short_suffix}"
    return EnterpriseName(name, foreign, short, line)


# -- the registry ---------------------------------------------------------------------------


class EnterpriseRegistry:
    """The business registration database's records of the World's enterprises.

    ``profile(index)`` is the whole record, ``representatives(index)`` its legal
    representatives, ``represented_by(personal_id)`` what one citizen represents. Returned
    records are shared with the cache: read them, do not change them.
    """

    def __init__(self, world: World, cache_size: int = 4096) -> None:
        self.world = world
        self.profile = lru_cache(maxsize=cache_size)(self._profile)

    def index_of(self, code: str) -> int | None:
        """The enterprise a 10-digit code (a branch suffix dropped) belongs to, or None."""
        return self.world.enterprise_index(code)

    def branch_exists(self, index: int, code: str) -> bool:
        """Whether ``code`` (with its -NNN suffix) is a branch of enterprise ``index``."""
        facts = self.world.enterprise(index)
        base, _, suffix = code.partition("-")
        return base == facts.code and suffix.isdigit() and 1 <= int(suffix) <= facts.branches

    def _rng(self, index: int) -> random.Random:
        return self.world.rng(_REGISTRATION, index)

    def _profile(self, index: int) -> Record:
        facts = self.world.enterprise(index)
        rng = self._rng(index)
        names = enterprise_name(facts)
        type_id, status_id = TYPE_IDS[facts.kind], STATUS_IDS[facts.status]
        upper_names = facts.founded.year < _UPPER_NAMES_BEFORE and rng.random() < _UPPER_NAMES_SHARE
        return {
            "ENTERPRISE_CODE": facts.code,
            "NAME": names.name,
            "NAME_F": names.foreign_name,
            "SHORT_NAME": names.short_name,
            "ENTERPRISE_TYPE_ID": type_id,
            "ENTERPRISE_TYPE_NAME": ENTERPRISE_TYPES[type_id],
            "ENTERPRISE_STATUS_ID": status_id,
            "ENTERPRISE_STATUS_NAME": ENTERPRISE_STATUSES[status_id],
            "FOUNDING_DATE": _date_text(facts.founded),
            "CAPITAL_AMOUNT": self._capital(rng, type_id),
            "HO_ADDRESS": render_address(rng, facts.head_office, OBSOLETE_WARD_SHARE),
            "REPRESENTATIVES": self._representatives(facts, upper_names),
            "BRANCHES": self._branches(rng, facts, names.name),
            "BUSINESS_ACTIVITIES": self._activities(rng, names.line),
            "LAST_UPDATE_TIME": self._last_update(rng, facts.founded),
        }

    def representatives(self, index: int) -> list[Record]:
        """REPRESENTATIVES of enterprise ``index`` (shared with its profile)."""
        representatives: list[Record] = self.profile(index)["REPRESENTATIVES"]
        return representatives

    def represented_by(self, personal_id: str) -> list[Record]:
        """The enterprises the citizen with this id legally represents, in code order, dissolved
        ones included (status 7); empty for anyone else."""
        person = self.world.index_of(personal_id)
        if person is None:
            return []
        found = []
        for index in self.world.represented_by(person):
            profile = self.profile(index)
            own = next(r for r in profile["REPRESENTATIVES"] if r["ID_NUMBER"] == personal_id)
            found.append(
                {
                    "ENTERPRISE_CODE": profile["ENTERPRISE_CODE"],
                    "NAME": profile["NAME"],
                    "ENTERPRISE_STATUS_ID": profile["ENTERPRISE_STATUS_ID"],
                    "ENTERPRISE_STATUS_NAME": profile["ENTERPRISE_STATUS_NAME"],
                    "POSITION": own["POSITION"],
                    "FROM_DATE": own["FROM_DATE"],
                }
            )
        return sorted(found, key=lambda summary: summary["ENTERPRISE_CODE"])

    # -- parts ------------------------------------------------------------------------------
    @staticmethod
    def _capital(rng: random.Random, type_id: int) -> int:
        mantissa = rng.choice(_CAPITAL_MANTISSAS)
        return int(mantissa * 10 ** rng.choice(_CAPITAL_EXPONENTS[type_id]))

    def _representatives(self, facts: EnterpriseFacts, upper_names: bool) -> list[Record]:
        out = []
        for representative in facts.representatives:
            person = self.world.person(representative.person)
            name = person.full_name
            born = person.birth_date
            out.append(
                {
                    "ID_NUMBER": person.personal_id,
                    "FULL_NAME": unicodedata.normalize("NFC", name.upper())
                    if upper_names
                    else name,
                    "BIRTH_DATE": _date_text(born) if born else f"{person.birth_year:04d}",
                    "POSITION": representative.title,
                    "FROM_DATE": _date_text(representative.since),
                }
            )
        return out

    def _branches(self, rng: random.Random, facts: EnterpriseFacts, name: str) -> list[Record]:
        branches = []
        provinces = sorted(OLD_PROVINCES)
        for number in range(1, facts.branches + 1):
            province = (
                facts.head_office.old_province if rng.random() < 0.4 else rng.choice(provinces)
            )
            commune = rng.choice(communes_by_old_province()[province])
            if facts.status == CEASED:
                status = CEASED  # a dissolved enterprise's branches ceased with it
            else:
                status = OPERATING if rng.random() < 0.85 else CEASED
            branches.append(
                {
                    "BRANCH_CODE": f"{facts.code}-{number:03d}",
                    "BRANCH_NAME": f"CHI NHÁNH {name} TẠI {_province_word(province)}",
                    "BRANCH_STATUS_ID": STATUS_IDS[status],
                    "ADDRESS": render_address(rng, commune, OBSOLETE_WARD_SHARE),
                }
            )
        return branches

    @staticmethod
    def _activities(rng: random.Random, line: LineOfBusiness) -> list[Record]:
        main = line.classes[0] if rng.random() < 0.8 else rng.choice(line.classes)
        others = [code for code in line.classes if code != main]
        chosen = rng.sample(others, rng.randint(0, len(others)))
        if rng.random() < 0.3:  # an unrelated line registered on the side
            extra = rng.choice(sorted(VSIC_CLASSES))
            if extra != main and extra not in chosen:
                chosen.append(extra)
        activities = [
            {"INDUSTRY_CODE": code, "INDUSTRY_NAME": VSIC_CLASSES[code], "IS_MAIN": 0}
            for code in sorted([main, *chosen])
        ]
        for activity in activities:
            if activity["INDUSTRY_CODE"] == main:
                activity["IS_MAIN"] = 1
        return activities

    @staticmethod
    def _last_update(rng: random.Random, founded: date) -> str:
        day = founded + timedelta(days=rng.randrange((SNAPSHOT - founded).days + 1))
        moment = datetime.combine(day, time(7, 30)) + timedelta(seconds=rng.randrange(36_000))
        return moment.strftime("%Y-%m-%d %H:%M:%S")
