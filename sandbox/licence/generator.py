"""Deterministic driver licences of the simulated licence database (CSDL giấy phép lái xe).

The holders are the world's citizens: the same personal id, name and birth date as the
population database. About 45% of adults hold a licence. A holder has one licence number (số
GPLX, 12 digits, kept for life as on the PET card) with one or more classes (hạng), each with its
own issue and expiry date:

- classes granted before 1 January 2025 are of the old scheme (Law on Road Traffic 2008,
  Circular 12/2017/TT-BGTVT): A1, A2, A3, B1, B2, C, D, E, FB2, FC (A4, FD and FE are in the
  rules tables but not drawn); from that day, of Law 36/2024/QH15: A1, A, B1, B, C1, C, D2, D,
  BE, C1E, CE (D1, D1E, D2E and DE likewise only in the tables);
- a class stays as granted until it is renewed or upgraded. A renewal or upgrade on or after
  1 January 2025 gives a class of the new scheme (an old class is exchanged: B2 to B or C1, C to
  C, D to D2, E to D, FB2 to BE or C1E, FC to CE, as Article 89 of Law 36/2024 has it);
- terms: new A1, A, B1 none; B and C1 10 years; the others 5. Old A1-A3 none (assumed from
  Circular 12/2017, Article 17); old B1 until the holder is 55 (women) or 60 (men), or 10 years
  when issued to a woman over 45 or a man over 50 (a holder of undetermined sex is taken as a
  man); old A4 and B2 10 years; old C, D, E and F* 5 years;
- minimum ages at the grant: new 18 (A1, A, B1, B, C1), 21 (C, BE), 24 (D1, D2, C1E, CE), 27 (D,
  D1E, D2E, DE); old 18 (A1-A4, B1, B2), 21 (C, FB2), 24 (D, FC), 27 (E, FD, FE). New C and BE
  at 21 are Article 59 as recalled (the brief gives no age for them; the code list agrees). A
  citizen known only by the birth year is taken as born on 31 December of it (never too young);
- no class is granted on or after the holder's death (`World.death`); the licence of a dead
  holder is revoked (thu hồi) on the day of death or up to 20 days later (when the
  civil-status register's notice arrives, Decree 63/2024), never later than the snapshot;
- points (điểm, Law 36/2024 Article 58): 12 for all since 1 January 2025, some deducted in 2025;
- a few suspensions (tước quyền sử dụng, 1 to 24 months) and revocations for other reasons.

Licence ``i`` depends only on ``(seed, i)``: its draws come from ``World.rng(STREAM, i)``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from sandbox.reference import OLD_PROVINCES
from sandbox.world import SNAPSHOT, World, add_months, add_years

STREAM = 0x11CE
HOLDER_SHARE = 0.45
REFORM_DAY = date(2025, 1, 1)  # Law 36/2024 in force: its classes from this day
POLICE_DAY = date(2025, 3, 1)  # licensing moved from the transport departments to the police
RECORDS_FROM = date(1995, 1, 1)  # the oldest grants the database holds

Scheme = Literal["2025", "pre-2025"]
# Native statuses (trang_thai) on the data's day.
VALID, SUSPENDED, NO_POINTS, REVOKED, EXPIRED = (
    "con_hieu_luc",
    "bi_tuoc_quyen",
    "het_diem",
    "da_thu_hoi",
    "het_han",
)


@dataclass(frozen=True, slots=True)
class ClassRule:
    minimum_age: int
    term_years: int | None  # None: no term (old B1 runs to an age: see `expiry`)


# The classes of each scheme, in the order a licence lists them.
NEW_CLASSES: dict[str, ClassRule] = {
    "A1": ClassRule(18, None),
    "A": ClassRule(18, None),
    "B1": ClassRule(18, None),
    "B": ClassRule(18, 10),
    "C1": ClassRule(18, 10),
    "C": ClassRule(21, 5),
    "D1": ClassRule(24, 5),
    "D2": ClassRule(24, 5),
    "D": ClassRule(27, 5),
    "BE": ClassRule(21, 5),
    "C1E": ClassRule(24, 5),
    "CE": ClassRule(24, 5),
    "D1E": ClassRule(27, 5),
    "D2E": ClassRule(27, 5),
    "DE": ClassRule(27, 5),
}
OLD_CLASSES: dict[str, ClassRule] = {
    "A1": ClassRule(18, None),
    "A2": ClassRule(18, None),
    "A3": ClassRule(18, None),
    "A4": ClassRule(18, 10),
    "B1": ClassRule(18, None),
    "B2": ClassRule(18, 10),
    "C": ClassRule(21, 5),
    "D": ClassRule(24, 5),
    "E": ClassRule(27, 5),
    "FB2": ClassRule(21, 5),
    "FC": ClassRule(24, 5),
    "FD": ClassRule(27, 5),
    "FE": ClassRule(27, 5),
}
# Old class -> the new classes it is exchanged for (Law 36/2024, Article 89; first = usual).
# A4 becomes a certificate for special-use vehicles, not a licence class.
EXCHANGE: dict[str, tuple[str, ...]] = {
    "A1": ("A",),
    "A2": ("A",),
    "A3": ("B1",),
    "A4": (),
    "B1": ("B", "C1"),
    "B2": ("B", "C1"),
    "C": ("C",),
    "D": ("D2",),
    "E": ("D",),
    "FB2": ("BE", "C1E"),
    "FC": ("CE",),
    "FD": ("D2E",),
    "FE": ("DE",),
}
# The professional ladder of car classes (old code, new code): B2/B, then C, D/D2, E/D.
_LADDER = (("B2", "B"), ("C", "C"), ("D", "D2"), ("E", "D"))
_DEATH_REASON = "Người được cấp giấy phép lái xe đã chết"
_OTHER_REASONS = (
    "Gian lận trong học, sát hạch lái xe",
    "Tẩy xóa, làm sai lệch thông tin trên giấy phép lái xe",
    "Không đủ điều kiện sức khỏe theo kết luận của cơ sở y tế",
)
_SUSPENSION_MONTHS = (1, 2, 3, 4, 10, 12, 22, 24)


def scheme_on(day: date) -> Scheme:
    return "2025" if day >= REFORM_DAY else "pre-2025"


def rules_of(scheme: Scheme) -> dict[str, ClassRule]:
    return NEW_CLASSES if scheme == "2025" else OLD_CLASSES


def expiry(code: str, scheme: Scheme, issued: date, born: date, sex: int) -> date | None:
    """When a class granted on ``issued`` expires, by its scheme's rules (None: no term)."""
    if scheme == "pre-2025" and code == "B1":
        woman = sex == 2
        if add_years(born, 45 if woman else 50) < issued:  # over 45 / over 50 at the grant
            return add_years(issued, 10)
        return add_years(born, 55 if woman else 60)
    years = rules_of(scheme)[code].term_years
    return None if years is None else add_years(issued, years)


