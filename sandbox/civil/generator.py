"""The civil status register (sổ hộ tịch) of the simulated electronic civil status database.

The register holds, for citizens of the shared `World`, the events of the Law on Civil Status
2014 that the sandbox simulates: birth (khai sinh), marriage (kết hôn), divorce (ly hôn, recorded
from a court's judgment or decision) and death (khai tử). Each record has the registration office
(cơ quan đăng ký: a commune people's committee, by its commune code and name, filed under its old
province), the book (quyển số) and entry (số) numbers, the day of the event and the day it was
registered. Marital status (tình trạng hôn nhân) is derived from the records as of a day.

The records follow the world's facts and the rules the other databases rely on:

- births since 1975 are on the register (older ones are paper books not yet digitized), at a
  commune of the birth-registration province of the personal id, registered after the birth;
- a marriage is the world's couple (`World.couple`), registered at the husband's residence on the
  wedding day, the same record for both spouses; it is on the register only when both were alive
  and of marriageable age that day (20 for a man, 18 for a woman: Law on Marriage and Family 2014,
  Article 8), so never before 18 nor after a death;
- a divorce is recorded after its marriage, only while both were alive, from a court decision, at
  the office that registered the marriage;
- every death (`World.death`) is registered at the deceased's residence; a spouse who survives a
  marriage not ended by divorce is widowed.

Everything is a pure function of ``(seed, index)``: each kind of record draws from its own random
stream, and records are built on demand behind LRU caches.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from sandbox.reference import OLD_PROVINCES, Commune, communes_by_old_province
from sandbox.world import SNAPSHOT, World, add_months

# Event codes (mappings/codes/civil-event.toml) and marital status codes (marital-status.toml).
BIRTH, MARRIAGE, DEATH, DIVORCE = "01", "02", "08", "16"
EVENT_NAMES = {BIRTH: "Khai sinh", MARRIAGE: "Kết hôn", DEATH: "Khai tử", DIVORCE: "Ly hôn"}
NEVER_MARRIED, MARRIED, DIVORCED, WIDOWED = "1", "2", "3", "4"
STATUS_NAMES = {
    NEVER_MARRIED: "Chưa kết hôn",
    MARRIED: "Đang có vợ hoặc chồng",
    DIVORCED: "Đã ly hôn",
    WIDOWED: "Góa vợ hoặc góa chồng",
}
FIRST_DIGITIZED_BIRTH_YEAR = 1975
MARRIAGE_AGE = {1: 20, 2: 18}  # by sex: 1 man, 2 woman
CERTIFICATE_MONTHS = 6  # a marital status certificate is valid 6 months

# Random streams of this register (independent of the world's own).
_BIRTH, _MARRIAGE, _DEATH = 0xC1B1, 0xC1A2, 0xC1D3


@dataclass(frozen=True, slots=True)
class CivilRecord:
    """One entry of the register: who, what, when, where and under which book and number."""

    kind: str  # event code
    event_date: date
    registered_on: date
    office: Commune
    book: str  # quyển số, e.g. "02/2016"
    entry: str  # số, the entry number in the book
    person: int | None = None  # birth: who was born; death: who died
    husband: int | None = None  # marriage and divorce
    wife: int | None = None
    decision: str | None = None  # divorce: the court's judgment or decision it is recorded from


@dataclass(frozen=True, slots=True)
class MaritalStatusFacts:
    """A person's marital status on a day, the spouse when married, and the record it rests on."""

    code: str
    as_of: date
    valid_until: date
    spouse: int | None
    record: CivilRecord | None


