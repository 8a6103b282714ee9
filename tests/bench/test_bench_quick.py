"""Quick runs of the benchmark harness: the results are well formed (no assertion on speed).

The lookup scenarios run twice: against a stand-in stack (the real sandbox, and a tiny gateway
that answers "complete", with the sandbox process standing in for the worker), so the harness is
checked apart from the bus; and against the real stack of ``bus.tooling.devstack.DevStack``.
Every check is on the harness (the figures and tables are there, counted right); none on whether
a goal is met.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bench.audit_cost import audit_events
from bench.cpu import LOADGEN, cpu_per_lookup, proc_cpu_ticks
from bench.loadgen import (
    AGENCY,
    PURPOSE,
    GatewayLookup,
    KafkaDriver,
    LoadSpec,
    Outcome,
    Tally,
    gateway_body,
    run_in_process,
)
from bench.memory import rss_over_window
from bench.prefill import PREFILL_PROCEDURE, PREFILL_PURPOSE
from bench.runner import git_commit, run_scenario, started_stack
from bench.scenarios import SCENARIOS, StackEndpoints
from bench.stats import latency_summary, linear_slope, percentile
from bus.settings import get_settings

LOAD_SCENARIOS = ("lookup-throughput", "lookup-overhead", "memory", "prefill-throughput")
# The stand-in gateway's API key: a run without it is answered 401.
STAND_IN_KEY = "tthc_standin_key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[str, int]]:
    """The real sandbox population database in its own process: (url, pid)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.server", "--port", str(port), "--count", "2000"]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/_sandbox/health", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def _serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on a free port from a background thread's event loop; yield its URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    port = _free_port()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def _refusal() -> web.Response:
    return web.json_response(
        {"title": "Overloaded", "status": 503},
        status=503,
        content_type="application/problem+json",
        headers={"Retry-After": "1"},
    )


def _prefill_answer(number: int) -> dict[str, Any]:
    """A dossier prefill's answer: every 3rd partial for want of a record, every 7th partial
    because a source timed out (an error), every 11th not_found, the others complete."""
    if number % 7 == 0:
        return {"status": "partial", "errors": [{"code": "timeout"}, {"code": "not_found"}]}
    if number % 11 == 0:
        return {"status": "not_found", "errors": [{"code": "not_found"}] * 4}
    if number % 3 == 0:
        return {"status": "partial", "errors": [{"code": "not_found"}]}
    return {"status": "complete", "errors": []}


def _stand_in_gateway(
    partial_for: frozenset[str] = frozenset(),
    refuse_every: int = 0,
    bare_every: int = 0,
    bounded: bool = False,
    api_key: str | None = None,
) -> web.Application:
    """Answers every well-formed lookup "complete", except subjects in ``partial_for``; with
    ``refuse_every`` N, every Nth request gets a 503 problem+json with Retry-After, and with
    ``bare_every`` M every Mth a bare 503 without either. ``bounded``: a capacity far below
    what the test process can serve (8 lookups at a time, 20 ms each), and a 503 at once past
    a queue of 128, so that twice its capacity is an overload of it, not of the test process.
    With ``api_key``, a request without ``Authorization: Bearer <api_key>`` is a 401. A body
    without datasets (a dossier prefill) must be for the prefill procedure, and is answered
    by ``_prefill_answer``; the others must ask loadgen's procedure, for its purpose."""
    count = itertools.count(1)
    prefills = itertools.count(1)
    slots = asyncio.Semaphore(8) if bounded else None
    waiting = 0

    async def lookup(request: web.Request) -> web.Response:
        nonlocal waiting
        if api_key is not None and request.headers.get("Authorization") != f"Bearer {api_key}":
            return web.json_response({"title": "Not authenticated", "status": 401}, status=401)
        body: dict[str, Any] = await request.json()
        assert {"requester", "purpose", "legal_basis", "subject"} <= body.keys()
        assert body["requester"]["agency_code"] == AGENCY
        if "datasets" not in body:
            assert (body["procedure_code"], body["purpose"]) == (PREFILL_PROCEDURE, PREFILL_PURPOSE)
            answer = _prefill_answer(next(prefills))
            return web.json_response({**answer, "dossier_id": body["dossier_id"]})
        assert (body["procedure_code"], body["purpose"]) == ("1.004222", PURPOSE)
        number = next(count)
        if bare_every and number % bare_every == 0:
            return web.Response(status=503, text="busy")
        if refuse_every and number % refuse_every == 0:
            return _refusal()
        if slots is not None:
            if waiting >= 128:
                return _refusal()
            waiting += 1
            try:
                async with slots:
                    await asyncio.sleep(0.02)
            finally:
                waiting -= 1
        subject = body["subject"]["personal_id"]
        status = "partial" if subject in partial_for else "complete"
        return web.json_response({"status": status, "dossier_id": body["dossier_id"]})

    app = web.Application()
    app.router.add_post("/v1/lookups", lookup)
    return app


