"""The embedded default broker: a single-node Apache Kafka (KRaft, broker+controller) on loopback;
and `LocalKafkaCluster`, several such nodes in one quorum, for the fault tests of a replicated
cluster (`tthc-bus kafka start --brokers 3`).

Kafka is assembled from Maven Central with mvn (the `kafka_<scala>` artifact and its runtime
dependencies) into a cache folder of the working tree, so no Docker and no download other than
Maven's is needed. The broker runs as a child JVM with a bounded heap; its pid, port and log live
in its data directory so `tthc-bus kafka stop|status` work from another shell.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bus.errors import BusError

SLF4J_VERSION = "2.0.16"
LOG4J_VERSION = "2.24.3"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.tthc-bus</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>{slf4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """Configuration:
  name: tthc-bus-local-kafka
  Appenders:
    RollingFile:
      name: file
      fileName: "${sys:kafka.logs.dir}/server.log"
      filePattern: "${sys:kafka.logs.dir}/server.log.%i"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
      SizeBasedTriggeringPolicy:
        size: 20MB
      DefaultRolloverStrategy:
        max: 2
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        ref: file
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaServer
        level: INFO
"""


class KafkaSetupError(BusError):
    """The local broker cannot be installed or started; the message says what to do."""


def require_tool(name: str, how: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaSetupError(f"'{name}' is not installed or not on PATH. {how}")
    return path


MIN_JAVA = 17
INSTALL_JAVA = "Install Java 17, e.g. `apt-get install openjdk-17-jre-headless`."

_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


def java_major_version(version_output: str) -> int | None:
    """The major version in `java -version` output ('1.8.0_392' is 8), or None if not found."""
    match = _JAVA_VERSION.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


@functools.cache
def require_java() -> str:
    """The path of a Java 17+ runtime; KafkaSetupError saying what was found otherwise."""
    java = require_tool("java", INSTALL_JAVA)
    try:
        done = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaSetupError(f"'{java} -version' failed ({exc}). {INSTALL_JAVA}") from None
    output = (done.stderr or "") + (done.stdout or "")
    major = java_major_version(output)
    if major is None:
        first = output.strip().splitlines()[0] if output.strip() else "no output"
        raise KafkaSetupError(
            f"cannot tell the Java version of {java} ({first!r}); Kafka needs Java "
            f"{MIN_JAVA}+. {INSTALL_JAVA}"
        )
    if major < MIN_JAVA:
        raise KafkaSetupError(
            f"{java} is Java {major}; Kafka needs Java {MIN_JAVA} or newer. {INSTALL_JAVA} "
            "(and make it the default with `update-alternatives --config java`, or put it "
            "first on PATH)"
        )
    return java


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class LocalKafka:
    """One local broker. `data_dir` holds its storage, log, pid file and settings."""

    version: str
    scala_version: str
    cache_dir: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 19092
    controller_port: int = 19093
    heap: str = "512m"
    start_timeout_s: float = 60.0
    node_id: int = 1
    # controller.quorum.voters (`id@host:port,...`) of a cluster; None: this node alone.
    quorum_voters: str | None = None
    # Replicas of the broker's own topics (offsets, transactions) and of topics created without
    # a factor: 1 alone; in a cluster, 3 (2 in sync to take a write).
    replication: int = 1
    # The cluster's id: every node of a cluster is formatted with the same; None: a new one.
    cluster_id: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return self.cache_dir / f"kafka_{self.scala_version}-{self.version}" / "libs"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    # -- installation -------------------------------------------------------------------------

    def ensure_installed(self) -> Path:
        """Fetch Kafka's jars with mvn unless they are cached; return the libs folder."""
        marker = self.libs_dir / ".complete"
        if marker.exists():
            return self.libs_dir
        require_java()
        mvn = require_tool("mvn", "Install Maven, e.g. `apt-get install maven`.")
        build = self.libs_dir.parent
        build.mkdir(parents=True, exist_ok=True)
        pom = build / "pom.xml"
        pom.write_text(
            _POM.format(
                kafka=self.version,
                scala=self.scala_version,
                slf4j=SLF4J_VERSION,
                log4j=LOG4J_VERSION,
            )
        )
        print(f"Fetching Apache Kafka {self.version} with mvn into {build} ...", file=sys.stderr)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.libs_dir}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaSetupError(
                f"mvn could not fetch org.apache.kafka:kafka_{self.scala_version}:{self.version} "
                f"(exit {result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        marker.write_text(self.version)
        return self.libs_dir

    # -- configuration ------------------------------------------------------------------------

    def _java_command(self, main_class: str, *args: str, short_lived: bool = False) -> list[str]:
        java = require_java()
        # C1 only starts a short-lived tool faster; a broker under load needs C2's code (with C1
        # only it spent about twice the CPU per request).
        jit = ["-XX:TieredStopAtLevel=1"] if short_lived else []
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            *jit,
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        (self.data_dir / "log4j2.yaml").write_text(_LOG4J2)
        voters = self.quorum_voters or f"{self.node_id}@{self.host}:{self.controller_port}"
        replicas, min_isr = str(self.replication), str(min_insync_replicas(self.replication))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": "6",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created explicitly (bus/topics.py: ensure_topics) with the right
            # partition counts; no client may create one by producing to it.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self.replication > 1:
            # What a topic gets when its creator names no factor or config (faust's own topics
            # are created with a factor but no min.insync.replicas): a write with acks=all needs
            # two replicas, and a replica that is not in sync never becomes leader (which would
            # drop the writes it missed).
            props |= {
                "default.replication.factor": replicas,
                "min.insync.replicas": min_isr,
                "unclean.leader.election.enable": "false",
            }
        path = self.config_path
        path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
        return path

    def _format_storage(self, config: Path) -> None:
        if (self.data_dir / "kraft" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        result = subprocess.run(
            self._java_command(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(config),
                short_lived=True,
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise KafkaSetupError(
                f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}"
            )

    # -- lifecycle ----------------------------------------------------------------------------

    def _is_ours(self, pid: int) -> bool:
        """True if `pid` is a broker of this data directory (not a process that reused the pid)."""
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in args and str(self.config_path).encode() in args

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not self._alive(pid) or not self._is_ours(pid):
            return None
        return pid

    def broker_pids(self) -> set[int]:
        """Every live broker of this data directory: the pid file's, and any the file misses
        (a start interrupted between spawning the JVM and writing the file)."""
        pids = set()
        pid = self.running_pid()
        if pid is not None:
            pids.add(pid)
        for entry in Path("/proc").iterdir():
            if (
                entry.name.isdigit()
                and self._is_ours(int(entry.name))
                and self._alive(int(entry.name))
            ):
                pids.add(int(entry.name))
        return pids

    def start(self) -> bool:
        """Start the broker (installing and formatting as needed) and wait until it answers.

        Returns False if a broker of this data directory was already running (it is reused, and
        waited for if it is still starting), True if this call started one.
        """
        pid = self.running_pid()
        if pid is not None:
            self._wait_ready(None, pid)
            return False
        process = self.launch()
        self._wait_ready(process, process.pid)
        return True

    def launch(self) -> subprocess.Popen[bytes]:
        """Spawn the broker's JVM (installing and formatting as needed) without waiting for it:
        a node of a cluster answers only once a majority of the quorum runs."""
        if port_open(self.host, self.port):
            raise KafkaSetupError(
                f"port {self.host}:{self.port} is taken by another process; set "
                "TTHC_BUS_KAFKA__LOCAL__PORT to a free port"
            )
        self.ensure_installed()
        config = self._write_config()
        self._format_storage(config)
        # The child keeps its own descriptor of the log; ours is closed once it is spawned.
        with (self.log_dir / "stdout.log").open("ab") as stdout:
            process = subprocess.Popen(
                self._java_command("kafka.Kafka", str(config)),
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        return process

    def wait_ready(self, process: subprocess.Popen[bytes] | None = None) -> None:
        """Wait until the broker answers; KafkaSetupError if it exits or does not in time."""
        pid = process.pid if process is not None else self.running_pid()
        if pid is None:
            raise KafkaSetupError(f"no broker of {self.data_dir} is running")
        self._wait_ready(process, pid)

    def _wait_ready(self, process: subprocess.Popen[bytes] | None, pid: int) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise KafkaSetupError(
                    f"Kafka exited with code {process.returncode}; see {self.log_dir}/stdout.log "
                    f"and server.log:\n{self._log_tail()}"
                )
            if process is None and not self._alive(pid):
                raise KafkaSetupError(
                    f"the running Kafka (pid {pid}) exited while starting; see "
                    f"{self.log_dir}/server.log:\n{self._log_tail()}"
                )
            if port_open(self.host, self.port) and self._answers():
                return
            time.sleep(0.3)
        if process is not None:  # ours: do not leave it behind; one we reuse is not ours to stop
            self.stop()
        raise KafkaSetupError(
            f"Kafka did not answer on {self.bootstrap_servers} within {self.start_timeout_s:.0f} s:"
            f"\n{self._log_tail()}"
        )

    def _answers(self) -> bool:
        """True once the broker serves metadata (the port opens before it can)."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000
            )
        except (KafkaError, OSError, ValueError):
            return False
        try:
            return bool(admin.describe_cluster().get("brokers"))
        except (KafkaError, OSError, ValueError):
            return False
        finally:
            admin.close()

    def _log_tail(self, lines: int = 30) -> str:
        out = []
        for name in ("stdout.log", "server.log"):
            path = self.log_dir / name
            if path.exists():
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker gracefully (SIGTERM, then SIGKILL). True if one was running.

        Only a process whose command line is this data directory's broker is signalled: after a
        crash the pid in the pid file may belong to an unrelated process.
        """
        pids = self.broker_pids()
        if not pids:
            self.pid_file.unlink(missing_ok=True)
            return False
        for pid in pids:
            self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self._alive(pid) for pid in pids):
            time.sleep(0.2)
        for pid in pids:
            if self._alive(pid):
                self._signal(pid, signal.SIGKILL)
                while self._alive(pid):
                    time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL the broker, as a crash would end it: no controlled shutdown, so the partitions
        it leads move only once the controller fences it. True if one was running. Its data
        stay: `start` brings it back on them."""
        pids = self.broker_pids()
        for pid in pids:
            self._signal(pid, signal.SIGKILL)
        for pid in pids:
            while self._alive(pid):
                time.sleep(0.05)
        return bool(pids)

    def rss_mb(self) -> float | None:
        """The broker's resident memory in MB (heap, metaspace, code, buffers); None if down."""
        pid = self.running_pid()
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            return None
        return None

    def _signal(self, pid: int, signum: int) -> None:
        if self._is_ours(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        # A zombie of another parent still answers kill(0); read its state to be sure.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return False
        return state != "Z"

    def status(self) -> dict[str, object]:
        pid = self.running_pid()
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "version": self.version,
            "pid": pid,
            "running": pid is not None and port_open(self.host, self.port),
            "data_dir": str(self.data_dir),
        }


def local_kafka_from_settings(local: object, root: Path | None = None) -> LocalKafka:
    """Build a LocalKafka from `settings.kafka.local`, resolving relative paths against root."""
    from bus.settings import PROJECT_ROOT, LocalKafkaSettings

    assert isinstance(local, LocalKafkaSettings)
    base = root or PROJECT_ROOT
    return LocalKafka(
        version=local.version,
        scala_version=local.scala_version,
        cache_dir=(base / local.cache_dir).resolve(),
        data_dir=(base / local.data_dir).resolve(),
        host=local.host,
        port=local.port,
        controller_port=local.controller_port,
        heap=local.heap,
        start_timeout_s=local.start_timeout_s,
    )


# -- a local cluster ------------------------------------------------------------------------------

# Heap of each node of a local cluster: three of them beside the bus on a 2-core machine.
CLUSTER_HEAP = "320m"
CLUSTER_START_TIMEOUT_S = 120.0
# Node n of the cluster `tthc-bus kafka start --brokers N` starts listens on the single broker's
# ports plus 100 n (19192/19193, 19292/19293, ...), so that both can run side by side.
CLUSTER_PORT_STEP = 100
LAYOUT_FILE = "cluster.json"


def min_insync_replicas(replicas: int) -> int:
    """Replicas that must have a write before it is acknowledged (acks=all): 2 of 3, so that one
    broker may be down and writes go on, but never a write held by one broker alone."""
    return 2 if replicas >= 3 else 1


def new_cluster_id() -> str:
    # 22 characters as Kafka's own ids; hex, so never a leading '-' the storage tool would take
    # for an option.
    return uuid.uuid4().hex[:22]


@dataclass
class LocalKafkaCluster:
    """Local KRaft nodes in one quorum on loopback, each broker and controller (a voter), each in
    its own data directory `data_dir/node-<id>` (storage, log, pid file, settings).

    The layout (node ids, ports, cluster id) is kept in `data_dir/cluster.json`: the nodes are
    found again from another shell (`tthc-bus kafka stop|status`) and restarted on the same
    ports, which the quorum's voters name. Internal topics and topics created without a factor
    get min(3, nodes) replicas, min.insync.replicas 2 with three.
    """

    data_dir: Path
    nodes: list[LocalKafka] = field(default_factory=list)
    cluster_id: str = ""

    @classmethod
    def create(
        cls,
        data_dir: Path,
        *,
        ports: Sequence[tuple[int, int]],
        version: str,
        scala_version: str,
        cache_dir: Path,
        host: str = "127.0.0.1",
        heap: str = CLUSTER_HEAP,
        start_timeout_s: float = CLUSTER_START_TIMEOUT_S,
    ) -> LocalKafkaCluster:
        """A cluster of len(ports) nodes, (broker port, controller port) each; the layout a
        previous start recorded in data_dir wins (its size must be the same)."""
        if len(ports) < 2:
            raise ValueError("a cluster needs at least 2 nodes; LocalKafka is the single one")
        layout = read_layout(data_dir)
        cluster_id = new_cluster_id()
        if layout is not None:
            recorded = [(int(n["port"]), int(n["controller_port"])) for n in layout["nodes"]]
            if len(recorded) != len(ports):
                raise KafkaSetupError(
                    f"{data_dir} holds a cluster of {len(recorded)} nodes, not {len(ports)}: "
                    f"stop it (`tthc-bus kafka stop`) and remove {data_dir} to start another size"
                )
            ports, cluster_id = recorded, str(layout["cluster_id"])
        voters = ",".join(
            f"{number}@{host}:{controller}" for number, (_, controller) in enumerate(ports, 1)
        )
        replicas = min(3, len(ports))
        nodes = [
            LocalKafka(
                version=version,
                scala_version=scala_version,
                cache_dir=cache_dir,
                data_dir=data_dir / f"node-{number}",
                host=host,
                port=port,
                controller_port=controller,
                heap=heap,
                start_timeout_s=start_timeout_s,
                node_id=number,
                quorum_voters=voters,
                replication=replicas,
                cluster_id=cluster_id,
            )
            for number, (port, controller) in enumerate(ports, 1)
        ]
        return cls(data_dir, nodes, cluster_id)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    @property
    def version(self) -> str:
        return self.nodes[0].version

    def node(self, node_id: int) -> LocalKafka:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(f"no node {node_id} in the cluster (nodes 1-{len(self.nodes)})")

    def _write_layout(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        layout = {
            "cluster_id": self.cluster_id,
            "nodes": [
                {"node_id": n.node_id, "port": n.port, "controller_port": n.controller_port}
                for n in self.nodes
            ],
        }
        (self.data_dir / LAYOUT_FILE).write_text(json.dumps(layout, indent=2) + "\n")

    def start(self) -> bool:
        """Start every node that is not running, then wait until each answers and every node is a
        registered broker. True if this call started any node; on failure it stops those it
        started."""
        self._write_layout()
        launched: dict[int, subprocess.Popen[bytes]] = {}
        try:
            # All first: a node answers only once a majority of the voters runs.
            for node in self.nodes:
                if node.running_pid() is None:
                    launched[node.node_id] = node.launch()
            for node in self.nodes:
                node.wait_ready(launched.get(node.node_id))
            self.wait_brokers()
        except BaseException:
            for node_id in launched:
                self.node(node_id).stop()
            raise
        return bool(launched)

    def start_node(self, node_id: int) -> bool:
        """Start one node (say after `kill`) and wait until the cluster has it as a broker again."""
        started = self.node(node_id).start()
        self.wait_brokers()
        return started

    def kill(self, node_id: int) -> bool:
        """SIGKILL one node, as a crash would end it."""
        return self.node(node_id).kill()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop every node at once (SIGTERM, SIGKILL after `timeout`). True if any was running.

        At once: stopped one after the other, the last node would wait, alone and without a
        quorum, for the controlled shutdown no controller can grant."""
        results: dict[int, bool] = {}

        def stop(node: LocalKafka) -> None:
            results[node.node_id] = node.stop(timeout)

        threads = [threading.Thread(target=stop, args=(node,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return any(results.values())

    def running_nodes(self) -> list[LocalKafka]:
        return [node for node in self.nodes if node.running_pid() is not None]

    def brokers(self, timeout_s: float = 5.0) -> list[int]:
        """Ids of the brokers the cluster has registered and not fenced, as a live node says."""
        import confluent_kafka
        from confluent_kafka.admin import AdminClient

        live = self.running_nodes()
        if not live:
            return []
        admin = AdminClient(
            {"bootstrap.servers": ",".join(n.bootstrap_servers for n in live), "log_level": 0}
        )
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except confluent_kafka.KafkaException:
            return []
        return sorted(metadata.brokers)

    def wait_brokers(self, timeout_s: float | None = None) -> None:
        """Wait until every node is a registered, unfenced broker."""
        timeout = timeout_s if timeout_s is not None else self.nodes[0].start_timeout_s
        deadline = time.monotonic() + timeout
        wanted = [node.node_id for node in self.nodes]
        seen: list[int] = []
        while time.monotonic() < deadline:
            seen = self.brokers()
            if seen == wanted:
                return
            time.sleep(0.3)
        raise KafkaSetupError(
            f"the cluster's brokers are {seen}, not {wanted}, after {timeout:.0f} s; see the "
            f"nodes' logs in {self.data_dir}/node-*/logs"
        )

    def out_of_sync(self, timeout_s: float = 10.0) -> list[str]:
        """Every partition some replica of which is not in sync (`topic[p]: in sync [..] of
        [..]`); [] once every replica has caught up. KafkaSetupError if no node answers."""
        import confluent_kafka
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except confluent_kafka.KafkaException as exc:
            raise KafkaSetupError(f"no node of the cluster answers: {exc}") from None
        lagging = []
        for name, topic in sorted(metadata.topics.items()):
            for number, partition in sorted(topic.partitions.items()):
                if sorted(partition.isrs) != sorted(partition.replicas):
                    lagging.append(
                        f"{name}[{number}]: in sync {sorted(partition.isrs)} "
                        f"of {sorted(partition.replicas)}"
                    )
        return lagging

    def status(self) -> dict[str, Any]:
        nodes = [
            {"node_id": node.node_id, **node.status(), "rss_mb": node.rss_mb()}
            for node in self.nodes
        ]
        return {
            "bootstrap_servers": self.bootstrap_servers,
            "version": self.version,
            "brokers": len(self.nodes),
            "running": all(n["running"] for n in nodes),
            "data_dir": str(self.data_dir),
            "nodes": nodes,
        }


def read_layout(data_dir: Path) -> dict[str, Any] | None:
    """The layout a cluster's start recorded in data_dir; None if none was."""
    try:
        layout = json.loads((data_dir / LAYOUT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return layout if isinstance(layout, dict) and layout.get("nodes") else None


def cluster_dir(data_dir: Path) -> Path:
    """Where `tthc-bus kafka start --brokers N` keeps its cluster: beside the single broker's
    data (`.kafka/data` -> `.kafka/data-cluster`)."""
    return data_dir.with_name(f"{data_dir.name}-cluster")


def local_cluster_from_settings(
    local: object, brokers: int | None = None, root: Path | None = None
) -> LocalKafkaCluster | None:
    """The local cluster beside `settings.kafka.local`'s broker: of `brokers` nodes on the ports
    above the single broker's (see CLUSTER_PORT_STEP), or, with brokers None, the one a start
    recorded (None if there is none)."""
    single = local_kafka_from_settings(local, root)
    data_dir = cluster_dir(single.data_dir)
    if brokers is None:
        layout = read_layout(data_dir)
        if layout is None:
            return None
        brokers = len(layout["nodes"])
    ports = [
        (single.port + CLUSTER_PORT_STEP * n, single.controller_port + CLUSTER_PORT_STEP * n)
        for n in range(1, brokers + 1)
    ]
    return LocalKafkaCluster.create(
        data_dir,
        ports=ports,
        version=single.version,
        scala_version=single.scala_version,
        cache_dir=single.cache_dir,
        host=single.host,
    )
