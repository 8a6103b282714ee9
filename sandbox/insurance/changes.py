"""The social insurance database's change log (biến động) and the updates other agencies send it.

Changes (``loaiBienDong``), each about a person (``soDinhDanh``), with native fields:

- ``BAT_DAU_THAM_GIA`` participation started: ``maSoBHXH``, ``loaiDong`` (BB compulsory, TN
  voluntary), ``maSoThue`` of the employer (compulsory only), ``tuNgay`` (dd/MM/yyyy);
- ``DUNG_THAM_GIA`` participation stopped: ``maSoBHXH``, ``loaiDong``, ``maSoThue``,
  ``ngayDung``, ``trangThaiThamGia`` after it (2 paused: the job ended; 3 stopped) and, when 3,
  ``lyDoDung`` (1 death, 2 pension, 3 lump sum);
- ``CAP_THE_BHYT`` health insurance card issued: ``maSoBHXH``, ``maThe``, ``maDoiTuong``,
  ``gtTheTu``, ``gtTheDen``;
- ``MO_HO_SO_MAI_TANG`` funeral-allowance case opened (trợ cấp mai táng): ``maSoBHXH``,
  ``maHoSo``, ``ngayChet``, ``ngayMo``.

The backlog's change ``s`` is one event of the history of an insured citizen drawn from
``(seed, s)``: a job begun or ended, voluntary contributions begun, the final stop, the card,
the funeral case of one who died. The updates (`stop_participation`, `open_funeral_case`,
`issue_child_health_card`) change what the lookups answer (held in the sandbox's state under
``insurance``) and append their change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sandbox.changes import Change, ChangeLog, backlog_time, vietnam_now
from sandbox.insurance.generator import (
    BENEFIT_LEVEL,
    COMPULSORY,
    DEATH,
    STOPPED,
    VOLUNTARY,
    InsuranceGenerator,
    Insured,
    child_card_end,
)
from sandbox.reference import OLD_PROVINCES
from sandbox.world import World

STARTED, STOPPED_KIND, CARD_ISSUED, FUNERAL_CASE = (
    "BAT_DAU_THAM_GIA",
    "DUNG_THAM_GIA",
    "CAP_THE_BHYT",
    "MO_HO_SO_MAI_TANG",
)
PAUSED_AFTER = "2"  # trangThaiThamGia after a job ended: paused, months kept
_FEED_STREAM = 0xB4C8
_LIVE_DAYS_BACK = 30
CHILD_CARD_YEARS = 6


def native_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


def read_native_date(value: Any, field: str) -> date:
    """A dd/MM/yyyy date of a request; ValueError naming the field (never the value)."""
    try:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError
        return datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        raise ValueError(f"{field} phải có dạng dd/MM/yyyy (must be dd/MM/yyyy)") from None


class NotInsured(Exception):
    """The database holds no record of this person (result code 1)."""


@dataclass(frozen=True, slots=True)
class _Event:
    kind: str
    day: date
    data: dict[str, Any]


class InsuranceChanges:
    """The change log's content and the updates' effects, over one generator and state."""

    def __init__(self, world: World, generator: InsuranceGenerator) -> None:
        self.world = world
        self.generator = generator

    # -- the history of one insured ----------------------------------------------------------
    def events(self, insured: Insured) -> list[_Event]:
        """Every change the database recorded about ``insured``, in the order they happened."""
        world, index = self.world, insured.index
        number = insured.bhxh_number
        events: list[_Event] = []
        for job in world.employment(index):
            employer = world.enterprise(job.enterprise).code
            common = {"maSoBHXH": number, "loaiDong": COMPULSORY, "maSoThue": employer}
            events.append(_Event(STARTED, job.since, {**common, "tuNgay": native_date(job.since)}))
            if job.until is not None and job.until != insured.stopped_on:
                stop = {"ngayDung": native_date(job.until), "trangThaiThamGia": PAUSED_AFTER}
                events.append(_Event(STOPPED_KIND, job.until, {**common, **stop}))
        voluntary = [p for p in insured.periods if p.kind == VOLUNTARY]
        if voluntary:
            year, month = voluntary[0].start
            begun = date(year, month, 1)
            events.append(
                _Event(
                    STARTED,
                    begun,
                    {"maSoBHXH": number, "loaiDong": VOLUNTARY, "tuNgay": native_date(begun)},
                )
            )
        if insured.status == STOPPED and insured.stopped_on is not None:
            events.append(
                _Event(
                    STOPPED_KIND,
                    insured.stopped_on,
                    {
                        "maSoBHXH": number,
                        "ngayDung": native_date(insured.stopped_on),
                        "trangThaiThamGia": STOPPED,
                        "lyDoDung": insured.stop_reason,
                    },
                )
            )
        card = insured.card
        if card is not None:
            events.append(
                _Event(
                    CARD_ISSUED,
                    card.valid_from,
                    {
                        "maSoBHXH": number,
                        "maThe": card.number(number),
                        "maDoiTuong": card.group,
                        "gtTheTu": native_date(card.valid_from),
                        "gtTheDen": native_date(card.valid_to),
                    },
                )
            )
        died = world.death(index)
        if died is not None and insured.stop_reason == DEATH:
            opened = died + timedelta(days=world.rng(_FEED_STREAM, index).randint(3, 45))
            events.append(
                _Event(
                    FUNERAL_CASE,
                    opened,
                    {
                        "maSoBHXH": number,
                        "maHoSo": self.case_id(number, opened, index),
                        "ngayChet": native_date(died),
                        "ngayMo": native_date(opened),
                    },
                )
            )
        return sorted(events, key=lambda event: event.day)

    @staticmethod
    def case_id(bhxh_number: str, opened: date, serial: int) -> str:
        """A funeral-allowance case number: MT, the province, the month opened, a serial."""
        return f"MT{bhxh_number[:2]}{opened:%Y%m}{serial % 1_000_000:06d}"

    def _insured_drawn(self, rng: random.Random) -> Insured:
        """An insured citizen drawn with ``rng`` (a few draws, then the next one held)."""
        count = self.world.count
        index = rng.randrange(count)
        for _ in range(count):
            insured = self.generator.insured(index)
            if insured is not None:
                return insured
            index = rng.randrange(count) if rng.random() < 0.9 else (index + 1) % count
        raise LookupError("the world holds no insured citizen")

    def backlog_change(self, sequence: int) -> Change:
        rng = self.world.rng(_FEED_STREAM, sequence)
        insured = self._insured_drawn(rng)
        event = rng.choice(self.events(insured))
        entity = self.world.population.personal_id(insured.index)
        return Change(sequence, event.kind, entity, backlog_time(sequence, rng), event.data)

    def live_change(self, rng: random.Random) -> Change:
        """One of a citizen's changes, as if recorded now (its day within the last month): the
        funeral case of one who died, else a job begun or ended, a card, a stop."""
        insured = self._insured_drawn(rng)
        events = self.events(insured)
        if self.world.death(insured.index) is not None:
            events = [event for event in events if event.kind == FUNERAL_CASE] or events[-1:]
        event = rng.choice(events)
        now = vietnam_now()
        day = now.date() - timedelta(days=rng.randrange(_LIVE_DAYS_BACK))
        data = dict(event.data)
        for name in ("tuNgay", "ngayDung", "ngayMo"):
            if name in data:
                data[name] = native_date(day)
        entity = self.world.population.personal_id(insured.index)
        return Change(0, event.kind, entity, now, data)

    # -- updates -----------------------------------------------------------------------------
    def insured_of(self, personal_id: str) -> Insured:
        index = self.world.population.candidate_index(personal_id)
        insured = None if index is None else self.generator.insured(index)
        if insured is None or self.world.population.personal_id(insured.index) != personal_id:
            raise NotInsured(personal_id)
        return insured

    def stop_participation(
        self, facts: dict[str, Any], log: ChangeLog, personal_id: str, died: date, proof: str
    ) -> dict[str, Any]:
        """A death: participation stopped on its day; the participation lookup shows it."""
        insured = self.insured_of(personal_id)
        stopped = facts.setdefault("stopped", {})
        if personal_id in stopped:  # the death was reported already, under another key
            return dict(stopped[personal_id]["answer"])
        change = log.append(
            STOPPED_KIND,
            personal_id,
            {
                "maSoBHXH": insured.bhxh_number,
                "ngayDung": native_date(died),
                "trangThaiThamGia": STOPPED,
                "lyDoDung": DEATH,
            },
        )
        answer = {
            "maSoBHXH": insured.bhxh_number,
            "trangThaiThamGia": STOPPED,
            "ngayDung": native_date(died),
            "soThuTu": change.sequence,
        }
        stopped[personal_id] = {
            "ngayDung": died,
            "soGiayChungTu": proof,
            "at": vietnam_now(),
            "answer": answer,
        }
        return dict(answer)

    def open_funeral_case(
        self, facts: dict[str, Any], log: ChangeLog, personal_id: str, died: date
    ) -> dict[str, Any]:
        """A funeral-allowance case for a deceased insured person: its case number."""
        insured = self.insured_of(personal_id)
        cases = facts.setdefault("funeral", {})
        if personal_id in cases:  # one case per death, whatever the key
            return dict(cases[personal_id])
        opened = vietnam_now().date()
        case_id = self.case_id(insured.bhxh_number, opened, insured.index + len(cases))
        data = {
            "maSoBHXH": insured.bhxh_number,
            "maHoSo": case_id,
            "ngayChet": native_date(died),
            "ngayMo": native_date(opened),
        }
        change = log.append(FUNERAL_CASE, personal_id, data)
        cases[personal_id] = {**data, "soThuTu": change.sequence}
        return dict(cases[personal_id])

    def issue_child_health_card(
        self,
        facts: dict[str, Any],
        log: ChangeLog,
        child: dict[str, Any],
    ) -> dict[str, Any]:
        """A TE card for a child under 6 newly registered by population, from birth to the
        card's end (the sixth birthday, or 30 September of that year); the health-card lookup
        then finds it by the child's personal id. ``child``: soDinhDanh, hoTen, ngaySinh
        (a date), gioiTinh."""
        personal_id, born = child["soDinhDanh"], child["ngaySinh"]
        today = vietnam_now().date()
        if born > today or child_card_end(born) < today:
            raise ValueError("Trẻ phải dưới 6 tuổi (the child must be under 6)")
        cards = facts.setdefault("cards", {})
        if personal_id in cards:  # asked again under another key: the card it has
            return dict(cards[personal_id]["answer"])
        province = personal_id[1:3] if personal_id[1:3] in OLD_PROVINCES else "01"
        issued_before = facts.setdefault("cards_issued", 0)
        facts["cards_issued"] = issued_before + 1
        number = self.generator.bhxh_number(self.world.count + issued_before, province)
        level = BENEFIT_LEVEL["TE"]
        card_number = f"TE{level}{province}{number}"
        valid_to = child_card_end(born)
        record: dict[str, Any] = {
            "soDinhDanh": personal_id,
            "maSoBHXH": number,
            "hoTen": str(child["hoTen"]).upper(),
            "ngaySinh": native_date(born),
        }
        if child.get("gioiTinh") in (1, 2):
            record["gioiTinh"] = child["gioiTinh"]
        province_name = OLD_PROVINCES[province].upper()
        record.update(
            {
                "maThe": card_number,
                "maDoiTuong": "TE",
                "mucHuong": str(level),
                "maTinhCapThe": province,
                "gtTheTu": native_date(born),
                "gtTheDen": native_date(valid_to),
                "noiDKBD": {
                    "maCSKCB": f"{province}001",
                    "tenCSKCB": f"BỆNH VIỆN ĐA KHOA {province_name}",
                },
                "conGiaTri": True,
            }
        )
        data = {
            "maSoBHXH": number,
            "maThe": card_number,
            "maDoiTuong": "TE",
            "gtTheTu": native_date(born),
            "gtTheDen": native_date(valid_to),
        }
        change = log.append(CARD_ISSUED, personal_id, data)
        answer = {**data, "soThuTu": change.sequence}
        cards[personal_id] = {"record": record, "at": vietnam_now(), "answer": answer}
        return dict(answer)


def stopped_participation(record: dict[str, Any], stop: dict[str, Any]) -> dict[str, Any]:
    """A participation record (duLieu) once a death stopped it on ``stop["ngayDung"]``."""
    died: date = stop["ngayDung"]
    if record.get("trangThaiThamGia") == STOPPED and record.get("lyDoDung") == DEATH:
        return record  # the database knew of the death already
    periods = [
        {**period, "denThang": _closing_month(period["tuThang"], died)}
        if period.get("denThang") is None
        else period
        for period in record.get("quaTrinhThamGia", [])
    ]
    return {
        **record,
        "trangThaiThamGia": STOPPED,
        "lyDoDung": DEATH,
        "ngayDung": native_date(died),
        "quaTrinhThamGia": periods,
    }


def _closing_month(start: str, died: date) -> str:
    """The last month (MM/yyyy) of a period open until a death: the death's, never before the
    period's first month (the months paid are kept as they were)."""
    month, year = (int(part) for part in start.split("/"))
    closing = max((year, month), (died.year, died.month))
    return f"{closing[1]:02d}/{closing[0]:04d}"


def ended_card(record: dict[str, Any], stop: dict[str, Any]) -> dict[str, Any]:
    """A health-card record (duLieu) once a death ended it: valid until the death, no longer."""
    died: date = stop["ngayDung"]
    until = read_native_date(record["gtTheDen"], "gtTheDen")
    return {**record, "gtTheDen": native_date(min(until, died)), "conGiaTri": False}