@pytest.fixture(scope="module")
def stand_in_stack(sandbox: tuple[str, int]) -> Iterator[StackEndpoints]:
    sandbox_url, sandbox_pid = sandbox
    for gateway_url in _serve_in_thread(_stand_in_gateway(api_key=STAND_IN_KEY)):
        yield StackEndpoints(
            gateway_url=gateway_url,
            sandbox_url=sandbox_url,
            worker_pid=sandbox_pid,
            api_key=STAND_IN_KEY,
        )


def assert_well_formed(result: dict[str, Any], results_dir: Path) -> None:
    """Keys present, counts > 0, latencies ordered, goals judged, the JSON file written."""
    for key in ("scenario", "quick", "started_at", "machine", "git_commit", "figures", "goals"):
        assert key in result, key
    assert result["quick"] is True
    assert set(result["machine"]) >= {"cores", "python", "platform", "kafka_version"}
    assert result["git_commit"]
    for run in result.get("runs", {}).values():
        assert run["requests"] > 0 and run["ok"] > 0
        latency = run["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    for goal in result["goals"]:
        assert goal["status"] in {"met", "not met", "n/a"}
    saved = Path(result["result_file"])
    assert saved.parent == results_dir
    assert saved.name.endswith(f"-{result['scenario']}.json")
    assert json.loads(saved.read_text(encoding="utf-8"))["figures"] == result["figures"]


def test_percentiles_are_nearest_rank_and_ordered() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    summary = latency_summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert summary["p50"] == 3.0 and summary["p99"] == 5.0 and summary["mean"] == 3.0
    assert linear_slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)


def test_closed_loop_counts_incomplete_lookups_as_errors(sandbox: tuple[str, int]) -> None:
    subjects = ("001000000001", "001000000002", "001000000003", "001000000004")
    for gateway_url in _serve_in_thread(_stand_in_gateway(frozenset(subjects[:1]))):
        spec = LoadSpec("bus", gateway_url, subjects, "closed", 4, warmup_s=0.2, duration_s=1.0)
        summary = run_in_process(spec).summary()
    assert summary["ok"] > 0
    assert set(summary["error_kinds"]) == {"status partial"}
    assert summary["requests"] == summary["ok"] + summary["errors"]


def test_open_loop_sends_its_rate_whatever_the_answers(stand_in_stack: StackEndpoints) -> None:
    assert stand_in_stack.gateway_url is not None
    spec = LoadSpec(
        "bus",
        stand_in_stack.gateway_url,
        ("001000000001",),
        "open",
        rate=50.0,
        duration_s=1.0,
        warmup_s=0.2,
    )
    summary = run_in_process(spec).summary()
    assert abs(summary["requests"] - 50) <= 1


def test_direct_baseline_speaks_the_sandbox_soap(stand_in_stack: StackEndpoints) -> None:
    from bench.scenarios import fetch_subjects

    assert stand_in_stack.sandbox_url is not None
    subjects = fetch_subjects(stand_in_stack.sandbox_url, 50)
    spec = LoadSpec("direct", stand_in_stack.sandbox_url, subjects, "closed", 2, duration_s=0.5)
    summary = run_in_process(spec).summary()
    assert summary["errors"] == 0, summary["error_kinds"]
    assert summary["ok"] > 0


def _check_throughput_stand_in(result: dict[str, Any]) -> None:
    # Raw HTTP, zeep and the (stand-in) gateway ran; Kafka-native could not: said so, n/a.
    assert set(result["runs"]) == {"direct", "zeep", "bus"}
    assert result["runs"]["zeep"]["concurrency"] == 8
    figures = result["figures"]
    assert figures["zeep_lookups_per_s"] > 0 and figures["bus_vs_zeep"] is not None
    assert figures["kafka_lookups_per_s"] is None and figures["kafka_vs_zeep"] is None
    goals = {goal["figure"]: goal for goal in result["goals"]}
    assert goals["bus_vs_zeep"]["status"] in {"met", "not met"}
    assert goals["kafka_errors"]["status"] == "n/a" and "Kafka" in goals["kafka_errors"]["reason"]
    # No gateway or broker pid in the stand-in: the CPU sum is n/a, naming what is missing.
    assert figures["bus_cpu_ms_per_lookup"] is None
    assert goals["bus_cpu_ms_per_lookup"]["status"] == "n/a"
    assert "gateway" in goals["bus_cpu_ms_per_lookup"]["reason"]
    assert any("kafka run not made" in note for note in result["notes"])
    cpu = result["runs"]["bus"]["cpu"]["processes"]
    assert cpu["gateway"]["ms_per_lookup"] is None  # unknown pid: a row of —, not left out
    assert cpu[LOADGEN]["cpu_s"] is not None and cpu["worker"]["cpu_s"] is not None


