"""The whole bus as child processes (sandbox, worker, gateway) on the session's real broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bus.settings import load_settings
from bus.tooling.devstack import DevStack
from sandbox.population.generator import PopulationGenerator

SANDBOX_COUNT = 5_000


@pytest.fixture(scope="session")
def stack(kafka_broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:  # type: ignore[no-untyped-def]
    settings = load_settings(kafka={"bootstrap_servers": kafka_broker.bootstrap_servers})
    with DevStack(
        settings, workdir=tmp_path_factory.mktemp("stack"), sandbox_count=SANDBOX_COUNT
    ) as running:
        yield running


@pytest.fixture(scope="session")
def population() -> PopulationGenerator:
    """The same synthetic citizens the stack's sandbox serves."""
    return PopulationGenerator(SANDBOX_COUNT, load_settings().sandbox.seed)
