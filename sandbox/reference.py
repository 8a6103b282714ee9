"""The sandbox's own reference tables.

The sandbox stands in for national databases we do not own, so it keeps its own small tables
instead of importing the bus's code lists (``mappings/``). Vietnamese terms used here:

- *tỉnh* (province) codes of the General Statistics Office: 63 "old" provinces until 30 June 2025,
  34 "new" ones from 1 July 2025 (each new province kept the code of the old one holding its
  capital);
- *xã / phường / đặc khu* (rural commune / urban ward / special zone): the 3,321 new communes, which
  reuse the 5-digit code of one predecessor commune;
- *dân tộc* (ethnicity) and *tôn giáo* (religion) codes of the 2008 list (1019/QĐ-TCTK);
- *họ, chữ đệm, tên* (family name, middle name, given name).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from vietnam_provinces import Ward

# Old (pre-July-2025) provinces: code -> full name with its type.
OLD_PROVINCES: dict[str, str] = {
    "01": "Thành phố Hà Nội",
    "02": "Tỉnh Hà Giang",
    "04": "Tỉnh Cao Bằng",
    "06": "Tỉnh Bắc Kạn",
    "08": "Tỉnh Tuyên Quang",
    "10": "Tỉnh Lào Cai",
    "11": "Tỉnh Điện Biên",
    "12": "Tỉnh Lai Châu",
    "14": "Tỉnh Sơn La",
    "15": "Tỉnh Yên Bái",
    "17": "Tỉnh Hòa Bình",
    "19": "Tỉnh Thái Nguyên",
    "20": "Tỉnh Lạng Sơn",
    "22": "Tỉnh Quảng Ninh",
    "24": "Tỉnh Bắc Giang",
    "25": "Tỉnh Phú Thọ",
    "26": "Tỉnh Vĩnh Phúc",
    "27": "Tỉnh Bắc Ninh",
    "30": "Tỉnh Hải Dương",
    "31": "Thành phố Hải Phòng",
    "33": "Tỉnh Hưng Yên",
    "34": "Tỉnh Thái Bình",
    "35": "Tỉnh Hà Nam",
    "36": "Tỉnh Nam Định",
    "37": "Tỉnh Ninh Bình",
    "38": "Tỉnh Thanh Hóa",
    "40": "Tỉnh Nghệ An",
    "42": "Tỉnh Hà Tĩnh",
    "44": "Tỉnh Quảng Bình",
    "45": "Tỉnh Quảng Trị",
    "46": "Tỉnh Thừa Thiên Huế",
    "48": "Thành phố Đà Nẵng",
    "49": "Tỉnh Quảng Nam",
    "51": "Tỉnh Quảng Ngãi",
    "52": "Tỉnh Bình Định",
    "54": "Tỉnh Phú Yên",
    "56": "Tỉnh Khánh Hòa",
    "58": "Tỉnh Ninh Thuận",
    "60": "Tỉnh Bình Thuận",
    "62": "Tỉnh Kon Tum",
    "64": "Tỉnh Gia Lai",
    "66": "Tỉnh Đắk Lắk",
    "67": "Tỉnh Đắk Nông",
    "68": "Tỉnh Lâm Đồng",
    "70": "Tỉnh Bình Phước",
    "72": "Tỉnh Tây Ninh",
    "74": "Tỉnh Bình Dương",
    "75": "Tỉnh Đồng Nai",
    "77": "Tỉnh Bà Rịa - Vũng Tàu",
    "79": "Thành phố Hồ Chí Minh",
    "80": "Tỉnh Long An",
    "82": "Tỉnh Tiền Giang",
    "83": "Tỉnh Bến Tre",
    "84": "Tỉnh Trà Vinh",
    "86": "Tỉnh Vĩnh Long",
    "87": "Tỉnh Đồng Tháp",
    "89": "Tỉnh An Giang",
    "91": "Tỉnh Kiên Giang",
    "92": "Thành phố Cần Thơ",
    "93": "Tỉnh Hậu Giang",
    "94": "Tỉnh Sóc Trăng",
    "95": "Tỉnh Bạc Liêu",
    "96": "Tỉnh Cà Mau",
}

# The 2025 merge: new province code -> old province codes merged into it.
PROVINCE_MERGE_2025: dict[str, tuple[str, ...]] = {
    "01": ("01",),
    "04": ("04",),
    "08": ("02", "08"),
    "11": ("11",),
    "12": ("12",),
    "14": ("14",),
    "15": ("10", "15"),
    "19": ("06", "19"),
    "20": ("20",),
    "22": ("22",),
    "24": ("24", "27"),
    "25": ("17", "25", "26"),
    "31": ("30", "31"),
    "33": ("33", "34"),
    "37": ("35", "36", "37"),
    "38": ("38",),
    "40": ("40",),
    "42": ("42",),
    "44": ("44", "45"),
    "46": ("46",),
    "48": ("48", "49"),
    "51": ("51", "62"),
    "52": ("52", "64"),
    "56": ("56", "58"),
    "66": ("54", "66"),
    "68": ("60", "67", "68"),
    "75": ("70", "75"),
    "79": ("74", "77", "79"),
    "80": ("72", "80"),
    "82": ("82", "87"),
    "86": ("83", "84", "86"),
    "91": ("89", "91"),
    "92": ("92", "93", "94"),
    "96": ("95", "96"),
}

OLD_TO_NEW_PROVINCE: dict[str, str] = {
    old: new for new, olds in PROVINCE_MERGE_2025.items() for old in olds
}

# Rough population weights of the old provinces (births registered there); 1.0 is a typical one.
_HEAVY_PROVINCES: dict[str, float] = {
    "01": 8.5,
    "79": 9.5,
    "38": 3.7,
    "40": 3.4,
    "75": 3.2,
    "74": 2.6,
    "31": 2.1,
    "89": 1.9,
    "36": 1.8,
    "34": 1.9,
    "30": 1.9,
    "91": 1.8,
    "66": 1.9,
    "64": 1.5,
}
OLD_PROVINCE_WEIGHTS: dict[str, float] = {
    code: _HEAVY_PROVINCES.get(code, 1.0) for code in OLD_PROVINCES
}

# Family names (họ) with approximate shares in percent. "Hoàng/Huỳnh" and "Vũ/Võ" are one name
# spelt differently in the north and the south; the generator picks the spelling by region.
SURNAME_SHARES: dict[str, float] = {
    "Nguyễn": 38.0,
    "Trần": 11.0,
    "Lê": 9.5,
    "Phạm": 7.0,
    "Hoàng/Huỳnh": 5.0,
    "Phan": 4.5,
    "Vũ/Võ": 4.0,
    "Đặng": 2.0,
    "Bùi": 2.0,
    "Đỗ": 1.8,
    "Hồ": 1.6,
    "Ngô": 1.5,
    "Dương": 1.2,
    "Lý": 1.0,
    "Đinh": 1.0,
    "Đoàn": 0.9,
    "Trương": 0.9,
    "Lâm": 0.8,
    "Mai": 0.8,
    "Trịnh": 0.8,
    "Cao": 0.7,
    "Lương": 0.7,
    "Hà": 0.7,
    "Tạ": 0.5,
    "Tô": 0.5,
    "Châu": 0.5,
    "Quách": 0.4,
    "Kiều": 0.3,
}

MIDDLE_NAMES_MALE: tuple[str, ...] = (
    "Văn", "Văn", "Văn", "Hữu", "Đức", "Minh", "Quang", "Công", "Thanh", "Xuân", "Tiến",
    "Đình", "Gia", "Quốc", "Ngọc", "Văn Minh", "Hoàng", "Bảo", "Trọng", "Thế",
)  # fmt: skip
MIDDLE_NAMES_FEMALE: tuple[str, ...] = (
    "Thị", "Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Kim", "Hồng", "Phương", "Minh",
    "Thị Thu", "Thị Ngọc", "Bảo", "Khánh", "Diệu", "Mỹ", "Thùy",
)  # fmt: skip
GIVEN_NAMES_MALE: tuple[str, ...] = (
    "Hùng", "Dũng", "Tuấn", "Minh", "Nam", "Hải", "Long", "Quân", "Sơn", "Thắng", "Cường",
    "Hiếu", "Phúc", "Khoa", "Huy", "Đạt", "Trung", "Tùng", "Bảo", "Khánh", "Hòa", "Thụy",
    "Thành", "Hoàng", "Việt", "Phong", "Lộc", "Tài", "Nghĩa", "Toàn", "Khải", "An",
)  # fmt: skip
GIVEN_NAMES_FEMALE: tuple[str, ...] = (
    "Lan", "Hương", "Hoa", "Mai", "Linh", "Trang", "Thảo", "Hà", "Ngọc", "Anh", "Thủy",
    "Hòa", "Huyền", "Nhung", "Oanh", "Yến", "Nguyệt", "Loan", "Vy", "Quỳnh", "Tuyết",
    "Thúy", "Hạnh", "Phương", "Nhi", "Giang", "Hằng", "Dung", "Xoan", "Khuê", "Ngân",
)  # fmt: skip

# Ethnicity (dân tộc), 2008 list (1019/QĐ-TCTK): code -> (name, approximate share in percent).
ETHNICITIES: dict[str, tuple[str, float]] = {
    "01": ("Kinh", 85.3),
    "02": ("Tày", 1.9),
    "03": ("Thái", 1.9),
    "04": ("Mường", 1.5),
    "05": ("Khmer", 1.4),
    "06": ("Hoa", 0.8),
    "07": ("Nùng", 1.1),
    "08": ("H'Mông", 1.5),
    "09": ("Dao", 0.9),
    "10": ("Gia Rai", 0.5),
    "11": ("Ê Đê", 0.4),
    "12": ("Ba Na", 0.3),
    "13": ("Sán Chay", 0.2),
    "14": ("Chăm", 0.2),
    "15": ("Cơ Ho", 0.2),
    "16": ("Xơ Đăng", 0.2),
}

# Religion (tôn giáo), 1019/QĐ-TCTK; "00" (none) is the native system's own code for "no religion".
RELIGIONS: dict[str, tuple[str, float]] = {
    "00": ("Không", 85.0),
    "01": ("Phật giáo", 7.0),
    "02": ("Công giáo", 6.0),
    "03": ("Phật giáo Hòa Hảo", 0.8),
    "04": ("Hồi giáo", 0.1),
    "05": ("Cao Đài", 0.6),
    "06": ("Minh Sư đạo", 0.01),
    "07": ("Minh Lý đạo", 0.01),
    "08": ("Tin Lành", 0.9),
    "09": ("Tịnh độ Cư sĩ Phật hội", 0.05),
    "10": ("Tứ Ân Hiếu Nghĩa", 0.01),
    "11": ("Bửu Sơn Kỳ Hương", 0.01),
    "12": ("Baha'i", 0.01),
    "13": ("Bà La Môn", 0.01),
    "14": ("Mặc Môn", 0.01),
}

STREET_NAMES: tuple[str, ...] = (
    "Lê Lợi", "Trần Hưng Đạo", "Nguyễn Trãi", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
    "Hùng Vương", "Điện Biên Phủ", "Lê Duẩn", "Nguyễn Huệ", "Phan Chu Trinh", "Bà Triệu",
    "Ngô Quyền", "Trần Phú", "Lê Thánh Tông", "Nguyễn Du", "Hoàng Diệu", "Cách Mạng Tháng Tám",
)  # fmt: skip
# Words for a hamlet or residential group: northern and central provinces, then the south.
HAMLET_WORDS_NORTH: tuple[str, ...] = ("Thôn", "Xóm", "Bản", "Tổ dân phố")
HAMLET_WORDS_SOUTH: tuple[str, ...] = ("Ấp", "Ấp", "Khóm", "Tổ dân phố")


@dataclass(frozen=True, slots=True)
class Commune:
    """A commune (xã/phường/đặc khu) as the legacy database records it: code and old province."""

    code: str
    name: str
    urban: bool
    old_province: str


def _split_by_old_province(codes: list[int], olds: tuple[str, ...]) -> dict[int, str]:
    """Assign each commune code of a new province to one of the old provinces merged into it.

    Old commune codes were numbered province by province, so the codes of one old province form a
    contiguous run. The runs are cut at the widest gaps between codes; where no wide gap exists the
    largest run is halved. An approximation, good enough for synthetic data.
    """
    codes = sorted(codes)
    if len(olds) == 1:
        return dict.fromkeys(codes, olds[0])
    gaps = sorted(range(1, len(codes)), key=lambda i: codes[i] - codes[i - 1], reverse=True)
    cuts = sorted(i for i in gaps[: len(olds) - 1] if codes[i] - codes[i - 1] > 150)
    runs = [codes[a:b] for a, b in zip([0, *cuts], [*cuts, len(codes)], strict=True)]
    while len(runs) < len(olds):
        largest = max(range(len(runs)), key=lambda i: len(runs[i]))
        run = runs.pop(largest)
        runs[largest:largest] = [run[: len(run) // 2], run[len(run) // 2 :]]
    return {code: old for run, old in zip(runs, sorted(olds), strict=True) for code in run}


@cache
def communes_by_old_province() -> dict[str, tuple[Commune, ...]]:
    """The new communes grouped by the old province the legacy database files them under."""
    by_new: dict[str, list[Ward]] = {}
    for ward in Ward.iter_all():
        by_new.setdefault(f"{int(ward.province_code):02d}", []).append(ward)
    grouped: dict[str, list[Commune]] = {code: [] for code in OLD_PROVINCES}
    for new_code, wards in sorted(by_new.items()):
        owner = _split_by_old_province([int(w.code) for w in wards], PROVINCE_MERGE_2025[new_code])
        for ward in sorted(wards, key=lambda w: int(w.code)):
            code = int(ward.code)
            grouped[owner[code]].append(
                Commune(
                    code=f"{code:05d}",
                    name=ward.name,
                    urban=ward.division_type.value == "phường",
                    old_province=owner[code],
                )
            )
    return {code: tuple(communes) for code, communes in grouped.items()}
