"""`tthc-bus dev` (`make run`) leaves nothing behind, whenever and however it is stopped.

The command runs as a subprocess with every port and data folder moved (through `TTHC_BUS_*`) to
free ports and a temporary folder, so it neither collides with a stack already running on the
default ports nor touches its data. Its children inherit a unique worker app id, by which they
are found in /proc afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bus.settings import PROJECT_ROOT
from bus.tooling.kafka_local import free_port

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 40.0


@dataclass
class DevCommand:
    process: subprocess.Popen[str]
    marker: str
    tmp: Path
    ports: list[int]
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                pytest.fail(f"dev exited ({self.process.returncode}) early:\n{self.output()}")
            time.sleep(0.2)
        pytest.fail(f"no {text!r} from dev within {timeout:.0f} s:\n{self.output()}")

    def leftovers(self) -> list[str]:
        """Processes (other than this test) that belong to this dev run."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            tokens = set(cmdline.replace(b":", b"\0").replace(b"=", b"\0").split(b"\0"))
            ours = (
                self.marker.encode() in environ
                or str(self.tmp).encode() in cmdline + environ
                or any(str(port).encode() in tokens for port in self.ports)
            )
            if ours and cmdline:  # a zombie has no command line and holds nothing
                shown = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {shown}")
        return found

    def assert_stopped_cleanly(self) -> None:
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dev still running {STOP_TIMEOUT_S:.0f} s after the signal")
        deadline = time.monotonic() + 5
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, "left behind:\n" + "\n".join(left)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevCommand]:
    marker = f"devstack-test-{uuid.uuid4().hex[:12]}"
    kafka_port, controller_port = free_port(), free_port()
    sandbox_port, gateway_port, web_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TTHC_BUS_")}
    env.update(
        {
            "TTHC_BUS_KAFKA__LOCAL__PORT": str(kafka_port),
            "TTHC_BUS_KAFKA__LOCAL__CONTROLLER_PORT": str(controller_port),
            "TTHC_BUS_KAFKA__LOCAL__DATA_DIR": str(tmp_path / "kafka"),
            "TTHC_BUS_KAFKA__LOCAL__HEAP": "256m",
            "TTHC_BUS_SANDBOX__PORT": str(sandbox_port),
            "TTHC_BUS_SANDBOX__COUNT": "2000",
            "TTHC_BUS_GATEWAY__PORT": str(gateway_port),
            "TTHC_BUS_WORKER__WEB_PORT": str(web_port),
            "TTHC_BUS_WORKER__DATA_DIR": str(tmp_path / "worker"),
            "TTHC_BUS_WORKER__APP_ID": marker,
            "TTHC_BUS_SOURCES__POPULATION__URL": f"http://127.0.0.1:{sandbox_port}/dancu",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "400",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bus.tooling.cli", "dev", "--workdir", str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    command = DevCommand(
        process,
        marker,
        tmp_path,
        [kafka_port, controller_port, sandbox_port, gateway_port, web_port],
    )
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: command.lines.extend(stdout), daemon=True)
    reader.start()
    try:
        yield command
    finally:
        # Whatever the test did, leave nothing running: the dev command first, then strays.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for line in command.leftovers():
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
        reader.join(5)


def test_ctrl_c_while_running_stops_everything(dev: DevCommand) -> None:
    """Ctrl-C, then an impatient second Ctrl-C and a closed terminal while it is stopping."""
    dev.wait_for_output("tthc-bus is running", READY_TIMEOUT_S)
    assert dev.leftovers(), "the test cannot see the stack's processes"
    dev.process.send_signal(signal.SIGINT)
    dev.wait_for_output("stopping", 10)
    for again in (signal.SIGINT, signal.SIGHUP):
        if dev.process.poll() is None:
            dev.process.send_signal(again)
    dev.assert_stopped_cleanly()
    assert dev.process.returncode == 0, dev.output()
    assert "stopping" in dev.output()


def test_sigterm_while_starting_stops_what_was_started(dev: DevCommand) -> None:
    """SIGTERM once the broker and the sandbox run and the worker is starting, before ready."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not any(" bus.tooling.cli worker" in line for line in dev.leftovers()):
        if time.monotonic() > deadline or dev.process.poll() is not None:
            pytest.fail(f"the worker never started:\n{dev.output()}")
        time.sleep(0.1)
    assert any("kafka.Kafka" in line for line in dev.leftovers())
    dev.process.send_signal(signal.SIGTERM)
    dev.assert_stopped_cleanly()
    assert "tthc-bus is running" not in dev.output()
    assert dev.process.returncode == 128 + signal.SIGTERM, dev.output()
