"""The load generator: closed- or open-loop lookups, run in a process of its own.

The generator must not share a CPU-bound event loop with the harness (or the gateway), so
``LoadProcess`` runs ``run_load`` in a spawned child process and hands back a ``LoadResult``.

- Closed loop: ``concurrency`` clients, each sending its next request when the previous answer
  arrives. Measures capacity. A request counts when it completes inside the measured window.
- Open loop: requests start on a fixed schedule (``rate`` per second) whatever the answers do, and
  latency is taken from the scheduled start, so a stall is not hidden (no coordinated omission).
  An open loop may go on, right after its measured window, at ``recovery_rate`` for
  ``recovery_s`` (the recovery phase after an overload), recorded apart.

Both warm up for ``warmup_s`` (not recorded) and then measure for ``duration_s``.
Four targets:

- ``bus``: the gateway's JSON lookup API over HTTP;
- ``kafka``: the bus without HTTP, a Kafka-native ``bus.client.LookupClient`` in this process
  (``base_url`` is then the bootstrap servers);
- ``direct``: the sandbox's native SOAP API as raw HTTP (the floor);
- ``zeep``: what an agency writes without the bus, a plain ``zeep.Client`` on the sandbox's WSDL
  called from a pool of ``ZEEP_THREADS`` threads (closed loop only: each thread is one client).

An answer is a success, a *refusal* (the bus said it is overloaded: HTTP 503, the client's
``Overloaded``, or a ``failed`` reply with error code ``overloaded``) or an error of some kind;
refusals are also counted among the errors, and reported on their own. A success is a
``complete`` lookup; with ``missing_ok`` (a dossier prefill) also a ``partial`` or ``not_found``
one whose every error is ``not_found`` (a source that has no record of the subject). The lookup
statuses of the successes are counted (``status_mix``).

The bus asks who is calling: the gateway target sends ``Authorization: Bearer <api_key>``, the
Kafka-native client signs every request with ``signing_key`` (a gateway's key: any agency,
replies on the shared reply topic). Every request is made for agency ``AGENCY``, for
``procedure`` and a ``purpose`` that procedure allows (procedures.toml), as the policy wants.

With ``cpu_pids``, the generator reads the CPU time of those processes (and its own) from
``/proc`` when its measured window opens and closes (see ``bench.cpu``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import multiprocessing
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol

import aiohttp
import orjson

from bench.cpu import cpu_per_lookup, read_ticks
from bench.stats import latency_summary

Target = Literal["bus", "kafka", "direct", "zeep"]
Mode = Literal["closed", "open"]
ZEEP_THREADS = 8
# The lookup every target makes: agency H26.22 (granted every dataset of its procedures in
# settings.toml) asks population.identity for procedure 1.004222, for a purpose it allows.
AGENCY = "H26.22"
PROCEDURE = "1.004222"
PURPOSE = "Xác minh nhân thân khi giải quyết hồ sơ"
LEGAL_BASIS = "Nghị định 194/2025/NĐ-CP"
DATASET = "population.identity"
# The lookup statuses a missing_ok run counts as successes (when every error is not_found).
MISSING_OK_STATUSES = frozenset({"partial", "not_found"})
REFUSED_HTTP = "refused (http 503)"
REFUSED_CLIENT = "refused (client Overloaded)"
REFUSED_REPLY = "refused (failed reply: overloaded)"
_RETRY_AFTER = re.compile(r"\s*\d+\s*")


@dataclass(frozen=True)
class Outcome:
    """How one request ended: ``error`` None is a success."""

    error: str | None = None
    refused: bool = False
    # An answer to the lookup arrived (HTTP 200, or a complete/partial/not_found reply): such an
    # answer after the request's deadline is a late reply.
    answered: bool = False
    # Refusals over HTTP: did the 503 carry an integer Retry-After, was it problem+json?
    retry_after: bool | None = None
    problem_json: bool | None = None
    # The lookup status of the answer (complete, partial, ...), when it had one.
    status: str | None = None


SUCCESS = Outcome(answered=True, status="complete")


class HttpLookup(Protocol):
    """How to ask one HTTP target for one subject, and how to read its answer."""

    path: ClassVar[str]
    headers: ClassVar[dict[str, str]]

    def body(self, number: int, subject: str) -> bytes: ...

    def outcome_of(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome: ...


def gateway_body(
    number: int,
    subject: str,
    deadline_ms: int,
    dataset: str | None = DATASET,
    subject_kind: str = "personal_id",
    procedure: str = PROCEDURE,
    purpose: str = PURPOSE,
) -> dict[str, Any]:
    """The JSON body of one lookup; ``dataset`` None leaves ``datasets`` out (a dossier prefill:
    the gateway asks every dataset the procedure needs)."""
    body: dict[str, Any] = {
        "requester": {"agency_code": AGENCY, "system": "bench", "officer": "bench"},
        "procedure_code": procedure,
        "dossier_id": f"BENCH-{number}",
        "purpose": purpose,
        "legal_basis": LEGAL_BASIS,
        "subject": {subject_kind: subject},
        "deadline_ms": deadline_ms,
    }
    if dataset is not None:
        body["datasets"] = [dataset]
    return body


def answer_outcome(status: Any, error_codes: list[str], missing_ok: bool) -> Outcome:
    """A lookup's answer (not a refusal) by its status and its errors' codes."""
    if status == "complete":
        return SUCCESS
    if missing_ok and status in MISSING_OK_STATUSES and all(c == "not_found" for c in error_codes):
        return Outcome(answered=True, status=status)
    other = sorted({code for code in error_codes if code != "not_found"})
    detail = f" ({', '.join(other)})" if missing_ok and other else ""
    return Outcome(f"status {status}{detail}", answered=True)


def _error_codes(answer: dict[str, Any]) -> list[str]:
    errors = answer.get("errors")
    if not isinstance(errors, list):
        return []
    return [str(error.get("code")) for error in errors if isinstance(error, dict)]


class GatewayLookup:
    """``POST /v1/lookups``: one single-source lookup (population.identity unless told), or with
    ``prefill`` a dossier prefill (no ``datasets``: the procedure's)."""

    path: ClassVar[str] = "/v1/lookups"
    headers: ClassVar[dict[str, str]] = {"Content-Type": "application/json"}

    def __init__(
        self,
        deadline_ms: int,
        dataset: str = DATASET,
        subject_kind: str = "personal_id",
        *,
        procedure: str = PROCEDURE,
        purpose: str = PURPOSE,
        prefill: bool = False,
        missing_ok: bool = False,
    ) -> None:
        self.deadline_ms = deadline_ms
        self.dataset: str | None = None if prefill else dataset
        self.subject_kind = subject_kind
        self.procedure = procedure
        self.purpose = purpose
        self.missing_ok = missing_ok

    def body(self, number: int, subject: str) -> bytes:
        body = gateway_body(
            number,
            subject,
            self.deadline_ms,
            self.dataset,
            self.subject_kind,
            self.procedure,
            self.purpose,
        )
        return orjson.dumps(body)

    def outcome_of(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        if status == 503:
            retry_after = headers.get("Retry-After")
            return Outcome(
                REFUSED_HTTP,
                refused=True,
                retry_after=retry_after is not None and bool(_RETRY_AFTER.fullmatch(retry_after)),
                problem_json=headers.get("Content-Type", "").startswith("application/problem+json"),
            )
        if status != 200:
            return Outcome(f"http {status}")
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Outcome("invalid json", answered=True)
        if not isinstance(answer, dict):
            return Outcome("status None", answered=True)
        return answer_outcome(answer.get("status"), _error_codes(answer), self.missing_ok)


SOAP_NAMESPACE = "urn:tthc-sandbox:csdl-dan-cu:v1"
_SOAP_FOUND = re.compile(rb"<(?:[\w.-]+:)?MaKetQua>\s*00\s*</(?:[\w.-]+:)?MaKetQua>")
_SOAP_ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
    f'xmlns:ns="{SOAP_NAMESPACE}"><soap:Body><ns:TraCuuThongTinCongDan>'
    "<ns:MaYeuCau>{number}</ns:MaYeuCau><ns:MaDonViYeuCau>" + AGENCY + "</ns:MaDonViYeuCau>"
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

    def outcome_of(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        if status != 200:
            return Outcome(f"http {status}")
        return SUCCESS if _SOAP_FOUND.search(body) else Outcome("MaKetQua not 00", answered=True)


@dataclass(frozen=True)
class LoadSpec:
    """One run of the generator against one target. Picklable: it crosses into the child."""

    target: Target
    base_url: str  # the gateway's or the sandbox's URL; for ``kafka`` the bootstrap servers
    subjects: tuple[str, ...]
    mode: Mode = "closed"
    concurrency: int = 16
    rate: float = 100.0
    warmup_s: float = 2.0
    duration_s: float = 10.0
    deadline_ms: int = 5000
    seed: int = 20250701
    # The dataset asked (bus and kafka targets) and the kind of id the subjects are.
    dataset: str = DATASET
    subject_kind: str = "personal_id"
    # The procedure asked for, and a purpose it allows (bus and kafka targets).
    procedure: str = PROCEDURE
    purpose: str = PURPOSE
    # Bus target only: no datasets, the procedure's (a dossier prefill); ``dataset`` unused.
    prefill: bool = False
    # partial / not_found answers whose errors are all not_found count as successes.
    missing_ok: bool = False
    # The bus target's API key (Authorization: Bearer), and the key the Kafka-native client
    # signs its requests with (a gateway's). Not in the repr: a spec may be printed.
    api_key: str | None = field(default=None, repr=False)
    signing_key: str | None = field(default=None, repr=False)
    # Open loop only: go on at this rate for recovery_s after the window (recorded apart).
    recovery_rate: float | None = None
    recovery_s: float = 0.0
    # name -> pid: CPU time read from /proc at the window's edges (the generator adds its own).
    cpu_pids: Mapping[str, int] = field(default_factory=dict)
    # Names of processes of interest whose pid is unknown (reported as n/a, not left out).
    cpu_unknown: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.subjects:
            raise ValueError("LoadSpec.subjects is empty: expected existing personal ids")
        if self.concurrency < 1 or self.rate <= 0 or self.duration_s <= 0 or self.warmup_s < 0:
            raise ValueError(
                f"LoadSpec: expected concurrency >= 1, rate > 0, duration_s > 0, warmup_s >= 0; "
                f"got {self.concurrency=}, {self.rate=}, {self.duration_s=}, {self.warmup_s=}"
            )
        if self.target == "zeep" and self.mode != "closed":
            raise ValueError("LoadSpec: the zeep baseline is a closed loop of threads only")
        if self.prefill and self.target != "bus":
            raise ValueError("LoadSpec: a dossier prefill (no datasets) is for the bus target only")
        if self.recovery_rate is not None and (
            self.mode != "open" or self.recovery_rate <= 0 or self.recovery_s <= 0
        ):
            raise ValueError(
                "LoadSpec: a recovery phase needs mode 'open', recovery_rate > 0, recovery_s > 0"
            )

    def request(self) -> HttpLookup:
        if self.target == "bus":
            return GatewayLookup(
                self.deadline_ms,
                self.dataset,
                self.subject_kind,
                procedure=self.procedure,
                purpose=self.purpose,
                prefill=self.prefill,
                missing_ok=self.missing_ok,
            )
        return SoapLookup()

    def request_headers(self) -> dict[str, str]:
        """The HTTP target's headers: its own, and the API key's for the gateway."""
        headers = dict(self.request().headers)
        if self.target == "bus" and self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass
class Tally:
    """What one phase of a run recorded."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    refusal_ms: list[float] = field(default_factory=list)
    # Open loop: refusals' latency from the actual send (without the generator's own lag).
    refusal_from_send_ms: list[float] = field(default_factory=list)
    refusals_without_retry_after: int = 0
    refusals_not_problem_json: int = 0
    late: int = 0  # answers after the deadline, successes or not
    late_ok: int = 0  # successes after the deadline: not counted in the goodput
    # Open loop: (scheduled start - phase start in s, success) of every request.
    events: list[tuple[float, bool]] = field(default_factory=list)
    # Lookup status of every success (complete; with missing_ok also partial, not_found).
    status_mix: Counter[str] = field(default_factory=Counter)

    def record(
        self,
        latency_s: float,
        outcome: Outcome,
        deadline_ms: int,
        offset: float | None = None,
        from_send_s: float | None = None,
    ) -> None:
        latency_ms = latency_s * 1000.0
        if outcome.answered and latency_ms > deadline_ms:
            self.late += 1
            self.late_ok += outcome.error is None
        if outcome.error is None:
            self.latencies_ms.append(latency_ms)
            if outcome.status is not None:
                self.status_mix[outcome.status] += 1
        else:
            self.errors[outcome.error] += 1
        if outcome.refused:
            self.refusal_ms.append(latency_ms)
            if from_send_s is not None:
                self.refusal_from_send_ms.append(from_send_s * 1000.0)
            self.refusals_without_retry_after += outcome.retry_after is False
            self.refusals_not_problem_json += outcome.problem_json is False
        if offset is not None:
            self.events.append((offset, outcome.error is None))

    def summary(self, duration_s: float) -> dict[str, Any]:
        ok = len(self.latencies_ms)
        error_count = sum(self.errors.values())
        return {
            "requests": ok + error_count,
            "ok": ok,
            "errors": error_count,
            "error_kinds": dict(self.errors.most_common()),
            "status_mix": dict(self.status_mix.most_common()),
            "refused": len(self.refusal_ms),
            "refusal_latency_ms": latency_summary(self.refusal_ms),
            "refusal_latency_from_send_ms": latency_summary(self.refusal_from_send_ms),
            "refusals_without_retry_after": self.refusals_without_retry_after,
            "refusals_not_problem_json": self.refusals_not_problem_json,
            "late_replies": self.late,
            "throughput_per_s": round(ok / duration_s, 2),
            # Successes within their deadline, per second.
            "goodput_per_s": round((ok - self.late_ok) / duration_s, 2),
            "latency_ms": latency_summary(self.latencies_ms),
        }

    def timeline(self, duration_s: float) -> list[dict[str, int]]:
        """Requests and successes per second of scheduled start."""
        seconds = max(1, int(duration_s + 0.999))
        sent, ok = [0] * seconds, [0] * seconds
        for offset, success in self.events:
            second = min(max(int(offset), 0), seconds - 1)
            sent[second] += 1
            ok[second] += success
        return [{"second": s, "requests": sent[s], "ok": ok[s]} for s in range(seconds)]

    def first_clean_second(self, duration_s: float, step_s: float = 0.1) -> float | None:
        """The earliest t (in ``step_s`` steps) such that every request scheduled in [t, t+1 s)
        succeeded, and there was at least one; None if no such second in the phase."""
        events = sorted(self.events)
        offsets = [offset for offset, _ in events]
        failures = [offset for offset, success in events if not success]
        for index in range(round((duration_s - 1.0) / step_s) + 1):
            start = round(index * step_s, 9)
            first, last = bisect.bisect_left(offsets, start), bisect.bisect_left(offsets, start + 1)
            failed = bisect.bisect_left(failures, start + 1) - bisect.bisect_left(failures, start)
            if last > first and not failed:
                return round(start, 3)
        return None


@dataclass
class LoadResult:
    """What one run measured: the window's tally (and the recovery phase's), CPU, its times."""

    spec: LoadSpec
    tally: Tally = field(default_factory=Tally)
    recovery: Tally | None = None
    cpu_s: float = 0.0
    send_lag_ms: list[float] = field(default_factory=list)
    # time.monotonic() (one clock for every process of the machine) of the window's edges.
    window_monotonic: tuple[float, float] | None = None
    ticks_start: dict[str, int | None] = field(default_factory=dict)
    ticks_end: dict[str, int | None] = field(default_factory=dict)

    # Kept for callers of the first version: the window's successes and errors.
    @property
    def latencies_ms(self) -> list[float]:
        return self.tally.latencies_ms

    @property
    def errors(self) -> Counter[str]:
        return self.tally.errors

    def summary(self) -> dict[str, Any]:
        spec = self.spec
        summary: dict[str, Any] = {
            "target": spec.target,
            "mode": spec.mode,
            "concurrency": spec.concurrency if spec.mode == "closed" else None,
            "rate_per_s": spec.rate if spec.mode == "open" else None,
            "warmup_s": spec.warmup_s,
            "duration_s": spec.duration_s,
            "deadline_ms": spec.deadline_ms,
            "prefill": spec.prefill,
            **self.tally.summary(spec.duration_s),
            "loadgen_cpu_pct": round(100.0 * self.cpu_s / spec.duration_s, 1),
        }
        if spec.mode == "open":
            summary["send_lag_ms"] = latency_summary(self.send_lag_ms)
            summary["timeline"] = self.tally.timeline(spec.duration_s)
        if spec.cpu_pids and self.ticks_end:
            summary["cpu"] = cpu_per_lookup(
                self.ticks_start,
                self.ticks_end,
                summary["ok"],
                self._window_s(),
                missing=spec.cpu_unknown,
            )
        if self.window_monotonic is not None:
            summary["window_monotonic"] = list(self.window_monotonic)
        return summary

    def _window_s(self) -> float:
        if self.window_monotonic is None:
            return self.spec.duration_s
        return self.window_monotonic[1] - self.window_monotonic[0]

    def recovery_summary(self) -> dict[str, Any] | None:
        """The recovery phase as a run of its own, with ``recovery_s``: the first clean second."""
        spec, tally = self.spec, self.recovery
        if tally is None or spec.recovery_rate is None:
            return None
        return {
            "target": spec.target,
            "mode": "open",
            "concurrency": None,
            "rate_per_s": spec.recovery_rate,
            "warmup_s": 0.0,
            "duration_s": spec.recovery_s,
            "deadline_ms": spec.deadline_ms,
            **tally.summary(spec.recovery_s),
            "loadgen_cpu_pct": None,
            "timeline": tally.timeline(spec.recovery_s),
            "first_clean_second_s": tally.first_clean_second(spec.recovery_s),
        }


class Driver(Protocol):
    """Sends one lookup to one target and says how it ended."""

    async def send(self, number: int, subject: str) -> Outcome: ...

    async def close(self) -> None: ...


class HttpDriver:
    def __init__(self, spec: LoadSpec) -> None:
        self.request = spec.request()
        self.url = spec.base_url.rstrip("/") + self.request.path
        limit = spec.concurrency if spec.mode == "closed" else 0
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, force_close=False),
            timeout=aiohttp.ClientTimeout(total=spec.deadline_ms / 1000.0 + 1.0),
            headers=spec.request_headers(),
        )

    async def send(self, number: int, subject: str) -> Outcome:
        try:
            async with self.session.post(self.url, data=self.request.body(number, subject)) as r:
                return self.request.outcome_of(r.status, r.headers, await r.read())
        except TimeoutError:
            return Outcome("timeout")
        except aiohttp.ClientError as exc:
            return Outcome(type(exc).__name__)

    async def close(self) -> None:
        await self.session.close()


class KafkaDriver:
    """A ``LookupClient`` on the command-line reply partition of the shared reply topic, its
    requests signed with ``signing_key`` as a gateway signs them (the worker refuses unsigned
    ones)."""

    def __init__(self, spec: LoadSpec) -> None:
        from bus import client
        from bus.auth import RequestSigner
        from bus.topics import CLI_REPLY_PARTITION

        if spec.signing_key is None:
            raise ValueError(
                "LoadSpec.signing_key is not set: the Kafka-native client signs every request "
                "(a gateway's key, e.g. DevStack.keys.gateway)"
            )
        self.spec = spec
        self.client = client.LookupClient(
            spec.base_url,
            CLI_REPLY_PARTITION,
            "bench-loadgen",
            signer=RequestSigner(spec.signing_key),
        )
        # Before the client has admission control, BusUnavailable is its nearest refusal.
        self.overloaded: type[Exception] = getattr(client, "Overloaded", client.BusUnavailable)
        self.unavailable: type[Exception] = client.BusUnavailable
        self.context = contextlib.AsyncExitStack()

    async def start(self) -> KafkaDriver:
        await self.context.enter_async_context(self.client)
        return self

    async def send(self, number: int, subject: str) -> Outcome:
        from bus.schemas import LookupRequest

        request = LookupRequest(
            producer="bench-loadgen",
            requester={"agency_code": AGENCY, "system": "bench", "officer": "bench"},
            procedure_code=self.spec.procedure,
            dossier_id=f"BENCH-{number}",
            purpose=self.spec.purpose,
            legal_basis=LEGAL_BASIS,
            subject={self.spec.subject_kind: subject},
            datasets=[self.spec.dataset],
            deadline=datetime.now(UTC) + timedelta(milliseconds=self.spec.deadline_ms),
        )
        try:
            reply = await self.client.lookup(request)
        except self.overloaded:
            return Outcome(REFUSED_CLIENT, refused=True)
        except self.unavailable:
            return Outcome("bus unavailable")
        if reply is None:
            return Outcome("no reply by the deadline")
        if reply.status == "failed" and any(e.code == "overloaded" for e in reply.errors):
            return Outcome(REFUSED_REPLY, refused=True)
        outcome = answer_outcome(reply.status, [e.code for e in reply.errors], self.spec.missing_ok)
        if reply.status in ("complete", "partial", "not_found"):
            return outcome
        return Outcome(outcome.error)

    async def close(self) -> None:
        await self.context.aclose()


class _Run:
    """Shared state of one run inside the child: clock, window, numbering, subjects."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.result = LoadResult(spec)
        self.numbers = itertools.count(1)
        self.rng = random.Random(spec.seed)
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.window_start = self.start + spec.warmup_s
        self.window_end = self.window_start + spec.duration_s
        self.window_closed = False

    def next_request(self) -> tuple[int, str]:
        return next(self.numbers), self.rng.choice(self.spec.subjects)

    def open_window(self) -> None:
        result = self.result
        result.ticks_start = read_ticks(self.spec.cpu_pids) if self.spec.cpu_pids else {}
        result.cpu_s = _cpu_seconds()
        result.window_monotonic = (time.monotonic(), time.monotonic() + self.spec.duration_s)
        if _window_started is not None:
            _window_started.set()

    def close_window(self) -> None:
        if self.window_closed:
            return
        self.window_closed = True
        result = self.result
        result.ticks_end = read_ticks(self.spec.cpu_pids) if self.spec.cpu_pids else {}
        result.cpu_s = _cpu_seconds() - result.cpu_s
        if result.window_monotonic is not None:
            result.window_monotonic = (result.window_monotonic[0], time.monotonic())


async def _closed_client(run: _Run, driver: Driver) -> None:
    while run.loop.time() < run.window_end:
        started = run.loop.time()
        outcome = await driver.send(*run.next_request())
        finished = run.loop.time()
        if run.window_start <= finished <= run.window_end:
            run.result.tally.record(finished - started, outcome, run.spec.deadline_ms)


async def _open_request(
    run: _Run, driver: Driver, scheduled: float, tally: Tally | None, phase_start: float
) -> None:
    sent = run.loop.time()
    if tally is not None and tally is run.result.tally:
        run.result.send_lag_ms.append((sent - scheduled) * 1000.0)
    outcome = await driver.send(*run.next_request())
    if tally is not None:
        now = run.loop.time()
        tally.record(
            now - scheduled, outcome, run.spec.deadline_ms, scheduled - phase_start, now - sent
        )


def _schedule(run: _Run) -> list[tuple[float, float, float, Tally | None, float]]:
    """(first send, end, rate, tally or None for the warm-up, phase start) of each phase."""
    spec = run.spec
    phases: list[tuple[float, float, float, Tally | None, float]] = []
    if spec.warmup_s > 0:
        phases.append((run.start, run.window_start, spec.rate, None, run.start))
    phases.append((run.window_start, run.window_end, spec.rate, run.result.tally, run.window_start))
    if spec.recovery_rate is not None:
        run.result.recovery = Tally()
        end = run.window_end + spec.recovery_s
        phases.append(
            (run.window_end, end, spec.recovery_rate, run.result.recovery, run.window_end)
        )
    return phases


async def _open_schedule(run: _Run, driver: Driver) -> None:
    in_flight: set[asyncio.Task[None]] = set()
    for first, end, rate, tally, phase_start in _schedule(run):
        interval = 1.0 / rate
        for index in itertools.count():
            scheduled = first + index * interval
            if scheduled >= end:
                break
            delay = scheduled - run.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(_open_request(run, driver, scheduled, tally, phase_start))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)


def _zeep_closed(spec: LoadSpec, run: _Run, lock: threading.Lock, index: int) -> None:
    """One thread of the zeep baseline: a plain client call after another until the window
    ends. The event loop only times the window meanwhile; no asyncio in the calls' path."""
    client = _zeep_client(spec)
    rng = random.Random(spec.seed + index)
    window_start = run.window_start
    window_end = run.window_end
    while time.monotonic() < window_end:
        with lock:
            number = next(run.numbers)
        subject = rng.choice(spec.subjects)
        started = time.monotonic()
        outcome = _zeep_call(client, number, subject)
        finished = time.monotonic()
        if window_start <= finished <= window_end:
            with lock:
                run.result.tally.record(finished - started, outcome, spec.deadline_ms)


_zeep_clients: dict[str, Any] = {}
_zeep_clients_lock = threading.Lock()


def _zeep_client(spec: LoadSpec) -> Any:
    """One ``zeep.Client`` for the whole pool, as an agency would share it."""
    import zeep as zeep_module

    zeep: Any = zeep_module  # untyped
    with _zeep_clients_lock:
        client = _zeep_clients.get(spec.base_url)
        if client is None:
            transport = zeep.Transport(operation_timeout=spec.deadline_ms / 1000.0)
            client = zeep.Client(f"{spec.base_url.rstrip('/')}/dancu?wsdl", transport=transport)
            _zeep_clients[spec.base_url] = client
        return client


def _zeep_call(client: Any, number: int, subject: str) -> Outcome:
    import requests
    import zeep.exceptions

    try:
        answer = client.service.TraCuuThongTinCongDan(
            MaYeuCau=f"BENCH-{number}", MaDonViYeuCau=AGENCY, SoDinhDanh=subject
        )
    except zeep.exceptions.Fault:
        return Outcome("soap fault")
    except requests.Timeout:
        return Outcome("timeout")
    except (requests.RequestException, zeep.exceptions.Error) as exc:
        return Outcome(type(exc).__name__)
    code = getattr(answer, "MaKetQua", None)
    return SUCCESS if code == "00" else Outcome(f"MaKetQua {code}", answered=True)


async def _run_zeep(spec: LoadSpec) -> LoadResult:
    # The WSDL is read before the clock starts.
    await asyncio.get_running_loop().run_in_executor(None, _zeep_client, spec)
    run = _Run(spec)
    marks = _mark_window(run)
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=ZEEP_THREADS, thread_name_prefix="zeep") as pool:
        await asyncio.gather(
            *(
                run.loop.run_in_executor(pool, _zeep_closed, spec, run, lock, index)
                for index in range(ZEEP_THREADS)
            )
        )
    await _unmark(run, marks)
    return run.result


