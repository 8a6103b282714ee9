"""How topics are replicated on one broker or on a cluster, and the local cluster's node configs
(no JVM started: the fault tests on a real three-node cluster are in
tests/integration/test_faults_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.settings import load_settings
from bus.tooling.kafka_local import (
    KafkaSetupError,
    LocalKafka,
    LocalKafkaCluster,
    cluster_dir,
    local_cluster_from_settings,
)
from bus.topics import Replication, replication_for

CLUSTER = {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}


@pytest.mark.parametrize(
    ("brokers", "least", "wanted"),
    [
        (1, 1, Replication(1)),  # the embedded single broker: as before
        (2, 1, Replication(2)),
        (3, 1, Replication(3, CLUSTER)),
        (5, 1, Replication(3, CLUSTER)),  # three replicas are enough, whatever the size
        (5, 4, Replication(4, CLUSTER)),  # kafka.replication_factor is the least
        (1, 3, Replication(3, CLUSTER)),  # more than the brokers: Kafka refuses, and says so
    ],
)
def test_replication_follows_the_brokers(brokers: int, least: int, wanted: Replication) -> None:
    assert replication_for(brokers, least) == wanted


def props(node: LocalKafka) -> dict[str, str]:
    node._write_config()
    lines = node.config_path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def single(tmp_path: Path) -> LocalKafka:
    return LocalKafka(
        "4.1.1", "2.13", tmp_path / "cache", tmp_path / "single", port=1, controller_port=2
    )


def test_the_single_broker_keeps_its_configuration(tmp_path: Path) -> None:
    got = props(single(tmp_path))
    assert got["node.id"] == "1"
    assert got["controller.quorum.voters"] == "1@127.0.0.1:2"
    assert got["offsets.topic.replication.factor"] == "1"
    assert got["transaction.state.log.min.isr"] == "1"
    for key in ("default.replication.factor", "min.insync.replicas"):
        assert key not in got


def cluster(tmp_path: Path, size: int = 3) -> LocalKafkaCluster:
    return LocalKafkaCluster.create(
        tmp_path / "cluster",
        ports=[(10_000 + 10 * n, 10_001 + 10 * n) for n in range(1, size + 1)],
        version="4.1.1",
        scala_version="2.13",
        cache_dir=tmp_path / "cache",
    )


def test_each_node_of_a_cluster_votes_and_replicates_three_times(tmp_path: Path) -> None:
    three = cluster(tmp_path)
    assert three.bootstrap_servers == "127.0.0.1:10010,127.0.0.1:10020,127.0.0.1:10030"
    voters = "1@127.0.0.1:10011,2@127.0.0.1:10021,3@127.0.0.1:10031"
    dirs = set()
    for node in three.nodes:
        got = props(node)
        assert got["node.id"] == str(node.node_id)
        assert got["process.roles"] == "broker,controller"
        assert got["controller.quorum.voters"] == voters
        assert got["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        )
        assert got["default.replication.factor"] == "3"
        assert got["min.insync.replicas"] == "2"
        assert got["unclean.leader.election.enable"] == "false"
        assert got["offsets.topic.replication.factor"] == "3"
        assert got["transaction.state.log.replication.factor"] == "3"
        assert got["transaction.state.log.min.isr"] == "2"
        assert node.heap == "320m"
        assert node.cluster_id == three.cluster_id
        dirs.add(node.data_dir)
    assert len(dirs) == 3


def test_a_recorded_layout_is_found_again_and_its_size_kept(tmp_path: Path) -> None:
    first = cluster(tmp_path)
    first._write_layout()
    again = LocalKafkaCluster.create(
        tmp_path / "cluster",
        ports=[(1, 2), (3, 4), (5, 6)],  # other ports: the recorded ones win
        version="4.1.1",
        scala_version="2.13",
        cache_dir=tmp_path / "cache",
    )
    assert again.bootstrap_servers == first.bootstrap_servers
    assert again.cluster_id == first.cluster_id
    with pytest.raises(KafkaSetupError, match="a cluster of 3 nodes, not 5"):
        cluster(tmp_path, size=5)


def test_the_cli_cluster_lives_beside_the_single_broker_on_ports_above_its_own(
    tmp_path: Path,
) -> None:
    local = load_settings(
        kafka={
            "local": {"data_dir": str(tmp_path / "data"), "port": 29092, "controller_port": 29093}
        }
    ).kafka.local
    assert local_cluster_from_settings(local) is None  # none started
    three = local_cluster_from_settings(local, 3)
    assert three is not None
    assert three.data_dir == cluster_dir(tmp_path / "data") == tmp_path / "data-cluster"
    assert [(n.port, n.controller_port) for n in three.nodes] == [
        (29192, 29193),
        (29292, 29293),
        (29392, 29393),
    ]
    three._write_layout()
    found = local_cluster_from_settings(local)
    assert found is not None and found.bootstrap_servers == three.bootstrap_servers
