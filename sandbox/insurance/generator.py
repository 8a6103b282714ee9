"""The simulated social insurance database (CSDL quốc gia về bảo hiểm, Vietnam Social Security,
BHXH): who is insured, their contribution history and their health insurance card.

Everything is drawn from the shared `World`, so that it agrees with the other databases:

- the insured are the world's citizens, looked up by personal id (số định danh cá nhân); each
  has a social insurance number (mã số BHXH, 10 digits: the 2-digit old province code where it
  was first issued, then an 8-digit serial unique in the world);
- the contribution history (quá trình đóng) is the citizen's insured jobs (`World.employment`):
  one or more periods per job, each with the employer's enterprise code (MST) and registered
  name (as business registration has it), from and to month, the salary the contributions were
  based on (mức lương đóng) and the contribution type (compulsory, BB); some who left their
  last job before 60 go on contributing voluntarily (TN);
- the participation status (trạng thái tham gia): participating while a period is open; paused
  (bảo lưu: the months are kept) after the last job ended; stopped by death (on the death date,
  whatever came before), or on reaching the retirement age of the world (62) with a pension
  (20 years of contributions, the rule before 1 July 2025) or else a lump sum (BHXH một lần);
  never participated for those known only through a health card;
- the health insurance card (thẻ BHYT, 15 characters: beneficiary group, benefit level, province,
  the BHXH number) held on the snapshot day, or on the death day for the dead (and then valid
  only until death): TE for children under 6 (free, from birth to the sixth birthday, or to
  30 September of that year when the birthday comes earlier: they start school then) even
  without any job; DN for the employed; HT for pensioners; HS for pupils; then by draw SV
  (students), BT (80 and over without a pension), HN (poor households), CN (near-poor) or GD
  (bought by the household), or no card;
- the registered primary care facility (nơi đăng ký khám chữa bệnh ban đầu): the commune health
  station (trạm y tế) of the residence or a hospital of the card's province.

A citizen with an insured job or a card is held; the others are unknown to this database. Like
the `World`, everything is a pure function of ``(seed, index)``, computed on demand and cached.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from sandbox.enterprise.generator import enterprise_name
from sandbox.reference import OLD_PROVINCES, communes_by_old_province
from sandbox.world import SNAPSHOT, Job, World, add_years

# Our own random streams (World.rng), one per kind of fact.
_PARTICIPATION, _CARD, _BHXH_NUMBER = 0xB4C5, 0xB4C6, 0xB4C7

RETIREMENT_AGE = 62  # the world's: World.employment ends insured work there
PENSION_MONTHS = 240  # 20 years of contributions for a pension (Law on Social Insurance 2014)
VOLUNTARY_SINCE = date(2008, 1, 1)  # voluntary social insurance exists since 2008
_SERIAL_SPACE = 100_000_000  # 8 digits
_SERIAL_MULTIPLIER = 7_919_113  # odd and not a multiple of 5: a bijection of 0..10^8-1

# Native codes of this database (its own lists; the mappings turn them into normalized values).
NEVER, PARTICIPATING, PAUSED, STOPPED = "0", "1", "2", "3"  # trangThaiThamGia
DEATH, PENSION, LUMP_SUM = "1", "2", "3"  # lyDoDung: chết, hưởng lương hưu, BHXH một lần
COMPULSORY, VOLUNTARY = "BB", "TN"  # loaiDong: bắt buộc, tự nguyện

# Benefit level (mức hưởng, digit 3 of the card) of each beneficiary group we issue: 1 = 100%
# without a ceiling, 2 = 100% with a ceiling, 3 = 95%, 4 = 80% (Law on Health Insurance, Art. 22).
BENEFIT_LEVEL: dict[str, int] = {
    "TE": 1,
    "HN": 2,
    "BT": 2,
    "HT": 3,
    "CN": 3,
    "DN": 4,
    "HS": 4,
    "SV": 4,
    "GD": 4,
}

# Approximate region-I minimum monthly wage (VND) from the year given: the floor of a salary base.
_MINIMUM_WAGE = (
    (1995, 120_000), (1997, 144_000), (2000, 180_000), (2001, 210_000), (2003, 290_000),
    (2005, 350_000), (2006, 450_000), (2008, 620_000), (2009, 800_000), (2010, 980_000),
    (2011, 1_350_000), (2012, 2_000_000), (2013, 2_350_000), (2014, 2_700_000),
    (2015, 3_100_000), (2016, 3_500_000), (2017, 3_750_000), (2018, 3_980_000),
    (2019, 4_180_000), (2020, 4_420_000), (2022, 4_680_000), (2024, 4_960_000),
)  # fmt: skip
_WAGE_YEARS = tuple(year for year, _ in _MINIMUM_WAGE)

Month = tuple[int, int]  # (year, month)


@dataclass(frozen=True, slots=True)
class Period:
    """One row of the contribution history: months ``start``..``end`` (None: still open)."""

    enterprise: int | None  # None for voluntary contributions
    start: Month
    end: Month | None
    months: int
    salary: int  # VND a month
    kind: str  # COMPULSORY or VOLUNTARY


@dataclass(frozen=True, slots=True)
class Facility:
    code: str  # 5 digits: the province, then the facility
    name: str  # upper case, as this database writes every name


@dataclass(frozen=True, slots=True)
class Card:
    """A health insurance card (thẻ BHYT) and whether it is valid on the snapshot day."""

    group: str
    level: int
    province: str  # old (pre-2025) code of the province that issued it
    valid_from: date
    valid_to: date
    facility: Facility
    valid: bool

    def number(self, bhxh_number: str) -> str:
        return f"{self.group}{self.level}{self.province}{bhxh_number}"


@dataclass(frozen=True, slots=True)
class Insured:
    """What this database holds about one citizen."""

    index: int
    bhxh_number: str
    periods: tuple[Period, ...]
    status: str  # trangThaiThamGia
    stop_reason: str | None
    stopped_on: date | None
    card: Card | None
    updated: datetime  # when the record last changed (Vietnam time, naive)

    @property
    def months_total(self) -> int:
        return sum(period.months for period in self.periods)


def month_of(day: date) -> Month:
    return day.year, day.month


def months_between(start: Month, end: Month) -> int:
    """How many months ``start``..``end`` covers, both included."""
    return (end[0] - start[0]) * 12 + end[1] - start[1] + 1


def add_months(month: Month, count: int) -> Month:
    serial = month[0] * 12 + month[1] - 1 + count
    return serial // 12, serial % 12 + 1


def minimum_wage(year: int) -> int:
    return _MINIMUM_WAGE[max(0, bisect_right(_WAGE_YEARS, year) - 1)][1]


def first_contribution_month(since: date) -> Month:
    """Contributions start the month of hiring when hired by the 15th, else the next month."""
    return month_of(since) if since.day <= 15 else add_months(month_of(since), 1)


def last_contribution_month(until: date) -> Month:
    """The last month paid: the month of leaving when left on the 15th or later."""
    return month_of(until) if until.day >= 15 else add_months(month_of(until), -1)


def child_card_end(birth: date) -> date:
    """A TE card runs to the sixth birthday, or to 30 September of that year when the birthday
    comes before it (the child starts school then; Law on Health Insurance, Art. 16)."""
    sixth = add_years(birth, 6)
    school_start = date(sixth.year, 9, 30)
    return school_start if sixth <= school_start else sixth - timedelta(days=1)


class InsuranceGenerator:
    """The insured of one `World`: `insured(index)` and the native records of both datasets."""

    def __init__(self, world: World, cache_size: int = 8192) -> None:
        self.world = world
        self.insured = lru_cache(maxsize=cache_size)(self._insured)
        self.employer_name = lru_cache(maxsize=cache_size)(self._employer_name)
        self._offset = random.Random(world.seed ^ _BHXH_NUMBER).randrange(_SERIAL_SPACE)

    # -- identity -----------------------------------------------------------------------------
    def bhxh_number(self, index: int, province: str) -> str:
        """The 10-digit BHXH number: issuing province (old code), then a unique serial."""
        serial = (index * _SERIAL_MULTIPLIER + self._offset) % _SERIAL_SPACE
        return f"{province}{serial:08d}"

    def _employer_name(self, enterprise: int) -> str:
        """The employer's registered name (tên đơn vị), the same as business registration's."""
        return enterprise_name(self.world.enterprise(enterprise)).name

    # -- the record ---------------------------------------------------------------------------
    def _insured(self, index: int) -> Insured | None:
        world = self.world
        facts = world.person(index)
        jobs = world.employment(index)
        died = world.death(index)
        day = min(SNAPSHOT, died) if died else SNAPSHOT  # the day the record is as of
        rng = world.rng(_PARTICIPATION, index)
        periods = self._periods(rng, jobs)
        retired = world.of_age_on(index, day, RETIREMENT_AGE) if jobs else None
        voluntary_draw = rng.random()
        if (
            jobs
            and died is None
            and retired is None
            and jobs[-1].until is not None
            and voluntary_draw < 0.12
            and world.of_age_on(index, SNAPSHOT, 60) is None
        ):
            periods += self._voluntary(rng, jobs[-1].until)
        months = sum(period.months for period in periods)
        pensioner = retired is not None and months >= PENSION_MONTHS
        card = self._card(index, day, jobs, pensioner, retired)
        if not periods and card is None:
            return None
        status, reason, stopped_on = self._status(periods, died, retired, pensioner)
        first_province = (
            world.enterprise(jobs[0].enterprise).head_office.old_province
            if jobs
            else facts.residence_province
        )
        return Insured(
            index=index,
            bhxh_number=self.bhxh_number(index, first_province),
            periods=periods,
            status=status,
            stop_reason=reason,
            stopped_on=stopped_on,
            card=card,
            updated=self._updated(rng, jobs, died, card),
        )

    def _periods(self, rng: random.Random, jobs: tuple[Job, ...]) -> tuple[Period, ...]:
        """Each job as rows of 12 to 36 months, the salary raised from one row to the next."""
        periods: list[Period] = []
        last_month = month_of(SNAPSHOT)
        for job in jobs:
            start = first_contribution_month(job.since)
            end = last_month if job.until is None else last_contribution_month(job.until)
            if job.until is None:  # hired after the 15th of the snapshot month: that month counts
                start = min(start, end)
            if months_between(start, end) < 1:
                continue
            salary = minimum_wage(start[0]) * (1.0 + rng.random() ** 2 * 5)
            while True:
                length = rng.randint(12, 36)
                row_end = add_months(start, length - 1)
                closing = row_end >= end or len(periods) >= 39
                if closing:
                    row_end = end
                salary = max(salary, minimum_wage(start[0]) * 1.07)
                open_row = closing and job.until is None
                periods.append(
                    Period(
                        enterprise=job.enterprise,
                        start=start,
                        end=None if open_row else row_end,
                        months=months_between(start, row_end),
                        salary=int(round(salary, -3)),
                        kind=COMPULSORY,
                    )
                )
                if closing:
                    break
                start = add_months(row_end, 1)
                salary *= 1.03 + rng.random() * 0.09
        return tuple(periods)

    def _voluntary(self, rng: random.Random, left: date) -> tuple[Period, ...]:
        """Voluntary contributions, open until now, from a few months after the last job."""
        start = max(add_months(month_of(left), rng.randint(2, 6)), month_of(VOLUNTARY_SINCE))
        end = month_of(SNAPSHOT)
        if start > end:
            return ()
        floor = 1_500_000 if start[0] >= 2022 else 700_000
        income = floor + rng.randrange(0, 3_500_000, 50_000)
        return (Period(None, start, None, months_between(start, end), income, VOLUNTARY),)

    @staticmethod
    def _status(
        periods: tuple[Period, ...],
        died: date | None,
        retired: date | None,
        pensioner: bool,
    ) -> tuple[str, str | None, date | None]:
        if died is not None:
            return STOPPED, DEATH, died
        if retired is not None:
            return STOPPED, PENSION if pensioner else LUMP_SUM, retired
        if not periods:
            return NEVER, None, None
        if periods[-1].end is None:
            return PARTICIPATING, None, None
        return PAUSED, None, None

    # -- the health card ----------------------------------------------------------------------
    def _card(
        self,
        index: int,
        day: date,
        jobs: tuple[Job, ...],
        pensioner: bool,
        retired: date | None,
    ) -> Card | None:
        """The card held on ``day`` (the snapshot, or the death day), or None."""
        world = self.world
        facts = world.person(index)
        rng = world.rng(_CARD, index)
        born = facts.birth_date or date(facts.birth_year, 7, 1)
        year_start, year_end = date(day.year, 1, 1), date(day.year, 12, 31)
        group_draw, purchase_draw = rng.random(), rng.randrange(12)
        province = facts.residence_province
        job = next(
            (j for j in jobs if j.since <= day and (j.until is None or j.until >= day)), None
        )
        if facts.birth_date is not None and day <= child_card_end(born):
            group, valid_from, valid_to = "TE", born, child_card_end(born)
        elif job is not None:
            group = "DN"
            province = world.enterprise(job.enterprise).head_office.old_province
            valid_from, valid_to = max(job.since.replace(day=1), year_start), year_end
        elif pensioner and retired is not None:
            pension_start = retired + timedelta(days=1)
            group, valid_from, valid_to = "HT", max(pension_start, year_start), year_end
        else:
            drawn = _drawn_group(day, born, group_draw)
            if drawn is None:
                return None
            group = drawn
            if group in ("HS", "SV"):
                school_year = date(day.year if day.month >= 10 else day.year - 1, 10, 1)
                after_te = child_card_end(born) + timedelta(days=1)
                valid_from = max(school_year, after_te)
                valid_to = date(school_year.year + 1, 9, 30)
            elif group == "GD":  # twelve months from the month it was bought
                bought = add_months(month_of(day), -purchase_draw)
                valid_from = date(bought[0], bought[1], 1)
                valid_to = add_years(valid_from, 1) - timedelta(days=1)
            else:
                valid_from, valid_to = year_start, year_end
        died = world.death(index)
        if died is not None:
            if valid_from > died:  # a pension card due the day after a death on that day
                return None
            valid_to = min(valid_to, died)
        return Card(
            group=group,
            level=BENEFIT_LEVEL[group],
            province=province,
            valid_from=valid_from,
            valid_to=valid_to,
            facility=self._facility(
                rng, facts.residence_commune, facts.residence_province, province
            ),
            valid=died is None and valid_from <= SNAPSHOT <= valid_to,
        )

    def _facility(
        self, rng: random.Random, commune_code: str, residence: str, province: str
    ) -> Facility:
        """The commune health station of the residence, or a hospital of the card's province."""
        draw = rng.random()
        province_name = OLD_PROVINCES[province].upper()
        if province == residence and draw < 0.6:
            communes = communes_by_old_province()[residence]
            position = next(i for i, c in enumerate(communes) if c.code == commune_code)
            return Facility(
                f"{residence}{100 + position:03d}", f"TRẠM Y TẾ {communes[position].name.upper()}"
            )
        if draw < 0.85:
            return Facility(f"{province}001", f"BỆNH VIỆN ĐA KHOA {province_name}")
        return Facility(f"{province}002", f"BỆNH VIỆN Y HỌC CỔ TRUYỀN {province_name}")

    def _updated(
        self, rng: random.Random, jobs: tuple[Job, ...], died: date | None, card: Card | None
    ) -> datetime:
        """The last change: a job begun or ended, the card issued, or the death recorded."""
        events = [job.since for job in jobs] + [job.until for job in jobs if job.until]
        if card is not None:
            events.append(min(card.valid_from, SNAPSHOT))
        if died is not None:
            events.append(died)
        last = max(events) if events else SNAPSHOT
        recorded = min(last + timedelta(days=rng.randint(0, 20)), SNAPSHOT)
        return datetime.combine(recorded, time(8 + rng.randrange(9), rng.randrange(60)))

    # -- native records -----------------------------------------------------------------------
    def person_fields(self, insured: Insured) -> dict[str, Any]:
        """The fields both answers open with; names in UPPER CASE, this database's habit."""
        facts = self.world.person(insured.index)
        fields: dict[str, Any] = {
            "soDinhDanh": facts.personal_id,
            "maSoBHXH": insured.bhxh_number,
            "hoTen": facts.full_name.upper(),
            "ngaySinh": (
                facts.birth_date.strftime("%d/%m/%Y")
                if facts.birth_date
                else f"{facts.birth_year:04d}"
            ),
        }
        if facts.sex in (1, 2):  # this database codes only 1 male, 2 female
            fields["gioiTinh"] = facts.sex
        fields["diaChi"] = facts.residence_detail
        fields["maXa"] = facts.residence_commune
        fields["maTinh"] = facts.residence_province
        return fields

    def participation(self, insured: Insured) -> dict[str, Any]:
        """duLieu of the contribution-history lookup (quá trình tham gia)."""
        record = self.person_fields(insured)
        record["trangThaiThamGia"] = insured.status
        if insured.stop_reason is not None and insured.stopped_on is not None:
            record["lyDoDung"] = insured.stop_reason
            record["ngayDung"] = insured.stopped_on.strftime("%d/%m/%Y")
        record["tongSoThang"] = insured.months_total
        record["quaTrinhThamGia"] = [self._period(period) for period in insured.periods]
        return record

    def _period(self, period: Period) -> dict[str, Any]:
        row: dict[str, Any] = {
            "tuThang": f"{period.start[1]:02d}/{period.start[0]:04d}",
            "denThang": None if period.end is None else f"{period.end[1]:02d}/{period.end[0]:04d}",
            "soThang": period.months,
        }
        if period.enterprise is not None:
            row["maSoThue"] = self.world.enterprise(period.enterprise).code
            row["tenDonVi"] = self.employer_name(period.enterprise)
        row["mucLuong"] = period.salary
        row["loaiDong"] = period.kind
        return row

    def health_card(self, insured: Insured) -> dict[str, Any] | None:
        """duLieu of the health-card lookup (thẻ BHYT), or None without a card."""
        card = insured.card
        if card is None:
            return None
        record = self.person_fields(insured)
        record.update(
            {
                "maThe": card.number(insured.bhxh_number),
                "maDoiTuong": card.group,
                "mucHuong": str(card.level),
                "maTinhCapThe": card.province,
                "gtTheTu": card.valid_from.strftime("%d/%m/%Y"),
                "gtTheDen": card.valid_to.strftime("%d/%m/%Y"),
                "noiDKBD": {"maCSKCB": card.facility.code, "tenCSKCB": card.facility.name},
                "conGiaTri": card.valid,
            }
        )
        return record


def _drawn_group(day: date, born: date, draw: float) -> str | None:
    """The group of one without a job, a pension or a child's card, by age and a draw."""
    age = _age_on(born, day)
    if age < 18:
        return "HS" if draw < 0.95 else None
    if age <= 22 and draw < 0.65:
        return "SV"
    if age >= 80 and draw < 0.9:
        return "BT"
    if draw < 0.03:
        return "HN"
    if draw < 0.07:
        return "CN"
    if draw < 0.6:
        return "GD"
    return None


def _age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))
