"""Everything the bus sends to Kafka goes through one `Outbox`: one aiokafka producer per process.

`send` returns once the broker has the message (acks=all), so a consumer commits its offset only
after what it produced is safe: at-least-once. Sends from concurrent handlers batch by themselves
(librdkafka, `bus.kafka`, lingers half a millisecond for the others).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter

from bus import topics
from bus.codec import Headers, encode, encode_response
from bus.kafka import AsyncProducer
from bus.runtime import Inbound
from bus.schemas import Envelope, LookupResponse, ReplyTo

log = logging.getLogger(__name__)

H_ORIGIN_TOPIC = "tthc-dlq-origin-topic"
H_ORIGIN_PARTITION = "tthc-dlq-origin-partition"
H_ORIGIN_OFFSET = "tthc-dlq-origin-offset"
H_REASON = "tthc-dlq-reason"
H_CONSUMER = "tthc-dlq-consumer"
H_TIME = "tthc-dlq-time"
DEAD_LETTERS = Counter(
    "tthc_dead_letters",
    "Records parked on tthc.deadletter, by the consumer that could not process them.",
    ["consumer"],
)
DLQ_HEADERS = (H_ORIGIN_TOPIC, H_ORIGIN_PARTITION, H_ORIGIN_OFFSET, H_REASON, H_CONSUMER, H_TIME)


class Outbox:
    def __init__(self, bootstrap_servers: str, producer_name: str, linger_ms: float = 0.5) -> None:
        self.producer_name = producer_name
        self._bootstrap_servers = bootstrap_servers
        self._linger_ms = linger_ms
        self._producer: Any = None
        self._started: asyncio.Event | None = None

    async def reachable(self, timeout_s: float = 2.0) -> str | None:
        """None if the broker answers (see AsyncProducer.reachable); else why not."""
        if self._producer is None:
            return "the outbox is not started"
        reason: str | None = await self._producer.reachable(timeout_s)
        return reason

    @classmethod
    def over(cls, producer: Any, producer_name: str) -> Outbox:
        """An outbox over an already started producer (anything with `AsyncProducer.send`)."""
        outbox = cls("", producer_name)
        outbox._producer = producer
        outbox._ready().set()
        return outbox

    async def start(self) -> None:
        # The producer's futures belong to the running loop: made here, not in __init__.
        self._producer = AsyncProducer(
            self._bootstrap_servers, self.producer_name, linger_ms=self._linger_ms
        )
        await self._producer.start()
        self._ready().set()

    def _ready(self) -> asyncio.Event:
        if self._started is None:
            self._started = asyncio.Event()
        return self._started

    async def stop(self) -> None:
        self._ready().clear()
        if self._producer is not None:
            await self._producer.stop()

    async def send_raw(
        self,
        topic: str,
        body: bytes | None,
        headers: Headers,
        *,
        key: bytes | None,
        partition: int | None = None,
    ) -> None:
        ready = self._ready()
        if not ready.is_set():  # a consumer bound before the process finished starting
            await asyncio.wait_for(ready.wait(), 30)
        assert self._producer is not None
        await self._producer.send(topic, body, key=key, partition=partition, headers=headers)

    async def send(
        self, topic: str, message: Envelope, *, key: str, partition: int | None = None
    ) -> None:
        body, headers = encode(message)
        await self.send_raw(topic, body, headers, key=key.encode(), partition=partition)

    def send_soon(
        self, topic: str, message: Envelope, *, key: str, partition: int | None = None
    ) -> asyncio.Future[None]:
        """`send`, without a coroutine or a task: the broker's acknowledgement as a future. For
        messages the caller waits for later, beside other work (the audit events of a lookup)."""
        if self._producer is None or not self._ready().is_set():
            return asyncio.ensure_future(self.send(topic, message, key=key, partition=partition))
        body, headers = encode(message)
        future: asyncio.Future[None] = self._producer.send(
            topic, body, key=key.encode(), headers=headers, partition=partition
        )
        return future

    async def reply(self, reply_to: ReplyTo | None, reply: LookupResponse) -> None:
        """Send a reply where the requester asked; without reply_to, keyed by request id."""
        body, headers = encode_response(reply)
        topic = topics.LOOKUP_REPLY if reply_to is None else reply_to.topic
        partition = None if reply_to is None else reply_to.partition
        await self.send_raw(
            topic, body, headers, key=reply.request_id.encode(), partition=partition
        )

    async def dead_letter(self, record: Inbound, consumer: str, reason: str) -> None:
        """Park a record that cannot be processed, with where it came from and why."""
        DEAD_LETTERS.labels(consumer).inc()
        origin: Headers = [
            (H_ORIGIN_TOPIC, record.topic.encode()),
            (H_ORIGIN_PARTITION, str(record.partition).encode()),
            (H_ORIGIN_OFFSET, str(record.offset).encode()),
            (H_REASON, reason[:2000].encode()),
            (H_CONSUMER, consumer.encode()),
            (H_TIME, str(int(time.time() * 1000)).encode()),
        ]
        kept = [(k, v) for k, v in record.headers if k not in DLQ_HEADERS]
        await self.send_raw(topics.DEAD_LETTER, record.value, kept + origin, key=record.key)
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason[:300],
        )
