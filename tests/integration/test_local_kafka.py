"""The embedded broker: start, restart on the same data, stop; external clusters start nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from bus.settings import PROJECT_ROOT, load_settings
from bus.tooling.kafka_local import LocalKafka, free_port, port_open

pytestmark = pytest.mark.integration


def test_broker_restarts_on_the_same_data_and_stops_cleanly(tmp_path: Path) -> None:
    cfg = load_settings().kafka.local
    broker = LocalKafka(
        version=cfg.version,
        scala_version=cfg.scala_version,
        cache_dir=(PROJECT_ROOT / cfg.cache_dir).resolve(),
        data_dir=tmp_path / "kafka",
        port=free_port(),
        controller_port=free_port(),
        heap="256m",
    )
    assert broker.start() is True
    try:
        # Topics are created explicitly: the broker does not auto-create them.
        assert "auto.create.topics.enable=false" in broker.config_path.read_text()
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        admin.create_topics([NewTopic("restart.check", 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        producer.send("restart.check", b"kept across a restart", partition=0).get(timeout=20)
        producer.close()
        pid_before = broker.running_pid()

        broker.stop()
        assert not port_open(broker.host, broker.port)
        broker.start()
        assert broker.running_pid() not in (None, pid_before)

        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
        partition = TopicPartition("restart.check", 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        values = [r.value for rs in consumer.poll(timeout_ms=10_000).values() for r in rs]
        consumer.close()
        assert values == [b"kept across a restart"]
        assert broker.status()["running"] is True
        assert broker.start() is False  # already running: reused, not started twice
        assert broker.running_pid() not in (None, pid_before)
    finally:
        assert broker.stop() is True
    assert broker.status()["running"] is False
    assert broker.running_pid() is None


def test_external_cluster_means_nothing_is_started() -> None:
    env = dict(os.environ, TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS="kafka-a.example:9092")
    done = subprocess.run(
        [sys.executable, "-m", "bus.tooling.cli", "kafka", "start"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "External cluster configured (kafka-a.example:9092)" in done.stdout


def test_a_reused_pid_is_not_taken_for_the_broker(tmp_path: Path) -> None:
    """After a crash the pid file may name an unrelated process: it must never be signalled."""
    broker = LocalKafka(
        version="0",
        scala_version="2.13",
        cache_dir=tmp_path / "cache",
        data_dir=tmp_path / "kafka",
        port=free_port(),
        controller_port=free_port(),
    )
    broker.data_dir.mkdir()
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        broker.pid_file.write_text(str(unrelated.pid))
        assert broker.running_pid() is None
        assert broker.status()["pid"] is None
        assert broker.stop() is False
        assert unrelated.poll() is None, "stop() signalled a process that is not the broker"
        assert not broker.pid_file.exists()
    finally:
        unrelated.kill()
        unrelated.wait()
