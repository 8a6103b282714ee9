"""The gateway's live dashboard in a real browser: Debian's chromium, headless, driven by
Playwright, with every request outside the gateway refused (the page must work on an isolated
network). It shows the streams, the national databases, the dead letters, the service quality
and the processes; a screenshot is kept in .run/artifacts/ (and the test's own folder)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Route, sync_playwright

from bus.tooling.devstack import PROJECT_ROOT, DevStack

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / ".run" / "artifacts"


def test_the_dashboard_shows_streams_sources_dead_letters_quality_and_processes(
    stack: DevStack, tmp_path: Path
) -> None:
    browser_path = shutil.which("chromium")
    assert browser_path, "chromium not found: `make test` installs Debian's chromium package"
    stack.wait_lookup_ready()  # a lookup on record: the quality view has a row
    outside: list[str] = []

    def only_the_gateway(route: Route) -> Any:
        if route.request.url.startswith(stack.gateway_url):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_path, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", only_the_gateway)
            page.goto(f"{stack.gateway_url}/dashboard")
            page.wait_for_selector("#sources tbody tr >> text=population", timeout=30_000)
            page.wait_for_selector("#quality tbody tr >> text=population", timeout=30_000)
            page.wait_for_function(
                "document.querySelectorAll('#streams tbody tr').length >= 5", timeout=30_000
            )
            # Two refreshes apart: the streams' throughput is a rate between them.
            page.wait_for_timeout(2500)
            streams = page.inner_text("#streams")
            sources = page.inner_text("#sources")
            dlq = page.inner_text("#dlq")
            quality = page.inner_text("#quality")
            processes = page.inner_text("#processes")
            state = page.inner_text("#state")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert outside == [], "the page asked for something outside the gateway"
    for source in ("civil", "population", "insurance", "licence", "enterprise"):
        assert f"tthc.sync.{source}.change" in streams
        assert source in sources
    assert "events/s" in streams and "lag" in streams
    assert "p99 ms" in sources and "breaker" in sources
    assert "death-removes-residence" in dlq and "dead-lettered" in dlq
    assert "within deadline" in quality and "%" in quality
    assert "worker" in processes and "gateway" in processes
    assert "status not available" not in state
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000
