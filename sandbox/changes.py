"""Change logs of the simulated national databases, and the state their updates leave.

Each database keeps an ordered log of the changes it recorded (`ChangeLog`), which its service
serves as a pageable feed in its own native format (a cursor is the last sequence number read).
The log has two parts:

- a backlog of `backlog` changes (sequence 1 .. backlog), each a pure function of the source's
  `backlog_change(sequence)`: generated when read, never stored, so 1,000,000 cost no memory and
  every read of a sequence gives the same change;
- changes appended while the sandbox runs: the live generator's (`sandbox.changes_rate`), and
  the effects of updates (a death recorded, a residence removed, a card issued).

`SandboxState` holds what updates changed, shared by every database of one sandbox, and the
idempotency keys already applied: an update sent twice is applied once.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

VIETNAM_TIME = timezone(timedelta(hours=7))


def vietnam_now() -> datetime:
    return datetime.now(VIETNAM_TIME)


# The backlog's timeline: change `s` was recorded about BACKLOG_STEP_S * s seconds after
# BACKLOG_START, so a backlog is in time order and its times a pure function of `s`.
BACKLOG_START = datetime(2025, 7, 1, 7, 0, 0, tzinfo=VIETNAM_TIME)
BACKLOG_STEP_S = 20
MAX_FEED_PAGE = 1_000  # the most changes a feed answers at once


def backlog_time(sequence: int, rng: random.Random) -> datetime:
    """When backlog change `sequence` was recorded (strictly after change `sequence - 1`)."""
    offset = sequence * BACKLOG_STEP_S - rng.randrange(BACKLOG_STEP_S)
    return BACKLOG_START + timedelta(seconds=offset)


def native_stamp(at: datetime) -> str:
    """A time as the SOAP databases write it: yyyyMMddHHmmss, Vietnam time."""
    return at.astimezone(VIETNAM_TIME).strftime("%Y%m%d%H%M%S")


def soap_feed_page(log: ChangeLog, after: int, limit: int, entity_field: str) -> dict[str, Any]:
    """The native answer of a SOAP database's feed (LayDanhSachThayDoi) after its result code,
    as elements in order: SoThuTuCuoi (the cursor to ask after next), SoThuTuMoiNhat (the
    head), ConNua (more follow) and DanhSachThayDoi, each ThayDoi's header (SoThuTu,
    LoaiThayDoi, `entity_field`, ThoiDiemGhiNhan) then its native fields."""
    changes, more = log.page(after, limit)
    listed = [
        {
            "SoThuTu": change.sequence,
            "LoaiThayDoi": change.kind,
            entity_field: change.entity,
            "ThoiDiemGhiNhan": native_stamp(change.occurred_at),
            **change.data,
        }
        for change in changes
    ]
    return {
        "SoThuTuCuoi": changes[-1].sequence if changes else after,
        "SoThuTuMoiNhat": log.head,
        "ConNua": "true" if more else "false",
        "DanhSachThayDoi": {"ThayDoi": listed},
    }


def feed_cursor(fields: Mapping[str, str], after: str, limit: str) -> tuple[int, int]:
    """(after, limit) of a feed request from its fields `after` (the last sequence read, empty:
    from the start) and `limit` (1..MAX_FEED_PAGE); ValueError saying which one is wrong."""
    raw_after, raw_limit = fields.get(after, "").strip(), fields.get(limit, "").strip()
    if raw_after and not raw_after.isdigit():
        raise ValueError(f"{after} phải là số nguyên không âm (must be a non-negative integer)")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_FEED_PAGE:
        raise ValueError(f"{limit} phải từ 1 đến {MAX_FEED_PAGE} (must be 1..{MAX_FEED_PAGE})")
    return int(raw_after or 0), int(raw_limit)


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded change, before its service renders it natively."""

    sequence: int
    kind: str  # the source's own name of the change, e.g. "KHAI_TU"
    entity: str  # what it is about: a personal id, an enterprise code, a licence number
    occurred_at: datetime  # aware, Vietnam time
    data: dict[str, Any] = field(default_factory=dict)  # the source's native fields


