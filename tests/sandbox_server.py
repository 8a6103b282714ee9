"""The sandbox app under a real uvicorn in a background thread, for tests that speak HTTP to it.

`serve_sandbox(count, seed)` builds the app of `sandbox.server` over a World of `count` citizens
from `seed`, serves it on a loopback port (a free one, or the one asked for) and returns once it
answers; `served_sandbox` does the same for a `with` block and stops it after. (A port to
start one on later: `bus.tooling.kafka_local.free_port`.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import uvicorn
from starlette.applications import Starlette

from sandbox.server import build_app
from sandbox.world import World

STARTUP_S = 10.0


@dataclass
class RunningSandbox:
    """A sandbox app being served: its URL, its World and simulated sources, its faults."""

    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def world(self) -> World:
        world: World = self.app.state.world
        return world

    def source(self, name: str) -> Any:
        """The simulated source `name` (e.g. "civil") the app serves."""
        return self.app.state.sources[name]

    def set_faults(self, source: str, **faults: object) -> None:
        """Set the faults of `source` through the admin endpoint; none given: all off."""
        url = f"{self.base_url}/_sandbox/faults/{source}"
        requests.put(url, json=faults, timeout=5).raise_for_status()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def serve_sandbox(
    count: int,
    seed: int,
    port: int | None = None,
    *,
    changes_backlog: int = 0,
    changes_rate: float = 0.0,
    state_file: Path | None = None,
) -> RunningSandbox:
    """The sandbox of `count` citizens from `seed`, answering on `port` (or a free port), with
    `changes_backlog` changes in each feed, `changes_rate` live changes a second, and what
    changed kept in `state_file` (if given) across a stop and a new start."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds its own
    sock.bind(("127.0.0.1", port or 0))
    bound: int = sock.getsockname()[1]
    app = build_app(
        count,
        seed,
        changes_backlog=changes_backlog,
        changes_rate=changes_rate,
        state_file=state_file,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{bound}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the sandbox did not start on port {bound}")
        time.sleep(0.01)
    return RunningSandbox(app, server, thread, sock, bound)


@contextmanager
def served_sandbox(count: int, seed: int) -> Iterator[RunningSandbox]:
    """`serve_sandbox` for the length of a `with` block."""
    running = serve_sandbox(count, seed)
    try:
        yield running
    finally:
        running.stop()
