"""Deterministic synthetic citizens of the simulated national population database.

The native record uses the database's own Vietnamese names (see ``service.py`` and the WSDL):
*SoDinhDanh* personal id, *SoCMND* old ID-card number, *HoVaTen* full name (*Ho* family name,
*ChuDem* middle name, *Ten* given name), *GioiTinh* sex, *DanToc* ethnicity, *TonGiao* religion,
*QuocTich* nationality, *NgayThangNamSinh* birth date, *QueQuan* home town, *ThuongTru* permanent
residence, *NoiOHienTai* current residence, *Cha*/*Me*/*VoChong* father/mother/spouse, *ChuHo*
household head with *QuanHeVoiChuHo* relation to the head.

Record ``i`` depends only on ``(seed, i)``: it is drawn from
``random.Random(seed * 1_000_003 + i)``, so any record can be generated on demand without
generating the ones before it. The last six digits of the personal id are a keyed permutation of
``i`` over 0..999,999, which makes ids unique and lets ``find`` invert an id to its index without
any lookup table.
"""

from __future__ import annotations

import copy
import random
import re
import unicodedata
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from typing import Any

from sandbox.reference import (
    ETHNICITIES,
    GIVEN_NAMES_FEMALE,
    GIVEN_NAMES_MALE,
    HAMLET_WORDS_NORTH,
    HAMLET_WORDS_SOUTH,
    MIDDLE_NAMES_FEMALE,
    MIDDLE_NAMES_MALE,
    OLD_PROVINCE_WEIGHTS,
    OLD_PROVINCES,
    RELIGIONS,
    STREET_NAMES,
    SURNAME_SHARES,
    Commune,
    communes_by_old_province,
)

MAX_COUNT = 1_000_000
FIRST_BIRTH_YEAR = 1940
LAST_BIRTH_YEAR = 2024
REFERENCE_YEAR = 2025
# The legacy database's snapshot: records were last touched between these two instants.
_DATA_TIME_START = datetime(2021, 7, 1, 0, 0, 0)
_DATA_TIME_END = datetime(2025, 6, 30, 23, 59, 59)
SNAPSHOT_DAY = _DATA_TIME_END.date()  # every sandbox database is as of this day
_ID_PATTERN = re.compile(r"\d{12}")

Citizen = dict[str, Any]


class _WeightedChoice:
    """Pick from a fixed table with one ``rng.random()`` call (cumulative weights + bisect)."""

    def __init__(self, items: Sequence[str], weights: Sequence[float]) -> None:
        self.items = tuple(items)
        self.cumulative = tuple(accumulate(weights))
        self.total = self.cumulative[-1]

    def __call__(self, rng: random.Random) -> str:
        return self.items[bisect(self.cumulative, rng.random() * self.total)]


def _birth_year_weight(year: int) -> float:
    """A rough age pyramid: flat up to 50, thinning out towards 85."""
    age = REFERENCE_YEAR - year
    if age < 5:
        return 0.85
    if age <= 50:
        return 1.0
    if age <= 65:
        return 1.0 - 0.3 * (age - 50) / 15
    return max(0.05, 0.7 - 0.65 * (age - 65) / 20)


_YEARS = [str(y) for y in range(FIRST_BIRTH_YEAR, LAST_BIRTH_YEAR + 1)]
_pick_year = _WeightedChoice(_YEARS, [_birth_year_weight(int(y)) for y in _YEARS])
_pick_birth_province = _WeightedChoice(
    list(OLD_PROVINCE_WEIGHTS), list(OLD_PROVINCE_WEIGHTS.values())
)
_pick_surname = _WeightedChoice(list(SURNAME_SHARES), list(SURNAME_SHARES.values()))
_pick_ethnicity = _WeightedChoice(list(ETHNICITIES), [share for _, share in ETHNICITIES.values()])
_pick_religion = _WeightedChoice(list(RELIGIONS), [share for _, share in RELIGIONS.values()])

# New tone placement (hòa, thủy) -> old placement (hoà, thuỷ) for open syllables ending oa/oe/uy.
_OLD_TONE = re.compile(r"([òóỏõọ])([ae])\b|([ùúủũụ])(y)\b", re.IGNORECASE)
_TONE_MARKS = {"\u0300", "\u0301", "\u0309", "\u0303", "\u0323"}


