"""The load generator: closed- or open-loop lookups, run in a process of its own.

The generator must not share a CPU-bound event loop with the harness (or the gateway), so
``LoadProcess`` runs ``run_load`` in a spawned child process and hands back a ``LoadResult``.

- Closed loop: ``concurrency`` clients, each sending its next request when the previous answer
  arrives. Measures capacity. A request counts when it completes inside the measured window.
- Open loop: requests start on a fixed schedule (``rate`` per second) whatever the answers do, and
  latency is taken from the scheduled start, so a stall is not hidden (no coordinated omission).

Both warm up for ``warmup_s`` (not recorded) and then measure for ``duration_s``.
Two targets speak different protocols: ``bus`` is the gateway's JSON lookup API, ``direct`` is
the sandbox's native SOAP API (the baseline).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import random
import re
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol

import aiohttp
import orjson

from bench.stats import latency_summary

Target = Literal["bus", "direct"]
Mode = Literal["closed", "open"]


class LookupRequest(Protocol):
    """How to ask one target for one subject, and how to tell a success from an error."""

    path: ClassVar[str]
    headers: ClassVar[dict[str, str]]

    def body(self, number: int, subject: str) -> bytes: ...

    def error_of(self, status: int, body: bytes) -> str | None:
        """None for a success, else a short error kind (counted by kind in the result)."""


class GatewayLookup:
    """``POST /v1/lookups``: one single-source lookup of dataset population.identity."""

    path: ClassVar[str] = "/v1/lookups"
    headers: ClassVar[dict[str, str]] = {"Content-Type": "application/json"}

    def __init__(self, deadline_ms: int) -> None:
        self.deadline_ms = deadline_ms

    def body(self, number: int, subject: str) -> bytes:
        return orjson.dumps(
            {
                "requester": {"agency_code": "H26", "system": "bench", "officer": "bench"},
                "procedure_code": "1.004222",
                "dossier_id": f"BENCH-{number}",
                "purpose": "benchmark",
                "legal_basis": "Decree 194/2025",
                "subject": {"personal_id": subject},
                "datasets": ["population.identity"],
                "deadline_ms": self.deadline_ms,
            }
        )

    def error_of(self, status: int, body: bytes) -> str | None:
        if status != 200:
            return f"http {status}"
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "invalid json"
        lookup_status = answer.get("status") if isinstance(answer, dict) else None
        return None if lookup_status == "complete" else f"status {lookup_status}"


SOAP_NAMESPACE = "urn:tthc-sandbox:csdl-dan-cu:v1"
_SOAP_FOUND = re.compile(rb"<(?:[\w.-]+:)?MaKetQua>\s*00\s*</(?:[\w.-]+:)?MaKetQua>")
_SOAP_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    f'xmlns:ns="{SOAP_NAMESPACE}"><soap:Body><ns:TraCuuThongTinCongDan>'
    "<ns:MaYeuCau>{number}</ns:MaYeuCau><ns:MaDonViYeuCau>H26</ns:MaDonViYeuCau>"
    "<ns:SoDinhDanh>{subject}</ns:SoDinhDanh>"
    "</ns:TraCuuThongTinCongDan></soap:Body></soap:Envelope>"
)


class SoapLookup:
    """The population database's native ``TraCuuThongTinCongDan`` (look up a citizen)."""

    path: ClassVar[str] = "/dancu"
    headers: ClassVar[dict[str, str]] = {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": f'"{SOAP_NAMESPACE}/TraCuuThongTinCongDan"',
    }

    def body(self, number: int, subject: str) -> bytes:
        return _SOAP_ENVELOPE.format(number=f"BENCH-{number}", subject=subject).encode()

    def error_of(self, status: int, body: bytes) -> str | None:
        if status != 200:
            return f"http {status}"
        return None if _SOAP_FOUND.search(body) else "MaKetQua not 00"


@dataclass(frozen=True)
class LoadSpec:
    """One run of the generator against one target. Picklable: it crosses into the child."""

    target: Target
    base_url: str
    subjects: tuple[str, ...]
    mode: Mode = "closed"
    concurrency: int = 16
    rate: float = 100.0
    warmup_s: float = 2.0
    duration_s: float = 10.0
    deadline_ms: int = 5000
    seed: int = 20250701

    def __post_init__(self) -> None:
        if not self.subjects:
            raise ValueError("LoadSpec.subjects is empty: expected existing personal ids")
        if self.concurrency < 1 or self.rate <= 0 or self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError(
                f"LoadSpec: expected concurrency >= 1, rate > 0, duration_s > 0, warmup_s >= 0; "
                f"got {self.concurrency=}, {self.rate=}, {self.duration_s=}, {self.warmup_s=}"
            )

    def request(self) -> LookupRequest:
        return GatewayLookup(self.deadline_ms) if self.target == "bus" else SoapLookup()


