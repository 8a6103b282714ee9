"""Sinks: where a subscription delivers its events, and how each failure is classified.

A sink's `deliver` either returns (delivered) or raises `DeliveryFailed`, which says whether
trying again may help (`permanent`) and what happened, specifically and without personal data
(the sink, the HTTP status or the error class; never a body, never an entity id). Every sink is
idempotent by the event id it sends along, so at-least-once delivery is exactly-once as the sink
sees it.

Sinks block (requests, an adapter's `update`): the subscription calls them in a thread.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from bus.errors import SourceError, exception_site
from bus.schemas.change import ChangeEvent

H_IDEMPOTENCY_KEY = "Idempotency-Key"
H_SIGNATURE = "X-Tthc-Signature"
H_EVENT_TYPE = "X-Tthc-Event-Type"
H_BATCH_SIZE = "X-Tthc-Batch-Size"
SIGNATURE_PREFIX = "sha256="
# 4xx statuses that are the sink asking to be asked later, not refusing the event.
RETRYABLE_4XX = frozenset({408, 425, 429})


class DeliveryFailed(Exception):
    """A delivery that did not succeed. `permanent`: the sink refused this event, retrying will
    not help (straight to the DLQ); otherwise it may work later (retried within the budget)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Sink(Protocol):
    """One subscription's destination."""

    @property
    def name(self) -> str:
        """What it is, for errors and status: `webhook http://host:port/path`."""
        ...

    @property
    def batch_max(self) -> int:
        """Events per delivery at most: above 1, a lane hands `deliver_batch` what waits."""
        ...

    def deliver(self, event: ChangeEvent) -> None:
        """Deliver `event` once (no retry here); raise `DeliveryFailed`."""
        ...

    def deliver_batch(self, events: Sequence[ChangeEvent]) -> None:
        """Deliver `events` (of one partition, in order) at once, all or none as far as the
        bus knows: a failure means the whole batch is tried again."""
        ...

    def close(self) -> None: ...


# -- webhook ------------------------------------------------------------------------------------


def sign(body: bytes, secret: bytes) -> str:
    """The `X-Tthc-Signature` of a body: `sha256=` + hex HMAC-SHA256 of the exact bytes."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: bytes, header: str) -> bool:
    """What a receiver does: compare, in constant time, the header with the body's signature."""
    return hmac.compare_digest(sign(body, secret), header)


def classify_status(status: int) -> bool | None:
    """None: delivered (2xx); True: permanent (a 4xx other than 408/425/429, or a redirect we do
    not follow); False: retryable (5xx, 408, 425, 429)."""
    if 200 <= status < 300:
        return None
    if 400 <= status < 500:
        return status not in RETRYABLE_4XX
    # 5xx: retry; 1xx/3xx: the URL is wrong, retrying the same URL will not help
    return status < 500


