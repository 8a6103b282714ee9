"""The bus's sync path, for sync-throughput: feed -> normalized event -> subscription -> sink.

A stack of its own (on the same broker as the raw pipe) whose population sandbox starts with a
backlog of ``events`` changes. The population database is configured once more under a source
name of this run's own (`bench<n>`), so that its stream, its cursor and its event ids are this
run's, whatever else runs on the broker; the worker's feed connector polls it (SOAP pages),
maps each change to a `ChangeEvent` on `tthc.sync.bench<n>.change`, and one subscription
delivers every event to a webhook served here (one signed POST per event, as a subscriber's
endpoint gets them). Timed from the first delivery to the last: the events a second that reach
the sink once each (by idempotency key).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import StackEndpoints

SUBSCRIPTION = "bench-webhook"
ADAPTER = "population"
# Longest wait for the whole backlog, beyond a floor rate of deliveries.
FLOOR_EVENTS_PER_S = 100.0


class Receiver:
    """The subscriber's webhook: counts distinct idempotency keys and when they came."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.posts = 0
        self.first: float | None = None
        self.last: float | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                receiver.received(self.headers.get("Idempotency-Key") or "")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    def received(self, key: str) -> None:
        now = time.perf_counter()
        with self._lock:
            self.posts += 1
            self.keys.add(key)
            self.first = now if self.first is None else self.first
            self.last = now

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The stack's children read their settings from the environment they inherit."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure_bus_sync_path(stack: StackEndpoints, events: int) -> dict[str, Any]:
    """Deliver a backlog of ``events`` population changes through the bus to a webhook."""
    from bus.settings import load_settings
    from bus.tooling.devstack import DevStack

    bootstrap = stack.need("bootstrap_servers")
    run = int(time.time() * 1000) % 10**9
    source = f"bench{run}"
    base = load_settings().sources[ADAPTER]
    with Receiver() as receiver:
        subscription = {
            "name": SUBSCRIPTION,
            "sources": [source],
            "sink": {"kind": "webhook", "url": receiver.url, "secret": "bench-secret"},
        }
        env = {
            "TTHC_BUS_SANDBOX__CHANGES_BACKLOG": str(events),
            f"TTHC_BUS_SOURCES__{source.upper()}__ADAPTER": ADAPTER,
            f"TTHC_BUS_SOURCES__{source.upper()}__URL": base.url,
            "TTHC_BUS_SYNC__FEEDS__SOURCES": json.dumps([source]),
            "TTHC_BUS_SYNC__FEEDS__PAGE_SIZE": "1000",
            "TTHC_BUS_SYNC__SUBSCRIPTIONS": json.dumps([subscription]),
            # Groups of their own: the stream is read from its start.
            "TTHC_BUS_WORKER__APP_ID": f"bench-sync-{run}",
        }
        with (
            _environment(env),
            tempfile.TemporaryDirectory(prefix="bench-sync-") as workdir,
        ):
            settings = load_settings(kafka={"bootstrap_servers": bootstrap})
            # Its workers and the bench stack's share the lookup request topic in groups of
            # their own: a lookup through this stack's gateway may be answered by the other's
            # worker, which does not know its keys (403). The sync path needs no lookup.
            with DevStack(settings, workdir=Path(workdir), wait_for_lookup=False):
                deadline = time.monotonic() + 120 + events / FLOOR_EVENTS_PER_S
                while len(receiver.keys) < events and time.monotonic() < deadline:
                    time.sleep(0.5)
        delivered = len(receiver.keys)
        elapsed = (receiver.last or 0.0) - (receiver.first or 0.0)
        return {
            "source": source,
            "events": delivered,
            "expected": events,
            "posts": receiver.posts,
            "duplicates": receiver.posts - delivered,
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(delivered / elapsed, 1) if elapsed > 0 else None,
            "complete": delivered == events,
        }
