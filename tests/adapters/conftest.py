"""The adapter tests' shared sandbox (tests/sandbox_server.py), over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapters.population import PopulationAdapter
from bus.settings import SourceSettings
from bus.tooling.kafka_local import free_port
from sandbox.population.generator import PopulationGenerator
from tests.sandbox_server import RunningSandbox, serve_sandbox

# tests/contract and the adapter tests `tthc-bus adapter new` writes import these from here.
__all__ = ["RunningSandbox", "population_url", "source_settings", "start_sandbox"]

COUNT, SEED = 500, 7
POPULATION_PATH = "/dancu"


def start_sandbox(port: int | None = None) -> RunningSandbox:
    """The shared sandbox's app (COUNT citizens from SEED), on `port` or a free one."""
    return serve_sandbox(COUNT, SEED, port)


def population_url(running: RunningSandbox) -> str:
    return running.base_url + POPULATION_PATH


def source_settings(url: str, timeout_s: float = 3.0) -> SourceSettings:
    return SourceSettings(
        adapter="adapters.population:PopulationAdapter",
        url=url,
        datasets=["identity"],
        timeout_s=timeout_s,
        concurrency=4,
    )


@pytest.fixture(scope="session")
def sandbox() -> Iterator[RunningSandbox]:
    running = start_sandbox()
    yield running
    running.stop()


@pytest.fixture
def faultless(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    """The shared sandbox, with the population source's faults switched off after the test."""
    sandbox.set_faults("population")
    yield sandbox
    sandbox.set_faults("population")


@pytest.fixture
def adapter(faultless: RunningSandbox) -> Iterator[PopulationAdapter]:
    population = PopulationAdapter("population", source_settings(population_url(faultless)))
    yield population
    population.close()


@pytest.fixture(scope="session")
def generator() -> PopulationGenerator:
    return PopulationGenerator(count=COUNT, seed=SEED)


@pytest.fixture
def sandbox_on() -> Iterator[_SandboxStarter]:
    """Start extra sandboxes (on a given port) for tests that stop or delay one; all stopped."""
    starter = _SandboxStarter()
    yield starter
    starter.stop_all()


class _SandboxStarter:
    def __init__(self) -> None:
        self.started: list[RunningSandbox] = []

    def __call__(self, port: int | None = None) -> RunningSandbox:
        running = start_sandbox(port)
        self.started.append(running)
        return running

    @staticmethod
    def free_port() -> int:
        return free_port()

    @staticmethod
    def settings(url: str, timeout_s: float = 3.0) -> SourceSettings:
        return source_settings(url, timeout_s)

    def stop_all(self) -> None:
        for running in self.started:
            running.stop()
