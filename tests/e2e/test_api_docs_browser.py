"""The API's documentation pages in Debian's chromium (Playwright, headless)
on a machine without internet: /docs (Swagger UI) and /redoc draw the
operations from assets the hub serves itself, no request leaves 127.0.0.1,
and the pages' Content-Security-Policy (only 'self') refuses nothing they need."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine

from billbridge.emulation.recording import RecordingTarget
from billbridge.engine.hub import Hub
from billbridge.web import HubServer
from browser import browser_page  # noqa: F401 (a fixture)


@pytest.fixture
def server(engine: Engine) -> Iterator[HubServer]:
    hub = Hub(engine, {"ledger": RecordingTarget("ledger")})
    running = HubServer(hub, port=0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("path", "operation"), [
    # Swagger UI: an operation's summary in its collapsed row.
    ("/docs", "#operations-exceptions-list_exceptions_v1_exceptions_get"),
    # ReDoc: the operation's heading in the middle panel.
    ("/redoc", "h2:has(a[href='#tag/exceptions/operation/list_exceptions_v1_exceptions_get'])"),
])
def test_the_api_docs_render_from_the_hub_alone(browser_page: object, server: HubServer,  # noqa: F811
                                               path: str, operation: str) -> None:
    from playwright.sync_api import Page, Request, expect

    page: Page = browser_page  # type: ignore[assignment]
    requested: list[str] = []
    blocked: list[str] = []  # refused by the page's own policy, before leaving the browser
    refusals: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    def failed(request: Request) -> None:
        if request.failure == "csp":  # chromium's net::ERR_BLOCKED_BY_CSP
            blocked.append(request.url)

    page.on("request", record)
    page.on("requestfailed", failed)
    page.on("console", lambda message: refusals.append(message.text)
            if "Content Security Policy" in message.text else None)
    answer = page.goto(f"{server.url}{path}")
    assert answer is not None and answer.status == 200

    # Drawn from the hub's /openapi.json by the bundled Swagger UI or ReDoc;
    # a page whose script or style is refused or missing never shows it.
    shown = page.locator(operation).first
    expect(shown).to_be_visible(timeout=60_000)
    expect(shown).to_contain_text("List Exceptions")
    page.wait_for_load_state("networkidle")

    assert any(url.endswith("/openapi.json") for url in requested), requested
    outside = [url for url in requested
               if urlsplit(url).scheme in ("http", "https", "ws", "wss")
               and urlsplit(url).hostname != "127.0.0.1" and url not in blocked]
    assert not outside, f"requests left the host: {outside}"
    # The policy refused nothing the hub serves (ReDoc's footer logo on its
    # vendor's CDN is refused, and the page is whole without it).
    local = [text for text in refusals if "127.0.0.1" in text or "inline" in text]
    assert not local, local
    csp = answer.headers["content-security-policy"]
    sources = {s for directive in csp.split(";") for s in directive.split()[1:]}
    assert sources <= {"'self'", "'none'", "data:", "blob:", "'unsafe-inline'"}, csp
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    if path == "/docs":  # Swagger UI: not even an attempt at another host, no inline code
        assert not blocked and not refusals, (blocked, refusals)
        assert "unsafe-inline" not in csp and "blob:" not in csp
