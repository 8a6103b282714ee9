"""A subscription's lane (one partition, delivered in offset order) when the consumer reads the
partition again from an earlier offset, as after a poll that straddled a rebalance: every event
is delivered, in order from the rewind on, and the offset to commit never passes an event that
was not delivered."""

from __future__ import annotations

import asyncio

from bus.runtime import Inbound
from bus.sync.subscription import _Lane


def record(offset: int) -> Inbound:
    return Inbound("tthc.sync.civil.change", 0, offset, b"k", b"v", (), 0)


async def settle(lane: _Lane, last: int) -> None:
    for _ in range(500):
        if not lane.records and lane.done == last + 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"lane not settled: done {lane.done}, waiting {len(lane.records)}")


async def test_a_rewind_before_anything_is_delivered_delivers_in_order_from_the_rewind() -> None:
    delivered: list[int] = []

    async def deliver(items: list[Inbound], _lane: _Lane) -> None:
        delivered.extend(item.offset for item in items)

    lane = _Lane(("t", 0), deliver)
    try:
        for offset in [*range(100, 110), *range(80, 110)]:  # read ahead, then again from 80
            lane.add(record(offset))
        await settle(lane, 109)
        assert delivered == list(range(80, 110))
    finally:
        lane.task.cancel()


async def test_a_rewind_while_an_event_is_in_the_sink_holds_the_commit_point_back() -> None:
    delivered: list[int] = []
    release = asyncio.Event()
    commit_points: list[int | None] = []  # the offset to commit, as each delivery starts

    async def deliver(items: list[Inbound], lane: _Lane) -> None:
        [item] = items
        commit_points.append(lane.done)
        if item.offset == 100 and not release.is_set():
            await release.wait()
        delivered.append(item.offset)

    lane = _Lane(("t", 0), deliver)
    try:
        for offset in range(100, 105):
            lane.add(record(offset))
        await asyncio.sleep(0.05)  # 100 is in the sink
        for offset in range(90, 105):  # the partition is read again from 90
            lane.add(record(offset))
        release.set()
        await settle(lane, 104)
        # 100 finished first (it was in the sink), then everything again from 90, in order;
        # its finishing did not move the commit point past 90..99, still to be delivered.
        assert delivered == [100, *range(90, 105)]
        assert commit_points[:2] == [None, None]
        assert commit_points[2:] == list(range(91, 105))
    finally:
        lane.task.cancel()


async def test_a_batching_lane_hands_out_what_waits_in_order_a_batch_at_most_at_a_time() -> None:
    batches: list[list[int]] = []

    async def deliver(items: list[Inbound], _lane: _Lane) -> None:
        batches.append([item.offset for item in items])
        await asyncio.sleep(0.01)

    lane = _Lane(("t", 0), deliver, batch_max=4)
    try:
        for offset in range(10):
            lane.add(record(offset))
        await settle(lane, 9)
        assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    finally:
        lane.task.cancel()
