"""The embedded default broker: a single-node Apache Kafka (KRaft, broker+controller) on loopback.

Kafka is assembled from Maven Central with mvn (the `kafka_<scala>` artifact and its runtime
dependencies) into a cache folder of the working tree, so no Docker and no download other than
Maven's is needed. The broker runs as a child JVM with a bounded heap; its pid, port and log live
in its data directory so `tthc-bus kafka stop|status` work from another shell.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

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
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": "6",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created explicitly (bus/topics.py: ensure_topics) with the right
            # partition counts; no client may create one by producing to it.
            "auto.create.topics.enable": "false",
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        path = self.config_path
        path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
        return path

    def _format_storage(self, config: Path) -> None:
        if (self.data_dir / "kraft" / "meta.properties").exists():
            return
        cluster_id = uuid.uuid4().hex[:22]
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
        self._wait_ready(process, process.pid)
        return True

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
