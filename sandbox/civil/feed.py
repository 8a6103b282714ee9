"""The change log of the simulated civil status database: what its feed serves, and what its
officers record.

A change (`sandbox.changes.Change`) of this database is one registration: its kind
(``LoaiThayDoi``: ``KHAI_SINH`` birth, ``KHAI_TU`` death, ``KET_HON`` marriage, ``LY_HON``
divorce), what it is about (``MaDoiTuong``: the personal id; for a birth, the birth
registration's own number, as the child has no personal id yet) and its native fields, in the
order of the WSDL's ``ThayDoiType``: ``SuKienHoTich`` (the record, as the lookup
``TraCuuSuKienHoTich`` shows it), for a birth ``ThongTinKhaiSinh`` (sex ``GioiTinh`` 1/2,
``NgaySinh``, place of birth ``NoiSinh``, ``Cha`` and ``Me``), for a death ``NoiChet`` (place).

The backlog (`CivilFeed.backlog_change`) is a pure function of the world's seed and the
sequence, from the world's facts:

- a death of a citizen of 70 or more: one the world has as dead (the register's own record of
  it, the one the lookup shows), or one it has alive, dying about when the change was recorded;
- a marriage or a divorce: the register's record of a world couple;
- a birth: a child of a married world couple whose wife is of child-bearing age, born in the
  weeks before the change, registered at the mother's commune.

Recording (`CivilFeed.record`) registers a death, birth, marriage or divorce now: the register
keeps it (the lookups show it) and the log appends its change.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from functools import cache
from typing import Any

from sandbox.changes import Change, ChangeLog, backlog_time, vietnam_now
from sandbox.civil.generator import (
    BIRTH,
    DEATH,
    DIVORCE,
    MARRIAGE,
    MARRIAGE_AGE,
    MARRIED,
    CivilRecord,
    CivilRegister,
    _numbers,
)
from sandbox.reference import (
    GIVEN_NAMES_FEMALE,
    GIVEN_NAMES_MALE,
    MIDDLE_NAMES_FEMALE,
    MIDDLE_NAMES_MALE,
    OLD_PROVINCES,
    Commune,
    communes_by_old_province,
)
from sandbox.world import SNAPSHOT, World

# Native kinds of change.
KHAI_SINH, KHAI_TU, KET_HON, LY_HON = "KHAI_SINH", "KHAI_TU", "KET_HON", "LY_HON"
RECORDABLE = ("death", "birth", "marriage", "divorce")
_BACKLOG_KINDS = (KHAI_SINH, KHAI_TU, KET_HON, LY_HON)
_BACKLOG_WEIGHTS = (35, 30, 25, 10)
_BACKLOG_STREAM, _TRIES = 0xC1FE, 60
_ID = re.compile(r"\d{12}")

EventRenderer = Callable[[CivilRecord], dict[str, Any]]


class CivilFeed:
    """The civil status database's changes over its register; `render` is the service's own
    rendering of a record (``SuKienHoTich``)."""

    def __init__(self, register: CivilRegister, render: EventRenderer) -> None:
        self.register = register
        self.world: World = register.world
        self.render = render

    # -- the backlog ------------------------------------------------------------------------------
    def backlog_change(self, sequence: int) -> Change:
        rng = self.world.rng(_BACKLOG_STREAM, sequence)
        at = backlog_time(sequence, rng)
        first = rng.choices(_BACKLOG_KINDS, _BACKLOG_WEIGHTS)[0]
        # A kind the world has no case of after many draws gives way to the next one.
        order = (first, *(kind for kind in (KET_HON, KHAI_TU, KHAI_SINH) if kind != first))
        for kind in order:
            for _ in range(_TRIES):
                found = self._draw(kind, rng, at.date(), sequence)
                if found is not None:
                    entity, data = found
                    return Change(sequence, kind, entity, at, data)
        raise LookupError(f"civil: no change drawn for backlog sequence {sequence}")

    def live_change(self, rng: random.Random, log: ChangeLog) -> Change:
        """A plausible new registration, to be appended to `log` as its next change (the
        caller holds `log.lock`): a death of an old citizen, a birth, a divorce of a married
        couple, a marriage of two single adults, registered today. Not kept by the register: a
        live change is feed traffic, as many as the rate asks, not a fact the lookups show."""
        now = vietnam_now()
        kind = rng.choices(_BACKLOG_KINDS, _BACKLOG_WEIGHTS)[0]
        for candidate in (kind, KHAI_SINH, KHAI_TU):
            for _ in range(_TRIES):
                found = self._draw(candidate, rng, now.date(), log.head + 1, live=True)
                if found is not None:
                    entity, data = found
                    return Change(log.head + 1, candidate, entity, now, data)
        raise LookupError("civil: no live change drawn")

    def _draw(
        self, kind: str, rng: random.Random, day: date, sequence: int, live: bool = False
    ) -> tuple[str, dict[str, Any]] | None:
        """A change of `kind` about a citizen drawn with `rng`, or None when that one has no
        such case. The backlog's marriages, divorces and deaths of the dead are the register's
        own records; `live` ones are new: registered on `day`."""
        index = rng.randrange(self.world.count)
        population = self.world.population
        if kind == KHAI_TU:  # the old: dead in the world, or dying now
            if population.birth_year(index) > SNAPSHOT.year - 70:
                return None
            if live and self.register.death(index) is not None:
                return None
            return self._death_of(index, rng, day)
        married, divorced = population.marriage_drawn(index)  # cheap checks first
        if (kind == LY_HON and not divorced) or (kind != LY_HON and not married and not live):
            return None
        if kind == KHAI_SINH:
            return self._birth_to(index, rng, day, sequence)
        if live:
            return self._new_couple_record(kind, index, rng, day)
        records = self.register.marriage_records(index)
        wanted = 0 if kind == KET_HON else 1
        if len(records) <= wanted:
            return None
        record = records[wanted]
        assert record.husband is not None
        return self._id(record.husband), {"SuKienHoTich": self.render(record)}

    def _new_couple_record(
        self, kind: str, index: int, rng: random.Random, day: date
    ) -> tuple[str, dict[str, Any]] | None:
        """A marriage of two single living adults, or the divorce of a married couple, today."""
        world, register = self.world, self.register
        if kind == LY_HON:
            couple = world.couple(index)
            if couple is None or len(register.marriage_records(index)) != 1:
                return None
            husband, wife = couple.husband, couple.wife
        else:
            husband, wife = index, rng.randrange(world.count)
            if world.person(husband).sex != 1 or world.person(wife).sex != 2:
                return None
        for spouse in (husband, wife):
            if register.death(spouse) is not None or not world.of_age_on(spouse, day, 20):
                return None
            if kind == KET_HON and register.marital_status(spouse).code == MARRIED:
                return None
        facts = world.person(husband)
        office = register.commune(facts.residence_province, facts.residence_commune)
        decision = None
        if kind == LY_HON:
            decision = f"Quyết định công nhận thuận tình ly hôn số {rng.randint(1, 900)}/{day.year}"
        event = MARRIAGE if kind == KET_HON else DIVORCE
        record = CivilRecord(
            event, day, day, office, *_numbers(rng, day), None, husband, wife, decision
        )
        return self._id(husband), {"SuKienHoTich": self.render(record)}

    def _death_of(
        self, index: int, rng: random.Random, day: date
    ) -> tuple[str, dict[str, Any]] | None:
        record = self.register.death(index)
        if record is None:  # alive in the world: an old citizen dies about now
            facts = self.world.person(index)
            died = max(day - timedelta(days=rng.randint(0, 10)), SNAPSHOT + timedelta(days=1))
            office = self.register.commune(facts.residence_province, facts.residence_commune)
            record = CivilRecord(DEATH, died, day, office, *_numbers(rng, day), index)
        return self._id(index), self._death_data(record, self._place_of_death(index, rng))

    def _death_data(self, record: CivilRecord, place: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {"SuKienHoTich": self.render(record)}
        if place:
            data["NoiChet"] = place
        return data

    def _place_of_death(self, index: int, rng: random.Random) -> str:
        facts = self.world.person(index)
        if rng.random() < 0.55:
            commune = self.register.commune(facts.residence_province, facts.residence_commune)
            return f"Tại nhà, {facts.residence_detail}, {commune.name}"
        province = OLD_PROVINCES[facts.residence_province]
        return f"Bệnh viện đa khoa {province[:1].lower()}{province[1:]}"

    def _birth_to(
        self, index: int, rng: random.Random, day: date, sequence: int
    ) -> tuple[str, dict[str, Any]] | None:
        couple = self.world.couple(index)
        records = self.register.marriage_records(index)
        if couple is None or len(records) != 1:
            return None  # a child of a marriage still on: no divorce
        mother = self.world.person(couple.wife)
        if (
            not 18 <= day.year - mother.birth_year <= 44
            or self.register.death(couple.wife) is not None
            or self.register.death(couple.husband) is not None
        ):
            return None
        sex = rng.choice((1, 2))
        middle, given = _child_names(rng, sex)
        full_name = " ".join((self.world.person(couple.husband).family_name, middle, given))
        born = day - timedelta(days=rng.randint(1, 60))
        return self._birth(
            rng, day, sequence, full_name, sex, born, couple.wife, couple.husband, None
        )

    def _birth(
        self,
        rng: random.Random,
        day: date,
        sequence: int,
        full_name: str,
        sex: int,
        born: date,
        mother: int,
        father: int | None,
        commune: Commune | None,
    ) -> tuple[str, dict[str, Any]]:
        facts = self.world.person(mother)
        office = commune or self.register.commune(facts.residence_province, facts.residence_commune)
        record = CivilRecord(BIRTH, born, day, office, *_numbers(rng, day))
        event = self.render(record)
        event["NguoiDuocKhaiSinh"] = {"HoVaTen": full_name}
        parents: dict[str, Any] = {}
        if father is not None:
            parents["Cha"] = self._party(father)
        parents["Me"] = self._party(mother)
        details = {
            "GioiTinh": str(sex),
            "NgaySinh": born.strftime("%d/%m/%Y"),
            "NoiSinh": {"MaDonViHanhChinh": office.code, "MaTinh": office.old_province},
            **parents,
        }
        registration = f"KS{office.code}{day:%Y}{sequence:09d}"
        return registration, {"SuKienHoTich": event, "ThongTinKhaiSinh": details}

    # -- recording --------------------------------------------------------------------------------
    def record(self, kind: str, body: Mapping[str, Any], log: ChangeLog) -> dict[str, Any]:
        """Register `kind` (one of RECORDABLE) from an officer's `body`; ValueError if wrong."""
        if kind not in RECORDABLE:
            raise ValueError(f"civil records {RECORDABLE}, not {kind!r}")
        today = vietnam_now().date()
        rng = random.Random()
        if kind == "death":
            return self._record_death(body, today, rng, log)
        if kind == "birth":
            return self._record_birth(body, today, rng, log)
        return self._record_couple(kind, body, today, rng, log)

    def _record_death(
        self, body: Mapping[str, Any], today: date, rng: random.Random, log: ChangeLog
    ) -> dict[str, Any]:
        index = self._citizen(body, "personal_id")
        if self.register.death(index) is not None:
            raise ValueError("personal_id: this citizen's death is registered already")
        died = _day(body, "date_of_death", today)
        born = self.world.person(index).birth_date
        if born is not None and died < born:
            raise ValueError("date_of_death: before the citizen's birth")
        facts = self.world.person(index)
        office = self.register.commune(facts.residence_province, facts.residence_commune)
        record = CivilRecord(DEATH, died, today, office, *_numbers(rng, today), index)
        self.register.add(record, index)
        place = _text(body, "place_of_death")
        change = log.append(KHAI_TU, self._id(index), self._death_data(record, place))
        return {"sequence": change.sequence, "kind": KHAI_TU, "entity": change.entity}

    def _record_birth(
        self, body: Mapping[str, Any], today: date, rng: random.Random, log: ChangeLog
    ) -> dict[str, Any]:
        full_name = _text(body, "full_name")
        if not full_name:
            raise ValueError("full_name: required")
        sex = {"male": 1, "female": 2, "1": 1, "2": 2}.get(str(body.get("sex", "")).lower())
        if sex is None:
            raise ValueError("sex: expected 'male' or 'female'")
        born = _day(body, "birth_date", today)
        mother = self._citizen(body, "mother_personal_id")
        father = (
            self._citizen(body, "father_personal_id") if body.get("father_personal_id") else None
        )
        commune = None
        if body.get("commune"):
            commune = _communes().get(str(body["commune"]))
            if commune is None:
                raise ValueError("commune: not a commune code this database knows")
        with log.lock:
            sequence = log.head + 1
            entity, data = self._birth(
                rng, today, sequence, full_name, sex, born, mother, father, commune
            )
            change = log.append(KHAI_SINH, entity, data)
        return {
            "sequence": change.sequence,
            "kind": KHAI_SINH,
            "entity": entity,
            "birth_registration_id": entity,
        }

    def _record_couple(
        self,
        kind: str,
        body: Mapping[str, Any],
        today: date,
        rng: random.Random,
        log: ChangeLog,
    ) -> dict[str, Any]:
        husband = self._citizen(body, "husband_personal_id")
        wife = self._citizen(body, "wife_personal_id")
        if husband == wife:
            raise ValueError("wife_personal_id: the same citizen as the husband")
        day = _day(body, "date", today)
        for spouse, sex, name in ((husband, 1, "husband"), (wife, 2, "wife")):
            if self.register.death(spouse) is not None:
                raise ValueError(f"{name}_personal_id: this citizen's death is registered")
            if self.world.person(spouse).sex != sex:
                raise ValueError(f"{name}_personal_id: this citizen is not a {name}'s sex")
            status = self.register.marital_status(spouse, day)
            if kind == "marriage":
                if not self.world.of_age_on(spouse, day, MARRIAGE_AGE[sex]):
                    raise ValueError(f"{name}_personal_id: under the age of marriage on {day}")
                if status.code == MARRIED:
                    raise ValueError(f"{name}_personal_id: married on {day} already")
            elif status.code != MARRIED or status.spouse not in (husband, wife):
                raise ValueError(f"{name}_personal_id: not married to the other on {day}")
        facts = self.world.person(husband)
        office = self.register.commune(facts.residence_province, facts.residence_commune)
        if kind == "marriage":
            record = CivilRecord(
                MARRIAGE, day, today, office, *_numbers(rng, today), None, husband, wife
            )
        else:
            decision = _text(body, "decision") or (
                f"Quyết định công nhận thuận tình ly hôn số {rng.randint(1, 900)}/{day.year}"
                f"/QĐST-HNGĐ ngày {day:%d/%m/%Y}"
            )
            record = CivilRecord(
                DIVORCE, day, today, office, *_numbers(rng, today), None, husband, wife, decision
            )
        self.register.add(record, husband, wife)
        native = KET_HON if kind == "marriage" else LY_HON
        change = log.append(native, self._id(husband), {"SuKienHoTich": self.render(record)})
        return {"sequence": change.sequence, "kind": native, "entity": change.entity}

    # -- helpers ----------------------------------------------------------------------------------
    def _citizen(self, body: Mapping[str, Any], field: str) -> int:
        value = str(body.get(field) or "")
        if not _ID.fullmatch(value):
            raise ValueError(f"{field}: expected a 12-digit personal id")
        index = self.world.index_of(value)
        if index is None:
            raise ValueError(f"{field}: no citizen holds this personal id")
        return index

    def _id(self, index: int) -> str:
        return self.world.population.personal_id(index)

    def _party(self, index: int) -> dict[str, str]:
        facts = self.world.person(index)
        return {"HoVaTen": facts.full_name, "SoDinhDanh": facts.personal_id}


def _child_names(rng: random.Random, sex: int) -> tuple[str, str]:
    if sex == 2:
        return rng.choice(MIDDLE_NAMES_FEMALE), rng.choice(GIVEN_NAMES_FEMALE)
    return rng.choice(MIDDLE_NAMES_MALE), rng.choice(GIVEN_NAMES_MALE)


def _text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field}: expected text")
    return unicodedata.normalize("NFC", value).strip() or None


def _day(body: Mapping[str, Any], field: str, default: date) -> date:
    """An ISO day (yyyy-mm-dd) of the body, not after today; `default` when absent."""
    value = body.get(field)
    if value is None or value == "":
        return default
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{field}: expected a day yyyy-mm-dd") from None
    if day > default:
        raise ValueError(f"{field}: after today")
    return day


@cache
def _communes() -> dict[str, Commune]:
    return {c.code: c for communes in communes_by_old_province().values() for c in communes}