BacklogChange = Callable[[int], Change]


class ChangeLog:
    """One database's changes in sequence order, from 1; thread-safe."""

    def __init__(self, source: str, backlog: int = 0, generate: BacklogChange | None = None):
        self.source = source
        self.backlog = backlog if generate is not None else 0
        self._generate = generate
        self._appended: list[Change] = []
        self._lock = threading.RLock()

    @property
    def lock(self) -> threading.RLock:
        """Held around `append`; hold it too to read `head` and append the change after it (a
        change whose fields carry its own sequence number)."""
        return self._lock

    @property
    def head(self) -> int:
        """The last sequence number recorded (0: none yet)."""
        return self.backlog + len(self._appended)

    def append(
        self,
        kind: str,
        entity: str,
        data: dict[str, Any] | None = None,
        occurred_at: datetime | None = None,
    ) -> Change:
        with self._lock:
            change = Change(
                self.head + 1, kind, entity, occurred_at or vietnam_now(), dict(data or {})
            )
            self._appended.append(change)
            return change

    def appended(self) -> list[Change]:
        """The changes appended after the backlog (what `sandbox.persist` keeps)."""
        with self._lock:
            return list(self._appended)

    def restore(self, changes: list[Change]) -> None:
        """Put back the changes a previous run appended (before anything else is appended)."""
        with self._lock:
            if self._appended:
                raise RuntimeError(f"{self.source}: changes appended before the restore")
            for offset, change in enumerate(changes):
                if change.sequence != self.backlog + offset + 1:
                    raise ValueError(
                        f"{self.source}: saved change {change.sequence} is not "
                        f"{self.backlog + offset + 1} (a state saved over another backlog)"
                    )
            self._appended.extend(changes)

    def get(self, sequence: int) -> Change:
        if not 1 <= sequence <= self.head:
            raise IndexError(f"{self.source}: no change {sequence} (head {self.head})")
        if sequence <= self.backlog:
            assert self._generate is not None
            return self._generate(sequence)
        return self._appended[sequence - self.backlog - 1]

    def page(self, after: int, limit: int) -> tuple[list[Change], bool]:
        """Up to `limit` changes after sequence `after`, and whether more follow."""
        head = self.head
        first = max(after, 0) + 1
        last = min(head, first + limit - 1)
        changes = [self.get(sequence) for sequence in range(first, last + 1)]
        return changes, last < head


@dataclass
class Applied:
    """An update already applied under an idempotency key: what it answered."""

    operation: str
    result: dict[str, Any]


class SandboxState:
    """What updates changed, per database (free-form facts its service reads), and the
    idempotency keys each database has applied."""

    def __init__(self) -> None:
        self.facts: dict[str, dict[str, Any]] = {}
        self._applied: dict[tuple[str, str], Applied] = {}
        self._lock = threading.RLock()

    def of(self, source: str) -> dict[str, Any]:
        """The facts of one database (a dict it owns; hold `lock` to change it)."""
        with self._lock:
            return self.facts.setdefault(source, {})

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def applied_count(self) -> int:
        with self._lock:
            return len(self._applied)

    def applied_snapshot(self) -> dict[tuple[str, str], Applied]:
        with self._lock:
            return dict(self._applied)

    def restore_applied(self, applied: dict[tuple[str, str], Applied]) -> None:
        with self._lock:
            self._applied.update(applied)

    def once(
        self, source: str, key: str, operation: str, apply: Callable[[], dict[str, Any]]
    ) -> tuple[bool, dict[str, Any]]:
        """Apply an update once per (source, key): (True, its result) the first time, then
        (False, the first result) without applying it again."""
        with self._lock:
            done = self._applied.get((source, key))
            if done is not None:
                return False, done.result
            result = apply()
            self._applied[(source, key)] = Applied(operation, result)
            return True, result
