"""Shared fixtures: the real Kafka broker every integration test talks to.

`kafka_broker` starts a real single-node Apache Kafka (KRaft) on free loopback ports with a
temporary data directory, once per test session, unless `TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS`
names an external cluster. It can restart the broker on the same data for fault tests.
`kafka_cluster` starts a real three-node cluster, only for the tests that ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bus.settings import PROJECT_ROOT, load_settings
from bus.tooling.kafka_local import LocalKafka, LocalKafkaCluster, free_port


@dataclass
class Broker:
    bootstrap_servers: str
    local: LocalKafka | None

    def restart(self) -> None:
        """Stop and start the local broker on the same data and ports."""
        if self.local is None:
            pytest.fail("restart needs the local broker, but an external cluster is configured")
        self.local.stop()
        self.local.start()

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()

    def start(self) -> None:
        if self.local is not None:
            self.local.start()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    yield from local_broker(tmp_path_factory)


def local_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real broker of its own (or the external cluster the settings name)."""
    settings = load_settings()
    external = settings.kafka.bootstrap_servers  # settings.toml or TTHC_BUS_KAFKA__...
    if external:
        yield Broker(external, None)
        return
    cfg = settings.kafka.local
    local = LocalKafka(
        version=cfg.version,
        scala_version=cfg.scala_version,
        cache_dir=(PROJECT_ROOT / cfg.cache_dir).resolve(),
        data_dir=Path(tmp_path_factory.mktemp("kafka")),
        port=free_port(),
        controller_port=free_port(),
        heap="384m",
    )
    local.start()
    try:
        yield Broker(local.bootstrap_servers, local)
    finally:
        local.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    """A real three-node Apache Kafka cluster (KRaft, each node broker and controller, three
    voters) on free loopback ports, each node with its own data directory, once per session
    and only if a test asks for it. Always local, whatever the settings name: its tests kill
    and restart its nodes."""
    cfg = load_settings().kafka.local
    ports: list[int] = []
    while len(ports) < 6:  # two per node, all different
        if (port := free_port()) not in ports:
            ports.append(port)
    cluster = LocalKafkaCluster.create(
        Path(tmp_path_factory.mktemp("kafka-cluster")),
        ports=[(ports[i], ports[i + 1]) for i in range(0, 6, 2)],
        version=cfg.version,
        scala_version=cfg.scala_version,
        cache_dir=(PROJECT_ROOT / cfg.cache_dir).resolve(),
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server of this session's own (tests/postgres.py), and the URL of an
    empty database on it. It fails, with the exact reason, when no server can be had: a skipped
    PostgreSQL test would pass off the ledger as tested on a database it never ran on."""
    from tests.postgres import PostgresUnavailable, start_server

    try:
        server, url = start_server("tthc_audit_test")
    except PostgresUnavailable as exc:
        failure = f"PostgreSQL for the tests: {exc}"
    else:
        failure = None
    if failure is not None:  # outside the except: the reason alone, not a chain of tracebacks
        pytest.fail(failure, pytrace=False)
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the settings anew: a CLI command a test invoked (with its own env or
    project root) must not leave its settings cached for the next."""
    from bus.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
