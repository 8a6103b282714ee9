"""`tthc-bus status` against the running stack, as an operator runs it: every process reports
on tthc.status, and a national database that stops answering shows as unhealthy within
seconds, then healthy again once it is back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from bus.tooling.devstack import DevStack

pytestmark = pytest.mark.integration

SOURCE = "insurance"


def status(stack: DevStack) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "bus.tooling.cli", "status", "--json"],
        env=dict(os.environ, TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=stack.bootstrap_servers),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def until(
    stack: DevStack, check: Callable[[dict[str, Any]], bool], timeout_s: float, what: str
) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - started < timeout_s:
        code, last = status(stack)
        if check(last):
            return code, last, time.monotonic() - started
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s (last: {last.get('sources')})")


def ours(report: dict[str, Any], pid: int) -> dict[str, Any]:
    [row] = [p for p in report["processes"] if p["pid"] == pid]
    return row


def faults(stack: DevStack, **values: Any) -> None:
    url = f"{stack.sandbox_url}/_sandbox/faults/{SOURCE}"
    requests.put(url, json=values, timeout=5).raise_for_status()


def test_every_process_reports_and_a_stopped_database_is_unhealthy_then_healthy_again(
    stack: DevStack,
) -> None:
    worker_pid = stack.worker_pid
    gateway_pid = stack.children["gateway"].process.pid
    assert worker_pid is not None

    def source_healthy(report: dict[str, Any]) -> bool:
        entry = report["sources"].get(SOURCE)
        return entry is not None and entry["healthy"] and "feed" in entry

    _, report, _ = until(stack, source_healthy, 60, f"{SOURCE} healthy at the start")
    worker, gateway = ours(report, worker_pid), ours(report, gateway_pid)
    assert worker["kind"] == "worker" and worker["healthy"], worker
    assert gateway["kind"] == "gateway" and gateway["healthy"], gateway
    kinds = {c["kind"] for c in worker["connectors"]}
    assert {"lookup", "feed", "subscription"} <= kinds
    assert [c["kind"] for c in gateway["connectors"]] == ["reply-reader"]
    assert {"requests", "retries", "dead_letters"} <= set(worker["counters"])
    assert any(name.startswith("tthc.sync.") for name in worker["streams"])
    assert report["groups"], "the consumer groups and their lag"

    faults(stack, outage=True)
    try:
        code, report, took = until(
            stack, lambda r: not r["sources"][SOURCE]["healthy"], 30, f"{SOURCE} unhealthy"
        )
        assert code == 1 and not report["healthy"]
        assert any(SOURCE in problem for problem in report["problems"]), report["problems"]
        assert report["sources"][SOURCE]["feed"] == "backing_off"
        assert report["sources"][SOURCE].get("error")
        assert took < 30
    finally:
        faults(stack)
    _, report, _ = until(stack, source_healthy, 60, f"{SOURCE} healthy again")
    assert not any(SOURCE in problem for problem in report["problems"])


def test_the_worker_and_the_gateway_serve_healthz_readyz_and_metrics(stack: DevStack) -> None:
    worker = f"http://127.0.0.1:{stack.worker_web_port}"
    ledger = f"http://127.0.0.1:{stack.ledger_web_port}"
    for base in (worker, stack.gateway_url, ledger):
        alive = requests.get(f"{base}/healthz", timeout=10)
        assert alive.status_code == 200 and alive.json()["status"] == "ok", base
        ready = requests.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["status"] == "ready" and set(body["checks"].values()) == {"ok"}, body
    assert set(requests.get(f"{worker}/readyz", timeout=10).json()["checks"]) == {
        "maintenance",
        "broker",
        "consumers",
        "breakers",
    }
    gateway_checks = requests.get(f"{stack.gateway_url}/readyz", timeout=10).json()["checks"]
    assert set(gateway_checks) == {"replies", "broker", "maintenance"}
    ledger_checks = requests.get(f"{ledger}/readyz", timeout=10).json()["checks"]
    assert set(ledger_checks) == {"broker", "consumers", "ledger"}
    assert "tthc_dead_letters" in requests.get(f"{ledger}/metrics", timeout=10).text
    metrics = requests.get(f"{worker}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "tthc_source_calls_total" in metrics.text
    assert "tthc_worker_lookups_total" in metrics.text


def maintenance(stack: DevStack, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bus.tooling.cli", "maintenance", *args],
        env=dict(os.environ, TTHC_BUS_KAFKA__BOOTSTRAP_SERVERS=stack.bootstrap_servers),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_maintenance_drains_the_gateway_and_it_takes_lookups_again_after(
    stack: DevStack,
) -> None:
    from bus.tooling.devstack import example_lookup

    _, report = status(stack)
    member = ours(report, stack.children["gateway"].process.pid)["member"]
    subject = requests.get(f"{stack.sandbox_url}/_sandbox/sample?n=1", timeout=5).json()[0]

    def lookup() -> requests.Response:
        return requests.post(
            f"{stack.gateway_url}/v1/lookups",
            json=example_lookup(subject),
            headers=stack.keys.headers(),
            timeout=30,
        )

    def wait_status(code: int) -> requests.Response:
        ends = time.monotonic() + 20
        while True:
            answer = lookup()
            if answer.status_code == code or time.monotonic() > ends:
                return answer
            time.sleep(0.3)

    maintenance(stack, "on", "--member", member, "--reason", "upgrade to 1.2")
    try:
        refused = wait_status(503)
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "maintenance (upgrade to 1.2)" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
        ready = requests.get(f"{stack.gateway_url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["checks"]["maintenance"] == "in maintenance: upgrade to 1.2"
        assert requests.get(f"{stack.gateway_url}/healthz", timeout=10).status_code == 200
    finally:
        maintenance(stack, "off", "--member", member)
    back = wait_status(200)
    assert back.status_code == 200 and back.json()["status"] == "complete", back.text
    assert requests.get(f"{stack.gateway_url}/readyz", timeout=10).status_code == 200


def test_maintenance_drains_a_worker_out_of_its_groups_and_it_joins_again_after(
    stack: DevStack,
) -> None:
    """Two workers; the second in maintenance leaves the lookup path's groups (the first then
    holds every request partition and answers every lookup), its /readyz says why and its
    status shows it drained; back, it holds its share again."""
    from bus.tooling.devstack import example_lookup

    pids = stack.scale_workers(2)
    try:
        second = stack.children["worker-2"].process.pid
        assert second in pids
        port = stack.worker_places[2][0]
        _, report = status(stack)
        member = ours(report, second)["member"]
        subjects = requests.get(f"{stack.sandbox_url}/_sandbox/sample?n=5", timeout=5).json()

        def lookups_complete() -> list[str]:
            answers = [
                requests.post(
                    f"{stack.gateway_url}/v1/lookups",
                    json=example_lookup(subject),
                    headers=stack.keys.headers(),
                    timeout=30,
                )
                for subject in subjects
            ]
            return [a.json().get("status", str(a.status_code)) for a in answers]

        maintenance(stack, "on", "--member", member, "--reason", "kernel update")
        try:
            stack.wait_workers_assigned(1, timeout=60)
            ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["maintenance"] == "in maintenance: kernel update"
            assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
            assert lookups_complete() == ["complete"] * len(subjects)
            _, drained, _ = until(
                stack,
                lambda r: any(
                    c["name"] == "lookups" and c["state"] == "drained"
                    for c in ours(r, second)["connectors"]
                ),
                30,
                "the drained worker's status",
            )
            row = ours(drained, second)
            [part] = [c for c in row["connectors"] if c["name"] == "lookups"]
            assert part["detail"] == "left its consumer groups: kernel update"
        finally:
            maintenance(stack, "off", "--member", member)
        stack.wait_workers_assigned(2, timeout=90)
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        assert lookups_complete() == ["complete"] * len(subjects)
    finally:
        stack.scale_workers(1)