class CivilRegister:
    """The register over one `World`: each citizen's records, and marital status on a day."""

    def __init__(self, world: World, cache_size: int = 8_192) -> None:
        self.world = world
        # Records an officer recorded while the sandbox runs (sandbox.civil.feed), by citizen.
        self.recorded: dict[int, list[CivilRecord]] = {}
        self.birth = lru_cache(maxsize=cache_size)(self._birth)
        self._couple_records = lru_cache(maxsize=cache_size)(self._marriage_of_pair)
        self.death = lru_cache(maxsize=cache_size)(self._death)
        self.records = lru_cache(maxsize=cache_size)(self._records)

    # -- who is held ----------------------------------------------------------------------------
    def holds(self, index: int) -> bool:
        """Whether citizen ``index`` has any record here (a birth, marriage, divorce or death)."""
        return bool(self.records(index))

    def add(self, record: CivilRecord, *people: int) -> None:
        """A record registered now, naming ``people``: their lookups show it from now on."""
        for index in people:
            self.recorded.setdefault(index, []).append(record)
        self.records.cache_clear()
        self.death.cache_clear()

    def _records(self, index: int) -> tuple[CivilRecord, ...]:
        """Every record naming citizen ``index``, by event date."""
        found = [self.birth(index), *self.marriage_records(index), self.death(index)]
        found += [r for r in self.recorded.get(index, ()) if r.kind != DEATH]
        return tuple(sorted((r for r in found if r is not None), key=lambda r: r.event_date))

    def marriage_records(self, index: int) -> tuple[CivilRecord, ...]:
        """The marriage of citizen ``index`` and, if there was one, its divorce."""
        couple = self.world.couple(index)
        if couple is None:
            return ()
        return self._couple_records(couple.husband)

    # -- births -------------------------------------------------------------------------------
    def _birth(self, index: int) -> CivilRecord | None:
        facts = self.world.person(index)
        born = facts.birth_date
        if born is None or born.year < FIRST_DIGITIZED_BIRTH_YEAR:
            return None
        rng = self.world.rng(_BIRTH, index)
        if facts.residence_province == facts.birth_province and rng.random() < 0.6:
            office = self.commune(facts.birth_province, facts.residence_commune)
        else:
            office = rng.choice(communes_by_old_province()[facts.birth_province])
        # Within the 60 days the law gives, mostly; a late registration now and then.
        delay = rng.randint(1, 60) if rng.random() < 0.92 else rng.randint(61, 3_000)
        registered = min(born + timedelta(days=delay), SNAPSHOT)
        return CivilRecord(BIRTH, born, registered, office, *_numbers(rng, registered), index)

    # -- marriages and divorces -----------------------------------------------------------------
    def _marriage_of_pair(self, husband: int) -> tuple[CivilRecord, ...]:
        """The marriage record of the couple ``husband`` is part of, then its divorce, if any."""
        couple = self.world.couple(husband)
        if couple is None or couple.husband != husband:
            return ()
        wife, married = couple.wife, couple.married_on
        world = self.world
        for spouse, sex in ((husband, 1), (wife, 2)):
            if not world.alive_on(spouse, married) or not world.of_age_on(
                spouse, married, MARRIAGE_AGE[sex]
            ):
                return ()  # never registered: a dead or under-age party cannot marry
        rng = world.rng(_MARRIAGE, husband)
        facts = world.person(husband)
        office = self.commune(facts.residence_province, facts.residence_commune)
        marriage = CivilRecord(
            MARRIAGE, married, married, office, *_numbers(rng, married), None, husband, wife
        )
        divorced = couple.divorced_on
        if divorced is None or not all(world.alive_on(p, divorced) for p in (husband, wife)):
            return (marriage,)  # a marriage ended by a death is not dissolved by a court
        registered = min(divorced + timedelta(days=rng.randint(5, 120)), SNAPSHOT)
        court = OLD_PROVINCES[office.old_province]
        decision = (
            f"Quyết định công nhận thuận tình ly hôn số {rng.randint(1, 900)}/{divorced.year}"
            f"/QĐST-HNGĐ ngày {divorced:%d/%m/%Y} của Tòa án nhân dân "
            f"{court[:1].lower()}{court[1:]}"
        )
        divorce = CivilRecord(
            DIVORCE,
            divorced,
            registered,
            office,
            *_numbers(rng, registered),
            None,
            husband,
            wife,
            decision,
        )
        return (marriage, divorce)

    # -- deaths -------------------------------------------------------------------------------
    def _death(self, index: int) -> CivilRecord | None:
        recorded = [r for r in self.recorded.get(index, ()) if r.kind == DEATH]
        if recorded:
            return recorded[0]
        died = self.world.death(index)
        if died is None:
            return None
        rng = self.world.rng(_DEATH, index)
        facts = self.world.person(index)
        office = self.commune(facts.residence_province, facts.residence_commune)
        # Within the 15 days the law gives, mostly; never after the data's snapshot.
        delay = rng.randint(0, 15) if rng.random() < 0.9 else rng.randint(16, 400)
        registered = min(died + timedelta(days=delay), SNAPSHOT)
        return CivilRecord(DEATH, died, registered, office, *_numbers(rng, registered), index)

    # -- marital status -----------------------------------------------------------------------
    def marital_status(self, index: int, day: date = SNAPSHOT) -> MaritalStatusFacts:
        """Citizen ``index``'s marital status on ``day`` (their status at death, if they died
        before), as a marital status certificate of that day states it."""
        world = self.world
        valid_until = add_months(day, CERTIFICATE_MONTHS)
        death = self.death(index)
        own_death = death.event_date if death is not None else None
        cutoff = min(day, own_death) if own_death is not None else day
        recorded = [
            r
            for r in self.recorded.get(index, ())
            if r.kind in (MARRIAGE, DIVORCE) and r.event_date <= cutoff
        ]
        if recorded:  # registered while the sandbox runs: after the world's own records
            last = sorted(recorded, key=lambda r: r.event_date)[-1]  # stable: the later on a tie
            return self._recorded_status(index, day, last)
        records = self.marriage_records(index)
        if not records or records[0].event_date > cutoff:
            return MaritalStatusFacts(NEVER_MARRIED, day, valid_until, None, None)
        marriage = records[0]
        if len(records) > 1 and records[1].event_date <= cutoff:
            return MaritalStatusFacts(DIVORCED, day, valid_until, None, records[1])
        couple = world.couple(index)
        assert couple is not None  # there is a marriage record
        partner = couple.partner_of(index)
        widowed_by = self.death(partner)
        # Widowed by a death on or before the day, and before their own (if they died too).
        if (
            widowed_by is not None
            and widowed_by.event_date <= cutoff
            and (own_death is None or widowed_by.event_date < own_death)
        ):
            return MaritalStatusFacts(WIDOWED, day, valid_until, None, widowed_by)
        return MaritalStatusFacts(MARRIED, day, valid_until, partner, marriage)

    def _recorded_status(self, index: int, day: date, last: CivilRecord) -> MaritalStatusFacts:
        valid_until = add_months(day, CERTIFICATE_MONTHS)
        if last.kind == DIVORCE:
            return MaritalStatusFacts(DIVORCED, day, valid_until, None, last)
        partner = last.wife if index == last.husband else last.husband
        assert partner is not None
        widowed_by = self.death(partner)
        if widowed_by is not None and widowed_by.event_date <= day:
            return MaritalStatusFacts(WIDOWED, day, valid_until, None, widowed_by)
        return MaritalStatusFacts(MARRIED, day, valid_until, partner, last)

    # -- offices ------------------------------------------------------------------------------
    def commune(self, old_province: str, code: str) -> Commune:
        """The commune ``code`` filed under ``old_province``."""
        return _communes_by_code()[(old_province, code)]


@lru_cache(maxsize=1)
def _communes_by_code() -> dict[tuple[str, str], Commune]:
    return {
        (province, commune.code): commune
        for province, communes in communes_by_old_province().items()
        for commune in communes
    }


def _numbers(rng: random.Random, registered: date) -> tuple[str, str]:
    """Book (quyển số, one or a few a year per office) and entry number (số)."""
    return f"{rng.randint(1, 3):02d}/{registered.year}", str(rng.randint(1, 480))
