"""The sandbox population service over real HTTP, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import uvicorn
from starlette.applications import Starlette

from adapters.population import PopulationAdapter
from bus.settings import SourceSettings
from sandbox.population.generator import PopulationGenerator
from sandbox.server import build_app

COUNT, SEED = 500, 7


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningSandbox:
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/dancu"

    def set_faults(self, **faults: object) -> None:
        response = requests.put(
            f"{self.base_url}/_sandbox/faults/population", json=faults, timeout=5
        )
        response.raise_for_status()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_sandbox(port: int | None = None) -> RunningSandbox:
    port = port or free_port()
    app = build_app(count=COUNT, seed=SEED)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sandbox-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the sandbox did not start on port {port}")
        time.sleep(0.01)
    return RunningSandbox(app, server, thread, port)


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
    """The shared sandbox, with its faults switched off again after the test."""
    sandbox.set_faults()
    yield sandbox
    sandbox.set_faults()


@pytest.fixture
def adapter(faultless: RunningSandbox) -> Iterator[PopulationAdapter]:
    population = PopulationAdapter("population", source_settings(faultless.url))
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
