"""One synthetic country from one seed: the facts every simulated national database draws on.

Each sandbox database renders its own native view of the same people and enterprises, so that
they agree the way the real ones should:

- the people are the population database's citizens (``PersonFacts``: the same personal ids,
  names, sexes and birth dates everywhere);
- married pairs are citizens of each other (``PopulationGenerator.couple``), with the wedding and
  divorce dates the civil-status register records;
- some citizens have died (``death``): the civil-status register has the death, insurance
  participation stops by then, and no licence is issued after it;
- enterprises (``enterprise``) have legal representatives who are citizens, alive and of age when
  they became representatives, and employ the insured (``employment``).

Like the population generator, everything is a pure function of ``(seed, index)``, drawn on
demand from its own random stream per kind of fact, so adding a fact of one kind never changes
another. Only the reverse indexes (an enterprise by its code, the enterprises a person represents)
are tables, built on first use.
"""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property, lru_cache

from sandbox.population.generator import (
    SNAPSHOT_DAY,
    Couple,
    PopulationGenerator,
)
from sandbox.reference import OLD_PROVINCES, Commune, communes_by_old_province

# The data snapshot: every sandbox database is as of this day.
SNAPSHOT = SNAPSHOT_DAY
ENTERPRISES_PER_PERSON = 0.2
_MST_WEIGHTS = (31, 29, 23, 19, 17, 13, 7, 5, 3)

# Streams: one per kind of fact, so that the kinds are independent of each other.
_DEATH, _ENTERPRISE, _EMPLOYMENT = 0xDEAD, 0xE17E, 0x10B5


def mst_check_digit(first_nine: str) -> int | None:
    """The tax-code check digit (DOMAIN.md), or None for a prefix that is never issued."""
    check = 10 - sum(int(d) * w for d, w in zip(first_nine, _MST_WEIGHTS, strict=True)) % 11
    return None if check == 10 else check


@dataclass(frozen=True, slots=True)
class Representative:
    """A citizen who legally represents an enterprise, since a date."""

    person: int
    title: str  # native title, e.g. "Giám đốc"
    since: date


@dataclass(frozen=True, slots=True)
class EnterpriseFacts:
    index: int
    code: str  # 10-digit MST
    kind: int  # enterprise type code (mappings/codes/enterprise-type.toml)
    status: int  # legal status code (mappings/codes/enterprise-status.toml)
    founded: date
    head_office: Commune
    representatives: tuple[Representative, ...]
    branches: int  # branch codes are code-001 .. code-NNN
    name_seed: int  # a seed for the source's own naming of it


@dataclass(frozen=True, slots=True)
class Job:
    """A period of insured work at an enterprise (``until`` None: still working)."""

    enterprise: int
    since: date
    until: date | None


