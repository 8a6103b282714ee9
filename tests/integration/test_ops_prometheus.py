"""The metrics and the alerting files pass promtool (Debian's prometheus package, which
`make test` installs): the exposition of a running worker and gateway, the scrape
configuration, the alert rules and their unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from bus.tooling.devstack import DevStack

pytestmark = pytest.mark.integration

DOCKER = Path(__file__).resolve().parents[2] / "docker" / "prometheus"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool not found: `make test` installs Debian's prometheus package"
    return subprocess.run(
        [tool, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_exposition_of_every_http_process_passes_promtool(stack: DevStack) -> None:
    # A lookup first, so that the per-source and per-status series exist.
    stack.wait_lookup_ready()
    texts = {}
    for url in (
        f"http://127.0.0.1:{stack.worker_web_port}/metrics",
        f"{stack.gateway_url}/metrics",
        f"http://127.0.0.1:{stack.ledger_web_port}/metrics",
    ):
        text = texts[url] = requests.get(url, timeout=10).text
        assert "tthc_" in text, url
        checked = promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0, f"{url}:\n{checked.stdout}{checked.stderr}"
    # The gateway exports every group's lag itself (the lag alert needs no Kafka exporter).
    lags = [
        line
        for line in texts[f"{stack.gateway_url}/metrics"].splitlines()
        if line.startswith("tthc_consumer_group_lag_messages{")
    ]
    assert any('group="tthc-bus.lookup-router"' in line for line in lags), lags


def test_the_scrape_configuration_and_the_alert_rules_pass_promtool() -> None:
    for args in (
        ("check", "config", str(DOCKER / "prometheus.yml")),
        ("check", "rules", str(DOCKER / "alerts.yml")),
        ("test", "rules", str(DOCKER / "alerts_test.yml")),
    ):
        checked = promtool(*args)
        assert checked.returncode == 0, f"{args}:\n{checked.stdout}{checked.stderr}"