def _move_tone(match: re.Match[str]) -> str:
    toned, plain = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
    decomposed = unicodedata.normalize("NFD", toned)
    mark = "".join(ch for ch in decomposed if ch in _TONE_MARKS)
    base = "".join(ch for ch in decomposed if ch not in _TONE_MARKS)
    return unicodedata.normalize("NFC", base + plain + mark)


def old_tone_placement(text: str) -> str:
    """Rewrite ``Hòa``/``Thủy`` with the old tone placement ``Hoà``/``Thuỷ`` (result in NFC)."""
    return _OLD_TONE.sub(_move_tone, text)


def century_sex_digit(year: int, sex: int) -> int:
    """The 4th digit of a personal id: 0/1 1900s male/female, 2/3 2000s; unknown sex as male."""
    return (year // 100 - 19) * 2 + (1 if sex == 2 else 0)


class _SerialPermutation:
    """A keyed bijection of 0..999,999 (a 4-round Feistel network on two 3-digit halves)."""

    def __init__(self, seed: int) -> None:
        keys_rng = random.Random(seed ^ 0x5EED_D0C5)
        self.keys = tuple(keys_rng.randrange(1, 1 << 30) for _ in range(4))

    @staticmethod
    def _round(half: int, key: int) -> int:
        return ((half * 2_654_435_761 + key) >> 11) % 1000

    def forward(self, value: int) -> int:
        left, right = divmod(value, 1000)
        for key in self.keys:
            left, right = right, (left + self._round(right, key)) % 1000
        return left * 1000 + right

    def inverse(self, value: int) -> int:
        left, right = divmod(value, 1000)
        for key in reversed(self.keys):
            left, right = (right - self._round(left, key)) % 1000, left
        return left * 1000 + right


@dataclass(frozen=True, slots=True)
class _PairDraws:
    """Everything drawn for one pair of indices (2k, 2k+1), from one stream, in one order."""

    married: bool
    age_gap: int
    same_province: bool
    wedding: float
    divorced: bool
    divorce: float


@dataclass(frozen=True, slots=True)
class Couple:
    """A marriage between two citizens (by index), and its divorce if there was one."""

    husband: int
    wife: int
    married_on: date
    divorced_on: date | None

    def partner_of(self, index: int) -> int:
        return self.wife if index == self.husband else self.husband


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """One citizen as the other databases know them: the name as drawn (NFC, before the
    population database's own upper-case and tone-placement quirks), sex, birth and residence."""

    index: int
    personal_id: str
    family_name: str
    middle_name: str | None
    given_name: str
    sex: int  # 0 undetermined, 1 male, 2 female
    birth_year: int
    birth_date: date | None  # None: only the year is known
    birth_province: str  # old (pre-2025) code of the birth registration
    residence_commune: str
    residence_province: str  # old code the legacy record files the commune under
    residence_detail: str

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.family_name, self.middle_name, self.given_name) if p)


