"""The faust application of a worker: it hosts the consumers that need faust's tables.

faust acknowledges a message even when the agent raises, and has no dead-letter queue: its agents
run `bus.runtime.Subscriber.dispatch`, which never raises and dead-letters what it cannot handle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bus.ops.health import Check, readiness
from bus.settings import Settings
from bus.topics import cluster_replication

log = logging.getLogger(__name__)


class BusApp(faust.App):
    """faust's app, whose own topics (the table's changelog, the assignor's leader topic) are
    replicated as the bus's (`bus.topics.replication_for` the brokers the cluster has).

    The cluster is asked when the app first starts, not when it is built (building needs no
    broker); faust reads the factor only later, as it declares those topics.
    """

    # As the settings give them (create_app sets both): the servers, kafka.replication_factor.
    bootstrap_servers = ""
    least_replicas = 1

    async def on_first_start(self) -> None:
        await super().on_first_start()
        # Not read from self.conf: faust warns of a key set after it was read.
        try:
            replication = await asyncio.to_thread(
                cluster_replication, self.bootstrap_servers, self.least_replicas
            )
        except Exception as exc:  # faust declares its topics with the settings' factor then
            log.warning("cannot ask the cluster how to replicate faust's topics: %s", exc)
            return
        self.conf.topic_replication_factor = replication.factor


def create_app(settings: Settings, *, datadir: Path | None = None) -> faust.App:
    bootstrap = settings.kafka.resolved_bootstrap()
    brokers = [f"kafka://{server.strip()}" for server in bootstrap.split(",")]
    app = BusApp(
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
    app.bootstrap_servers = bootstrap
    app.least_replicas = settings.kafka.replication_factor
    return app


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
