"""Sample the bus's processes with py-spy during the measured window, and summarise the samples.

``ProfileSession`` waits for the load generator's measured window to begin, then runs
``py-spy record --pid PID --gil --rate 200 --duration S --format raw`` on each target process
(the worker, and the gateway when the stack exposes its pid). The raw output is a collapsed-stack
file (``frame;frame;...;leaf COUNT`` a line, root first), kept next to the result JSON.

``summarise`` turns such a file into: the number of samples, the share of samples per bucket of
code that matters here (source calls, Kafka client, faust runtime, validation, web server, bus
code), and the top frames by inclusive share. Shares are inclusive: a sample counts for a bucket
(or a frame) when any of its frames is in it, and once only however many of its frames are.
Beside it, a bucket's *self* share gives each sample to one bucket only, the one of its
innermost bucketed frame (so a zeep call made from bus code counts there, not in bus code).

The stack's entry frames (the command line, the event loop, the thread pool's worker loop) are
in (nearly) every sample and would count every sample for ``bus/cli.py`` or faust's worker: the
summary drops each stack's prefix up to its last *dispatch* frame (the loop running a callback,
a pool thread running a work item), so what is counted is the work that was dispatched.

If py-spy is missing or cannot attach (ptrace permission), the profile entry says so with the
reason, and the run goes on.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RATE_HZ = 200
TOP_FRAMES = 15
START_TIMEOUT_S = 120.0  # spawning the load generator and its warm-up
STOP_GRACE_S = 30.0  # py-spy writing its file after --duration

# Bucket name -> top-level packages (the first component of py-spy's short file names).
BUCKETS: dict[str, frozenset[str]] = {
    "source call (adapter, zeep, HTTP)": frozenset({"adapters", "zeep", "requests", "urllib3"}),
    "Kafka client": frozenset({"aiokafka", "kafka"}),
    "faust runtime": frozenset({"faust", "mode"}),
    "validation/serialisation": frozenset({"pydantic", "pydantic_core"}),
    "web server (uvicorn, starlette, FastAPI)": frozenset({"uvicorn", "starlette", "fastapi"}),
    "bus code": frozenset({"bus", "connectors", "mappings"}),
}
OTHER = "none of these (stdlib, asyncio, other libraries)"
# (file, function) of frames that run a dispatched unit of work; the stack above them is the
# spine. asyncio's loop runs callbacks in Handle._run; uvloop's loop is C, so its callbacks sit
# right under Runner.run; a sample in the loop itself (select, _run_once) is under run_forever.
DISPATCH_FRAMES: frozenset[tuple[str, str]] = frozenset(
    {
        ("asyncio/events.py", "Handle._run"),
        ("asyncio/base_events.py", "BaseEventLoop.run_forever"),
        ("asyncio/runners.py", "Runner.run"),
        ("concurrent/futures/thread.py", "_WorkItem.run"),
    }
)

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_COUNT = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int | None = None

    @property
    def key(self) -> str:
        """The frame without its line: samples anywhere in one function count together."""
        return f"{self.function} ({self.file})" if self.file else self.function

    @property
    def package(self) -> str:
        """Top-level package of the file: ``zeep`` for ``zeep/transports.py``."""
        path = self.file.replace("\\", "/")
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in path:
                path = path.rsplit(marker, 1)[1]
        return path.lstrip("/").split("/", 1)[0] if "/" in path else ""

    @property
    def bucket(self) -> str | None:
        package = self.package
        return next((name for name, packages in BUCKETS.items() if package in packages), None)


def parse_frame(text: str) -> Frame:
    """``function (file:line)`` as py-spy writes it; a frame without a file keeps its text."""
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "")
    line = match["line"]
    return Frame(match["function"], match["file"], int(line) if line else None)


def parse_collapsed(text: str) -> list[tuple[list[Frame], int]]:
    """The stacks (root first) and their sample counts; blank or malformed lines are skipped."""
    stacks = []
    for raw in text.splitlines():
        match = _COUNT.match(raw.strip())
        if match is None or not match["stack"]:
            continue
        frames = [parse_frame(part) for part in match["stack"].split(";") if part]
        stacks.append((frames, int(match["count"])))
    return stacks


def dispatched(frames: list[Frame]) -> list[Frame]:
    """The frames below the last dispatch frame (all of them if there is none)."""
    for index in range(len(frames) - 1, -1, -1):
        if (frames[index].file, frames[index].function) in DISPATCH_FRAMES:
            return frames[index + 1 :]
    return frames


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def summarise(text: str, top: int = TOP_FRAMES) -> dict[str, Any]:
    """Samples, inclusive share per bucket, and the ``top`` frames by inclusive share."""
    total = 0
    per_bucket: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    bucket_of: dict[str, str] = {}
    for frames, count in parse_collapsed(text):
        total += count
        work = dispatched(frames)
        buckets = {frame.bucket for frame in work}
        for bucket in buckets - {None}:
            per_bucket[str(bucket)] += count
        if buckets <= {None}:
            per_bucket[OTHER] += count
        innermost[next((f.bucket for f in reversed(work) if f.bucket), OTHER)] += count
        for frame in work:
            bucket_of.setdefault(frame.key, frame.bucket or OTHER)
        for key in {frame.key for frame in work}:
            inclusive[key] += count
        if frames:
            self_time[frames[-1].key] += count
    order = [*BUCKETS, OTHER]
    return {
        "samples": total,
        "buckets": {
            name: {
                "samples": per_bucket[name],
                "share": _share(per_bucket[name], total),
                "self_share": _share(innermost[name], total),
            }
            for name in order
        },
        "top_frames": [
            {
                "frame": key,
                "bucket": bucket_of[key],
                "inclusive_share": _share(count, total),
                "self_share": _share(self_time[key], total),
            }
            for key, count in sorted(inclusive.items(), key=lambda item: (-item[1], item[0]))[:top]
        ],
    }


def py_spy_executable() -> Path | None:
    """py-spy installed beside this interpreter (the venv's bin/), or None."""
    candidate = Path(sys.executable).parent / (
        "py-spy.exe" if sys.platform == "win32" else "py-spy"
    )
    return candidate if candidate.is_file() else None


def unique_path(directory: Path, name: str) -> Path:
    """``directory/name``, or ``<stem>-2<suffixes>`` ... if that exists already."""
    path = directory / name
    stem, dot, suffixes = name.partition(".")
    number = 1
    while path.exists():
        number += 1
        path = directory / f"{stem}-{number}{dot}{suffixes}"
    return path


def _failure_reason(stderr: str, returncode: int | None) -> str:
    """py-spy's own error line, with a hint when it is a permission problem."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    reason = errors[0] if errors else (lines[-1] if lines else f"exit code {returncode}")
    permission = re.search(r"permission|not permitted|ptrace|EPERM", stderr, re.IGNORECASE)
    if permission:
        reason += (
            " — py-spy needs ptrace permission: run as root (sudo), or set "
            "kernel.yama.ptrace_scope=0, or in a container add --cap-add SYS_PTRACE"
        )
    return reason


@dataclass
class _Recording:
    name: str
    pid: int
    output: Path
    command: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    error: str | None = None


class ProfileSession:
    """py-spy on each of ``targets`` (name -> pid) for ``duration_s`` once ``started`` is set.

    ``start(started)`` returns at once: a thread waits for the event and then starts py-spy, so
    the caller can go on with its own measuring. ``finish()`` waits for py-spy to write its
    files and returns the ``profile`` entry of the result.
    """

    def __init__(self, targets: dict[str, int], duration_s: float, prefix: Path) -> None:
        self.duration_s = duration_s
        self.window_s = max(1, math.ceil(duration_s))  # py-spy takes whole seconds
        self.executable = py_spy_executable()
        self.recordings = [
            _Recording(name, pid, unique_path(prefix.parent, f"{prefix.name}-{name}.profile.txt"))
            for name, pid in targets.items()
        ]
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, started: Any) -> ProfileSession:
        """``started``: anything with ``wait(timeout) -> bool`` (a multiprocessing Event)."""
        self._thread = threading.Thread(
            target=self._record_when, args=(started,), name="py-spy", daemon=True
        )
        self._thread.start()
        return self

    def _record_when(self, started: Any) -> None:
        if not started.wait(START_TIMEOUT_S) or self._stop.is_set():
            for recording in self.recordings:
                recording.error = "the measured window did not begin: nothing recorded"
            return
        for recording in self.recordings:
            self._launch(recording)

    def _launch(self, recording: _Recording) -> None:
        if self.executable is None:
            recording.error = (
                f"py-spy not found next to {sys.executable}: install it with "
                "`.venv/bin/pip install py-spy` (or `pip install -e '.[dev]'`)"
            )
            return
        recording.output.parent.mkdir(parents=True, exist_ok=True)
        recording.command = [
            str(self.executable),
            "record",
            "--pid",
            str(recording.pid),
            "--gil",
            "--rate",
            str(RATE_HZ),
            "--duration",
            str(self.window_s),
            "--format",
            "raw",
            "--output",
            str(recording.output),
        ]
        try:
            recording.process = subprocess.Popen(
                recording.command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            recording.error = f"could not run py-spy: {exc}"

    def finish(self) -> dict[str, Any]:
        """Wait for every py-spy, read and summarise its file; one entry per target."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(START_TIMEOUT_S)
        processes = {recording.name: self._collect(recording) for recording in self.recordings}
        return {
            "tool": "py-spy record --gil --format raw",
            "rate_hz": RATE_HZ,
            "window_s": self.window_s,
            "processes": processes,
        }

    def _collect(self, recording: _Recording) -> dict[str, Any]:
        entry: dict[str, Any] = {"pid": recording.pid, "command": " ".join(recording.command)}
        stderr = ""
        process = recording.process
        if process is not None:
            try:
                _, stderr = process.communicate(timeout=self.window_s + STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                _, stderr = process.communicate()
                recording.error = "py-spy did not finish in time: stopped"
            if recording.error is None and process.returncode != 0:
                recording.error = _failure_reason(stderr, process.returncode)
        if recording.error is None and not recording.output.exists():
            recording.error = f"py-spy exited without writing {recording.output}"
        if recording.error is not None:
            return {**entry, "status": "not recorded", "reason": recording.error}
        # An empty file is a result: the process never held the GIL in the window (idle).
        text = recording.output.read_text("utf-8")
        return {**entry, "status": "recorded", "raw_file": str(recording.output), **summarise(text)}