@dataclass(frozen=True, slots=True)
class HeldClass:
    code: str
    scheme: Scheme
    issued: date
    expires: date | None


@dataclass(frozen=True, slots=True)
class Suspension:
    start: date
    end: date
    decision: str


@dataclass(frozen=True, slots=True)
class Revocation:
    day: date
    reason: str
    decision: str


@dataclass(frozen=True, slots=True)
class Licence:
    """One holder's licence as the database knows it."""

    index: int
    number: str
    classes: tuple[HeldClass, ...]
    authority: str
    points: int
    suspension: Suspension | None
    revocation: Revocation | None
    updated: datetime
    year_only_birth: bool

    @property
    def issued(self) -> date:
        """The day the current card was issued: the latest grant on it."""
        return max(held.issued for held in self.classes)

    def status_on(self, day: date) -> str:
        """The native status (trang_thai) on ``day``."""
        if self.revocation is not None and self.revocation.day <= day:
            return REVOKED
        if self.suspension is not None and self.suspension.start <= day <= self.suspension.end:
            return SUSPENDED
        if self.points == 0:
            return NO_POINTS
        ends = [held.expires for held in self.classes]
        if all(end is not None and end < day for end in ends):
            return EXPIRED
        return VALID


@dataclass(frozen=True, slots=True)
class _Holder:
    """What a licence is drawn from: the person's facts and the window grants may fall in."""

    rng: random.Random
    born: date
    sex: int
    died: date | None
    start: date  # the first day a grant is possible
    end: date  # the last day a grant is possible


