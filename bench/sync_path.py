"""The bus's sync path, for sync-throughput: feed -> normalized event -> subscription -> sink.

A stack of its own (on the same broker as the raw pipe) whose population sandbox starts with a
backlog of ``events`` changes. The population database is configured once more under a source
name of this run's own (`bench<n>`), so that its stream, its cursor and its event ids are this
run's, whatever else runs on the broker; the worker's feed connector polls it (SOAP pages),
maps each change to a `ChangeEvent` on `tthc.sync.bench<n>.change`, and one subscription
delivers every event to a webhook served here: one signed POST per event (`batch_max` 1, the
default), or what waits in a partition up to `batch_max` events a POST. Timed from the first
delivery to the last: the events a second that reach the sink once each (by event id), and the
CPU time of the stack's worker and sandbox in that window, per event.
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

import orjson

from bench.common import StackEndpoints
from bench.cpu import cpu_per_lookup, read_ticks
from bus.sync.sinks import H_BATCH_SIZE, H_IDEMPOTENCY_KEY

SUBSCRIPTION = "bench-webhook"
ADAPTER = "population"
# Longest wait for the whole backlog, beyond a floor rate of deliveries.
FLOOR_EVENTS_PER_S = 100.0


class Receiver:
    """The subscriber's webhook: counts distinct event ids and when they came; reads the CPU
    ticks of `watched` processes at the first event and once `expected` have come."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.events = 0  # with repeats
        self.posts = 0
        self.first: float | None = None
        self.last: float | None = None
        self.watched: dict[str, int] = {}
        self.expected = 0
        self.ticks_first: dict[str, int | None] | None = None
        self.ticks_done: dict[str, int | None] | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get(H_BATCH_SIZE) is not None:
                    ids = [event["message_id"] for event in orjson.loads(body)["events"]]
                else:
                    ids = [self.headers.get(H_IDEMPOTENCY_KEY) or ""]
                receiver.received(ids)
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

    def received(self, ids: list[str]) -> None:
        now = time.perf_counter()
        with self._lock:
            if self.first is None:
                self.first = now
                self.ticks_first = read_ticks(self.watched)
            self.posts += 1
            self.events += len(ids)
            self.keys.update(ids)
            self.last = now
            if self.ticks_done is None and self.expected and len(self.keys) >= self.expected:
                self.ticks_done = read_ticks(self.watched)

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


def measure_bus_sync_path(stack: StackEndpoints, events: int, batch_max: int = 1) -> dict[str, Any]:
    """Deliver a backlog of ``events`` population changes through the bus to a webhook, up to
    ``batch_max`` events a POST."""
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
            "sink": {
                "kind": "webhook",
                "url": receiver.url,
                "secret": "bench-secret",
                "batch_max": batch_max,
            },
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
            with DevStack(settings, workdir=Path(workdir), wait_for_lookup=False) as running:
                receiver.watched = {
                    name: running.children[name].process.pid for name in ("worker", "sandbox")
                }
                receiver.expected = events
                deadline = time.monotonic() + 120 + events / FLOOR_EVENTS_PER_S
                while len(receiver.keys) < events and time.monotonic() < deadline:
                    time.sleep(0.5)
        delivered = len(receiver.keys)
        elapsed = (receiver.last or 0.0) - (receiver.first or 0.0)
        cpu = None
        if receiver.ticks_first is not None and receiver.ticks_done is not None:
            cpu = cpu_per_lookup(receiver.ticks_first, receiver.ticks_done, delivered, elapsed)
        return {
            "source": source,
            "batch_max": batch_max,
            "events": delivered,
            "expected": events,
            "posts": receiver.posts,
            "duplicates": receiver.events - delivered,
            "cpu": cpu,
            "elapsed_s": round(elapsed, 3),
            "events_per_s": round(delivered / elapsed, 1) if elapsed > 0 else None,
            "complete": delivered == events,
        }