@dataclass
class LoadResult:
    """What one run measured: successes with their latencies, errors by kind."""

    spec: LoadSpec
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0

    def record(self, latency_s: float, error: str | None) -> None:
        if error is None:
            self.latencies_ms.append(latency_s * 1000.0)
        else:
            self.errors[error] += 1

    def summary(self) -> dict[str, Any]:
        ok = len(self.latencies_ms)
        error_count = sum(self.errors.values())
        return {
            "target": self.spec.target,
            "mode": self.spec.mode,
            "concurrency": self.spec.concurrency if self.spec.mode == "closed" else None,
            "rate_per_s": self.spec.rate if self.spec.mode == "open" else None,
            "warmup_s": self.spec.warmup_s,
            "duration_s": self.spec.duration_s,
            "requests": ok + error_count,
            "ok": ok,
            "errors": error_count,
            "error_kinds": dict(self.errors.most_common()),
            "throughput_per_s": round(ok / self.spec.duration_s, 2),
            "latency_ms": latency_summary(self.latencies_ms),
            "loadgen_cpu_pct": round(100.0 * self.cpu_s / self.spec.duration_s, 1),
        }


async def _attempt(
    session: aiohttp.ClientSession, url: str, request: LookupRequest, number: int, subject: str
) -> str | None:
    try:
        async with session.post(url, data=request.body(number, subject)) as response:
            return request.error_of(response.status, await response.read())
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return type(exc).__name__


class _Run:
    """Shared state of one run inside the child: clock, window, numbering, subjects."""

    def __init__(self, spec: LoadSpec, session: aiohttp.ClientSession) -> None:
        self.spec = spec
        self.session = session
        self.request = spec.request()
        self.url = spec.base_url.rstrip("/") + self.request.path
        self.result = LoadResult(spec)
        self.numbers = itertools.count(1)
        self.rng = random.Random(spec.seed)
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.window_start = self.start + spec.warmup_s
        self.window_end = self.window_start + spec.duration_s

    async def send(self) -> str | None:
        subject = self.rng.choice(self.spec.subjects)
        return await _attempt(self.session, self.url, self.request, next(self.numbers), subject)


async def _closed_client(run: _Run) -> None:
    while run.loop.time() < run.window_end:
        started = run.loop.time()
        error = await run.send()
        finished = run.loop.time()
        if run.window_start <= finished <= run.window_end:
            run.result.record(finished - started, error)


async def _open_request(run: _Run, scheduled: float, measured: bool) -> None:
    error = await run.send()
    if measured:
        run.result.record(run.loop.time() - scheduled, error)


async def _open_schedule(run: _Run) -> None:
    interval = 1.0 / run.spec.rate
    in_flight: set[asyncio.Task[None]] = set()
    for index in itertools.count():
        scheduled = run.start + index * interval
        if scheduled >= run.window_end:
            break
        delay = scheduled - run.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_open_request(run, scheduled, scheduled >= run.window_start))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)


async def _run(spec: LoadSpec) -> LoadResult:
    limit = spec.concurrency if spec.mode == "closed" else 0
    timeout = aiohttp.ClientTimeout(total=spec.deadline_ms / 1000.0 + 1.0)
    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    headers = spec.request().headers
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers
    ) as session:
        run = _Run(spec, session)
        cpu_at_window = run.loop.call_at(run.window_start, _mark_cpu, run.result)
        if spec.mode == "closed":
            await asyncio.gather(*(_closed_client(run) for _ in range(spec.concurrency)))
        else:
            await _open_schedule(run)
        cpu_at_window.cancel()
        run.result.cpu_s = _cpu_seconds() - run.result.cpu_s
        return run.result


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _mark_cpu(result: LoadResult) -> None:
    result.cpu_s = _cpu_seconds()
    if _window_started is not None:
        _window_started.set()


# Set in the child by LoadProcess: tells the parent the measured window has begun.
_window_started: Event | None = None


def _remember_window_event(event: Event) -> None:
    global _window_started  # noqa: PLW0603 - the child's one per-process hook
    _window_started = event


def run_load(spec: LoadSpec) -> LoadResult:
    """Run one load in this process (the child's entry point)."""
    return asyncio.run(_run(spec))


class LoadProcess:
    """Run ``run_load(spec)`` in a spawned child process; a context manager around it.

    ``window_started`` is set by the child when the measured window begins (after the warm-up),
    so the parent can time what it does alongside (say, a profiler) to the window.
    """

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        context = multiprocessing.get_context("spawn")
        self.window_started = context.Event()
        self._executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=_remember_window_event,
            initargs=(self.window_started,),
        )
        self._future: Future[LoadResult] | None = None

    def __enter__(self) -> LoadProcess:
        self._future = self._executor.submit(run_load, self.spec)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._executor.shutdown(wait=exc_type is None, cancel_futures=True)

    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def result(self) -> LoadResult:
        if self._future is None:
            raise RuntimeError("LoadProcess.result() before the process was started")
        grace_s = self.spec.deadline_ms / 1000.0 + 60.0
        return self._future.result(timeout=self.spec.warmup_s + self.spec.duration_s + grace_s)


def run_in_process(spec: LoadSpec) -> LoadResult:
    """Run one load in a child process and wait for its result."""
    with LoadProcess(spec) as process:
        return process.result()
