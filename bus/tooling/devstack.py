"""The whole bus on one machine: local broker, sandbox, ledger writer, workers and gateway as
child processes.

Used by `tthc-bus dev` (`make run`), by the end-to-end tests and by the benchmark harness. Each
part runs as its own process, started with the same `tthc-bus` commands an operator would use,
configured through `TTHC_BUS_*` environment variables. Stopping (or Ctrl-C) ends every child and
its process group, so nothing is left behind. Children run in their own sessions (a Ctrl-C in the
terminal reaches only the parent), so the parent must outlive them: `StopSignals` turns SIGINT,
SIGTERM and SIGHUP into a clean stop at any point of `tthc-bus dev` (starting, running, stopping).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import requests

from bus import topics
from bus.auth import RequestSigner, generate_key
from bus.errors import BusError
from bus.settings import PROJECT_ROOT, ApiKeyRecord, Settings
from bus.tooling.kafka_local import LocalKafka, free_port, local_kafka_from_settings, port_open


class StackError(BusError):
    """A part of the local stack did not start; the message names it and shows its log."""


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM or SIGHUP) arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
LEDGER_WRITER_ENV = "TTHC_BUS_AUDIT__LEDGER_WRITER"


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP stop `tthc-bus dev` cleanly, whenever they arrive.

    The first signal raises `Interrupted` in the main thread (so a start in progress unwinds
    through `DevStack.start`, which stops what it started); later ones are only recorded, so a
    second Ctrl-C cannot cut the stop short. Inside `deferred()` (spawning a child and recording
    it) the first signal is held until the block ends.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._raised = False
        self._deferring = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if not self._deferring:
            self._raise_once()

    def _raise_once(self) -> None:
        if self.received is not None and not self._raised:
            self._raised = True
            raise Interrupted(self.received)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring:
            self._raise_once()


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """While stopping, further stop signals must not interrupt it.

    Python runs signal handlers in the main thread only, so elsewhere there is nothing to do.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, cannot be restored
                signal.signal(signum, handler)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def worker_name(number: int) -> str:
    """``worker`` for the first worker process, ``worker-2``, ``worker-3`` ... for the others."""
    return "worker" if number == 1 else f"worker-{number}"


def _worker_number(name: str) -> int | None:
    if name == "worker":
        return 1
    prefix, _, number = name.partition("-")
    return int(number) if prefix == "worker" and number.isdigit() else None


