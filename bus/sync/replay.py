"""Dead letters pending, and their replay to the subscription's sink (`tthc-bus dlq replay`).

The replay position is the committed offset of the consumer group `<app_id>.dlq-replay.<name>`
(a group nobody joins: the command commits its offsets from outside). A dead letter before it
was replayed; the ones after it are pending. Each replayed dead letter moves the position past
it once it is settled: delivered, or appended again at the end of the DLQ with
`tthc-dlq-replays` counted up (it stays pending, for the next replay, and is reported). A
replay stops at the end offset it saw when it started, so what it appends is not tried twice in
one run.

A replayed event reaches the sink after later events of the same entity: dead letters are out of
order by nature; the sink's idempotency key still drops a repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from bus import topics
from bus.kafka import Record
from bus.outbox import Outbox
from bus.runtime import Inbound
from bus.schemas.common import utc_now
from bus.sync import offsets
from bus.sync.deadletter import DeadLetter, dead_letter_headers
from bus.sync.retry import GivenUp, RetryPolicy, deliver_with_retries
from bus.sync.sinks import Sink
from bus.sync.subscription import replay_group_of


@dataclass(frozen=True)
class DlqCount:
    subscription: str
    pending: int  # after the replay position
    total: int  # still in the topic (retention: 30 days)


def counts(bootstrap: str, app_id: str, subscription: str) -> DlqCount:
    topic = topics.dlq(subscription)
    marks = offsets.watermarks(bootstrap, [topic])
    done = offsets.committed(bootstrap, replay_group_of(app_id, subscription), list(marks))
    pending = total = 0
    for tp, (low, high) in marks.items():
        total += high - low
        pending += high - max(low, done.get(tp) or low)
    return DlqCount(subscription, pending, total)


def pending(bootstrap: str, app_id: str, subscription: str) -> list[DeadLetter]:
    """The dead letters after the replay position, oldest first."""
    topic = topics.dlq(subscription)
    group = replay_group_of(app_id, subscription)
    marks = offsets.watermarks(bootstrap, [topic])
    done = offsets.committed(bootstrap, group, list(marks))
    start = {p: o for (_, p), o in done.items() if o is not None}
    return [
        DeadLetter.from_record(Inbound.from_record(Record(message)))
        for message in offsets.read_all(bootstrap, topic, start=start)
    ]


@dataclass
class ReplayReport:
    delivered: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)


Progress = Callable[[DeadLetter, str | None], None]


async def replay(
    bootstrap: str,
    app_id: str,
    subscription: str,
    sink: Sink,
    outbox: Outbox,
    policy: RetryPolicy,
    letters: list[DeadLetter],
    progress: Progress | None = None,
) -> ReplayReport:
    """Deliver each of `letters` (from `pending`) again; `progress(letter, error or None)` after
    each one."""
    group = replay_group_of(app_id, subscription)
    topic = topics.dlq(subscription)
    report = ReplayReport()
    for letter in letters:
        event = letter.event_or_none()
        if event is None:
            now = utc_now()
            failure: GivenUp | None = GivenUp(letter.reason, 0, True, now, now)
        else:
            failure = await deliver_with_retries(sink, event, policy)
        if failure is None:
            report.delivered.append(letter)
        else:
            kept = GivenUp(
                failure.reason,
                letter.attempts + failure.attempts,
                failure.permanent,
                letter.first_failed or failure.first_failed,
                failure.last_failed,
            )
            headers = dead_letter_headers(letter, subscription, kept, replays=letter.replays + 1)
            await outbox.send_raw(topic, letter.value, headers, key=letter.key)
            report.failed.append((letter, failure.reason))
        await asyncio.to_thread(
            offsets.commit_offsets, bootstrap, group, {(topic, letter.partition): letter.offset + 1}
        )
        if progress is not None:
            progress(letter, None if failure is None else failure.reason)
    return report
