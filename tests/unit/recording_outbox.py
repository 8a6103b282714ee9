"""An Outbox that records what the router or the aggregator would send, for unit tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bus.schemas import LookupResponse, ReplyTo


@dataclass
class Sent:
    topic: str
    message: Any
    key: str
    partition: int | None


@dataclass
class RecordingOutbox:
    producer_name: str = "test-outbox"
    fail_reply: bool = False
    sent: list[Sent] = field(default_factory=list)
    replies: list[tuple[ReplyTo | None, LookupResponse]] = field(default_factory=list)
    dead: list[tuple[Any, str, str]] = field(default_factory=list)

    async def send(
        self, topic: str, message: Any, *, key: str, partition: int | None = None
    ) -> None:
        self.sent.append(Sent(topic, message, key, partition))

    def send_soon(
        self, topic: str, message: Any, *, key: str, partition: int | None = None
    ) -> asyncio.Future[None]:
        return asyncio.ensure_future(self.send(topic, message, key=key, partition=partition))

    async def reply(self, reply_to: ReplyTo | None, reply: LookupResponse) -> None:
        if self.fail_reply:
            raise RuntimeError("broker unavailable")
        self.replies.append((reply_to, reply))

    async def dead_letter(self, event: Any, consumer: str, reason: str) -> None:
        self.dead.append((event, consumer, reason))