class LicenceGenerator:
    """The licences of a `World`'s citizens, generated on demand (see the module doc)."""

    def __init__(self, world: World, cache_size: int = 8192) -> None:
        self.world = world
        self._number_offset = world.rng(STREAM, -1).randrange(10**10)
        self.licence = lru_cache(maxsize=cache_size)(self._licence)
        self.native = lru_cache(maxsize=cache_size)(self._native)

    # -- who holds one -----------------------------------------------------------------------
    def _holder(self, index: int) -> _Holder | None:
        rng = self.world.rng(STREAM, index)
        if rng.random() >= HOLDER_SHARE:
            return None
        facts = self.world.person(index)
        born = facts.birth_date or date(facts.birth_year, 12, 31)
        died = self.world.death(index)
        end = SNAPSHOT if died is None else min(SNAPSHOT, died - timedelta(days=1))
        start = max(add_years(born, 18), RECORDS_FROM)
        if start > end:
            return None
        return _Holder(rng, born, facts.sex, died, start, end)

    def holds(self, index: int) -> bool:
        """Whether citizen ``index`` has a licence here (cheap: no licence is built)."""
        return self._holder(index) is not None

    def number(self, index: int) -> str:
        """The licence number: the residence province's old code, then 10 digits unique to
        ``index`` (an affine bijection of 0..10^10-1)."""
        province = self.world.person(index).residence_province
        return f"{province}{(index * 7_919_000_003 + self._number_offset) % 10**10:010d}"

    # -- the licence -------------------------------------------------------------------------
    def _licence(self, index: int) -> Licence | None:
        holder = self._holder(index)
        if holder is None:
            return None
        rng = holder.rng
        first = _day_between(rng, holder.start, holder.end, skew=2.5)
        has_motorbike = rng.random() < 0.9
        has_car = not has_motorbike or rng.random() < 0.38
        classes: list[HeldClass] = []
        if has_motorbike:
            classes.append(self._motorbike(rng, first))
        if has_car:
            car_day = first if not has_motorbike else _day_between(rng, first, holder.end, 1.5)
            classes.extend(self._car(holder, car_day))
        year_only = self.world.person(index).birth_date is None or (
            holder.born.year < 1970 and rng.random() < 0.15
        )
        classes.sort(key=_listing_order)
        latest = max(held.issued for held in classes)
        revocation = self._revocation(holder, latest)
        suspension = None if revocation else self._suspension(holder, latest)
        points, deducted = self._points(holder)
        events = [latest, deducted or latest]
        events += [suspension.start] if suspension else []
        events += [revocation.day] if revocation else []
        updated = datetime.combine(max(events), datetime.min.time()) + timedelta(
            seconds=rng.randrange(7 * 3600, 18 * 3600)
        )
        return Licence(
            index=index,
            number=self.number(index),
            classes=tuple(classes),
            authority=self._authority(index, latest),
            points=points,
            suspension=suspension,
            revocation=revocation,
            updated=updated,
            year_only_birth=year_only,
        )

    @staticmethod
    def _motorbike(rng: random.Random, day: date) -> HeldClass:
        roll = rng.random()
        if day < REFORM_DAY:
            code = "A1" if roll < 0.92 else "A2" if roll < 0.99 else "A3"
            return HeldClass(code, "pre-2025", day, None)
        code = "A1" if roll < 0.75 else "A" if roll < 0.99 else "B1"
        return HeldClass(code, "2025", day, None)

    def _car(self, holder: _Holder, day: date) -> list[HeldClass]:
        """The car classes: a base class, renewed and perhaps upgraded up the ladder, and
        perhaps a trailer class."""
        rng = holder.rng
        roll = rng.random()
        upgrades = 3 if roll < 0.015 else 2 if roll < 0.05 else 1 if roll < 0.15 else 0
        scheme = scheme_on(day)
        if scheme == "pre-2025":
            code = "B2" if rng.random() < 0.72 else "B1"
        else:
            code = "B" if rng.random() < 0.93 else "C1"
        if code not in ("B2", "B"):
            upgrades = 0
        held = self._grant(holder, code, scheme, day)
        level, level_since = 0, day
        for _ in range(20):
            upgrade_day = None
            if level < upgrades:
                target_age = OLD_CLASSES[_LADDER[level + 1][0]].minimum_age
                upgrade_day = max(
                    add_years(level_since, rng.randint(3, 6)) + timedelta(days=rng.randrange(365)),
                    add_years(holder.born, target_age),
                )
            if (
                upgrade_day is not None
                and upgrade_day <= holder.end
                and (held.expires is None or upgrade_day < held.expires)
            ):
                level, level_since = level + 1, upgrade_day
                new_scheme = scheme_on(upgrade_day)
                code = _LADDER[level][0 if new_scheme == "pre-2025" else 1]
                held = self._grant(holder, code, new_scheme, upgrade_day)
                continue
            renewed = self._renewal(holder, held)
            if renewed is None:
                break
            held = renewed
        classes = [held]
        trailer = self._trailer(holder, level, level_since)
        if trailer is not None:
            classes.append(trailer)
        return classes

    def _trailer(self, holder: _Holder, level: int, since: date) -> HeldClass | None:
        rng = holder.rng
        if not (level >= 1 and rng.random() < 0.25) and not (level == 0 and rng.random() < 0.02):
            return None
        old = "FC" if level >= 1 else "FB2"
        day = max(
            add_years(since, rng.randint(2, 5)),
            add_years(holder.born, OLD_CLASSES[old].minimum_age),
        )
        if day > holder.end:
            return None
        scheme = scheme_on(day)
        held = self._grant(holder, old if scheme == "pre-2025" else EXCHANGE[old][0], scheme, day)
        for _ in range(20):
            renewed = self._renewal(holder, held)
            if renewed is None:
                break
            held = renewed
        return held

    @staticmethod
    def _grant(holder: _Holder, code: str, scheme: Scheme, day: date) -> HeldClass:
        return HeldClass(code, scheme, day, expiry(code, scheme, day, holder.born, holder.sex))

    def _renewal(self, holder: _Holder, held: HeldClass) -> HeldClass | None:
        """The class renewed before the grant window ends, or None (no term, not yet due, or
        let lapse). Renewed since 2025, an old class is exchanged for a new one."""
        if held.expires is None or held.expires > holder.end:
            return None
        rng = holder.rng
        if rng.random() >= 0.85:
            return None  # let lapse: the expired class stays on the record
        day = max(held.expires - timedelta(days=rng.randrange(60)), held.issued + timedelta(1))
        if held.scheme == "pre-2025" and day >= REFORM_DAY:
            options = EXCHANGE[held.code]
            if not options:
                return None
            code = options[0]
            if len(options) > 1 and rng.random() < 0.1:
                alternative = options[1]
                if add_years(holder.born, NEW_CLASSES[alternative].minimum_age) <= day:
                    code = alternative
            return self._grant(holder, code, "2025", day)
        return self._grant(holder, held.code, held.scheme, day)

    def _revocation(self, holder: _Holder, latest: date) -> Revocation | None:
        rng = holder.rng
        roll, serial = rng.random(), rng.randrange(1, 9000)
        if holder.died is not None:
            day = min(SNAPSHOT, holder.died + timedelta(days=rng.randrange(21)))
            return Revocation(day, _DEATH_REASON, _decision(serial, day))
        if roll < 0.006 and latest < SNAPSHOT:
            day = _day_between(rng, latest + timedelta(days=1), SNAPSHOT)
            return Revocation(day, rng.choice(_OTHER_REASONS), _decision(serial, day))
        return None

    @staticmethod
    def _suspension(holder: _Holder, latest: date) -> Suspension | None:
        rng = holder.rng
        if rng.random() >= 0.03:
            return None
        start = _day_between(rng, max(latest, date(2023, 7, 1)), holder.end)
        months = rng.choice(_SUSPENSION_MONTHS)
        return Suspension(
            start, add_months(start, months), _decision(rng.randrange(1, 9000), start)
        )

    @staticmethod
    def _points(holder: _Holder) -> tuple[int, date | None]:
        """Points left (of 12) and the day of the last deduction, if any (all in 2025)."""
        rng = holder.rng
        if rng.random() >= 0.12 or holder.end < REFORM_DAY:
            return 12, None
        deductions = 1 if rng.random() < 0.8 else 2
        lost = sum(rng.choices((2, 4, 6, 10), weights=(45, 30, 20, 5), k=deductions))
        return max(0, 12 - lost), _day_between(rng, REFORM_DAY, holder.end)

    def _authority(self, index: int, day: date) -> str:
        """Who issued the current card: the transport department of the residence province, or
        its police since licensing moved to them."""
        province = OLD_PROVINCES[self.world.person(index).residence_province]
        if day < POLICE_DAY:
            return f"Sở Giao thông vận tải {province.removeprefix('Tỉnh ')}"
        return f"Phòng Cảnh sát giao thông, Công an {province[0].lower()}{province[1:]}"

    # -- the native record -------------------------------------------------------------------
    def _native(self, index: int) -> dict[str, Any] | None:
        """The native record (du_lieu) of citizen ``index``'s licence, or None. Cached and
        shared: read it, never change it."""
        licence = self.licence(index)
        if licence is None:
            return None
        facts = self.world.person(index)
        born = facts.birth_date
        suspension, revocation = licence.suspension, licence.revocation
        return {
            "so_gplx": licence.number,
            "so_dinh_danh": facts.personal_id,
            "ho_ten": facts.full_name.upper(),
            "ngay_sinh": f"{facts.birth_year:04d}"
            if licence.year_only_birth or born is None
            else _native_date(born),
            "noi_cu_tru": {
                "dia_chi": facts.residence_detail,
                "ma_xa": facts.residence_commune,
                "ma_tinh": facts.residence_province,
            },
            "hang": [_native_class(held) for held in licence.classes if held.scheme == "2025"],
            "hang_cu": [
                _native_class(held) for held in licence.classes if held.scheme == "pre-2025"
            ],
            "ngay_cap": _native_date(licence.issued),
            "noi_cap": licence.authority,
            "diem": licence.points,
            "tuoc_quyen": None
            if suspension is None
            else {
                "tu_ngay": _native_date(suspension.start),
                "den_ngay": _native_date(suspension.end),
                "so_quyet_dinh": suspension.decision,
            },
            "thu_hoi": None
            if revocation is None
            else {
                "ngay": _native_date(revocation.day),
                "ly_do": revocation.reason,
                "so_quyet_dinh": revocation.decision,
            },
            "trang_thai": licence.status_on(SNAPSHOT),
            "ngay_du_lieu": _native_date(SNAPSHOT),
            "cap_nhat_luc": licence.updated.strftime("%d/%m/%Y %H:%M:%S"),
        }


def _listing_order(held: HeldClass) -> tuple[int, int]:
    """New classes first, each scheme in its own order."""
    names = list(rules_of(held.scheme))
    return (0 if held.scheme == "2025" else 1, names.index(held.code))


def _native_class(held: HeldClass) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ma_hang": held.code,
        "ngay_cap": _native_date(held.issued),
        "ngay_het_han": None if held.expires is None else _native_date(held.expires),
    }
    if held.scheme == "pre-2025":
        entry["doi_sang"] = list(EXCHANGE[held.code])
    return entry


def _native_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def _day_between(rng: random.Random, first: date, last: date, skew: float = 1.0) -> date:
    """A day from ``first`` to ``last`` (both included), drawn towards ``first`` when skew > 1."""
    span = (last - first).days
    if span <= 0:
        return first
    return first + timedelta(days=int(rng.random() ** skew * (span + 1)))


def _decision(serial: int, day: date) -> str:
    """A decision number (số quyết định) of the authority of its day."""
    issuer = "QĐ-SGTVT" if day < POLICE_DAY else "QĐ-CSGT"
    return f"{serial}/{issuer}"