def _check_overhead_stand_in(result: dict[str, Any]) -> None:
    capacity = result["runs"]["capacity"]
    assert capacity["mode"] == "closed"
    rate = result["figures"]["rate_per_s"]
    assert rate == round(capacity["throughput_per_s"] / 2, 1)
    assert result["runs"]["bus"]["rate_per_s"] == result["runs"]["direct"]["rate_per_s"] == rate
    # The fast direct run's answers all come before its window ends: the window still closes.
    for run in result["runs"].values():
        assert run["cpu"]["processes"][LOADGEN]["cpu_s"] is not None


def _check_overload_stand_in(result: dict[str, Any]) -> None:
    runs = result["runs"]
    assert {"capacity", "overload", "recovery"} <= set(runs)
    assert runs["overload"]["rate_per_s"] == round(2 * runs["capacity"]["throughput_per_s"], 1)
    assert runs["recovery"]["rate_per_s"] == round(runs["capacity"]["throughput_per_s"] / 2, 1)
    assert len(runs["recovery"]["timeline"]) == result["params"]["recovery_s"]
    figures = result["figures"]
    for key in ("goodput_per_s", "goodput_ratio", "refused", "late_replies", "recovery_s"):
        assert figures[key] is not None, key
    assert "worker_rss_peak_mb" in figures  # the sandbox stands in for the worker
    goals = {goal["figure"]: goal for goal in result["goals"]}
    # Refusals are judged only when there were some.
    judged = {"met", "not met"} if figures["refused"] else {"n/a"}
    assert goals["refusal_p99_ms"]["status"] in judged
    assert goals["refusals_without_retry_after"]["status"] in judged
    assert figures["refusals_without_retry_after"] == 0  # the stand-in always sends it
    assert any("kafka overload run not made" in note for note in result["notes"])


def _check_memory(result: dict[str, Any]) -> None:
    assert result["memory"]["samples"] >= 2
    assert result["figures"]["peak_mb"] >= result["figures"]["start_mb"] > 0


def _check_prefill(result: dict[str, Any]) -> dict[str, Any]:
    """Both runs at the same concurrency, the ratio and the status mix adding up."""
    runs = result["runs"]
    figures: dict[str, Any] = result["figures"]
    assert set(runs) == {"single", "prefill"}
    assert runs["single"]["concurrency"] == runs["prefill"]["concurrency"]
    assert result["params"]["procedure"] == PREFILL_PROCEDURE
    assert len(result["params"]["datasets"]) == 4
    single, prefill = runs["single"], runs["prefill"]
    assert prefill["prefill"] is True and single["prefill"] is False
    assert figures["prefill_vs_single"] == round(
        prefill["throughput_per_s"] / single["throughput_per_s"], 3
    )
    mix = [figures[f"prefill_{status}"] for status in ("complete", "partial", "not_found")]
    assert sum(mix) == prefill["ok"] == sum(prefill["status_mix"].values())
    assert single["status_mix"] == {"complete": single["ok"]}
    assert figures["prefill_errors"] == prefill["errors"]
    goals = {goal["figure"]: goal for goal in result["goals"]}
    assert goals["prefill_vs_single"]["status"] in {"met", "not met"}
    assert goals["prefill_vs_single"]["target"] == ">= 0.5"
    return figures


def _check_prefill_stand_in(result: dict[str, Any]) -> None:
    figures = _check_prefill(result)
    # The stand-in's partial and not_found answers for want of a record are successes; its
    # partial answers with a timeout among their errors are errors, named by that code.
    assert figures["prefill_partial"] > 0 and figures["prefill_not_found"] > 0
    assert figures["prefill_complete"] > 0
    kinds = result["runs"]["prefill"]["error_kinds"]
    assert set(kinds) == {"status partial (timeout)"}
    assert figures["single_errors"] == 0


