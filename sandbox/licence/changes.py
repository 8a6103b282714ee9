"""The driver licence database's change log (thay đổi) and the revocation other agencies ask for.

Changes (``loai_thay_doi``), each about a licence (``so_gplx``) of a holder (``so_dinh_danh``):

- ``CAP_MOI`` a class granted (cấp mới, renewed or exchanged): ``hang`` (the class),
  ``he_hang`` (``2025`` for Law 36/2024's classes, ``truoc_2025`` for the old ones),
  ``ngay_hieu_luc`` (the grant, dd/MM/yyyy), ``den_ngay`` (its expiry, null: no term);
- ``TUOC_QUYEN`` suspended (tước quyền sử dụng): ``ngay_hieu_luc``, ``den_ngay``,
  ``so_quyet_dinh``;
- ``THU_HOI`` revoked (thu hồi): ``ngay_hieu_luc``, ``ly_do``, ``so_quyet_dinh``.

The backlog's change ``s`` is one event of the licence of a holder drawn from ``(seed, s)``.
`revoke_licences` revokes every licence of a holder (the sandbox gives a holder one licence
number): the lookup then shows it revoked (held in the sandbox's state under ``licence``).
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from sandbox.changes import Change, ChangeLog, backlog_time, vietnam_now
from sandbox.licence.generator import REVOKED, Licence, LicenceGenerator
from sandbox.world import World

ISSUED, SUSPENDED, REVOKED_KIND = "CAP_MOI", "TUOC_QUYEN", "THU_HOI"
_FEED_STREAM = 0x11CF
DEATH_REASON = "Người được cấp giấy phép lái xe đã chết"
_SCHEME_WORDS = {"2025": "2025", "pre-2025": "truoc_2025"}


def native_date(day: date) -> str:
    return day.strftime("%d/%m/%Y")


class NoLicence(Exception):
    """The holder has no licence here (ma_loi 404)."""


class LicenceChanges:
    """The change log's content and the revocation's effect, over one generator."""

    def __init__(self, world: World, generator: LicenceGenerator) -> None:
        self.world = world
        self.generator = generator

    def events(self, licence: Licence) -> list[tuple[str, date, dict[str, Any]]]:
        """(kind, day, fields) of every change recorded about ``licence``."""
        holder = self.world.population.personal_id(licence.index)
        common = {"so_dinh_danh": holder}
        events = [
            (
                ISSUED,
                held.issued,
                {
                    **common,
                    "hang": held.code,
                    "he_hang": _SCHEME_WORDS[held.scheme],
                    "ngay_hieu_luc": native_date(held.issued),
                    "den_ngay": None if held.expires is None else native_date(held.expires),
                },
            )
            for held in licence.classes
        ]
        if licence.suspension is not None:
            suspension = licence.suspension
            events.append(
                (
                    SUSPENDED,
                    suspension.start,
                    {
                        **common,
                        "ngay_hieu_luc": native_date(suspension.start),
                        "den_ngay": native_date(suspension.end),
                        "so_quyet_dinh": suspension.decision,
                    },
                )
            )
        if licence.revocation is not None:
            revocation = licence.revocation
            events.append(
                (
                    REVOKED_KIND,
                    revocation.day,
                    {
                        **common,
                        "ngay_hieu_luc": native_date(revocation.day),
                        "ly_do": revocation.reason,
                        "so_quyet_dinh": revocation.decision,
                    },
                )
            )
        return sorted(events, key=lambda event: event[1])

    def _licence_drawn(self, rng: random.Random) -> Licence:
        count = self.world.count
        index = rng.randrange(count)
        for _ in range(count):
            if self.generator.holds(index):
                licence = self.generator.licence(index)
                if licence is not None:
                    return licence
            index = rng.randrange(count) if rng.random() < 0.9 else (index + 1) % count
        raise LookupError("the world holds no licence")

    def backlog_change(self, sequence: int) -> Change:
        rng = self.world.rng(_FEED_STREAM, sequence)
        licence = self._licence_drawn(rng)
        kind, _, data = rng.choice(self.events(licence))
        return Change(sequence, kind, licence.number, backlog_time(sequence, rng), data)

    def live_change(self, rng: random.Random) -> Change:
        """A class granted or renewed today, the usual change of the day."""
        licence = self._licence_drawn(rng)
        now = vietnam_now()
        _, _, data = rng.choice(self.events(licence)[: len(licence.classes)])
        data = {**data, "ngay_hieu_luc": native_date(now.date())}
        return Change(0, ISSUED, licence.number, now, data)

    # -- the update --------------------------------------------------------------------------
    def revoke_licences(
        self,
        facts: dict[str, Any],
        log: ChangeLog,
        personal_id: str,
        day: date,
        reason: str,
        basis: str,
    ) -> dict[str, Any]:
        """Every licence of the holder revoked on ``day``, one THU_HOI change each."""
        index = self.world.index_of(personal_id)
        licence = None if index is None else self.generator.licence(index)
        if licence is None:
            raise NoLicence(personal_id)
        revoked = facts.setdefault("revoked", {})
        decision = f"{len(revoked) + 1}/QĐ-CSGT"
        now = vietnam_now()
        done = []
        already = licence.revocation is not None and licence.revocation.day <= day
        if not already and personal_id not in revoked:
            revoked[personal_id] = {
                "ngay": native_date(day),
                "ly_do": reason,
                "so_quyet_dinh": decision,
                "can_cu": basis,
                "at": now,
            }
            change = log.append(
                REVOKED_KIND,
                licence.number,
                {
                    "so_dinh_danh": personal_id,
                    "ngay_hieu_luc": native_date(day),
                    "ly_do": reason,
                    "so_quyet_dinh": decision,
                },
            )
            done.append(
                {"so_gplx": licence.number, "ngay": native_date(day), "so_thu_tu": change.sequence}
            )
        return {"so_dinh_danh": personal_id, "thu_hoi": done}


def revoked_record(record: dict[str, Any], revocation: dict[str, Any]) -> dict[str, Any]:
    """A licence record (du_lieu) once revoked by an update."""
    return {
        **record,
        "thu_hoi": {key: revocation[key] for key in ("ngay", "ly_do", "so_quyet_dinh")},
        "trang_thai": REVOKED,
        "cap_nhat_luc": revocation["at"].strftime("%d/%m/%Y %H:%M:%S"),
        # The record is as of the update: its status (derived on this day) is revoked.
        "ngay_du_lieu": revocation["at"].strftime("%d/%m/%Y"),
    }