@dataclass
class DevStack:
    settings: Settings
    workdir: Path | None = None
    fixed_ports: bool = False
    sandbox_count: int | None = None
    # Worker processes, all in the same consumer group, each with its own web port and data dir.
    workers: int = 1
    worker_env: dict[str, str] = field(default_factory=dict)
    # The audit ledger writer as a process of its own (`tthc-bus ledger`), not in each worker:
    # it is not on the lookup path, and in a worker it took a tenth of the event loop that
    # answers lookups. False: the workers host it (audit.ledger_writer).
    ledger_process: bool = True
    # Started once a real lookup comes back complete through the gateway. False for a stack
    # that shares its broker with another of another app id (the benchmark's sync path): the
    # other stack's workers answer the same request topic too, for keys they do not know.
    wait_for_lookup: bool = True
    signals: StopSignals | None = None
    children: dict[str, Child] = field(default_factory=dict)
    broker: LocalKafka | None = None
    # True once this stack has (begun to) start the broker; a broker that was already running
    # (say `tthc-bus kafka start`) is reused and left running.
    owns_broker: bool = False
    broker_reused: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"DevStack.workers must be >= 1, got {self.workers}")
        self.root = (self.workdir or PROJECT_ROOT / ".run").resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = self.settings
        port = (lambda fixed: fixed) if self.fixed_ports else (lambda _: free_port())
        self.sandbox_port = port(cfg.sandbox.port)
        self.gateway_port = port(cfg.gateway.port)
        self.worker_web_port = port(cfg.worker.web_port)
        self.ledger_web_port = port(cfg.ops.ledger_web_port)
        # With fixed ports the settings are honoured as they are; otherwise all is in the workdir.
        self.worker_data_dir = (
            (PROJECT_ROOT / cfg.worker.data_dir).resolve()
            if self.fixed_ports
            else self.root / "worker"
        )
        # Worker number -> (web port, data dir); more are added by scale_workers.
        self.worker_places: dict[int, tuple[int, Path]] = {
            1: (self.worker_web_port, self.worker_data_dir)
        }
        for number in range(2, self.workers + 1):
            self.worker_places[number] = self._worker_place(number)
        self.keys = DevKeys.issue(cfg)
        self.bootstrap_servers = cfg.kafka.bootstrap_servers or ""
        if not self.bootstrap_servers:
            broker = local_kafka_from_settings(cfg.kafka.local)
            if not self.fixed_ports:
                broker.port, broker.controller_port = free_port(), free_port()
                broker.data_dir = self.root / "kafka"
            self.broker = broker
            self.bootstrap_servers = broker.bootstrap_servers

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def _worker_place(self, number: int) -> tuple[int, Path]:
        """Web port and data dir of worker ``number`` >= 2: next to the first worker's."""
        if self.fixed_ports:
            return self.worker_web_port + number - 1, self.worker_data_dir.with_name(
                f"{self.worker_data_dir.name}-{number}"
            )
        return free_port(), self.root / worker_name(number)

    @property
    def worker_pid(self) -> int:
        """The first worker's pid."""
        return self.children["worker"].process.pid

    @property
    def worker_names(self) -> list[str]:
        """The running worker children, first worker first."""
        numbered = [(n, name) for name in self.children if (n := _worker_number(name)) is not None]
        return [name for _, name in sorted(numbered)]

    @property
    def worker_pids(self) -> list[int]:
        return [self.children[name].process.pid for name in self.worker_names]

    @property
    def sandbox_pid(self) -> int | None:
        child = self.children.get("sandbox")
        return None if child is None else child.process.pid

    @property
    def ledger_pid(self) -> int | None:
        """The audit ledger writer's own process; None when the workers host it."""
        child = self.children.get("ledger")
        return None if child is None else child.process.pid

    @property
    def broker_pid(self) -> int | None:
        """The local broker's JVM; None for an external cluster."""
        return None if self.broker is None else self.broker.running_pid()

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "TTHC_BUS_SANDBOX__PORT": str(self.sandbox_port),
                "TTHC_BUS_GATEWAY__PORT": str(self.gateway_port),
                "TTHC_BUS_WORKER__WEB_PORT": str(self.worker_web_port),
                "TTHC_BUS_OPS__LEDGER_WEB_PORT": str(self.ledger_web_port),
                "TTHC_BUS_WORKER__DATA_DIR": str(self.worker_data_dir),
                "PYTHONUNBUFFERED": "1",
                # This stack's own keys, issued at its start (DevKeys), beside the keys file's.
                "TTHC_BUS_AUTH__KEYS": self.keys.records_json(),
                "TTHC_BUS_GATEWAY__KEY": self.keys.gateway,
            }
        )
        if not self.fixed_ports:
            env["TTHC_BUS_AUDIT__LEDGER_URL"] = f"sqlite:///{self.root / 'audit.db'}"
        if self.sandbox_count is not None:
            env["TTHC_BUS_SANDBOX__COUNT"] = str(self.sandbox_count)
        if self.settings.sandbox.state_file is None:  # a restarted sandbox keeps its changes
            env["TTHC_BUS_SANDBOX__STATE_FILE"] = str(self.root / "sandbox-state.pickle")
        for name, source in self.settings.sources.items():
            if source.url.startswith(f"http://127.0.0.1:{self.settings.sandbox.port}/"):
                path = source.url.split("/", 3)[3]
                env[f"TTHC_BUS_SOURCES__{name.upper()}__URL"] = f"{self.sandbox_url}/{path}"
        return env

    # -- lifecycle ------------------------------------------------------------------------------

    def check_ports_free(self) -> None:
        """With fixed ports, a leftover process would answer in place of ours: refuse early."""
        wanted = {
            "sandbox": (self.sandbox_port, "TTHC_BUS_SANDBOX__PORT"),
            "gateway": (self.gateway_port, "TTHC_BUS_GATEWAY__PORT"),
            **(
                {"ledger web": (self.ledger_web_port, "TTHC_BUS_OPS__LEDGER_WEB_PORT")}
                if self.ledger_process
                else {}
            ),
            **{
                f"{worker_name(number)} web": (web_port, "TTHC_BUS_WORKER__WEB_PORT")
                for number, (web_port, _) in self.worker_places.items()
            },
        }
        for name, (port, env) in wanted.items():
            if port_open("127.0.0.1", port):
                raise StackError(
                    f"port {port} for the {name} is in use by another process: stop it, "
                    f"or choose another port with {env}"
                )

    def start(self) -> DevStack:
        self.check_ports_free()
        try:
            if self.broker is not None:
                self.broker_reused = self.broker.running_pid() is not None
                self.owns_broker = not self.broker_reused
                self.broker.start()
            self.spawn("sandbox", ["sandbox", "serve"])
            self.wait_http("sandbox", f"{self.sandbox_url}/_sandbox/health")
            if self.ledger_process:
                self.spawn("ledger", ["ledger"])
            for number in range(1, self.workers + 1):
                self.spawn_worker(number)
            self.spawn("gateway", ["gateway"])
            self.wait_http("gateway", f"{self.gateway_url}/healthz")
            if self.wait_for_lookup:
                self.wait_lookup_ready()
            if self.workers > 1:
                self.wait_workers_assigned(self.workers)
        except BaseException:
            self.stop()
            raise
        return self

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Child:
        log_path = self.root / f"{name}.log"
        env = self.env() | (extra_env or {})
        # A stop signal between spawning and recording the child would orphan it: hold it.
        with self.signals.deferred() if self.signals else contextlib.nullcontext():
            log_file = log_path.open("ab")
            process = subprocess.Popen(
                [sys.executable, "-m", "bus.tooling.cli", *args],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=PROJECT_ROOT,
                start_new_session=True,
            )
            child = Child(name, process, log_path, log_file)
            self.children[name] = child
        return child

    def spawn_worker(self, number: int) -> Child:
        """Worker ``number`` (1 is ``worker``), with its own web port and data dir."""
        if number not in self.worker_places:
            self.worker_places[number] = self._worker_place(number)
        web_port, data_dir = self.worker_places[number]
        env = {
            "TTHC_BUS_WORKER__WEB_PORT": str(web_port),
            "TTHC_BUS_WORKER__DATA_DIR": str(data_dir),
        }
        if self.ledger_process:
            env[LEDGER_WRITER_ENV] = "false"
        env |= self.worker_env
        return self.spawn(worker_name(number), ["worker"], extra_env=env)

    def respawn_workers(self, envs: list[dict[str, str]], timeout: float = 120.0) -> list[int]:
        """Stop every worker and start one per entry of ``envs`` (worker n gets the n-th on top
        of `worker_env`: say, each its own `TTHC_BUS_WORKER__SOURCES`); wait until each holds
        its partitions and lookups complete again; return their pids."""
        if not envs:
            raise ValueError("respawn_workers: at least one worker")
        self._stop_children(self.worker_names, timeout=15.0)
        common = dict(self.worker_env)
        try:
            for number, env in enumerate(envs, start=1):
                self.worker_env = common | env
                self.spawn_worker(number)
        finally:
            self.worker_env = common
        self.wait_workers_assigned(len(envs), timeout)
        return self.worker_pids

    def scale_workers(self, count: int, timeout: float = 120.0) -> list[int]:
        """Start or stop workers until ``count`` run (the highest numbers stop first), wait until
        each has its share of partitions and lookups complete again; return their pids."""
        if count < 1:
            raise ValueError(f"scale_workers: at least one worker, got {count}")
        running = [_worker_number(name) or 0 for name in self.worker_names]
        extra = [worker_name(n) for n in running if n > count]
        if extra:
            self._stop_children(extra, timeout=15.0)
        for number in range(1, count + 1):
            if worker_name(number) not in self.children:
                self.spawn_worker(number)
        if extra or len(running) < count:
            self.wait_workers_assigned(count, timeout)
            self.wait_lookup_ready(timeout)
        return self.worker_pids

    def wait_workers_assigned(self, count: int, timeout: float = 120.0) -> None:
        """Wait until ``count`` members of a stable consumer group hold partitions of the lookup
        request topic (whatever the group is called), then until lookups complete.

        Without this, a new worker may still be joining while the load runs on the old ones.
        """
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, client_id="tthc-devstack-admin"
        )
        seen: object = None
        try:
            while time.monotonic() < deadline:
                self._check_workers_alive()
                seen = _lookup_request_members(admin)
                if seen == count:
                    break
                time.sleep(0.5)
            else:
                raise StackError(
                    f"{count} workers were not all assigned partitions of "
                    f"{topics.LOOKUP_REQUEST} within {timeout:.0f} s (last seen: {seen})"
                )
        finally:
            admin.close()
        self.wait_lookup_ready(max(deadline - time.monotonic(), 10.0))

    def _check_workers_alive(self) -> None:
        for name in self.worker_names:
            worker = self.children[name]
            if worker.process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {worker.process.returncode}:\n{worker.tail()}"
                )

    def wait_http(self, name: str, url: str, timeout: float = 60.0) -> None:
        child = self.children[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {child.process.returncode}:\n{child.tail()}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise StackError(f"{name} did not answer {url} within {timeout:.0f} s:\n{child.tail()}")

    def wait_lookup_ready(self, timeout: float = 90.0) -> None:
        """Wait until a real lookup comes back complete: the worker has joined and is assigned."""
        subject = requests.get(f"{self.sandbox_url}/_sandbox/sample?n=1", timeout=5).json()[0]
        body = example_lookup(subject)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_workers_alive()
            body["deadline_ms"] = 3000
            try:
                answer = requests.post(
                    f"{self.gateway_url}/v1/lookups",
                    json=body,
                    headers=self.keys.headers(DEMO_AGENCY),
                    timeout=10,
                )
                if answer.status_code == 200 and answer.json().get("status") == "complete":
                    return
                last = f"{answer.status_code} {answer.text[:300]}"
            except requests.RequestException as exc:
                last = str(exc)
            time.sleep(0.5)
        raise StackError(
            f"no complete lookup within {timeout:.0f} s (last: {last}):\n"
            f"{self.children['worker'].tail()}"
        )

    def stop_child(self, name: str, timeout: float = 15.0) -> None:
        self._stop_children([name], timeout)

    def _stop_children(self, names: list[str], timeout: float) -> None:
        """SIGTERM every child's process group at once, SIGKILL what is left after `timeout`."""
        children = [child for name in names if (child := self.children.pop(name, None))]
        for child in children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
            # Anything the child left in its group goes with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.log_file.close()

    def stop(self) -> None:
        """Stop every child, and the broker if this stack started it; no signal cuts it short."""
        with _signals_ignored():
            order = ["gateway", *self.worker_names, "sandbox"]
            names = [n for n in order if n in self.children]
            names += [n for n in self.children if n not in order]
            self._stop_children(names, timeout=15.0)
            if self.broker is not None and self.owns_broker:
                self.broker.stop()
                self.owns_broker = False

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- for `tthc-bus dev` ---------------------------------------------------------------------

    def wait(self) -> None:
        """Block until a stop signal (see `StopSignals`) or until a child dies (then say which)."""
        try:
            while self.signals is None or self.signals.received is None:
                for child in self.children.values():
                    if child.process.poll() is not None:
                        _say(
                            f"{child.name} exited ({child.process.returncode}); last lines:\n"
                            f"{child.tail()}"
                        )
                        return
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        _say("\nstopping ...")

    def print_banner(self, console: Any) -> None:
        subject = requests.get(f"{self.sandbox_url}/_sandbox/sample?n=1", timeout=5).json()[0]
        body = example_lookup(subject)
        console.print(f"[bold green]tthc-bus is running[/bold green] (logs in {self.root})")
        reused = (
            "  (already running: reused, and left running on exit)" if self.broker_reused else ""
        )
        console.print(f"  Kafka     {self.bootstrap_servers}{reused}")
        sources = ", ".join(sorted(self.settings.sources))
        console.print(f"  sandbox   {self.sandbox_url}  ({sources}; tthc-bus sandbox sources)")
        console.print(f"  gateway   {self.gateway_url}  (OpenAPI: {self.gateway_url}/docs)")
        console.print(f"  metrics   {self.gateway_url}/metrics")
        console.print(
            "  API keys  issued for this run (agency: key); `tthc-bus keys new` makes lasting ones"
        )
        for agency, key in sorted(self.keys.agencies.items()):
            console.print(f"    {agency}: {key}", soft_wrap=True)
        console.print("Try:")
        console.print(
            f"  curl -s -X POST {self.gateway_url}/v1/lookups -H 'content-type: application/json' "
            f"-H 'Authorization: Bearer {self.keys.agencies[DEMO_AGENCY]}' "
            f"-d '{json.dumps(body, ensure_ascii=False)}'",
            soft_wrap=True,
        )
        console.print("Ctrl-C stops everything.")


def _lookup_request_members(admin: Any) -> int | None:
    """Members holding partitions of the lookup request topic, in the group that has the fewest
    (should the worker read it in more than one group); None while no group has any or one of
    them is rebalancing. The groups' names are not assumed.

    kafka-python 3 answers with plain dicts: ``list_groups()`` a list of ``{"group_id", ...}``,
    ``describe_groups()`` ``{group_id: {"group_state", "members": [{"member_assignment":
    {"assigned_partitions": [{"topic", "partitions"}]}}]}}``.
    """
    from kafka.errors import KafkaError

    try:
        groups = [group["group_id"] for group in admin.list_groups()]
        described = admin.describe_groups(groups) if groups else {}
    except KafkaError:
        return None
    counts = []
    for group in described.values():
        members = [
            member
            for member in group.get("members") or []
            if topics.LOOKUP_REQUEST in _assigned_topics(member)
        ]
        if members:
            if group.get("group_state") != "Stable":
                return None
            counts.append(len(members))
    return min(counts) if counts else None


def _assigned_topics(member: dict[str, Any]) -> set[str]:
    """Topics of which the member holds at least one partition."""
    assignment = member.get("member_assignment") or {}
    return {
        entry["topic"]
        for entry in assignment.get("assigned_partitions") or []
        if entry.get("partitions")
    }


def _say(text: str) -> None:
    """Print to stderr; after SIGHUP the terminal may be gone, which must not stop the stop."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


DEMO_AGENCY = "H26.22"
AUDITOR_AGENCY = "AUDIT"


@dataclass
class DevKeys:
    """API keys a local stack issues itself at each start: one per agency of the policy grants
    (role lookup), one for an auditor, and the gateway's own. Their hashes reach the children
    through TTHC_BUS_AUTH__KEYS; the keys are printed by `tthc-bus dev` and used by the tests."""

    agencies: dict[str, str]
    gateway: str
    records: list[ApiKeyRecord]

    @classmethod
    def issue(cls, settings: Settings) -> DevKeys:
        agencies: dict[str, str] = {}
        records: list[ApiKeyRecord] = []
        wanted = {grant.agency for grant in settings.policy.grants} | {DEMO_AGENCY}
        for agency in sorted(wanted):
            issued = generate_key(agency, ["lookup"], "issued by the local stack")
            agencies[agency] = issued.key
            records.append(issued.record)
        auditor = generate_key(AUDITOR_AGENCY, ["auditor"], "issued by the local stack")
        agencies[AUDITOR_AGENCY] = auditor.key
        gateway = generate_key("BUS", ["gateway"], "the local stack's gateway")
        return cls(agencies, gateway.key, [*records, auditor.record, gateway.record])

    def records_json(self) -> str:
        return json.dumps([record.model_dump(mode="json") for record in self.records])

    def headers(self, agency: str = DEMO_AGENCY) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agencies[agency]}"}

    def gateway_signer(self) -> RequestSigner:
        """Signs as a gateway does (any agency, replies on the shared topic): for tests and
        benchmarks that play a gateway's part on Kafka."""
        return RequestSigner(self.gateway)


def example_lookup(personal_id: str) -> dict[str, Any]:
    return {
        "requester": {"agency_code": DEMO_AGENCY, "system": "dvc-demo", "officer": "can-bo-01"},
        "procedure_code": "1.004222",
        "dossier_id": "HS-DEMO-0001",
        "purpose": "Xác minh nhân thân khi giải quyết hồ sơ",
        "legal_basis": "Nghị định 194/2025/NĐ-CP",
        "subject": {"personal_id": personal_id},
        "datasets": ["population.identity"],
    }