STAND_IN_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "lookup-throughput": _check_throughput_stand_in,
    "lookup-overhead": _check_overhead_stand_in,
    "memory": _check_memory,
    "prefill-throughput": _check_prefill_stand_in,
}


@pytest.mark.parametrize("scenario", LOAD_SCENARIOS)
def test_quick_load_scenario_against_stand_in_stack(
    scenario: str, stand_in_stack: StackEndpoints, tmp_path: Path
) -> None:
    result = run_scenario(scenario, quick=True, stack=stand_in_stack, results_dir=tmp_path)
    assert_well_formed(result, tmp_path)
    STAND_IN_CHECKS[scenario](result)


def _bounded_stack(
    sandbox: tuple[str, int], refuse_every: int = 0, bare_every: int = 0
) -> Iterator[StackEndpoints]:
    sandbox_url, sandbox_pid = sandbox
    for gateway_url in _serve_in_thread(
        _stand_in_gateway(
            refuse_every=refuse_every, bare_every=bare_every, bounded=True, api_key=STAND_IN_KEY
        )
    ):
        yield StackEndpoints(
            gateway_url=gateway_url,
            sandbox_url=sandbox_url,
            worker_pid=sandbox_pid,
            api_key=STAND_IN_KEY,
        )


def test_quick_overload_against_stand_in_stack(sandbox: tuple[str, int], tmp_path: Path) -> None:
    for stack in _bounded_stack(sandbox):
        result = run_scenario("overload", quick=True, stack=stack, results_dir=tmp_path)
    assert_well_formed(result, tmp_path)
    _check_overload_stand_in(result)


def test_overload_counts_refusals_and_their_retry_after(
    sandbox: tuple[str, int], tmp_path: Path
) -> None:
    for stack in _bounded_stack(sandbox, refuse_every=4, bare_every=10):
        result = run_scenario("overload", quick=True, stack=stack, results_dir=tmp_path)
    assert_well_formed(result, tmp_path)
    overload = result["runs"]["overload"]
    figures = result["figures"]
    assert 0 < figures["refusals_without_retry_after"] < figures["refused"] == overload["refused"]
    assert figures["refusals_not_problem_json"] == figures["refusals_without_retry_after"]
    assert overload["error_kinds"]["refused (http 503)"] == overload["refused"]
    assert figures["other_errors"] == overload["errors"] - overload["refused"]
    assert figures["refusal_p99_ms"] is not None
    assert figures["refused_share"] == round(overload["refused"] / overload["requests"], 3)
    goals = {goal["figure"]: goal for goal in result["goals"]}
    assert goals["refusals_without_retry_after"]["status"] == "not met"
    assert goals["refusal_p99_ms"]["status"] in {"met", "not met"}
    # Every 4th request refused, all through the recovery too: never a clean second.
    assert figures["recovery_s"] is None
    assert goals["recovery_s"]["status"] == "not met" and goals["recovery_s"]["reason"]


def test_gateway_answers_are_read_as_success_refusal_or_error() -> None:
    read = GatewayLookup(5000).outcome_of
    problem = {"Content-Type": "application/problem+json", "Retry-After": "2"}
    refused = read(503, problem, b"{}")
    assert refused.refused and refused.retry_after and refused.problem_json and refused.error
    bare = read(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"busy")
    assert bare.refused and bare.retry_after is False and bare.problem_json is False
    assert read(200, {}, b'{"status": "complete"}') == Outcome(answered=True, status="complete")
    partial = read(200, {}, b'{"status": "partial"}')
    assert partial.error == "status partial" and partial.answered and not partial.refused
    assert read(504, {}, b"{}").error == "http 504"
    assert read(200, {}, b"[]").error == "status None"
    # A single-source lookup wants "complete"; a prefill also takes what is missing.
    missing = b'{"status": "partial", "errors": [{"code": "not_found"}]}'
    assert read(200, {}, missing).error == "status partial"
    prefill = GatewayLookup(5000, prefill=True, missing_ok=True)
    assert prefill.outcome_of(200, {}, missing) == Outcome(answered=True, status="partial")
    nobody = b'{"status": "not_found", "errors": [{"code": "not_found"}]}'
    assert prefill.outcome_of(200, {}, nobody) == Outcome(answered=True, status="not_found")
    late = b'{"status": "partial", "errors": [{"code": "timeout"}, {"code": "not_found"}]}'
    assert prefill.outcome_of(200, {}, late).error == "status partial (timeout)"
    assert prefill.outcome_of(200, {}, b'{"status": "denied"}').error == "status denied"


