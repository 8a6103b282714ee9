"""The records of `tthc.dlq.<subscription>`: an event past its retry budget, or a record the
subscription could not read, kept with its original key and value and headers saying why.

Headers (all UTF-8 text), beside the original record's own headers:

| header | what |
|---|---|
| `tthc-dlq-reason` | the error: the sink and what it answered (`webhook http://h/p: HTTP 422`) |
| `tthc-dlq-permanent` | `true`: the sink refused it (not retried); `false`: the budget ran out |
| `tthc-dlq-attempts` | deliveries tried (0 for a record that could not be read) |
| `tthc-dlq-origin-topic`, `-partition`, `-offset` | where the record was read |
| `tthc-dlq-consumer` | the subscription |
| `tthc-dlq-first-failed`, `tthc-dlq-last-failed` | ISO 8601 times of the first and last failure |
| `tthc-dlq-time` | when it was dead-lettered (ms since the epoch, as in `tthc.deadletter`) |
| `tthc-dlq-replays` | how many times `dlq replay` tried it again (absent: never) |
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from bus.codec import DecodeError, decode, header_map
from bus.outbox import (
    DLQ_HEADERS,
    H_CONSUMER,
    H_ORIGIN_OFFSET,
    H_ORIGIN_PARTITION,
    H_ORIGIN_TOPIC,
    H_REASON,
    H_TIME,
)
from bus.runtime import Inbound
from bus.schemas.change import ChangeEvent
from bus.sync.retry import GivenUp

H_ATTEMPTS = "tthc-dlq-attempts"
H_PERMANENT = "tthc-dlq-permanent"
H_FIRST_FAILED = "tthc-dlq-first-failed"
H_LAST_FAILED = "tthc-dlq-last-failed"
H_REPLAYS = "tthc-dlq-replays"
SYNC_DLQ_HEADERS = (*DLQ_HEADERS, H_ATTEMPTS, H_PERMANENT, H_FIRST_FAILED, H_LAST_FAILED, H_REPLAYS)

Headers = list[tuple[str, bytes]]


def dead_letter_headers(
    origin: Inbound | DeadLetter,
    subscription: str,
    failure: GivenUp,
    *,
    replays: int | None = None,
) -> Headers:
    """The original record's headers (without earlier DLQ headers) and the DLQ's own."""
    if isinstance(origin, DeadLetter):
        kept, topic, partition, offset = origin.kept_headers, *origin.origin
    else:
        kept = [(k, v) for k, v in origin.headers if k not in SYNC_DLQ_HEADERS]
        topic, partition, offset = origin.topic, origin.partition, origin.offset
    headers: Headers = [
        (H_REASON, failure.reason[:2000].encode()),
        (H_PERMANENT, b"true" if failure.permanent else b"false"),
        (H_ATTEMPTS, str(failure.attempts).encode()),
        (H_ORIGIN_TOPIC, topic.encode()),
        (H_ORIGIN_PARTITION, str(partition).encode()),
        (H_ORIGIN_OFFSET, str(offset).encode()),
        (H_CONSUMER, subscription.encode()),
        (H_FIRST_FAILED, failure.first_failed.isoformat().encode()),
        (H_LAST_FAILED, failure.last_failed.isoformat().encode()),
        (H_TIME, str(int(time.time() * 1000)).encode()),
    ]
    if replays:
        headers.append((H_REPLAYS, str(replays).encode()))
    return kept + headers


@dataclass(frozen=True)
class DeadLetter:
    """A record of a DLQ topic, read back."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    kept_headers: Headers
    reason: str
    permanent: bool
    attempts: int
    origin: tuple[str, int, int]
    first_failed: datetime | None
    last_failed: datetime | None
    replays: int

    @classmethod
    def from_record(cls, record: Inbound) -> DeadLetter:
        headers = record.header_map()
        kept = [(k, v) for k, v in record.headers if k not in SYNC_DLQ_HEADERS]
        return cls(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            kept_headers=kept,
            reason=headers.get(H_REASON, ""),
            permanent=headers.get(H_PERMANENT) == "true",
            attempts=_int(headers.get(H_ATTEMPTS)),
            origin=(
                headers.get(H_ORIGIN_TOPIC, ""),
                _int(headers.get(H_ORIGIN_PARTITION), -1),
                _int(headers.get(H_ORIGIN_OFFSET), -1),
            ),
            first_failed=_time(headers.get(H_FIRST_FAILED)),
            last_failed=_time(headers.get(H_LAST_FAILED)),
            replays=_int(headers.get(H_REPLAYS)),
        )

    def event(self) -> ChangeEvent:
        """The event it holds; `DecodeError` if it was dead-lettered for being unreadable."""
        return decode(ChangeEvent, self.value, header_map(self.kept_headers))

    def event_or_none(self) -> ChangeEvent | None:
        try:
            return self.event()
        except DecodeError:
            return None


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
