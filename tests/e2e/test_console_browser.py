"""The console in Debian's chromium (Playwright, headless), against a running
hub on the demo's data: the operator's path. An operator finds a NO_RATE
exception, a configuration proposal fixes it and a second identity approves it
after reading its diff and preview, the operator replays it and sees it leave
the queue, the ERP emulator holds the charge live, and its lineage shows the
amount; then log out."""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
from rich.console import Console

from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.demo.story import run_demo
from billbridge.engine import config_store, exception_queue, tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from billbridge.web import HubServer
from browser import browser_page  # noqa: F401 (a fixture)

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def login(page: object, url: str, token: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{url}/console/")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


def test_an_operator_fixes_a_no_rate_through_a_proposal_another_approves(
        browser_page: object, tmp_path: Path) -> None:  # noqa: F811
    """Olga (operator) sees Carol's NO_RATE; Paul (finance) proposes a designer
    rate; Fiona (finance, a second identity) reviews its diff and preview and
    approves it; Olga replays; the charge is live at the ERP emulator and its
    lineage in the console shows the amount."""
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    assert run_demo(Console(file=io.StringIO()), port=0, keep_serving=False,
                    workdir=tmp_path / "demo") == 0
    ledger = LedgerEmulator()  # a live ERP again (the demo's stopped with it)
    ledger.start()
    erp = LedgerTarget(ledger.url, "ledger-token")
    hub = Hub(make_engine(f"sqlite:///{tmp_path}/demo/hub.db"), {"ledger": erp})
    # The demo's data: Carol's 6 h on GLX-001 wait as NO_RATE (designers have no
    # rate), the demo's one NO_RATE; its id is the time tool's, as the demo chose it.
    with hub.engine.connect() as conn:
        [held] = exception_queue.list_open(conn, reason="NO_RATE")
        config = config_store.document(conn, config_store.active_version(conn))
    carols = held.record_id
    now = datetime.now(UTC)
    people = {}
    with hub.engine.begin() as conn:
        for name, role in (("olga", tokens.Role.OPERATOR), ("paul", tokens.Role.FINANCE),
                           ("fiona", tokens.Role.FINANCE)):
            people[name] = tokens.create(conn, name=name, role=role, actor="t", at=now,
                                         expires_in=timedelta(hours=1))[1]
    suite = tmp_path / "scenarios"  # the preview's suite: the rule the fix is about
    suite.mkdir()
    shutil.copy(SCENARIOS / "tm-role-rate-and-no-rate.yaml", suite)
    shutil.copytree(SCENARIOS / "config", suite / "config")
    server = HubServer(hub, port=0, scenarios=suite)
    server.start()
    try:
        login(page, server.url, people["olga"])
        page.click("text=Exceptions")
        row = page.locator(f"#exceptions tr[data-record='{carols}']")
        expect(row).to_contain_text("NO_RATE")
        expect(row).to_contain_text("add the worker's role or an override")  # the whole fix

        card = {**config["rate_cards"][0],
                "rates": {**config["rate_cards"][0]["rates"], "designer": "120.00"}}
        version = httpx.post(f"{server.url}/v1/config/proposals",
                             json={"document": {**config, "rate_cards": [card]},
                                   "note": "designer rate"},
                             headers={"Authorization": f"Bearer {people['paul']}"}
                             ).json()["version"]

        approver = page.context.browser.new_context().new_page()  # type: ignore[union-attr]
        login(approver, server.url, people["fiona"])
        approver.click("text=Configuration")
        expect(approver.locator(f"#proposal-{version} pre.diff")).to_contain_text(
            "designer: '120.00'")
        approver.click(f"#review-{version}")
        expect(approver.locator("table.preview")).to_contain_text("120.00")
        approver.click(f"#approve-{version}")
        expect(approver.locator("#flash")).to_contain_text(f"version {version} is active")

        page.click("text=Exceptions")
        page.locator(f"#exceptions tr[data-record='{carols}'] input[type=checkbox]").check()
        page.click("button[value=replay]")
        expect(page.locator("#flash")).to_contain_text("replay: 1 done")
        charge = f"tc_{carols}"
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while not (live := erp.live_postings([charge])):
            assert datetime.now(UTC) < deadline, "the replayed entry never reached the ERP"
            page.wait_for_timeout(100)
        [posting] = live
        assert (posting.amount, posting.currency) == (Decimal("720.00"), "USD")  # 6 h x 120
        page.goto(f"{server.url}/console/exceptions")
        expect(page.locator(f"#exceptions tr[data-record='{carols}']")).to_have_count(0)

        page.click("text=Lineage")
        page.fill("input[name=id]", posting.external_id)
        page.click("text=Trace")
        expect(page.locator("#asked")).to_contain_text(f"ledger {posting.external_id}")
        expect(page.locator("#asked")).to_contain_text("720.00 USD")
        expect(page.locator("#made-from")).to_contain_text(carols)

        # Logging out is a form (POST with its CSRF value): the session is revoked
        # in the store, so the console is a login page again.
        page.click("#logout")
        expect(page.locator("input[name=token]")).to_be_visible()
        page.goto(f"{server.url}/console/exceptions")
        expect(page.locator("input[name=token]")).to_be_visible()
        assert not [c for c in page.context.cookies() if c["name"] == "bb_session"]
    finally:
        server.stop()
        ledger.stop()


def test_an_ingest_token_uploads_a_timesheet_in_the_browser(
        browser_page: object, tmp_path: Path) -> None:  # noqa: F811
    """Ivy's token may submit the file source's time only: she lands on the
    upload page, chooses an export with one bad row, sees two rows imported and
    line 3 refused; the ERP holds the two charges."""
    from playwright.sync_api import Page, expect

    from billbridge.connectors.timesheet_files.client import TimesheetFolder
    from billbridge.connectors.timesheet_files.source import FileSource
    from billbridge.emulation.recording import RecordingTarget
    from billbridge.services.uploads import FILE_EVENTS
    from conftest import CONFIG, project_event

    page: Page = browser_page  # type: ignore[assignment]
    erp = RecordingTarget("ledger")
    hub = Hub(make_engine(f"sqlite:///{tmp_path}/hub.db"), {"ledger": erp})
    hub.activate_config(CONFIG)
    hub.ingest([project_event()], source="harvest")
    (tmp_path / "drop").mkdir()
    sheet = tmp_path / "march.csv"
    sheet.write_text("Entry ID,Employee,Project,Task,Date,Hours\n"
                     "E1,w-alice,GLX-001,dev,2026-03-02,8\n"
                     "E2,w-bob,GLX-001,dev,2026-03-02,eight\n"
                     "E3,w-bob,GLX-001,dev,2026-03-03,7.5\n")
    with hub.engine.begin() as conn:
        ivy = tokens.create(conn, name="ivy", role=tokens.Role.INGEST, actor="t",
                            at=datetime.now(UTC), expires_in=timedelta(hours=1),
                            scope=tokens.Scope.of(["csv"], FILE_EVENTS))[1]
    server = HubServer(hub, port=0, poll_seconds=3600,
                       sources=[FileSource(TimesheetFolder(tmp_path / "drop"), name="csv")])
    server.start()
    try:
        login(page, server.url, ivy)
        expect(page.locator("h1")).to_have_text("Upload timesheets")
        page.set_input_files("#file-csv", str(sheet))
        page.click("#upload-csv")
        expect(page.locator("#counts")).to_contain_text("2 of 3 rows imported")
        expect(page.locator("#refused tr[data-line='3']")).to_contain_text("march.csv line 3")
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while len(erp.live_postings()) < 2:
            assert datetime.now(UTC) < deadline, "the uploaded hours never reached the ERP"
            page.wait_for_timeout(50)
        assert sorted(p.amount for p in erp.live_postings()) == [Decimal("1125.00"),
                                                                 Decimal("1400.00")]
    finally:
        server.stop()
