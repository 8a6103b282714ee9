"""Subscription commands on the compacted `tthc.sync.control`, keyed by subscription name.

A record's value is the subscription's whole desired state, JSON (`ControlState`):

    {"subscription": "death-to-population", "paused": false,
     "reset": {"id": "3f2a...", "to": "2026-12-01T09:00:00+00:00"},
     "command": "reset", "issued_at": "2026-12-01T10:02:11+00:00", "issued_by": "cli"}

`tthc-bus sync pause|resume|reset` reads the latest state, changes one thing and writes the whole
state back, so that a reset does not forget a pause. Compaction keeps the last record per key:
the state survives restarts. A reset is done once per `reset.id`: the subscription records the
id it applied in its status (`tthc.status`), and a restart does not reset again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from bus import topics
from bus.schemas.common import Model, utc_now
from bus.sync import offsets

Command = Literal["pause", "resume", "reset"]


class ResetCommand(Model):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    to: datetime = Field(description="Deliver again from the first event written at this time.")


class ControlState(Model):
    subscription: str
    paused: bool = False
    reset: ResetCommand | None = None
    command: Command | None = None
    issued_at: datetime = Field(default_factory=utc_now)
    issued_by: str = ""

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, value: bytes) -> ControlState:
        return cls.model_validate_json(value)


def read_states(bootstrap: str) -> dict[str, ControlState]:
    """The latest state of every subscription that was ever commanded."""
    states = {}
    for key, value in offsets.read_latest(bootstrap, topics.SYNC_CONTROL).items():
        try:
            states[key] = ControlState.decode(value)
        except ValueError:  # a foreign record on the topic: not ours to obey
            continue
    return states


def issue(
    bootstrap: str,
    subscription: str,
    command: Command,
    *,
    reset_to: datetime | None = None,
    issued_by: str = "cli",
) -> ControlState:
    """Apply `command` to the subscription's latest state and write the new state."""
    current = read_states(bootstrap).get(subscription) or ControlState(subscription=subscription)
    changes: dict[str, object] = {
        "command": command,
        "issued_at": utc_now(),
        "issued_by": issued_by,
    }
    if command == "pause":
        changes["paused"] = True
    elif command == "resume":
        changes["paused"] = False
    else:
        if reset_to is None:
            raise ValueError("a reset needs the time to deliver again from")
        changes["reset"] = ResetCommand(to=reset_to)
    state = current.model_copy(update=changes)
    offsets.produce(bootstrap, topics.SYNC_CONTROL, subscription, state.encode())
    return state