def test_lookup_bodies_carry_the_policy_fields_and_the_key() -> None:
    single = json.loads(GatewayLookup(5000).body(1, "001000000001"))
    assert single["requester"]["agency_code"] == AGENCY == "H26.22"
    assert (single["procedure_code"], single["purpose"]) == ("1.004222", PURPOSE)
    assert single["datasets"] == ["population.identity"]
    prefill = GatewayLookup(
        5000, procedure=PREFILL_PROCEDURE, purpose=PREFILL_PURPOSE, prefill=True
    ).body(2, "001000000002")
    body = json.loads(prefill)
    assert "datasets" not in body and body["procedure_code"] == PREFILL_PROCEDURE
    spec = LoadSpec("bus", "http://127.0.0.1:1", ("x",), api_key="secret-key")
    assert spec.request_headers()["Authorization"] == "Bearer secret-key"
    assert "secret-key" not in repr(spec)  # a spec may be printed; its keys are not
    direct = LoadSpec("direct", "http://127.0.0.1:1", ("x",), api_key="secret-key")
    assert "Authorization" not in direct.request_headers()
    with pytest.raises(ValueError, match="prefill"):
        LoadSpec("kafka", "127.0.0.1:1", ("x",), prefill=True)
    with pytest.raises(ValueError, match="signing_key"):
        KafkaDriver(LoadSpec("kafka", "127.0.0.1:1", ("x",)))


def test_tally_counts_late_replies_and_finds_the_first_clean_second() -> None:
    tally = Tally()
    ok, failed = Outcome(answered=True), Outcome("http 504")
    # 10 requests a second for 5 s: failures until 1.45 s, then all succeed.
    for index in range(50):
        offset = index / 10
        tally.record(0.01, failed if offset < 1.45 else ok, 5000, offset)
    tally.record(6.0, ok, 5000, 4.95)  # an answer after its 5-s deadline
    summary = tally.summary(5.0)
    assert summary["late_replies"] == 1
    assert summary["ok"] == 36 and summary["goodput_per_s"] == 7.0  # the late one excluded
    assert tally.first_clean_second(5.0) == 1.5
    assert [second["ok"] for second in tally.timeline(5.0)] == [0, 5, 10, 10, 11]
    never = Tally()
    never.record(0.01, failed, 5000, 0.5)
    assert never.first_clean_second(5.0) is None


def test_tally_counts_the_statuses_of_successes() -> None:
    tally = Tally()
    tally.record(0.01, Outcome(answered=True, status="complete"), 5000)
    tally.record(0.01, Outcome(answered=True, status="partial"), 5000)
    tally.record(0.01, Outcome(answered=True, status="partial"), 5000)
    tally.record(0.01, Outcome("status partial (timeout)", answered=True), 5000)
    tally.record(0.01, Outcome(answered=True), 5000)  # the sandbox's answers carry none
    summary = tally.summary(1.0)
    assert summary["ok"] == 4 and summary["errors"] == 1
    assert summary["status_mix"] == {"partial": 2, "complete": 1}


def test_cpu_per_lookup_names_what_it_cannot_sum() -> None:
    assert (proc_cpu_ticks("self") or 0) > 0
    assert proc_cpu_ticks(2**22 + 12345) is None
    tick = os.sysconf("SC_CLK_TCK")
    start = {"gateway": 0, "worker": 0, "worker-2": 0, "broker": 0, "machine": 0}
    end = {
        "gateway": tick,
        "worker": 2 * tick,
        "worker-2": tick,
        "broker": tick,
        "machine": 8 * tick,
    }
    cpu = cpu_per_lookup(start, end, lookups=1000, window_s=10.0)
    assert cpu["processes"]["worker"]["ms_per_lookup"] == 2.0
    assert cpu["processes"]["worker"]["core_pct"] == 20.0
    assert cpu["bus_ms_per_lookup"] == 5.0  # gateway + both workers + broker
    assert cpu["others_core_pct"] == 30.0 and "machine" not in cpu["processes"]
    missing = cpu_per_lookup({"gateway": 0, "worker": 0}, {"gateway": 1, "worker": 1}, 10, 1.0)
    assert missing["bus_ms_per_lookup"] is None and missing["bus_sum_unknown"] == ["broker"]


