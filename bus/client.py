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
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from bus import topics
from bus.admission import Admission, Overloaded
from bus.auth import RequestSigner
from bus.codec import decode, encode, header_map
from bus.deadline import Deadline, deadline_in
from bus.errors import BusError
from bus.kafka import OFFSET_END, AsyncConsumer, AsyncProducer
from bus.schemas import LookupRequest, LookupResponse, ReplyTo, Requester, Subject
from bus.schemas.discovery import (
    AllowedDatasets,
    DatasetDescription,
    DiscoveryQuestion,
    DiscoveryRequest,
    DiscoveryResponse,
)
from bus.validation import LookupChecks, Problem, field_errors, one_line

log = logging.getLogger(__name__)

__all__ = [
    "AsyncBusClient",
    "BusClient",
    "BusUnavailable",
    "DiscoveryRefused",
    "InvalidLookup",
    "LookupClient",
    "NoReply",
    "Overloaded",
    "Reply",
    "deadline_in",
]

DEFAULT_MAX_IN_FLIGHT = 256
MIN_DEADLINE_MS = 100  # as the gateway's `deadline_ms` (ge=100)
T = TypeVar("T")


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
        if request.reply_to != self.reply_to:  # the gateway builds it with ours already
            request = request.model_copy(update={"reply_to": self.reply_to})
        return await self.exchange_message(request, Deadline.of(request.deadline))

    async def exchange_message(
        self, message: LookupRequest | DiscoveryRequest, deadline: Deadline
    ) -> Reply | None:
        """Send a signed request on `tthc.lookup.request` and wait until `deadline` for the
        reply keyed by its id (a lookup's or a discovery question's)."""
        assert self._producer is not None, "start() the client first"
        key = message.message_id.encode()
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[key] = reply
        body, headers = encode(message)
        if self.signer is not None:
            headers = [*headers, *self.signer.headers(message.requester.agency_code, body)]
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


# -- the library API for backend systems ---------------------------------------------------------


