"""The Kafka-native lookup client: what the HTTP gateway and the CLI use, and what any backend
system may embed to talk to the bus without HTTP.

Request-reply with fixed reply partitions: each client names a partition of `tthc.lookup.reply`
in `reply_to` and reads only that partition (assigned, no consumer group), so replies never fan
out to every instance and restarts create no topics. Replies are matched by their key, the request
id; a reply for a request this client no longer waits for (a repeat after a worker crash, or one
that came after the deadline) is dropped, so the caller sees exactly one answer per request.

The client waits until the request's deadline and no longer: the bus answers just before it
(`bus.deadline.REPLY_MARGIN_S`), and `None` at the deadline means nothing came in time. The
client caps the lookups it has in flight (`bus.admission`): past the cap `Overloaded` is raised
at once, without sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from bus import topics
from bus.admission import Admission, Overloaded
from bus.auth import RequestSigner
from bus.codec import decode, encode, header_map
from bus.deadline import Deadline, deadline_in
from bus.errors import BusError
from bus.kafka import OFFSET_END, AsyncConsumer, AsyncProducer
from bus.schemas import LookupRequest, LookupResponse, ReplyTo

log = logging.getLogger(__name__)

__all__ = ["BusUnavailable", "LookupClient", "Overloaded", "Reply", "deadline_in"]

DEFAULT_MAX_IN_FLIGHT = 256


class BusUnavailable(BusError):
    """The request never reached the bus (the broker could not be reached in time)."""


class Reply:
    """A reply as it came off Kafka: the body to relay as is, read only as far as needed."""

    __slots__ = ("_data", "body", "headers")

    def __init__(self, body: bytes, headers: list[tuple[str, bytes]]) -> None:
        self.body = body
        self.headers = headers
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The JSON body as plain data (not validated)."""
        if self._data is None:
            loaded = orjson.loads(self.body)
            self._data = loaded if isinstance(loaded, dict) else {}
        return self._data

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))

    def error_codes(self) -> list[str]:
        return [str(e.get("code")) for e in self.data.get("errors") or () if isinstance(e, dict)]

    def response(self) -> LookupResponse:
        """The validated reply (raises DecodeError naming the field if it is not one)."""
        return decode(LookupResponse, self.body, header_map(self.headers))


class LookupClient:
    def __init__(
        self,
        bootstrap_servers: str,
        reply_partition: int,
        producer_name: str = "lookup-client",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        fetch_max_wait_ms: int = 500,
        *,
        signer: RequestSigner | None = None,
        reply_topic: str = topics.LOOKUP_REPLY,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.reply_to = ReplyTo(topic=reply_topic, partition=reply_partition)
        # Every request is signed (bus/auth.py): the worker refuses an unsigned one.
        self.signer = signer
        self.producer_name = producer_name
        self.admission = Admission(max_in_flight)
        # The broker answers a waiting fetch as soon as a reply arrives: a long wait adds no
        # latency, and a short one costs idle CPU here and on the broker.
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self._producer: AsyncProducer | None = None
        self._consumer: AsyncConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[bytes, asyncio.Future[Reply]] = {}

    @classmethod
    def for_agency(
        cls,
        bootstrap_servers: str,
        key: str,
        agency: str,
        producer_name: str = "lookup-client",
        **kwargs: Any,
    ) -> LookupClient:
        """A client of an agency that talks Kafka directly: requests signed with its key, replies
        read from its own topic (`tthc.lookup.reply.<agency>`, see `auth.kafka_agencies`)."""
        signer = RequestSigner(key, agency)
        return cls(
            bootstrap_servers,
            kwargs.pop("reply_partition", 0),
            producer_name,
            signer=signer,
            reply_topic=topics.agency_reply_topic(signer.agency),
            **kwargs,
        )

    async def start(self) -> None:
        self._producer = AsyncProducer(self.bootstrap_servers, self.producer_name, linger_ms=0.5)
        self._consumer = AsyncConsumer(
            self.bootstrap_servers,
            f"{self.producer_name}-replies",
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        # From the partition's end as it is now, fixed before any request goes out.
        self._consumer.assign([(self.reply_to.topic, self.reply_to.partition, OFFSET_END)])
        await self._producer.start()
        await self._consumer.start()
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
    def producer(self) -> AsyncProducer | None:
        """The client's producer, once started: the gateway sends its audit events with it."""
        return self._producer

    @property
    def healthy(self) -> bool:
        """False once the reply reader has stopped: no reply could reach any request."""
        return self._reader is not None and not self._reader.done()

    @property
    def in_flight(self) -> int:
        return self.admission.in_flight

    async def __aenter__(self) -> LookupClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def lookup(self, request: LookupRequest) -> LookupResponse | None:
        """Send the request and wait for its reply; None if none came by the deadline.

        Raises `Overloaded` (refused at once, nothing sent) or `BusUnavailable`.
        """
        reply = await self.exchange(request)
        return None if reply is None else reply.response()

    async def exchange(self, request: LookupRequest) -> Reply | None:
        """`lookup` without decoding the reply: for relaying it (the gateway)."""
        assert self._producer is not None, "start() the client first"
        self.admission.admit()
        try:
            return await self._exchange(request)
        finally:
            self.admission.release()

    async def _exchange(self, request: LookupRequest) -> Reply | None:
        assert self._producer is not None
        if request.reply_to != self.reply_to:  # the gateway builds it with ours already
            request = request.model_copy(update={"reply_to": self.reply_to})
        key = request.message_id.encode()
        deadline = Deadline.of(request.deadline)
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[key] = reply
        body, headers = encode(request)
        if self.signer is not None:
            headers = [*headers, *self.signer.headers(request.requester.agency_code, body)]
        delivery = self._producer.send(topics.LOOKUP_REQUEST, body, key=key, headers=headers)
        delivery.add_done_callback(lambda sent: _fail_on_send_error(sent, reply))
        try:
            return await asyncio.wait_for(reply, max(deadline.remaining(), 0.001))
        except TimeoutError:
            if not delivery.done():
                raise BusUnavailable(
                    "the request could not be handed to Kafka "
                    "(no acknowledgement before the deadline)"
                ) from None
            return None  # handed over, and no reply before the deadline
        finally:
            self._waiting.pop(key, None)

    def _reader_stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("reply reader of %s stopped: %r", self.reply_to, task.exception())

    async def _read_replies(self) -> None:
        assert self._consumer is not None
        while True:
            for record in await self._consumer.getmany(timeout_s=1.0):
                self._deliver(record.key, record.value, record.headers)

    def _deliver(self, key: bytes | None, body: bytes | None, headers: Any) -> None:
        if body is None:
            return
        if key is None:  # not from the bus (it keys replies by request id): read the id
            try:
                key = str(orjson.loads(body)["request_id"]).encode()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("unreadable message on %s: no key and no request_id", self.reply_to)
                return
        future = self._waiting.get(key)
        if future is not None and not future.done():
            future.set_result(Reply(body, list(headers or ())))


def _fail_on_send_error(delivery: asyncio.Future[None], reply: asyncio.Future[Reply]) -> None:
    """A request the broker refused can have no reply: fail its wait at once."""
    error = None if delivery.cancelled() else delivery.exception()
    if error is None:
        return
    if reply.done():
        log.warning("request not acknowledged by Kafka: %s", error)
        return
    reply.set_exception(
        BusUnavailable(f"the request could not be handed to Kafka ({error!s:.200})")
    )
