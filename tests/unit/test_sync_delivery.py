"""How a subscription's delivery classifies failures, retries them and signs what it sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import orjson
import pytest

from bus.errors import SourceRejected, SourceTimeout, SourceUnavailable
from bus.schemas.change import ChangeEvent, change_event_id
from bus.sync.retry import RetryPolicy, deliver_with_retries
from bus.sync.sinks import (
    H_BATCH_SIZE,
    H_IDEMPOTENCY_KEY,
    H_SIGNATURE,
    DeliveryFailed,
    UpdateDelivery,
    WebhookDelivery,
    classify_status,
    sign,
    verify_signature,
)
from bus.tooling.sync_cli import mask

FAST = RetryPolicy(max_attempts=4, first_s=0.001, max_s=0.004)


def death(sequence: int = 41, entity: str = "001089012345") -> ChangeEvent:
    return ChangeEvent(
        message_id=change_event_id("civil", sequence),
        source="civil",
        sequence=sequence,
        event_type="CitizenDeceased",
        entity=entity,
        entity_kind="personal_id",
        occurred_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        native_kind="KHAI_TU",
        data={
            "death_registration_id": f"KT-2026-{sequence}",
            "date_of_death": "2026-11-30",
            "registered_on": "2026-12-01",
        },
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (204, None),
        (400, True),
        (404, True),
        (409, True),
        (422, True),
        (408, False),
        (425, False),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
        (301, True),
    ],
)
def test_a_4xx_is_the_sink_refusing_the_event_and_5xx_408_429_are_worth_another_try(
    status: int, expected: bool | None
) -> None:
    assert classify_status(status) is expected


class FlakySink:
    name = "test sink"

    def __init__(self, failures: list[DeliveryFailed]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def deliver(self, event: ChangeEvent) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)

    def close(self) -> None:
        pass


async def test_a_retryable_failure_is_retried_until_the_sink_takes_the_event() -> None:
    sink = FlakySink([DeliveryFailed("503", permanent=False)] * 3)
    seen: list[str] = []
    assert await deliver_with_retries(sink, death(), FAST, on_failure=seen.append) is None
    assert sink.calls == 4 and seen == ["503"] * 3


async def test_past_the_budget_the_event_is_given_up_with_the_last_error_and_its_times() -> None:
    sink = FlakySink([DeliveryFailed(f"503 #{n}", permanent=False) for n in range(10)])
    given_up = await deliver_with_retries(sink, death(), FAST)
    assert given_up is not None
    assert (given_up.attempts, given_up.reason, given_up.permanent) == (4, "503 #3", False)
    assert given_up.first_failed <= given_up.last_failed
    assert sink.calls == 4


async def test_a_permanent_failure_is_not_retried() -> None:
    sink = FlakySink([DeliveryFailed("HTTP 422", permanent=True)])
    given_up = await deliver_with_retries(sink, death(), FAST)
    assert given_up is not None and given_up.permanent and given_up.attempts == 1
    assert sink.calls == 1


def test_the_backoff_doubles_from_the_first_pause_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, first_s=0.2, max_s=1.0)
    assert [policy.pause_s(n, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
    ]
    assert policy.pause_s(1, rand=lambda: 0.0) == pytest.approx(0.1)
    assert policy.pause_s(9, rand=lambda: 0.0) == pytest.approx(0.5)


# -- the update sink, over an adapter test double --------------------------------------------


class RecordingUpdater:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any], str, float]] = []

    def update(
        self, operation: str, payload: dict[str, Any], *, idempotency_key: str, timeout: float
    ) -> object:
        self.calls.append((operation, payload, idempotency_key, timeout))
        if self.error is not None:
            raise self.error
        return {"applied": True}


def test_the_update_sink_sends_the_event_identity_and_data_keyed_by_event_and_operation() -> None:
    updater = RecordingUpdater()
    sink = UpdateDelivery("population", "remove_permanent_residence", updater, timeout_s=2.5)
    sink.deliver(death())
    [(operation, payload, key, timeout)] = updater.calls
    key_wanted = "civil.41:remove_permanent_residence"  # two operations of one event: two keys
    assert (operation, key, timeout) == ("remove_permanent_residence", key_wanted, 2.5)
    assert payload == {
        "entity": "001089012345",
        "entity_kind": "personal_id",
        "event_type": "CitizenDeceased",
        "event_id": "civil.41",
        "occurred_at": "2026-12-01T09:30:00+00:00",
        "death_registration_id": "KT-2026-41",
        "date_of_death": "2026-11-30",
        "registered_on": "2026-12-01",
    }


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (SourceRejected("population", "no such citizen"), True),
        (SourceUnavailable("population", "HTTP 503"), False),
        (SourceTimeout("population", "no answer in 2.5 s"), False),
        (RuntimeError("a bug in the adapter"), False),
    ],
)
def test_a_source_error_that_is_not_retryable_is_permanent(
    error: Exception, permanent: bool
) -> None:
    sink = UpdateDelivery(
        "population", "remove_permanent_residence", RecordingUpdater(error), timeout_s=1
    )
    with pytest.raises(DeliveryFailed) as failed:
        sink.deliver(death())
    assert failed.value.permanent is permanent
    assert failed.value.reason.startswith("update population.remove_permanent_residence: ")
    assert "001089012345" not in failed.value.reason


# -- the webhook sink, on a real local HTTP server -------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[tuple[bytes, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((body, dict(self.headers.items())))
        status = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.answers, Receiver.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/death?token=abc"
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_posts_the_event_signed_with_its_idempotency_key(receiver: str) -> None:
    sink = WebhookDelivery(receiver, b"s3cret", timeout_s=2)
    event = death()
    sink.deliver(event)
    [(body, headers)] = Receiver.received
    assert ChangeEvent.model_validate_json(body) == event
    assert headers[H_IDEMPOTENCY_KEY] == "civil.41"
    assert headers["X-Tthc-Event-Type"] == "CitizenDeceased"
    assert headers["Content-Type"] == "application/json"
    assert verify_signature(body, b"s3cret", headers[H_SIGNATURE])
    assert not verify_signature(body, b"other", headers[H_SIGNATURE])
    assert headers[H_SIGNATURE] == sign(body, b"s3cret") and sign(body, b"s3cret").startswith(
        "sha256="
    )


def test_the_webhook_names_the_status_and_never_the_query_of_its_url(receiver: str) -> None:
    Receiver.answers = [422, 503]
    sink = WebhookDelivery(receiver, b"s3cret", timeout_s=2)
    with pytest.raises(DeliveryFailed) as refused:
        sink.deliver(death())
    assert refused.value.permanent
    assert refused.value.reason.startswith("webhook http://127.0.0.1:")
    assert "/hooks/death: HTTP 422" in refused.value.reason and "token" not in refused.value.reason
    with pytest.raises(DeliveryFailed) as unavailable:
        sink.deliver(death())
    assert not unavailable.value.permanent and "HTTP 503" in unavailable.value.reason


def test_a_webhook_nobody_listens_on_is_retried() -> None:
    sink = WebhookDelivery("http://127.0.0.1:9/x", b"k", timeout_s=1)
    with pytest.raises(DeliveryFailed) as failed:
        sink.deliver(death())
    assert not failed.value.permanent and "ConnectionError" in failed.value.reason


def test_entity_ids_are_masked_on_screen() -> None:
    assert mask("001089012345") == "0010******45"
    assert mask("0101234567") == "0101****67"
    assert mask("AB123") == "***23"


# -- dead letters and the sinks' composition ----------------------------------------------------


def test_a_dead_letter_keeps_the_record_and_says_why_where_and_when() -> None:
    from bus.codec import encode
    from bus.runtime import Inbound
    from bus.sync.deadletter import DeadLetter, dead_letter_headers
    from bus.sync.retry import GivenUp

    body, headers = encode(death())
    record = Inbound("tthc.sync.civil.change", 2, 17, b"001089012345", body, tuple(headers), 0)
    first, last = datetime(2026, 12, 1, 9, 0, tzinfo=UTC), datetime(2026, 12, 1, 9, 1, tzinfo=UTC)
    failure = GivenUp("webhook http://h/p: HTTP 503", 5, False, first, last)
    parked = Inbound(
        "tthc.dlq.s", 0, 4, record.key, body, tuple(dead_letter_headers(record, "s", failure)), 0
    )

    letter = DeadLetter.from_record(parked)
    assert (letter.reason, letter.attempts, letter.permanent) == (failure.reason, 5, False)
    assert letter.origin == ("tthc.sync.civil.change", 2, 17)
    assert (letter.first_failed, letter.last_failed, letter.replays) == (first, last, 0)
    assert letter.event().message_id == "civil.41" and letter.kept_headers == headers
    # dead-lettered again by a replay: the origin stays, the replays count
    again = dead_letter_headers(letter, "s", failure, replays=1)
    assert DeadLetter.from_record(
        Inbound("tthc.dlq.s", 0, 9, record.key, body, tuple(again), 0)
    ).origin == ("tthc.sync.civil.change", 2, 17)


def test_an_update_sink_naming_an_operation_its_database_does_not_accept_is_refused() -> None:
    from bus.errors import SettingsError
    from bus.settings import Subscription, load_settings
    from bus.tooling.sync_cli import build_sink

    subscription = Subscription.model_validate(
        {
            "name": "death-to-population",
            "sources": ["civil"],
            "sink": {"kind": "update", "source": "population", "operation": "no_such_operation"},
        }
    )
    with pytest.raises(SettingsError, match=r"operation = 'no_such_operation': population accepts"):
        build_sink(load_settings(), subscription)


def test_a_batch_is_one_signed_body_of_its_events_in_order_keyed_by_exactly_them() -> None:
    sink = WebhookDelivery("http://127.0.0.1:9/hook", b"s3cret", timeout_s=1, batch_max=10)
    events = [death(n) for n in (41, 42, 47)]
    body, headers = sink.batch_request_of(events)
    assert [ChangeEvent.model_validate(e) for e in orjson.loads(body)["events"]] == events
    assert verify_signature(body, b"s3cret", headers[H_SIGNATURE])
    assert headers[H_BATCH_SIZE] == "3"
    assert headers[H_IDEMPOTENCY_KEY] == sink.batch_request_of(events)[1][H_IDEMPOTENCY_KEY]
    assert headers[H_IDEMPOTENCY_KEY] != sink.batch_request_of(events[:2])[1][H_IDEMPOTENCY_KEY]
    with pytest.raises(ValueError, match="batch_max"):
        WebhookDelivery("http://127.0.0.1:9/hook", b"s3cret", timeout_s=1, batch_max=0)