def test_rss_over_window_takes_start_peak_end_inside_it() -> None:
    samples = [
        (0.0, {"gateway": 50.0}),
        (1.0, {"gateway": 52.0}),
        (2.0, {"gateway": 60.0}),
        (3.0, {"gateway": 55.0}),
        (4.0, {"gateway": 90.0}),
    ]
    rss = rss_over_window(samples, 1.5, 3.5)["gateway"]
    assert (rss["start_mb"], rss["peak_mb"], rss["end_mb"], rss["growth_mb"]) == (
        52.0,
        60.0,
        55.0,
        8.0,
    )


@pytest.mark.integration
def test_quick_sync_throughput_measures_the_raw_pipe_and_the_bus_path(
    kafka_broker: Any, tmp_path: Path
) -> None:
    result = run_scenario(
        "sync-throughput",
        quick=True,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        results_dir=tmp_path,
    )
    assert_well_formed(result, tmp_path)
    assert result["sync"]["raw_pipe"]["events"] == result["params"]["events"] > 0
    assert result["figures"]["raw_pipe_events_per_s"] > 0
    bus = result["sync"]["bus"]
    # Every change of the sandbox's backlog reached the webhook, each key once at least.
    assert bus["complete"] and bus["events"] == bus["expected"] == result["params"]["bus_events"]
    assert bus["source"].startswith("bench")
    ratio = result["figures"]["sync_ratio"]
    assert ratio == round(bus["events_per_s"] / result["figures"]["raw_pipe_events_per_s"], 3)
    batched = result["sync"]["bus_batched"]
    assert batched["complete"] and batched["events"] == bus["expected"]
    assert batched["batch_max"] > 1 and batched["posts"] < batched["events"]
    assert result["figures"]["batched_worker_cpu_ms_per_event"] > 0


@pytest.fixture(scope="module")
def started_dev_stack(kafka_broker: Any) -> Iterator[StackEndpoints]:
    """The whole stack (sandbox, worker, gateway) on the session's broker, whose pid the stack
    cannot know (to the stack it is an external cluster): given here for the CPU figures."""
    settings = get_settings()
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": kafka_broker.bootstrap_servers})
    broker_pid = kafka_broker.local.running_pid() if kafka_broker.local is not None else None
    with started_stack(settings.model_copy(update={"kafka": kafka})) as stack:
        yield replace(stack, broker_pid=broker_pid)


@pytest.fixture
def dev_stack(started_dev_stack: StackEndpoints) -> StackEndpoints:
    """The started stack as it is now: audit-cost restarts its gateway and worker (new pids)."""
    assert started_dev_stack.current is not None
    return replace(started_dev_stack.current(), broker_pid=started_dev_stack.broker_pid)


def _bus_cpu_rows(run: dict[str, Any], workers: int = 1) -> None:
    processes = run["cpu"]["processes"]
    names = {
        "gateway",
        "worker",
        "sandbox",
        LOADGEN,
        *(f"worker-{n}" for n in range(2, workers + 1)),
    }
    assert names <= set(processes)
    for name in names:
        assert processes[name]["cpu_s"] is not None, name
    if "broker" in processes and processes["broker"]["ms_per_lookup"] is not None:
        assert run["cpu"]["bus_ms_per_lookup"] is not None


def _check_throughput_dev(result: dict[str, Any]) -> None:
    assert set(result["runs"]) == {"direct", "zeep", "bus", "kafka"}
    figures = result["figures"]
    for key in ("kafka_lookups_per_s", "zeep_lookups_per_s", "bus_vs_zeep", "kafka_vs_zeep"):
        assert figures[key] is not None and figures[key] > 0, key
    for name in ("bus", "kafka"):
        _bus_cpu_rows(result["runs"][name])
    goals = {goal["figure"]: goal for goal in result["goals"]}
    assert goals["kafka_errors"]["status"] in {"met", "not met"}


def _check_overload_dev(result: dict[str, Any]) -> None:
    runs = result["runs"]
    assert {"capacity", "overload", "recovery", "kafka capacity", "kafka overload"} <= set(runs)
    figures = result["figures"]
    for key in ("goodput_ratio", "kafka_goodput_ratio", "late_replies", "kafka_late_replies"):
        assert figures[key] is not None, key
    assert set(result["rss"]) >= {"gateway", "worker"}
    assert figures["gateway_rss_peak_mb"] >= figures["gateway_rss_start_mb"] > 0


