"""The Kafka-native lookup client: what the HTTP gateway and the CLI use, and what any backend
system may embed to talk to the bus without HTTP.

Request-reply with fixed reply partitions: each client names a partition of `tthc.lookup.reply`
in `reply_to` and reads only that partition (assigned, no consumer group), so replies never fan
out to every instance and restarts create no topics. Replies are matched by request id; a reply
for a request this client no longer waits for is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from bus import topics
from bus.codec import DecodeError, decode, encode, header_map
from bus.errors import BusError
from bus.schemas import LookupRequest, LookupResponse, ReplyTo

log = logging.getLogger(__name__)

# How long past the deadline the client waits for the bus's own deadline reply.
REPLY_GRACE_S = 1.0


class BusUnavailable(BusError):
    """The request never reached the bus (the broker could not be reached in time)."""


class LookupClient:
    def __init__(
        self, bootstrap_servers: str, reply_partition: int, producer_name: str = "lookup-client"
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.reply_to = ReplyTo(topic=topics.LOOKUP_REPLY, partition=reply_partition)
        self.producer_name = producer_name
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[LookupResponse]] = {}

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            linger_ms=1,
            client_id=self.producer_name,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=5,
            client_id=f"{self.producer_name}-replies",
        )
        await self._producer.start()
        await self._consumer.start()
        partition = TopicPartition(self.reply_to.topic, self.reply_to.partition)
        self._consumer.assign([partition])
        await self._consumer.seek_to_end(partition)
        await self._consumer.position(partition)  # fix the start now, before any request goes out
        self._reader = asyncio.create_task(self._read_replies(), name="lookup-replies")
        self._reader.add_done_callback(self._reader_stopped)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for future in self._waiting.values():
            future.cancel()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    @property
    def healthy(self) -> bool:
        """False once the reply reader has stopped: no reply could reach any request."""
        return self._reader is not None and not self._reader.done()

    async def __aenter__(self) -> LookupClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def lookup(self, request: LookupRequest) -> LookupResponse | None:
        """Send the request and wait for its reply; None if none came by deadline + grace."""
        assert self._producer is not None, "start() the client first"
        request = request.model_copy(update={"reply_to": self.reply_to})
        future: asyncio.Future[LookupResponse] = asyncio.get_running_loop().create_future()
        self._waiting[request.message_id] = future
        remaining = (request.deadline - datetime.now(UTC)).total_seconds()
        try:
            body, headers = encode(request)
            # Bounded too: without a broker, aiokafka would wait up to its metadata timeout.
            try:
                await asyncio.wait_for(
                    self._producer.send(
                        topics.LOOKUP_REQUEST,
                        body,
                        key=request.message_id.encode(),
                        headers=headers,
                    ),
                    max(remaining, 0.01),
                )
            except (TimeoutError, KafkaError) as exc:
                raise BusUnavailable(
                    f"the request could not be handed to Kafka ({type(exc).__name__})"
                ) from None
            timeout = (request.deadline - datetime.now(UTC)).total_seconds() + REPLY_GRACE_S
            return await asyncio.wait_for(future, max(timeout, 0.01))
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request.message_id, None)

    def _reader_stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("reply reader of %s stopped: %r", self.reply_to, task.exception())

    async def _read_replies(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    self._deliver(record.value, header_map(record.headers))

    def _deliver(self, body: bytes | None, headers: dict[str, str]) -> None:
        try:
            reply = decode(LookupResponse, body, headers)
        except DecodeError as exc:
            log.warning("unreadable message on %s: %s", self.reply_to, exc)
            return
        future = self._waiting.get(reply.request_id)
        if future is not None and not future.done():
            future.set_result(reply)


def deadline_in(milliseconds: int) -> datetime:
    return datetime.now(UTC) + timedelta(milliseconds=milliseconds)