class PopulationGenerator:
    """``count`` synthetic citizens, the same ones for the same ``(count, seed)``, byte for byte.

    Nothing is held per citizen: ``find`` inverts the id's serial digits to an index and
    ``get`` regenerates the record (a small LRU cache keeps the recent ones), so a million
    citizens cost no memory and no start-up time.
    """

    def __init__(self, count: int = 10_000, seed: int = 20250701, cache_size: int = 4096) -> None:
        if not 1 <= count <= MAX_COUNT:
            raise ValueError(
                f"count must be between 1 and {MAX_COUNT:,} (the 6 serial digits of a personal id "
                f"give at most that many unique ids), got {count!r}"
            )
        self.count = count
        self.seed = seed
        self._serials = _SerialPermutation(seed)
        self._build = lru_cache(maxsize=cache_size)(self._generate)
        self._core = lru_cache(maxsize=cache_size * 2)(self._core_uncached)
        # Pure functions of (seed, index) that the other databases' feeds ask again and again.
        # (Per instance, over bound methods: a class-level cache would keep every generator.)
        self._pair_draws = lru_cache(maxsize=cache_size * 4)(self._pair_draws)  # type: ignore[method-assign]
        self.couple = lru_cache(maxsize=cache_size * 2)(self.couple)  # type: ignore[method-assign]
        self.death = lru_cache(maxsize=cache_size * 2)(self.death)  # type: ignore[method-assign]

    # -- identity -----------------------------------------------------------------------------
    def _rng(self, index: int) -> random.Random:
        return random.Random(self.seed * 1_000_003 + index)

    @staticmethod
    def _own_identity(rng: random.Random) -> tuple[str, int, int]:
        """Birth-registration province (old code), sex and birth year: the first three draws."""
        province = _pick_birth_province(rng)
        roll = rng.random()
        sex = 0 if roll < 0.002 else (1 if roll < 0.501 else 2)
        return province, sex, int(_pick_year(rng))

    def _draw_identity(self, index: int, rng: random.Random) -> tuple[str, int, int]:
        """The identity of ``index``: its own draws, except that the second of a married pair
        is of the other sex, of a like age, and often from the same province as the first."""
        own = self._own_identity(rng)
        if index % 2 == 0:
            return own
        first = self._pair_first(index - 1)
        if first is None:
            return own
        province, sex, year = first
        draws = self._pair_draws(index // 2)
        partner_year = min(REFERENCE_YEAR - 20, max(FIRST_BIRTH_YEAR, year + draws.age_gap))
        return (province if draws.same_province else own[0]), 3 - sex, partner_year

    def _pair_draws(self, pair: int) -> _PairDraws:
        rng = random.Random((self.seed * 1_000_003 + pair) ^ 0xC0_FFEE)
        return _PairDraws(
            married=rng.random() < 0.6,
            age_gap=rng.randint(-5, 5),
            same_province=rng.random() < 0.7,
            wedding=rng.random() ** 1.6,
            divorced=rng.random() < 0.08,
            divorce=rng.random(),
        )

    def _pair_first(self, first: int) -> tuple[str, int, int] | None:
        """The identity of the first of pair ``first // 2`` if that pair is married, else None."""
        if first + 1 >= self.count:
            return None
        province, sex, year = self._own_identity(self._rng(first))
        if sex == 0 or REFERENCE_YEAR - year <= 22 or not self._pair_draws(first // 2).married:
            return None
        return province, sex, year

    def marriage_drawn(self, index: int) -> tuple[bool, bool]:
        """Cheaply, whether the pair of ``index`` was drawn married, and married then divorced:
        a couple (``couple``) only if so, though not always (ages and deaths decide)."""
        self._check_index(index)
        draws = self._pair_draws(index // 2)
        return draws.married, draws.married and draws.divorced

    def birth_year(self, index: int) -> int:
        """The birth year of citizen ``index``, without generating the record."""
        self._check_index(index)
        return self._draw_identity(index, self._rng(index))[2]

    def death(self, index: int) -> date | None:
        """When citizen ``index`` died, or None: the older, the likelier, from 2010 on."""
        self._check_index(index)
        record, person, _ = self._core(index)
        age = REFERENCE_YEAR - person.year
        share = 0.002 if age < 40 else 0.02 if age < 60 else 0.08 if age < 75 else 0.25
        rng = random.Random((self.seed * 1_000_003 + index) * 7 + 0xDEAD)
        if rng.random() >= share:
            return None
        stamp = record["NgayThangNamSinh"].get("NgayThangNam")
        born = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:])) if stamp else None
        earliest = max((born or date(person.year, 12, 31)) + timedelta(days=1), date(2010, 1, 1))
        if earliest >= SNAPSHOT_DAY:
            return None
        return earliest + timedelta(days=rng.randrange((SNAPSHOT_DAY - earliest).days))

    def couple(self, index: int) -> Couple | None:
        """The marriage ``index`` is part of (married pairs are indices 2k and 2k+1), or None."""
        self._check_index(index)
        first = index - index % 2
        identity = self._pair_first(first)
        if identity is None:
            return None
        draws = self._pair_draws(first // 2)
        partner_year = self._draw_identity(first + 1, self._rng(first + 1))[2]
        husband, wife = (first, first + 1) if identity[1] == 1 else (first + 1, first)
        # Married once both were of age (20 for men, 18 for women): from 1 January of the year
        # the younger turns 21, so whatever their birthdays, and before the data snapshot.
        earliest = date(max(identity[2], partner_year, 1940) + 21, 1, 1)
        latest = date(REFERENCE_YEAR - 1, 6, 30)
        married_on = earliest + timedelta(
            days=int(max(1, (latest - earliest).days) * draws.wedding)
        )
        # Nobody marries or divorces after a death: a marriage ends with the first death.
        deaths = [d for d in (self.death(first), self.death(first + 1)) if d is not None]
        ended = min(deaths) if deaths else None
        if ended is not None and married_on >= ended:
            return None
        divorced_on = None
        married_days = (latest - married_on).days
        if draws.divorced and married_days > 400:
            divorced_on = married_on + timedelta(
                days=365 + int((married_days - 365) * draws.divorce)
            )
            if ended is not None and divorced_on >= ended:
                divorced_on = None
        return Couple(husband, wife, married_on, divorced_on)

    def _compose_id(self, index: int, province: str, sex: int, year: int) -> str:
        serial = self._serials.forward(index)
        return f"0{province}{century_sex_digit(year, sex)}{year % 100:02d}{serial:06d}"

    def personal_id(self, index: int) -> str:
        """The personal id (SoDinhDanh) of citizen ``index``, without generating the record."""
        self._check_index(index)
        return self._compose_id(index, *self._draw_identity(index, self._rng(index)))

    def candidate_index(self, personal_id: str) -> int | None:
        """The only index that could hold ``personal_id`` (its serial digits decide), or None.

        Cheap and unverified: the caller must still compare the id of that index.
        """
        if not _ID_PATTERN.fullmatch(personal_id):
            return None
        index = self._serials.inverse(int(personal_id[6:]))
        return index if index < self.count else None

    def index_of(self, personal_id: str) -> int | None:
        """The index of the citizen holding ``personal_id``, or None."""
        index = self.candidate_index(personal_id)
        if index is not None and self.personal_id(index) == personal_id:
            return index
        return None

    # -- public lookups -----------------------------------------------------------------------
    def get(self, index: int) -> Citizen:
        """The native record of citizen ``index`` (a fresh copy; nested dicts, native names)."""
        self._check_index(index)
        return copy.deepcopy(self._build(index))

    def get_shared(self, index: int) -> Citizen:
        """Like ``get`` but returns the cached record itself: read it, never mutate it."""
        self._check_index(index)
        return self._build(index)

    def core(self, index: int) -> Citizen:
        """The record of citizen ``index`` without its relatives (Cha, Me, VoChong, ChuHo):
        cheaper than ``get_shared``, and like it cached: read it, never mutate it."""
        self._check_index(index)
        return self._core(index)[0]

    def find(self, personal_id: str) -> Citizen | None:
        """The native record with this personal id, or None."""
        index = self.index_of(personal_id)
        return None if index is None else self.get(index)

    def ids(self) -> Iterator[str]:
        """Every personal id, in index order."""
        return (self.personal_id(i) for i in range(self.count))

    def sample(self, n: int, rng_seed: int | None = None) -> list[str]:
        """``n`` distinct existing ids (all of them if ``n`` >= count)."""
        rng = random.Random(rng_seed)
        return [self.personal_id(i) for i in rng.sample(range(self.count), min(n, self.count))]

    def native_data_time(self, index: int) -> str:
        """ThoiDiemDuLieu of citizen ``index``: when the record was last updated, yyyyMMddHHmmss."""
        self._check_index(index)
        born = self._build(index)["NgayThangNamSinh"]
        stamp = born.get("NgayThangNam") or born["Nam"] + "0101"
        birth = datetime(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:8]))
        # Never before the birth was registered (a month after birth, at the earliest).
        start = max(_DATA_TIME_START, birth + timedelta(days=30))
        span = max(1, int((_DATA_TIME_END - start).total_seconds()))
        rng = random.Random((self.seed * 1_000_003 + index) ^ 0x7153_7A3B)
        return (start + timedelta(seconds=rng.randrange(span))).strftime("%Y%m%d%H%M%S")

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.count:
            raise IndexError(f"citizen index must be in 0..{self.count - 1}, got {index!r}")

    # -- record -------------------------------------------------------------------------------
    def _generate(self, index: int) -> Citizen:
        """The whole record: the core, then the relatives (the spouse is the partner's core)."""
        core, person, state = self._core(index)
        record = dict(core)
        person.rng = random.Random()
        person.rng.setstate(state)
        couple = self.couple(index)
        spouse = None
        if couple is not None and couple.divorced_on is None:
            partner = couple.partner_of(index)
            partner_facts = self.facts(partner)
            spouse = {
                "HoVaTen": person.style(partner_facts.full_name),
                "SoDinhDanh": partner_facts.personal_id,
            }
        record.update(person.relations(" ".join(record["HoVaTen"].values()), spouse))
        return record

    def _core_uncached(self, index: int) -> tuple[Citizen, _Person, Any]:
        """Everything but the relatives: the record so far, the draws, and the stream's state."""
        rng = self._rng(index)
        province, sex, year = self._draw_identity(index, rng)
        person = _Person(
            rng=rng,
            personal_id=self._compose_id(index, province, sex, year),
            province=province,
            sex=sex,
            year=year,
            upper=rng.random() < 0.30,
            old_tones=rng.random() < 0.10,
        )
        record: Citizen = {"SoDinhDanh": person.personal_id}
        if year < 2000 and rng.random() < 0.60:
            record["SoCMND"] = f"{province}{rng.randrange(10_000_000):07d}"
        record["HoVaTen"] = person.name_parts()
        record["GioiTinh"] = sex
        record["DanToc"] = {"MaDanToc": _pick_ethnicity(rng)}
        record["TonGiao"] = {"MaTonGiao": _pick_religion(rng)}
        record["QuocTich"] = "VN"
        record["NgayThangNamSinh"] = _birth_date(rng, year)
        record.update(_addresses(rng, province))
        return record, person, rng.getstate()

    def facts(self, index: int) -> PersonFacts:
        """Citizen ``index`` as the other databases know them (see ``PersonFacts``)."""
        self._check_index(index)
        record, person, _ = self._core(index)
        born = record["NgayThangNamSinh"]
        stamp = born.get("NgayThangNam")
        residence = record["ThuongTru"]
        return PersonFacts(
            index=index,
            personal_id=person.personal_id,
            family_name=person.family,
            middle_name=person.middle,
            given_name=person.given,
            sex=person.sex,
            birth_year=person.year,
            birth_date=date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:])) if stamp else None,
            birth_province=person.province,
            residence_commune=residence["MaDonViHanhChinh"],
            residence_province=residence["MaTinh"],
            residence_detail=residence["ChiTiet"],
        )