def _check_scaling_dev(result: dict[str, Any]) -> None:
    runs = result["runs"]
    assert set(runs) == {"bus, 1 worker", "kafka, 1 worker", "bus, 2 workers", "kafka, 2 workers"}
    _bus_cpu_rows(runs["bus, 2 workers"], workers=2)
    assert "worker-2" not in runs["bus, 1 worker"]["cpu"]["processes"]
    for key in ("bus_scaling_factor", "kafka_scaling_factor"):
        assert result["figures"][key] is not None, key
    assert all(goal["status"] == "n/a" and goal["reason"] for goal in result["goals"])


def _check_prefill_dev(result: dict[str, Any]) -> None:
    figures = _check_prefill(result)
    for name in ("single", "prefill"):
        _bus_cpu_rows(result["runs"][name])
    assert figures["prefill_complete"] > 0
    assert figures["prefill_cpu_ms_per_lookup"] is not None


def _check_audit_cost_dev(result: dict[str, Any]) -> None:
    runs, figures = result["runs"], result["figures"]
    assert list(runs) == ["audit on", "audit off"]
    for run in runs.values():
        _bus_cpu_rows(run)
    # The trail wrote events with it on, and none with it off.
    assert figures["audit_on_events"] > 0 and figures["audit_off_events"] == 0
    assert figures["audit_on_vs_off"] is not None
    goals = {goal["figure"]: goal for goal in result["goals"]}
    assert goals["audit_on_vs_off"]["status"] in {"met", "not met"}


def _one_lookup(stack: StackEndpoints) -> int:
    """The HTTP status of one single-source lookup through the stack's gateway."""
    assert stack.gateway_url is not None and stack.sandbox_url is not None
    from bench.scenarios import fetch_subjects

    body = gateway_body(1, fetch_subjects(stack.sandbox_url, 1)[0], 3000)
    request = urllib.request.Request(
        f"{stack.gateway_url}/v1/lookups",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.api_key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


def _check_audit_restored(before: StackEndpoints, after: StackEndpoints) -> None:
    """audit-cost restarted the gateway and the worker, and left the audit trail on."""
    assert after.gateway_pid != before.gateway_pid and after.worker_pid != before.worker_pid
    written = audit_events(after.bootstrap_servers)
    assert _one_lookup(after) == 200
    deadline = time.monotonic() + 10
    while (audit_events(after.bootstrap_servers) or 0) <= (written or 0):
        assert time.monotonic() < deadline, "no audit event after the stack was restored"
        time.sleep(0.2)


DEV_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "lookup-throughput": _check_throughput_dev,
    "overload": _check_overload_dev,
    "scaling": _check_scaling_dev,
    "prefill-throughput": _check_prefill_dev,
    "audit-cost": _check_audit_cost_dev,
}


@pytest.mark.integration
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_quick_scenario_against_dev_stack(
    scenario: str, dev_stack: StackEndpoints, tmp_path: Path
) -> None:
    result = run_scenario(scenario, quick=True, stack=dev_stack, results_dir=tmp_path)
    assert_well_formed(result, tmp_path)
    if scenario in DEV_CHECKS:
        DEV_CHECKS[scenario](result)
    if scenario == "scaling":  # the stack is back to its one worker for the tests after it
        assert dev_stack.scale_workers is not None
        assert len(dev_stack.scale_workers(1)) == 1
    if scenario == "audit-cost":
        assert dev_stack.current is not None
        _check_audit_restored(dev_stack, dev_stack.current())


def _restarting(
    stack: StackEndpoints, calls: list[bool | None], fail_on: bool | None = None
) -> StackEndpoints:
    """``stack`` with a stand-in restart_bus: records each call, fails the ``fail_on`` one."""
    pid = stack.need("worker_pid")

    def restart(audit: bool | None) -> tuple[int, tuple[int, ...]]:
        calls.append(audit)
        if fail_on is not None and audit is fail_on:
            raise RuntimeError("the worker did not start")
        return pid, (pid,)

    return replace(stack, restart_bus=restart)


