"""The faust application of a worker: it hosts the consumers that need faust's tables.

faust acknowledges a message even when the agent raises, and has no dead-letter queue: its agents
run `bus.runtime.Subscriber.dispatch`, which never raises and dead-letters what it cannot handle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bus.ops.health import Check, readiness
from bus.settings import Settings


def create_app(settings: Settings, *, datadir: Path | None = None) -> faust.App:
    bootstrap = settings.kafka.resolved_bootstrap()
    brokers = [f"kafka://{server.strip()}" for server in bootstrap.split(",")]
    return faust.App(
        settings.worker.app_id,
        broker=brokers,
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        topic_allow_declare=True,
        datadir=str(datadir or settings.worker.data_dir),
        web_enabled=True,
        web_port=settings.worker.web_port,
        web_bind="127.0.0.1",
        web_in_thread=False,
        producer_acks=-1,
        producer_linger_ms=1,
        broker_commit_every=200,
        broker_commit_interval=0.5,
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=False,
        table_standby_replicas=0,
        # As the worker's other consumers (bus.runtime): a dead worker's aggregator partitions
        # move on after this, not after faust's default of a minute.
        broker_session_timeout=settings.worker.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, settings.worker.session_timeout_ms / 3000),
    )


def add_ops_pages(app: faust.App, checks: Mapping[str, Check]) -> None:
    """On the worker's web port: `/healthz` (alive), `/readyz` (the `checks`, bus/ops/health.py;
    503 naming what fails) and `/metrics` (the Prometheus exposition of the process)."""

    @app.page("/healthz")
    async def healthz(web: Any, _request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, _request: Any) -> Any:
        ready, results = await readiness(checks)
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return web.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(web: Any, _request: Any) -> Any:
        # aiohttp refuses a charset in content_type: the exposition type goes as a header.
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