def _safe_url(url: str) -> str:
    """The URL without its query and credentials: errors must not carry what they might hold."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class WebhookDelivery:
    """HTTP POST of the event's JSON to a URL, on one kept-alive `requests` session.

    With `batch_max` above 1, the events waiting in a partition go `batch_max` at most to a
    POST, `{"events": [...]}` in order (the one-event POST costs more CPU, client and receiver
    side, than everything else on the sync path). The receiver then dedupes by each event's
    `message_id`: the same events may come again in other batches after a restart. The
    `Idempotency-Key` of a batch names its exact events (a hash of their ids), and
    `X-Tthc-Batch-Size` their number.

    requests rather than an asyncio client: the bus already depends on it (the REST adapters),
    a subscription delivers each partition in order, one request at a time, so the concurrency
    is the partitions' and a small thread pool carries it; and the same sink serves the
    synchronous `dlq replay` command unchanged.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_s: float,
        pool_size: int = 8,
        batch_max: int = 1,
    ) -> None:
        if not secret:
            raise ValueError("a webhook sink needs a non-empty secret")
        if batch_max < 1:
            raise ValueError(f"batch_max must be >= 1, got {batch_max}")
        self.url = url
        self.batch_max = batch_max
        self._secret = secret
        self._timeout_s = timeout_s
        self.name = f"webhook {_safe_url(url)}"
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def request_of(self, event: ChangeEvent) -> tuple[bytes, dict[str, str]]:
        """The exact body and headers POSTed for `event`."""
        body = event.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            H_IDEMPOTENCY_KEY: event.message_id,
            H_EVENT_TYPE: event.event_type,
            H_SIGNATURE: sign(body, self._secret),
        }
        return body, headers

    def batch_request_of(self, events: Sequence[ChangeEvent]) -> tuple[bytes, dict[str, str]]:
        """The exact body and headers POSTed for a batch of `events`."""
        body = b'{"events":[' + b",".join(e.model_dump_json().encode() for e in events) + b"]}"
        ids = "\n".join(event.message_id for event in events).encode()
        headers = {
            "Content-Type": "application/json",
            H_IDEMPOTENCY_KEY: "batch-" + hashlib.sha256(ids).hexdigest()[:32],
            H_BATCH_SIZE: str(len(events)),
            H_SIGNATURE: sign(body, self._secret),
        }
        return body, headers

    def deliver(self, event: ChangeEvent) -> None:
        self._post(*self.request_of(event))

    def deliver_batch(self, events: Sequence[ChangeEvent]) -> None:
        if len(events) == 1:
            self.deliver(events[0])
            return
        self._post(*self.batch_request_of(events))

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = self._session.post(
                self.url, data=body, headers=headers, timeout=self._timeout_s, allow_redirects=False
            )
        except requests.Timeout:
            raise DeliveryFailed(
                f"{self.name}: no answer within {self._timeout_s:g} s", permanent=False
            ) from None
        except requests.RequestException as exc:  # its text quotes the URL: name the class
            raise DeliveryFailed(f"{self.name}: {type(exc).__name__}", permanent=False) from None
        with response:
            permanent = classify_status(response.status_code)
        if permanent is None:
            return
        raise DeliveryFailed(
            f"{self.name}: HTTP {response.status_code} {response.reason or ''}".rstrip(),
            permanent=permanent,
        )

    def close(self) -> None:
        self._session.close()


# -- update of another national database --------------------------------------------------------


class Updater(Protocol):
    """What the update sink needs of a national database: an adapter's `update`
    (`adapters.base.Adapter` satisfies it; bus/tooling builds it from the registry)."""

    def update(
        self, operation: str, payload: dict[str, Any], *, idempotency_key: str, timeout: float
    ) -> object: ...


def update_payload(event: ChangeEvent) -> dict[str, Any]:
    """What an update operation receives: the event's identity, then its data."""
    return {
        "entity": event.entity,
        "entity_kind": event.entity_kind,
        "event_type": event.event_type,
        "event_id": event.message_id,
        "occurred_at": event.occurred_at.isoformat(),
        **event.data,
    }


class UpdateDelivery:
    """An update operation of another national database, keyed by the event id and the
    operation (the adapter applies an idempotency key at most once). A `SourceError` that is
    not `retryable` is permanent; the retryable ones (unavailable, timeout, a fault of its own)
    are retried."""

    def __init__(self, source: str, operation: str, updater: Updater, *, timeout_s: float) -> None:
        self.source = source
        self.operation = operation
        self._updater = updater
        self._timeout_s = timeout_s
        self.name = f"update {source}.{operation}"

    batch_max = 1  # one update call per event

    def deliver_batch(self, events: Sequence[ChangeEvent]) -> None:
        for event in events:  # each keyed: what went through before a failure is not redone
            self.deliver(event)

    def deliver(self, event: ChangeEvent) -> None:
        try:
            self._updater.update(
                self.operation,
                update_payload(event),
                idempotency_key=self.idempotency_key(event),
                timeout=self._timeout_s,
            )
        except SourceError as exc:  # its message is written to carry no personal data
            raise DeliveryFailed(
                f"{self.name}: {exc.code}: {exc.detail}"[:500], permanent=not exc.retryable
            ) from None
        except Exception as exc:  # the adapter's bug: where, not what
            raise DeliveryFailed(
                f"{self.name}: internal error: {exception_site(exc)}", permanent=False
            ) from None

    def idempotency_key(self, event: ChangeEvent) -> str:
        """The event id and the operation: one event may drive several operations of the same
        database (a death stops the participation and opens a funeral case), and a database
        applies a key once, whatever the operation."""
        return f"{event.message_id}:{self.operation}"

    def close(self) -> None:
        close = getattr(self._updater, "close", None)
        if callable(close):
            close()
