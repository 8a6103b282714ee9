"""The gateway's API documentation in a real browser: Debian's chromium, headless, driven by
Playwright, with every request outside the gateway refused (an isolated network). Swagger UI at
/docs and ReDoc at /redoc render the operations of /openapi.json from the gateway's own assets;
no request leaves the gateway. Screenshots are kept in .run/artifacts/ (and the test's folder)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, sync_playwright

from bus.tooling.devstack import PROJECT_ROOT, DevStack

pytestmark = pytest.mark.integration

ARTIFACTS = PROJECT_ROOT / ".run" / "artifacts"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    browser_path = shutil.which("chromium")
    assert browser_path, "chromium not found: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=browser_path, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


def open_isolated(browser: Browser, stack: DevStack, path: str) -> tuple[Page, list[str]]:
    """A page at `path` of the gateway; every request elsewhere is aborted, and listed with
    those the page attempted but the browser refused itself (its Content-Security-Policy)."""
    outside: list[str] = []

    def only_the_gateway(route: Route) -> Any:
        if route.request.url.startswith(stack.gateway_url):
            return route.continue_()
        return route.abort()

    def attempted(request: Request) -> None:
        if not request.url.startswith((stack.gateway_url, "data:", "blob:")):
            outside.append(request.url)

    def refused(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            outside.append(message.text)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("request", attempted)
    page.on("console", refused)
    page.route("**/*", only_the_gateway)
    page.goto(f"{stack.gateway_url}{path}")
    return page, outside


def keep(page: Page, name: str, tmp_path: Path) -> None:
    page.wait_for_load_state("networkidle")  # whatever the page asks for late is asked by now
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)
    page.screenshot(path=str(tmp_path / name), full_page=False)


def test_swagger_ui_lists_the_operations_with_nothing_from_outside(
    stack: DevStack, browser: Browser, tmp_path: Path
) -> None:
    page, outside = open_isolated(browser, stack, "/docs")
    try:
        lookups = page.locator('.opblock-post .opblock-summary-path[data-path="/v1/lookups"]')
        lookups.wait_for(timeout=TIMEOUT_MS)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        # The lookup's block opens on its examples: the 413 and a denied answer are listed.
        lookups.click()
        page.locator(".opblock-post.is-open .responses-table").wait_for(timeout=TIMEOUT_MS)
        responses = page.locator(".opblock-post.is-open .responses-table").inner_text()
        keep(page, "docs-swagger-ui.png", tmp_path)
    finally:
        page.close()
    assert outside == [], "the page asked for something outside the gateway"
    for path in ("/v1/lookups", "/v1/audit", "/v1/procedures", "/healthz", "/readyz"):
        assert any(text.replace("\u200b", "") == path for text in paths), (path, paths)
    for status in ("200", "400", "401", "403", "413", "502", "503", "504"):
        assert status in responses, status
    assert "422" not in responses


def test_redoc_lists_the_operations_with_nothing_from_outside(
    stack: DevStack, browser: Browser, tmp_path: Path
) -> None:
    page, outside = open_isolated(browser, stack, "/redoc")
    try:
        operation = page.locator('[data-section-id="operation/post_lookup_v1_lookups_post"]').first
        operation.wait_for(timeout=TIMEOUT_MS)
        text = operation.inner_text()
        menu = page.locator(".menu-content").inner_text()
        keep(page, "docs-redoc.png", tmp_path)
    finally:
        page.close()
    assert outside == [], "the page asked for something outside the gateway"
    assert "/v1/lookups" in text
    for status in ("200", "413", "503"):
        assert status in text, status
    assert "/v1/audit" in menu or "Who accessed" in menu
