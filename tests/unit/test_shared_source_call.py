"""Datasets one native call answers (population's identity and residence) share that call when
one request asks them together: over real HTTP/SOAP to the sandbox, one TraCuuThongTinCongDan
answers both, each mapped its own way; another request, or a failure, is not shared wrongly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.population import OPERATION
from bus.schemas import SourceQuery
from bus.settings import load_settings
from connectors.catalog import load_sources
from connectors.lookup import LookupConnector
from tests.sandbox_server import RunningSandbox, serve_sandbox
from tests.unit.recording_outbox import RecordingOutbox

COUNT, SEED = 500, 7


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    running = serve_sandbox(COUNT, SEED)
    yield running
    running.stop()


class Counted:
    """The population connector over the sandbox, counting the adapter's native calls."""

    def __init__(self, sandbox: RunningSandbox, url: str | None = None) -> None:
        source = f"{url or sandbox.base_url}/dancu"
        settings = load_settings(sources={"population": {"url": source}})
        loaded = load_sources(settings, ["population"])["population"]
        self.adapter = loaded.new_adapter()
        self.calls: list[str] = []
        real = self.adapter.call  # type: ignore[attr-defined]

        def counted(operation: str, values: Any, timeout: float) -> Any:
            self.calls.append(operation)
            return real(operation, values, timeout)

        self.adapter.call = counted  # type: ignore[attr-defined]
        self.connector = LookupConnector(
            "population",
            loaded.settings,
            self.adapter,
            RecordingOutbox(),  # type: ignore[arg-type]
        )


def query(dataset: str, personal_id: str, request_id: str = "r-1") -> SourceQuery:
    return SourceQuery(
        request_id=request_id,
        dataset=dataset,
        subject={"personal_id": personal_id},
        deadline=datetime.now(UTC) + timedelta(seconds=5),
        requester_agency="H26",
    )


async def test_identity_and_residence_asked_together_are_one_call_each_mapped(
    sandbox: RunningSandbox,
) -> None:
    counted = Counted(sandbox)
    person = sandbox.world.population.personal_id(3)
    try:
        counted.adapter.operations(5.0)  # the WSDL first: it is not what is counted
        identity, residence = await asyncio.gather(
            counted.connector.answer(query("population.identity", person)),
            counted.connector.answer(query("population.residence", person)),
        )
        assert counted.calls == [OPERATION]
        assert identity.outcome == residence.outcome == "found"
        assert identity.result is not None and residence.result is not None
        assert identity.result.dataset == "population.identity"
        assert residence.result.dataset == "population.residence"
        assert identity.result.data.keys() != residence.result.data.keys()
        assert identity.result.data["personal_id"] == person

        # Another request, even about the same person, makes its own call; so does a query
        # asked after the first call ended.
        await asyncio.gather(
            counted.connector.answer(query("population.identity", person, "r-2")),
            counted.connector.answer(query("population.residence", person, "r-3")),
        )
        await counted.connector.answer(query("population.residence", person))
        assert counted.calls == [OPERATION] * 4
    finally:
        counted.connector.close()


async def test_a_shared_call_that_fails_fails_each_query_with_the_source_error(
    sandbox: RunningSandbox,
) -> None:
    counted = Counted(sandbox, "http://127.0.0.1:9")  # nothing listens there
    person = sandbox.world.population.personal_id(3)
    try:
        identity, residence = await asyncio.gather(
            counted.connector.answer(query("population.identity", person)),
            counted.connector.answer(query("population.residence", person)),
        )
        assert identity.outcome == residence.outcome == "error"
        assert identity.error is not None and residence.error is not None
        assert identity.error.code == residence.error.code == "unavailable"
        assert residence.error.dataset == "population.residence"
    finally:
        counted.connector.close()