@dataclass
class _Person:
    """The draws of one record that its names and relatives depend on."""

    rng: random.Random
    personal_id: str
    province: str
    sex: int
    year: int
    upper: bool
    old_tones: bool
    family: str = ""
    middle: str | None = None
    given: str = ""

    @property
    def southern(self) -> bool:
        return int(self.province) >= 48

    def style(self, name: str) -> str:
        """Old tone placement and upper case, as this record's legacy data entry had it."""
        name = old_tone_placement(name) if self.old_tones else name
        return unicodedata.normalize("NFC", name.upper() if self.upper else name)

    def full_name(self, family: str, sex: int) -> str:
        middle, given = _middle_and_given(self.rng, sex)
        return " ".join(self.style(part) for part in (family, middle, given))

    def name_parts(self) -> dict[str, str]:
        self.family = _surname(self.rng, self.southern)
        middle, given = _middle_and_given(self.rng, self.sex)
        name = {"Ho": self.style(self.family)}
        if self.rng.random() >= 0.03:
            name["ChuDem"] = self.style(middle)
            self.middle = middle
        name["Ten"] = self.style(given)
        self.given = given
        return name

    def relative(self, sex: int, year: int, family: str, id_share: float) -> dict[str, str]:
        """Father, mother or spouse: a full name and, when born since 1930, often an id."""
        relative = {"HoVaTen": self.full_name(family, sex)}
        if year >= 1930 and self.rng.random() < id_share:
            relative["SoDinhDanh"] = _relative_id(self.rng, self.province, sex, year)
        return relative

    def relations(self, own_name: str, spouse: dict[str, str] | None) -> dict[str, dict[str, str]]:
        """Cha, Me, VoChong (the living marriage's partner, a citizen too) and ChuHo."""
        rng, year = self.rng, self.year
        father = self.relative(1, year - rng.randint(20, 40), self.family, 0.7)
        mother = self.relative(2, year - rng.randint(18, 38), _surname(rng, self.southern), 0.7)
        relations: dict[str, dict[str, str]] = {}
        if rng.random() < 0.95:
            relations["Cha"] = father
        if rng.random() < 0.98:
            relations["Me"] = mother
        if spouse is not None:
            relations["VoChong"] = spouse
        relations["ChuHo"] = self.household_head(own_name, father, spouse)
        return relations

    def household_head(
        self, own_name: str, father: dict[str, str], spouse: dict[str, str] | None
    ) -> dict[str, str]:
        """ChuHo: the citizen, the father (the young), the husband, or a grown child (the old)."""
        age = REFERENCE_YEAR - self.year
        roll = self.rng.random()
        if age < 18 or (age < 30 and spouse is None and roll < 0.6):
            return self._head(father, "Con", self.year - 30)
        if spouse is not None and self.sex == 2 and roll < 0.7:
            return self._head(spouse, "Vợ", self.year)
        if age > 70 and roll < 0.4:
            child = {"HoVaTen": self.full_name(self.family, 1)}
            return self._head(child, "Mẹ" if self.sex == 2 else "Bố", self.year + 28)
        return {"HoVaTen": own_name, "SoDinhDanh": self.personal_id, "QuanHeVoiChuHo": "Chủ hộ"}

    def _head(self, person: dict[str, str], relation: str, head_year: int) -> dict[str, str]:
        """A male head of household; one without a recorded id gets one."""
        head_id = person.get("SoDinhDanh") or _relative_id(self.rng, self.province, 1, head_year)
        return {"HoVaTen": person["HoVaTen"], "SoDinhDanh": head_id, "QuanHeVoiChuHo": relation}