class InvalidLookup(BusError):
    """The request breaks a rule (HTTP would answer 400): nothing was sent. `problems` names
    each field, as the gateway's problem+json `errors` do."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"invalid lookup request: {one_line(problems)}")
        self.problems = problems


class NoReply(BusError):
    """The request reached the bus and no reply came before its deadline."""


class DiscoveryRefused(BusError):
    """The bus refused a discovery question (a bad signature, a reply topic not the agency's)."""


def subject_of(text: str) -> Subject:
    """A subject from the id as written: an enterprise code if it has the form of one (10
    digits, or 10-NNN for a branch), else a personal id, whose rules then name what is wrong."""
    kind = "enterprise_code" if ENTERPRISE_CODE_SHAPE.fullmatch(text.strip()) else "personal_id"
    try:
        return Subject.model_validate({kind: text})
    except ValidationError as exc:
        raise InvalidLookup(field_errors(exc.errors(), within="subject")) from None


ENTERPRISE_CODE_SHAPE = re.compile(r"[0-9]{10}(-[0-9]{3})?")


class AsyncBusClient:
    """A backend system's client of the bus over Kafka: lookups and discovery, for an agency
    with its own key and reply topic (`auth.kafka_agencies`).

    Requests are checked before they are sent, by the same rules and with the same messages as
    the gateway's 400 (bus/validation.py, against the catalogue the bus itself answers with);
    a request that breaks one raises `InvalidLookup` and nothing is sent. `lookup` returns the
    typed `LookupResponse` whatever its status (complete, partial, not_found, denied, failed),
    and raises `NoReply` when none came before the deadline, `BusUnavailable` when the request
    could not be handed to Kafka, `Overloaded` past `max_in_flight`.

        async with AsyncBusClient("127.0.0.1:19092", key=KEY, agency="H26.22") as bus:
            answer = await bus.lookup(
                subject="066087691587", procedure="1.004222",
                purpose="Xác minh nhân thân khi giải quyết hồ sơ",
                legal_basis="Nghị định 194/2025/NĐ-CP", dossier_id="HS-0001", officer="can-bo-01",
            )
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        key: str,
        agency: str,
        system: str = "tthc-bus-client",
        reply_partition: int = 0,
        default_deadline_ms: int = 5000,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._client = LookupClient.for_agency(
            bootstrap_servers,
            key,
            agency,
            system,
            reply_partition=reply_partition,
            max_in_flight=max_in_flight,
        )
        self.agency = agency
        self.system = system
        self.default_deadline_ms = default_deadline_ms
        self._checks: LookupChecks | None = None
        self._datasets: list[DatasetDescription] | None = None

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        await self._client.stop()

    async def __aenter__(self) -> AsyncBusClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- discovery ------------------------------------------------------------------------------

    async def datasets(self, timeout_s: float = 10.0) -> list[DatasetDescription]:
        """Every dataset the bus serves (asked once, then remembered)."""
        if self._datasets is None:
            answer = await self._ask("datasets", timeout_s)
            self._datasets = answer.datasets or []
            self._checks = LookupChecks.of_discovery(self._datasets)
        return self._datasets

    async def allowed(self, timeout_s: float = 10.0) -> AllowedDatasets:
        """What this agency may ask for, per dataset and procedure, with the fields granted."""
        answer = await self._ask("allowed", timeout_s)
        assert answer.allowed is not None
        return answer.allowed

    async def _ask(self, question: DiscoveryQuestion, timeout_s: float) -> DiscoveryResponse:
        request = DiscoveryRequest(
            producer=self.system,
            requester=Requester(agency_code=self.agency, system=self.system, officer=self.system),
            question=question,
            reply_to=self._client.reply_to,
        )
        reply = await self._client.exchange_message(request, Deadline.after(timeout_s))
        if reply is None:
            raise NoReply(f"no answer to the {question!r} discovery request in {timeout_s:.0f} s")
        answer = decode(DiscoveryResponse, reply.body, header_map(reply.headers))
        if answer.error is not None:
            raise DiscoveryRefused(answer.error)
        return answer

    # -- lookups --------------------------------------------------------------------------------

    async def lookup(
        self,
        *,
        subject: str | Subject,
        procedure: str,
        purpose: str,
        legal_basis: str,
        dossier_id: str,
        officer: str,
        datasets: list[str] | None = None,
        deadline_ms: int | None = None,
    ) -> LookupResponse:
        """Look up `subject` (a personal id or an enterprise code, or a `Subject`) for a
        dossier of `procedure`; `datasets` left out: the procedure's (a prefill)."""
        request = await self.request(
            subject=subject,
            procedure=procedure,
            purpose=purpose,
            legal_basis=legal_basis,
            dossier_id=dossier_id,
            officer=officer,
            datasets=datasets,
            deadline_ms=deadline_ms,
        )
        answer = await self._client.lookup(request)
        if answer is None:
            raise NoReply(f"no reply before the deadline ({request.deadline.isoformat()})")
        return answer

    async def request(
        self,
        *,
        subject: str | Subject,
        procedure: str,
        purpose: str,
        legal_basis: str,
        dossier_id: str,
        officer: str,
        datasets: list[str] | None = None,
        deadline_ms: int | None = None,
    ) -> LookupRequest:
        """The checked LookupRequest `lookup` sends (raises `InvalidLookup`)."""
        chosen = subject if isinstance(subject, Subject) else subject_of(subject)
        deadline_ms = self.default_deadline_ms if deadline_ms is None else deadline_ms
        problems: list[Problem] = []
        if deadline_ms < MIN_DEADLINE_MS:
            problems.append(
                {
                    "field": "deadline_ms",
                    "message": f"Input should be greater than or equal to {MIN_DEADLINE_MS}",
                    "type": "greater_than_equal",
                }
            )
        await self.datasets()
        assert self._checks is not None
        named, found = self._checks.check(procedure, datasets, chosen)
        problems += found
        try:
            request = LookupRequest(
                producer=self.system,
                requester=Requester(agency_code=self.agency, system=self.system, officer=officer),
                procedure_code=procedure,
                dossier_id=dossier_id,
                purpose=purpose,
                legal_basis=legal_basis,
                subject=chosen,
                # With the datasets already refused, the other fields are still checked.
                datasets=named if named or not found else ["refused.above"],
                deadline=deadline_in(max(deadline_ms, MIN_DEADLINE_MS)),
                reply_to=self._client.reply_to,
            )
        except ValidationError as exc:
            problems = field_errors(exc.errors()) + problems
        if problems:
            raise InvalidLookup(problems)
        return request


class BusClient:
    """`AsyncBusClient` for code that is not async: the same calls, each blocking until its
    answer. It runs its own event loop in a thread; use it as a context manager, or `close()`.

        with BusClient("127.0.0.1:19092", key=KEY, agency="H26.22") as bus:
            print(bus.datasets())
            answer = bus.lookup(subject=..., procedure=..., ...)
    """

    def __init__(self, bootstrap_servers: str, **options: Any) -> None:
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tthc-bus-client", daemon=True
        )
        self._thread.start()
        self._async: AsyncBusClient | None = None
        try:
            self._async = self._call(self._make(bootstrap_servers, options))
            self._call(self._async.start())
        except BaseException:
            self.close()  # whatever had started stops, and the thread with it
            raise

    @staticmethod
    async def _make(bootstrap_servers: str, options: dict[str, Any]) -> AsyncBusClient:
        return AsyncBusClient(bootstrap_servers, **options)  # built in the loop it runs in

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _client(self) -> AsyncBusClient:
        if self._closed or self._async is None:
            raise BusError("this BusClient is closed")
        return self._async

    def datasets(self, timeout_s: float = 10.0) -> list[DatasetDescription]:
        return self._call(self._client().datasets(timeout_s))

    def allowed(self, timeout_s: float = 10.0) -> AllowedDatasets:
        return self._call(self._client().allowed(timeout_s))

    def lookup(self, **fields: Any) -> LookupResponse:
        """See `AsyncBusClient.lookup`."""
        return self._call(self._client().lookup(**fields))

    def close(self) -> None:
        """Stop the client and its thread; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._async is not None:
                with contextlib.suppress(Exception):  # a client that never started
                    self._call(self._async.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
