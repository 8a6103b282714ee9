"""The faust application every worker runs, and the pieces its agents share.

faust acknowledges a message even when the agent raises, and has no dead-letter queue: agents
here never raise for expected errors. A message that cannot be decoded goes to the dead-letter
topic with headers saying where it came from and why (`dead_letter`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import faust

from bus import topics
from bus.codec import Headers, encode, header_map
from bus.schemas import Envelope, LookupResponse, ReplyTo
from bus.settings import Settings

log = logging.getLogger(__name__)

H_ORIGIN_TOPIC = "tthc-dlq-origin-topic"
H_ORIGIN_PARTITION = "tthc-dlq-origin-partition"
H_ORIGIN_OFFSET = "tthc-dlq-origin-offset"
H_REASON = "tthc-dlq-reason"
H_CONSUMER = "tthc-dlq-consumer"
H_TIME = "tthc-dlq-time"


def create_app(settings: Settings, *, datadir: Path | None = None) -> faust.App:
    bootstrap = settings.kafka.resolved_bootstrap()
    brokers = [f"kafka://{server.strip()}" for server in bootstrap.split(",")]
    return faust.App(
        settings.worker.app_id,
        broker=brokers,
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_allow_declare=True,
        datadir=str(datadir or settings.worker.data_dir),
        web_enabled=True,
        web_port=settings.worker.web_port,
        web_bind="127.0.0.1",
        web_in_thread=False,
        producer_acks=-1,
        producer_linger_ms=1,
        broker_commit_every=200,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        table_standby_replicas=0,
    )


class Outbox:
    """Sends bus messages through the app's producer, caching topic objects."""

    def __init__(self, app: faust.App, producer_name: str) -> None:
        self._app = app
        self._topics: dict[str, Any] = {}
        self.producer_name = producer_name

    def topic(self, name: str) -> Any:
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = self._app.topic(
                name, key_type=bytes, value_type=bytes, allow_empty=True
            )
        return topic

    async def send(
        self, topic: str, message: Envelope, *, key: str, partition: int | None = None
    ) -> None:
        body, headers = encode(message)
        await self.topic(topic).send(
            key=key.encode(), value=body, partition=partition, headers=headers
        )

    async def reply(self, reply_to: ReplyTo | None, reply: LookupResponse) -> None:
        """Send a reply where the requester asked; without reply_to, keyed by request id."""
        if reply_to is None:
            await self.send(topics.LOOKUP_REPLY, reply, key=reply.request_id)
        else:
            await self.send(
                reply_to.topic, reply, key=reply.request_id, partition=reply_to.partition
            )

    async def dead_letter(self, event: Any, consumer: str, reason: str) -> None:
        """Park a message that cannot be processed, with where it came from and why."""
        message = event.message
        headers: Headers = list(header_map(message.headers).items())  # type: ignore[arg-type]
        origin: Headers = [
            (H_ORIGIN_TOPIC, message.topic.encode()),
            (H_ORIGIN_PARTITION, str(message.partition).encode()),
            (H_ORIGIN_OFFSET, str(message.offset).encode()),
            (H_REASON, reason[:2000].encode()),
            (H_CONSUMER, consumer.encode()),
            (H_TIME, str(int(time.time() * 1000)).encode()),
        ]
        raw_headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in headers]
        await self.topic(topics.DEAD_LETTER).send(
            key=message.key, value=message.value, headers=raw_headers + origin
        )
        log.warning(
            "dead-lettered %s[%s]@%s: %s",
            message.topic,
            message.partition,
            message.offset,
            reason[:300],
        )


def event_headers(event: Any) -> dict[str, str]:
    return header_map(event.message.headers)