def _middle_and_given(rng: random.Random, sex: int) -> tuple[str, str]:
    if sex == 2:
        return rng.choice(MIDDLE_NAMES_FEMALE), rng.choice(GIVEN_NAMES_FEMALE)
    return rng.choice(MIDDLE_NAMES_MALE), rng.choice(GIVEN_NAMES_MALE)


def _surname(rng: random.Random, southern: bool) -> str:
    family = _pick_surname(rng)
    if "/" in family:
        north, south = family.split("/")
        family = south if southern else north
    return family


def _birth_date(rng: random.Random, year: int) -> dict[str, str]:
    if year < 1965 and rng.random() < 0.12:
        return {"Nam": f"{year:04d}"}
    day = date(year, 1, 1) + timedelta(days=rng.randrange(365))
    return {"NgayThangNam": day.strftime("%Y%m%d")}


def _addresses(rng: random.Random, birth_province: str) -> dict[str, dict[str, str]]:
    """QueQuan near the birth registration, ThuongTru mostly there too, NoiOHienTai mostly the
    same as ThuongTru. Communes carry the old province they were filed under."""
    home = _pick_commune(rng, birth_province)
    residence_province = birth_province if rng.random() < 0.7 else _pick_birth_province(rng)
    residence = _pick_commune(rng, residence_province)
    permanent = _address(residence, _street_detail(rng, residence))
    if rng.random() < 0.80:
        current = dict(permanent)
    else:
        elsewhere = _pick_commune(rng, _pick_birth_province(rng))
        current = _address(elsewhere, _street_detail(rng, elsewhere))
    return {
        "QueQuan": _address(home, f"{home.name}, {OLD_PROVINCES[home.old_province]}"),
        "ThuongTru": permanent,
        "NoiOHienTai": current,
    }


def _pick_commune(rng: random.Random, old_province: str) -> Commune:
    return rng.choice(communes_by_old_province()[old_province])


def _address(commune: Commune, detail: str) -> dict[str, str]:
    return {
        "ChiTiet": detail,
        "MaDonViHanhChinh": commune.code,
        "MaTinh": commune.old_province,
        "QuocGia": "VN",
    }


def _street_detail(rng: random.Random, commune: Commune) -> str:
    if commune.urban:
        street = rng.choice(STREET_NAMES)
        number = rng.randint(1, 300)
        if rng.random() < 0.5:
            return f"Số {number} ngõ {rng.randint(1, 120)} phố {street}"
        return f"Số {number} đường {street}"
    words = HAMLET_WORDS_SOUTH if int(commune.old_province) >= 48 else HAMLET_WORDS_NORTH
    return f"{rng.choice(words)} {rng.randint(1, 15)}"


def _relative_id(rng: random.Random, province: str, sex: int, year: int) -> str:
    digit = century_sex_digit(year, sex)
    return f"0{province}{digit}{year % 100:02d}{rng.randrange(1_000_000):06d}"