def test_quick_audit_cost_against_stand_in_stack(
    stand_in_stack: StackEndpoints, tmp_path: Path
) -> None:
    calls: list[bool | None] = []
    stack = _restarting(stand_in_stack, calls)
    result = run_scenario("audit-cost", quick=True, stack=stack, results_dir=tmp_path)
    assert_well_formed(result, tmp_path)
    # On, then off, then back to the stack's own settings.
    assert calls == [True, False, None]
    assert list(result["runs"]) == ["audit on", "audit off"]
    figures = result["figures"]
    on, off = result["runs"]["audit on"], result["runs"]["audit off"]
    assert on["concurrency"] == off["concurrency"]
    assert figures["audit_on_vs_off"] == round(on["throughput_per_s"] / off["throughput_per_s"], 3)
    assert figures["audit_on_errors"] == figures["audit_off_errors"] == 0
    assert figures["audit_on_events"] is None  # no Kafka in the stand-in: not counted
    # The restarted "gateway" (the sandbox here) has a pid: its CPU is read.
    assert on["cpu"]["processes"]["gateway"]["cpu_s"] is not None
    goals = {goal["figure"]: goal for goal in result["goals"]}
    assert goals["audit_on_vs_off"]["status"] in {"met", "not met"}
    assert goals["audit_on_vs_off"]["target"] == ">= 0.8"


def test_audit_cost_restores_the_stack_when_a_run_fails(stand_in_stack: StackEndpoints) -> None:
    calls: list[bool | None] = []
    stack = _restarting(stand_in_stack, calls, fail_on=False)
    with pytest.raises(RuntimeError, match="did not start"):
        run_scenario("audit-cost", quick=True, stack=stack)
    assert calls == [True, False, None]


def test_audit_cost_needs_a_stack_it_can_restart(stand_in_stack: StackEndpoints) -> None:
    with pytest.raises(ValueError, match="restart_bus"):
        run_scenario("audit-cost", quick=True, stack=stand_in_stack)


def test_scaling_needs_a_stack_it_can_scale(stand_in_stack: StackEndpoints) -> None:
    with pytest.raises(ValueError, match="scale_workers"):
        run_scenario("scaling", quick=True, stack=stand_in_stack)


def test_commit_is_unknown_outside_a_repository(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"


def assert_profiled(
    result: dict[str, Any],
    results_dir: Path,
    processes: set[str],
    idle: frozenset[str] = frozenset(),
) -> None:
    """py-spy recorded each process, its raw file is beside the JSON, the summary adds up."""
    profile = result["profile"]
    assert set(profile["processes"]) == processes
    for name, entry in profile["processes"].items():
        assert entry["status"] == "recorded", entry.get("reason")
        raw = Path(entry["raw_file"])
        assert raw.parent == results_dir and raw.name.endswith(f"-{name}.profile.txt")
        if name in idle and entry["samples"] == 0:
            assert not raw.read_text(encoding="utf-8").strip()
            continue
        if name in idle and not entry["top_frames"]:
            # Nearly idle: a few samples, each only the stack's entry frames (the summary drops
            # them up to the dispatch frame), so nothing is left to rank.
            assert entry["samples"] < 50, entry["samples"]
            continue
        assert raw.read_text(encoding="utf-8").strip()
        assert entry["samples"] > 0
        assert 0 < len(entry["top_frames"]) <= 15
        selves = sum(bucket["self_share"] for bucket in entry["buckets"].values())
        assert selves == pytest.approx(1.0, abs=0.01)
    saved = json.loads(Path(result["result_file"]).read_text(encoding="utf-8"))
    assert saved["profile"] == profile


def test_quick_profiled_run_against_stand_in_stack(
    stand_in_stack: StackEndpoints, tmp_path: Path
) -> None:
    # The sandbox stands in for the worker, but the bus run goes to the stand-in gateway (a
    # thread here, no pid of its own): the "worker" is (nearly) idle in the window, no error.
    result = run_scenario(
        "lookup-throughput", quick=True, profile=True, stack=stand_in_stack, results_dir=tmp_path
    )
    assert_well_formed(result, tmp_path)
    assert_profiled(result, tmp_path, {"worker"}, idle=frozenset({"worker"}))


def test_profile_needs_a_bus_load_run() -> None:
    with pytest.raises(ValueError, match="--profile"):
        run_scenario("sync-throughput", quick=True, profile=True)


@pytest.mark.integration
def test_quick_profiled_lookup_throughput_against_dev_stack(
    dev_stack: StackEndpoints, tmp_path: Path
) -> None:
    # Longer than the quick default: profiled, the bus run makes few lookups, and in 2 s the
    # worker's source calls (parsing, with the GIL) may not be sampled at all.
    result = run_scenario(
        "lookup-throughput",
        quick=True,
        profile=True,
        stack=dev_stack,
        results_dir=tmp_path,
        duration_s=6.0,
    )
    assert_well_formed(result, tmp_path)
    assert_profiled(result, tmp_path, {"worker", "gateway"})
    worker = result["profile"]["processes"]["worker"]
    assert worker["buckets"]["source call (adapter, zeep, HTTP)"]["samples"] > 0