def _mark_window(run: _Run) -> list[asyncio.TimerHandle]:
    return [
        run.loop.call_at(run.window_start, run.open_window),
        run.loop.call_at(run.window_end, run.close_window),
    ]


async def _unmark(run: _Run, marks: list[asyncio.TimerHandle]) -> None:
    """Close the window at its end even when the last answers came before it (an open loop
    against a fast target), then drop the timers."""
    if not run.window_closed:
        await asyncio.sleep(max(0.0, run.window_end - run.loop.time()))
        run.close_window()
    for mark in marks:
        mark.cancel()


async def _driver(spec: LoadSpec) -> Driver:
    if spec.target == "kafka":
        return await KafkaDriver(spec).start()
    return HttpDriver(spec)


async def _run(spec: LoadSpec) -> LoadResult:
    if spec.target == "zeep":
        return await _run_zeep(spec)
    driver = await _driver(spec)
    try:
        run = _Run(spec)
        marks = _mark_window(run)
        if spec.mode == "closed":
            await asyncio.gather(*(_closed_client(run, driver) for _ in range(spec.concurrency)))
        else:
            await _open_schedule(run, driver)
        await _unmark(run, marks)
        return run.result
    finally:
        await driver.close()


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


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
        spec = self.spec
        grace_s = spec.deadline_ms / 1000.0 + 60.0
        return self._future.result(
            timeout=spec.warmup_s + spec.duration_s + spec.recovery_s + grace_s
        )


def run_in_process(spec: LoadSpec) -> LoadResult:
    """Run one load in a child process and wait for its result."""
    with LoadProcess(spec) as process:
        return process.result()
