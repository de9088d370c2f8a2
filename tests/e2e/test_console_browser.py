"""The console in Debian's chromium (Playwright, headless), against a running
hub on the demo's data: log in, find an exception, fix its rate card through a proposed and
approved change, replay it, and see it leave the queue and appear in the
lineage of its ERP posting, then log out."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from rich.console import Console

from billbridge.demo.story import run_demo
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import config_store, exception_queue, tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from billbridge.web import HubServer
from browser import browser_page  # noqa: F401 (a fixture)


def test_fix_and_replay_an_exception_in_the_browser(browser_page: object, tmp_path: Path  # noqa: F811
                                                    ) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    assert run_demo(Console(file=io.StringIO()), port=0, keep_serving=False,
                    workdir=tmp_path / "demo") == 0
    erp = RecordingTarget("ledger")  # stands in for the demo's ERP, which has stopped
    hub = Hub(make_engine(f"sqlite:///{tmp_path}/demo/hub.db"), {"ledger": erp})
    # The demo's data: Carol's 6 h on GLX-001 wait as NO_RATE (designers have no
    # rate), the demo's one NO_RATE; its id is the time tool's, as the demo chose it.
    with hub.engine.connect() as conn:
        [held] = exception_queue.list_open(conn, reason="NO_RATE")
    carols = held.record_id
    with hub.engine.connect() as conn:
        config = config_store.document(conn, config_store.active_version(conn))
    now = datetime.now(UTC)
    with hub.engine.begin() as conn:
        _, ada = tokens.create(conn, name="ada", role=tokens.Role.ADMIN,
                               expires_in=timedelta(hours=1), actor="t", at=now)
        _, paul = tokens.create(conn, name="paul", role=tokens.Role.FINANCE,
                                expires_in=timedelta(hours=1), actor="t", at=now)
    server = HubServer(hub, port=0)
    server.start()
    try:
        page.goto(f"{server.url}/console/")
        page.fill("input[name=token]", ada)
        page.click("button[type=submit]")
        page.click("text=Exceptions")
        row = page.locator(f"#exceptions tr[data-record='{carols}']")
        expect(row).to_contain_text("NO_RATE")

        card = {**config["rate_cards"][0],
                "rates": {**config["rate_cards"][0]["rates"], "designer": "120.00"}}
        proposal = httpx.post(f"{server.url}/v1/config/proposals",
                              json={"document": {**config, "rate_cards": [card]},
                                    "note": "designer rate"},
                              headers={"Authorization": f"Bearer {paul}"}).json()
        page.click("text=Configuration")
        page.locator("#versions button", has_text="Approve").click()
        expect(page.locator("#flash")).to_contain_text(f"version {proposal['version']} is active")

        page.click("text=Exceptions")
        page.locator(f"#exceptions tr[data-record='{carols}'] input[type=checkbox]").check()
        page.click("button[value=replay]")
        expect(page.locator("#flash")).to_contain_text("replay: 1 done")
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not any(e["kind"] == "time_charge.post" for e in erp.effects):
            assert datetime.now(UTC) < deadline, "the replayed entry never posted"
            page.wait_for_timeout(100)
        page.goto(f"{server.url}/console/exceptions")
        expect(page.locator(f"#exceptions tr[data-record='{carols}']")).to_have_count(0)

        [posting] = [e for e in erp.effects if e["kind"] == "time_charge.post"]
        assert posting["payload"]["amount"] == "720.00"  # 6 h x 120.00
        page.click("text=Lineage")
        page.fill("input[name=id]", posting["id"])
        page.click("text=Trace")
        expect(page.locator("#timeline")).to_contain_text(f"posted as {posting['id']}")
        expect(page.locator("#timeline")).to_contain_text(carols)

        # Logging out is a form (POST with its CSRF value): the session is revoked
        # in the store, so the console is a login page again.
        page.click("#logout")
        expect(page.locator("input[name=token]")).to_be_visible()
        page.goto(f"{server.url}/console/exceptions")
        expect(page.locator("input[name=token]")).to_be_visible()
        assert not [c for c in page.context.cookies() if c["name"] == "bb_session"]
    finally:
        server.stop()
