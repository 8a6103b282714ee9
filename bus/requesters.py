"""Who sent a Kafka lookup request, and where its reply may go (checked by the worker).

Every request on `tthc.lookup.request` is signed (bus/auth.py): its `tthc-agency` header names
the agency it is made for, and an HMAC with a key of that agency, or of a gateway, proves it.
- A gateway's key may speak for any agency (the gateway authenticated it over HTTP); its replies
  go to its partition of the shared `tthc.lookup.reply`.
- An agency's own key speaks for that agency only, and its replies go to its own topic,
  `tthc.lookup.reply.<agency>`, provisioned for the agencies of `auth.kafka_agencies`; never to
  the shared topic, where other agencies' replies are.
The body's `requester.agency_code` must be the signed agency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bus import topics
from bus.auth import AuthFailure, Keyring
from bus.schemas import LookupRequest
from bus.schemas.discovery import DiscoveryRequest

RefusalCode = Literal["unauthenticated", "forbidden"]


@dataclass(frozen=True)
class Caller:
    """The authenticated requester of a lookup."""

    agency: str
    key_id: str | None
    channel: Literal["http", "kafka"]


@dataclass(frozen=True)
class Refusal:
    code: RefusalCode
    reason: str
    agency: str | None = None
    key_id: str | None = None


class RequesterCheck:
    def __init__(
        self, keyring: Keyring, kafka_agencies: Sequence[str], agency_reply_partitions: int = 1
    ) -> None:
        self._keyring = keyring
        self._agencies = frozenset(kafka_agencies)
        self._agency_partitions = agency_reply_partitions

    def check(
        self,
        request: LookupRequest | DiscoveryRequest,
        headers: Sequence[tuple[str, bytes]],
        value: bytes | None,
    ) -> Caller | Refusal:
        signed = self._keyring.check_signature(headers, value)
        if isinstance(signed, AuthFailure):
            return Refusal("unauthenticated", signed.reason)
        record = signed.record
        agency = signed.agency
        if request.requester.agency_code != agency:
            return Refusal(
                "forbidden",
                f"requester.agency_code {request.requester.agency_code!r} is not the agency the "
                f"request is signed for ({agency!r})",
                agency,
                record.id,
            )
        reply_to = request.reply_to
        if "gateway" in record.roles:
            if reply_to is not None and reply_to.topic != topics.LOOKUP_REPLY:
                return Refusal(
                    "forbidden",
                    f"a gateway's replies go to {topics.LOOKUP_REPLY!r}, not {reply_to.topic!r}",
                    agency,
                    record.id,
                )
            return Caller(agency, record.id, "http")
        if "lookup" not in record.roles:
            return Refusal(
                "forbidden",
                f"key {record.id} has roles {record.roles}, not 'lookup'",
                agency,
                record.id,
            )
        own = topics.agency_reply_topic(agency)
        if agency not in self._agencies:
            return Refusal(
                "forbidden",
                f"agency {agency!r} has no reply topic of its own: list it in "
                "auth.kafka_agencies to talk to the bus over Kafka",
                agency,
                record.id,
            )
        if reply_to is None or reply_to.topic != own:
            named = None if reply_to is None else reply_to.topic
            return Refusal(
                "forbidden",
                f"replies to agency {agency!r} go to its own topic {own!r}, not {named!r}",
                agency,
                record.id,
            )
        if reply_to.partition >= self._agency_partitions:
            return Refusal(
                "forbidden",
                f"{own!r} has {self._agency_partitions} partition(s); reply_to.partition "
                f"{reply_to.partition} does not exist",
                agency,
                record.id,
            )
        return Caller(agency, record.id, "kafka")
