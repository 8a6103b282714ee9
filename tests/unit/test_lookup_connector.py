"""The lookup connector's retries: bounded by attempts and by the request's deadline, only for
errors the source says may pass, and every outcome is a SourceResult."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from adapters.base import Dataset, NativeRecord
from bus.deadline import Deadline
from bus.errors import SourceRejected, SourceTimeout, SourceUnavailable
from bus.schemas import SourceQuery
from bus.settings import SourceSettings
from connectors.lookup import LookupConnector
from connectors.resilience import SourceCall
from tests.unit.recording_outbox import RecordingOutbox


class ScriptedAdapter:
    """Raises the scripted errors in turn, then answers with a sandbox citizen."""

    datasets: ClassVar[tuple[Dataset, ...]] = (Dataset("identity", "population"),)

    def __init__(self, errors: list[Exception], delay_s: float = 0) -> None:
        self.errors = list(errors)
        self.record = {"SoDinhDanh": "001090000001"}
        self.delay_s = delay_s
        self.calls = 0

    def fetch(self, dataset: str, subject: Any, **_: Any) -> NativeRecord:
        self.calls += 1
        time.sleep(self.delay_s)
        if self.errors:
            raise self.errors.pop(0)
        return NativeRecord("population", dataset, self.record, None)

    def close(self) -> None:
        pass


def connector(adapter: ScriptedAdapter, retries: int = 2) -> LookupConnector:
    settings = SourceSettings(
        adapter="x:y",
        url="http://127.0.0.1:9",
        datasets=["identity"],
        retries=retries,
        retry_backoff_s=0.01,
    )
    return LookupConnector("population", settings, adapter, RecordingOutbox())  # type: ignore[arg-type]


def query(seconds: float = 5.0) -> SourceQuery:
    return SourceQuery(
        request_id="r1",
        dataset="population.identity",
        subject={"personal_id": "001090000001"},
        deadline=datetime.now(UTC) + timedelta(seconds=seconds),
        requester_agency="H26",
    )


def fetch(lookup: LookupConnector, q: SourceQuery) -> NativeRecord:
    """The connector's middleware chain, run as its pool thread runs it."""
    call = SourceCall(
        "population",
        q.dataset.split(".", 1)[1],
        q.subject,
        Deadline.of(q.deadline),
        q.request_id,
        q.requester_agency,
    )
    return lookup._call(call)


def test_a_passing_failure_is_retried_and_the_answer_returned() -> None:
    adapter = ScriptedAdapter([SourceUnavailable("population", "HTTP 503")])
    record = fetch(connector(adapter), query())
    assert record.data == {"SoDinhDanh": "001090000001"}
    assert adapter.calls == 2


def test_retries_stop_after_the_configured_attempts() -> None:
    adapter = ScriptedAdapter([SourceUnavailable("population", "HTTP 503")] * 5)
    try:
        fetch(connector(adapter, retries=2), query())
    except SourceUnavailable:
        pass
    else:
        raise AssertionError("expected the last SourceUnavailable")
    assert adapter.calls == 3


def test_a_rejection_is_not_retried_and_becomes_an_error_result() -> None:
    adapter = ScriptedAdapter([SourceRejected("population", "02 invalid input")])
    result = asyncio.run(connector(adapter).answer(query()))
    assert adapter.calls == 1
    assert result.outcome == "error"
    assert result.error is not None
    assert (result.error.code, result.error.retryable) == ("rejected", False)


def test_no_retry_starts_when_the_deadline_leaves_no_time_for_it() -> None:
    """Two slow failures use up a 0.3 s deadline: of ten retries allowed, none more starts."""
    adapter = ScriptedAdapter([SourceUnavailable("population", "HTTP 503")] * 11, delay_s=0.15)
    with contextlib.suppress(SourceUnavailable, SourceTimeout):
        fetch(connector(adapter, retries=10), query(seconds=0.3))
    assert adapter.calls == 2
