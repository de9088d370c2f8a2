"""The console in Debian's chromium (Playwright, headless), against a running
hub: log in, find an exception, fix its rate card through a proposed and
approved change, replay it, and see it leave the queue and appear in the
lineage of its ERP posting."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from billbridge.api.server import HubServer
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from conftest import CONFIG, project_event, time_entry

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def browser_page() -> Iterator[object]:
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing; `make test` installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser.new_page(viewport={"width": 1440, "height": 900})
        browser.close()


def test_fix_and_replay_an_exception_in_the_browser(browser_page: object, tmp_path: object
                                                    ) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    erp = RecordingTarget("ledger")
    hub = Hub(make_engine(f"sqlite:///{tmp_path}/hub.db"), {"ledger": erp})
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), time_entry("te-9", worker="w-carol", hours="2")],
               source="harvest")
    hub.run_until_idle()
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
        row = page.locator("#exceptions tr[data-record='te-9']")
        expect(row).to_contain_text("NO_RATE")

        card = {**CONFIG["rate_cards"][0],
                "rates": {**CONFIG["rate_cards"][0]["rates"], "designer": "120.00"}}
        proposal = httpx.post(f"{server.url}/v1/config/proposals",
                              json={"document": {**CONFIG, "rate_cards": [card]},
                                    "note": "designer rate"},
                              headers={"Authorization": f"Bearer {paul}"}).json()
        page.click("text=Configuration")
        page.locator("#versions button", has_text="Approve").click()
        expect(page.locator("#flash")).to_contain_text(f"version {proposal['version']} is active")

        page.click("text=Exceptions")
        page.locator("#exceptions tr[data-record='te-9'] input[type=checkbox]").check()
        page.click("button[value=replay]")
        expect(page.locator("#flash")).to_contain_text("replay: 1 done")
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not any(e["kind"] == "time_charge.post" for e in erp.effects):
            assert datetime.now(UTC) < deadline, "the replayed entry never posted"
            page.wait_for_timeout(100)
        page.goto(f"{server.url}/console/exceptions")
        expect(page.locator("#exceptions")).to_contain_text("The queue is empty.")

        [posting] = [e for e in erp.effects if e["kind"] == "time_charge.post"]
        assert posting["payload"]["amount"] == "240.00"
        page.click("text=Lineage")
        page.fill("input[name=id]", posting["id"])
        page.click("text=Trace")
        expect(page.locator("#timeline")).to_contain_text(f"posted as {posting['id']}")
        expect(page.locator("#timeline")).to_contain_text("te-9")
    finally:
        server.stop()