class World:
    """The country of one ``(count, seed)``: people, couples, deaths, enterprises and jobs."""

    def __init__(self, count: int = 10_000, seed: int = 20250701) -> None:
        self.population = PopulationGenerator(count=count, seed=seed)
        self.count = count
        self.seed = seed
        self.enterprise_count = max(1, int(count * ENTERPRISES_PER_PERSON))
        self.person = lru_cache(maxsize=8192)(self.population.facts)
        self.enterprise = lru_cache(maxsize=8192)(self._enterprise)

    def rng(self, stream: int, index: int) -> random.Random:
        """The random stream of one kind of fact about one index."""
        return random.Random((self.seed * 1_000_003 + index) * 7 + stream)

    # -- people ---------------------------------------------------------------------------------
    def index_of(self, personal_id: str) -> int | None:
        return self.population.index_of(personal_id)

    def couple(self, index: int) -> Couple | None:
        return self.population.couple(index)

    def death(self, index: int) -> date | None:
        """When citizen ``index`` died, or None (the population generator decides it, so that
        its marriages end by then)."""
        return self.population.death(index)

    def alive_on(self, index: int, day: date) -> bool:
        died = self.death(index)
        return died is None or died > day

    def of_age_on(self, index: int, day: date, age: int = 18) -> date | None:
        """The day citizen ``index`` turned ``age``, if that is on or before ``day``."""
        facts = self.person(index)
        born = facts.birth_date or date(facts.birth_year, 12, 31)
        turned = add_years(born, age)
        return turned if turned <= day else None

    # -- enterprises ----------------------------------------------------------------------------
    def enterprise_code(self, index: int) -> str:
        """The MST of enterprise ``index``: a province-like prefix, a serial, the check digit."""
        serial = index
        while True:  # skip the prefixes whose check digit would be 10 (never issued)
            first_nine = f"{(serial % 89) + 1:02d}{serial * 7919 % 10_000_000:07d}"
            check = mst_check_digit(first_nine)
            if check is not None:
                return f"{first_nine}{check}"
            serial += self.enterprise_count  # stays unique: a different serial class

    @cached_property
    def _enterprise_by_code(self) -> dict[str, int]:
        return {self.enterprise_code(i): i for i in range(self.enterprise_count)}

    def enterprise_index(self, code: str) -> int | None:
        """The enterprise with this 10-digit code (a branch suffix is dropped), or None."""
        return self._enterprise_by_code.get(code.split("-", 1)[0])

    def _enterprise(self, index: int) -> EnterpriseFacts:
        if not 0 <= index < self.enterprise_count:
            raise IndexError(f"enterprise index must be in 0..{self.enterprise_count - 1}")
        rng = self.rng(_ENTERPRISE, index)
        founded = date(1995, 1, 1) + timedelta(days=int(rng.random() ** 0.7 * 11_000))
        founded = min(founded, SNAPSHOT - timedelta(days=30))
        kind = rng.choices((1, 2, 3, 4, 5), weights=(45, 25, 20, 1, 9))[0]
        roll = rng.random()
        status = 1 if roll < 0.78 else rng.choices((2, 3, 4, 5, 6, 7), (6, 4, 3, 2, 1, 6))[0]
        province = rng.choice(("01", "79", "48", "31", "92", *OLD_PROVINCES))
        head_office = rng.choice(communes_by_old_province()[province])
        wanted = 2 if kind in (2, 3) and rng.random() < 0.25 else 1
        representatives: list[Representative] = []
        for _ in range(40):  # a citizen alive and of age at founding
            person = rng.randrange(self.count)
            if (
                self.of_age_on(person, founded, 21)
                and self.alive_on(person, founded)
                and all(r.person != person for r in representatives)
            ):
                title = "Giám đốc" if not representatives else "Chủ tịch Hội đồng quản trị"
                if kind == 5:
                    title = "Chủ doanh nghiệp"
                representatives.append(Representative(person, title, founded))
                if len(representatives) == wanted:
                    break
        branches = rng.choices((0, 1, 2, 3), weights=(80, 12, 5, 3))[0] if kind != 5 else 0
        return EnterpriseFacts(
            index=index,
            code=self.enterprise_code(index),
            kind=kind,
            status=status,
            founded=founded,
            head_office=head_office,
            representatives=tuple(representatives),
            branches=branches,
            name_seed=rng.randrange(1 << 30),
        )

    @cached_property
    def _represented(self) -> dict[int, tuple[int, ...]]:
        table: dict[int, list[int]] = {}
        for index in range(self.enterprise_count):
            for representative in self.enterprise(index).representatives:
                table.setdefault(representative.person, []).append(index)
        return {person: tuple(found) for person, found in table.items()}

    def represented_by(self, person: int) -> tuple[int, ...]:
        """The enterprises citizen ``person`` legally represents (in index order)."""
        return self._represented.get(person, ())

    # -- work -----------------------------------------------------------------------------------
    def employment(self, index: int) -> tuple[Job, ...]:
        """Citizen ``index``'s insured jobs, oldest first; none after death or before 18."""
        rng = self.rng(_EMPLOYMENT, index)
        if rng.random() >= 0.62:
            return ()
        adult = self.of_age_on(index, SNAPSHOT, 18)
        if adult is None:
            return ()
        died = self.death(index)
        end = min(SNAPSHOT, died) if died else SNAPSHOT
        retired = self.of_age_on(index, end, 62)
        if retired is not None:
            end = retired
        start = max(adult, date(1995, 1, 1))
        jobs: list[Job] = []
        while start < end and len(jobs) < 5:
            hired = self._employer(rng, start, end)
            if hired is None:
                break
            employer, start = hired
            length = timedelta(days=rng.randint(200, 4000))
            until: date | None = start + length
            assert until is not None
            if until >= end:
                until = None if end == SNAPSHOT and died is None and retired is None else end
            jobs.append(Job(employer, start, until))
            if until is None:
                break
            start = until + timedelta(days=rng.randint(15, 400))
        return tuple(jobs)

    def _employer(self, rng: random.Random, start: date, end: date) -> tuple[int, date] | None:
        """An enterprise to work at from ``start``, or from its founding if that is later."""
        for _ in range(20):
            candidate = rng.randrange(self.enterprise_count)
            founded = self.enterprise(candidate).founded
            if founded < end:
                return candidate, max(start, founded)
        return None


def add_years(day: date, years: int) -> date:
    """``day`` ``years`` years on (back, when negative); 29 February becomes the 28th."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months; the last day of a shorter month where needed."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
