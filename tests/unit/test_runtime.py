"""The consumer runtime: what a subscriber does with each record, and where its commit point
stands while records finish out of order."""

from __future__ import annotations

import time
from typing import Any

from bus.runtime import Inbound, PartitionProgress, Route, Subscriber
from bus.schemas import LookupExpiry, LookupPlan


class Parked:
    def __init__(self) -> None:
        self.records: list[tuple[Inbound, str, str]] = []

    async def dead_letter(self, record: Inbound, consumer: str, reason: str) -> None:
        self.records.append((record, consumer, reason))


def record(value: bytes | None, headers: dict[str, str] | None = None, age_s: float = 0) -> Inbound:
    pairs = tuple((k, v.encode()) for k, v in (headers or {}).items())
    return Inbound("t", 3, 41, b"k", value, pairs, int((time.time() - age_s) * 1000))


def expiry_json() -> bytes:
    return LookupExpiry(request_id="r1").model_dump_json().encode()


def subscriber(handled: list[Any], *, fail: bool = False, **kwargs: Any) -> Subscriber:
    async def on_expiry(message: LookupExpiry, _: Inbound) -> None:
        if fail:
            raise RuntimeError("a bug")
        handled.append(message)

    async def on_plan(message: LookupPlan, _: Inbound) -> None:
        handled.append(message)

    routes = (Route(LookupExpiry, on_expiry), Route(LookupPlan, on_plan))
    return Subscriber("test-consumer", "t", routes[: kwargs.pop("routes", 2)], "test", **kwargs)


async def test_a_record_goes_to_the_route_of_its_type_header() -> None:
    handled: list[Any] = []
    parked = Parked()
    await subscriber(handled).dispatch(
        record(expiry_json(), {"tthc-type": "lookup.expiry"}), parked
    )
    assert [type(m) for m in handled] == [LookupExpiry]
    assert parked.records == []


async def test_an_unknown_type_is_dead_lettered_naming_the_types_taken() -> None:
    handled: list[Any] = []
    parked = Parked()
    await subscriber(handled).dispatch(record(b"{}", {"tthc-type": "lookup.bogus"}), parked)
    [(_, consumer, reason)] = parked.records
    assert consumer == "test-consumer"
    assert "'lookup.bogus'" in reason and "lookup.expiry" in reason and "lookup.plan" in reason
    assert handled == []


async def test_an_undecodable_record_is_dead_lettered_and_refused() -> None:
    refused: list[str] = []

    async def refuse(_: Inbound, reason: str) -> None:
        refused.append(reason)

    parked = Parked()
    sub = subscriber([], on_undecodable=refuse)
    await sub.dispatch(record(b'{"request_id": 5}', {"tthc-type": "lookup.expiry"}), parked)
    [(_, _, reason)] = parked.records
    assert reason.startswith("invalid lookup.expiry: request_id")
    assert refused == [reason]


async def test_without_a_type_header_the_only_route_takes_it() -> None:
    handled: list[Any] = []
    await subscriber(handled, routes=1).dispatch(record(expiry_json()), Parked())
    assert [type(m) for m in handled] == [LookupExpiry]


async def test_a_handler_that_raises_parks_the_record_and_does_not_raise() -> None:
    parked = Parked()
    sub = subscriber([], fail=True)
    await sub.dispatch(record(expiry_json(), {"tthc-type": "lookup.expiry"}), parked)
    [(_, _, reason)] = parked.records
    assert reason.startswith("internal error: RuntimeError at ")
    assert "a bug" not in reason  # where, never what: the text may quote personal data


async def test_a_record_older_than_max_age_is_dropped_unread() -> None:
    handled: list[Any] = []
    parked = Parked()
    sub = subscriber(handled, max_age_s=60)
    await sub.dispatch(record(b"not json", {"tthc-type": "lookup.expiry"}, age_s=120), parked)
    assert (handled, parked.records) == ([], [])


def test_the_commit_point_moves_only_past_records_that_are_all_finished() -> None:
    progress = PartitionProgress()
    for offset in (10, 11, 12, 13):
        progress.start(offset)
    progress.finish(12)
    progress.finish(11)
    assert progress.due() is None  # 10 is still in flight: nothing may be committed
    progress.finish(10)
    assert progress.due() == 13  # 10, 11 and 12 done: the next to read is 13
    progress.committed = 13
    assert progress.due() is None
    progress.finish(13)
    assert progress.due() == 14
