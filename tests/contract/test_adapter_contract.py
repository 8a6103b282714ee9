"""One contract for every adapter: parametrized over the sources in settings.toml, each asked
over real HTTP of its own sandbox database, which injects the faults.

A new adapter is covered by adding its `[sources.<name>]` and its sandbox package: nothing here
changes. Each source must: find what its sandbox holds and map it to its schema; say not found
for a well-formed subject it does not hold; turn each fault into its own `SourceError`; open its
circuit breaker on an outage and close it when the source is back; and its mappings must fill
every schema field they map from some record of the sample.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.base import Adapter
from bus.deadline import Deadline
from bus.errors import (
    MalformedAnswer,
    SourceError,
    SourceFault,
    SourceNotFound,
    SourceRefused,
    SourceTimeout,
    SourceUnavailable,
)
from bus.schemas.lookup import Subject
from bus.settings import load_settings
from connectors.catalog import LoadedSource, load_sources
from connectors.lookup import build_chain
from connectors.resilience import SourceCall
from sandbox.registry import SimulatedSource
from sandbox.world import World, mst_check_digit
from tests.adapters.conftest import RunningSandbox, start_sandbox

SETTINGS = load_settings()
SOURCES = load_sources(SETTINGS)
SAMPLE = 40


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    running = start_sandbox()
    yield running
    running.stop()


@pytest.fixture(params=sorted(SOURCES), ids=sorted(SOURCES))
def source(request: pytest.FixtureRequest, sandbox: RunningSandbox) -> Iterator[Contract]:
    contract = Contract(SOURCES[request.param], sandbox)
    contract.set_faults()
    yield contract
    contract.set_faults()
    contract.adapter.close()


class Contract:
    """One source under test: its adapter pointed at the test sandbox, and its sandbox side."""

    def __init__(self, loaded: LoadedSource, sandbox: RunningSandbox) -> None:
        self.loaded = loaded
        self.sandbox = sandbox
        path = loaded.settings.url.split("/", 3)[3] if loaded.settings.url.count("/") >= 3 else ""
        self.settings = loaded.settings.model_copy(
            update={"url": f"{sandbox.base_url}/{path}", "timeout_s": 1.0, "concurrency": 4}
        )
        self.adapter: Adapter = loaded.adapter_class(loaded.name, self.settings)
        self.simulated: SimulatedSource = sandbox.app.state.sources[loaded.name]
        self.world: World = sandbox.app.state.world

    def set_faults(self, **faults: Any) -> None:
        import requests

        url = f"{self.sandbox.base_url}/_sandbox/faults/{self.loaded.name}"
        requests.put(url, json=faults, timeout=5).raise_for_status()

    def subject(self, value: str, kind: str) -> Subject:
        return Subject(**{kind: value})

    def fetch(self, dataset: str, value: str, kind: str, timeout: float = 1.0) -> Any:
        return self.adapter.fetch(
            dataset,
            self.subject(value, kind),
            timeout=timeout,
            request_id="contract-1",
            requester_agency="H26",
        )

    def held(self, kind: str, n: int = SAMPLE) -> list[str]:
        if kind == self.simulated.subject:
            return self.simulated.sample(n, seed=3)
        # A dataset asked by another kind than the source's sample (e.g. enterprises by their
        # representative's personal id): the world's subjects that have one.
        return [
            self.world.population.personal_id(p)
            for p in range(self.world.count)
            if self.world.represented_by(p)
        ][:n]

    def absent(self, kind: str) -> str:
        """A well-formed subject the world does not hold."""
        if kind == "personal_id":
            for serial in range(999_999, 0, -1):
                candidate = f"001090{serial:06d}"
                if self.world.index_of(candidate) is None:
                    return candidate
        for serial in range(99_999_999, 0, -1):
            first_nine = f"9{serial:08d}"
            check = mst_check_digit(first_nine)
            code = f"{first_nine}{check}"
            if check is not None and self.world.enterprise_index(code) is None:
                return code
        raise AssertionError("no absent subject found")

    def datasets(self) -> list[tuple[str, str, Any]]:
        return [(d.name, d.subject, m) for d, m in self.loaded.datasets]


def test_found_records_map_to_their_schema(source: Contract) -> None:
    for dataset, kind, mapping in source.datasets():
        subjects = source.held(kind)
        assert subjects, f"{source.loaded.name}.{dataset}: the sandbox holds no subject"
        mapped = 0
        for value in subjects:
            try:
                record = source.fetch(dataset, value, kind)
            except SourceNotFound:
                continue  # a source may hold a subject for one dataset and not another
            model = mapping.apply(record.data)
            assert isinstance(model, mapping.model)
            mapped += 1
        assert mapped >= len(subjects) // 2, f"{dataset}: only {mapped} of {len(subjects)} found"


def test_mappings_cover_every_field_of_their_schema(source: Contract) -> None:
    for dataset, _, mapping in source.datasets():
        mapped = {step.target for step in mapping.steps}
        assert set(mapping.model.model_fields) <= mapped, (
            f"{dataset}: schema fields without a mapping: "
            f"{sorted(set(mapping.model.model_fields) - mapped)}"
        )


def test_mappings_fill_what_they_map_from_real_answers(source: Contract) -> None:
    """Nearly every mapped field is filled by some record of a sample (a field may be filled
    only by one kind of request, e.g. a branch code asked of an enterprise profile)."""
    for dataset, kind, mapping in source.datasets():
        seen: set[str] = set()
        for value in source.held(kind, 120):
            try:
                data = mapping.apply(source.fetch(dataset, value, kind).data)
            except SourceNotFound:
                continue
            seen |= set(data.model_dump(exclude_none=True))
        mapped = {step.target for step in mapping.steps}
        never = sorted(mapped - seen)
        assert len(never) <= max(1, len(mapped) // 10), f"{dataset}: never filled: {never}"


def test_a_subject_it_does_not_hold_is_not_found(source: Contract) -> None:
    """For the datasets asked by the source's own kind of subject (a reverse lookup, such as the
    enterprises a person represents, may answer an empty list instead)."""
    for dataset, kind, _ in source.datasets():
        if kind != source.simulated.subject:
            continue
        with pytest.raises(SourceNotFound):
            source.fetch(dataset, source.absent(kind), kind)


FAULTS: list[tuple[dict[str, Any], tuple[type[SourceError], ...]]] = [
    ({"error_rate": 1.0}, (SourceUnavailable, SourceFault)),
    ({"error_rate": 1.0, "error_status": 503}, (SourceUnavailable, SourceFault)),
    ({"malformed_rate": 1.0}, (MalformedAnswer,)),
    ({"outage": True}, (SourceUnavailable,)),
    ({"latency_ms": 1500}, (SourceTimeout,)),
    ({"hang": True}, (SourceTimeout,)),
]


@pytest.mark.parametrize(
    ("faults", "expected"),
    FAULTS,
    ids=["error", "error-503", "malformed", "outage", "slow", "hang"],
)
def test_each_fault_is_its_own_source_error(
    source: Contract, faults: dict[str, Any], expected: tuple[type[SourceError], ...]
) -> None:
    dataset, kind, _ = source.datasets()[0]
    subject = source.held(kind, 1)[0]
    source.fetch(dataset, subject, kind)  # warm: a WSDL is loaded before the fault
    source.set_faults(**faults)
    started = time.monotonic()
    with pytest.raises(expected) as raised:
        source.fetch(dataset, subject, kind, timeout=0.5)
    assert time.monotonic() - started < 2.0, "the fault held the call past its timeout"
    assert raised.value.retryable


def test_breaker_opens_on_an_outage_and_closes_when_the_source_is_back(source: Contract) -> None:
    settings = source.settings.model_copy(
        update={"retries": 0, "breaker_failures": 2, "breaker_reset_s": 0.3}
    )
    call_source, breaker = build_chain(source.loaded.name, settings, source.adapter)
    dataset, kind, _ = source.datasets()[0]
    subject = source.subject(source.held(kind, 1)[0], kind)

    def call() -> Any:
        return call_source(
            SourceCall(source.loaded.name, dataset, subject, Deadline.after(2), "c-1", "H26")
        )

    call()
    source.set_faults(outage=True)
    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            call()
    with pytest.raises(SourceRefused):
        call()
    assert breaker.state == "open"
    source.set_faults()
    time.sleep(0.35)
    assert call().data
    assert breaker.state == "closed"
