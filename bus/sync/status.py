"""The state of the sync streams on the compacted `tthc.status`, and what `sync status` shows.

A running subscription publishes `sync-subscription.<name>` (`SubscriptionStatus`, JSON) when
its state changes and at most every few seconds while it delivers:

    {"subscription": "death-to-population", "state": "running", "member": "worker-4121",
     "delivered": 1204, "skipped": 33, "dead_lettered": 2, "retrying": 0,
     "last_delivered_event_time": "2026-12-01T09:30:00+00:00",
     "last_delivered_at": "2026-12-01T09:30:01.2+00:00", "last_error": "webhook ...: HTTP 503",
     "reset_applied": "3f2a...", "updated_at": "..."}

The source connectors publish `sync-source.<source>`: {state, cursor, last_event_time, error};
`sync status` shows those it finds as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import ConfigDict, Field

from bus import topics
from bus.schemas.common import Model, utc_now
from bus.sync import offsets

SUBSCRIPTION_PREFIX = "sync-subscription."
SOURCE_PREFIX = "sync-source."
State = Literal["starting", "running", "paused", "resetting", "stopped"]


def subscription_key(name: str) -> str:
    return f"{SUBSCRIPTION_PREFIX}{name}"


def source_key(source: str) -> str:
    return f"{SOURCE_PREFIX}{source}"


class SubscriptionStatus(Model):
    """A subscription's state as its running consumer keeps it (mutable, unlike messages)."""

    model_config = ConfigDict(frozen=False)

    subscription: str
    state: State
    member: str = ""
    delivered: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retrying: int = Field(default=0, description="Partitions held by an event being retried.")
    last_delivered_event_time: datetime | None = None
    last_delivered_at: datetime | None = None
    last_error: str | None = None
    reset_applied: str | None = None
    updated_at: datetime = Field(default_factory=utc_now)


def read_statuses(bootstrap: str) -> tuple[dict[str, SubscriptionStatus], dict[str, Any]]:
    """The subscriptions' statuses by name, and the source connectors' records by source."""
    subscriptions: dict[str, SubscriptionStatus] = {}
    sources: dict[str, Any] = {}
    for key, value in offsets.read_latest(bootstrap, topics.STATUS, key_prefix="sync-").items():
        try:
            if key.startswith(SUBSCRIPTION_PREFIX):
                name = key.removeprefix(SUBSCRIPTION_PREFIX)
                subscriptions[name] = SubscriptionStatus.model_validate_json(value)
            elif key.startswith(SOURCE_PREFIX):
                sources[key.removeprefix(SOURCE_PREFIX)] = orjson.loads(value)
        except ValueError:
            continue
    return subscriptions, sources
