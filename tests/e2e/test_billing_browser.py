"""Finance's month-end in Debian's chromium (Playwright, headless) against a
running hub holding a month of posted work: log in as finance, preview the
run to 31 March, commit it, see the invoice it produced (held once by the
ERP emulator), open it and drill from its line to the time entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from billbridge.connectors.generic.emulator.server import LedgerEmulator
from billbridge.engine import tokens
from billbridge.engine.clock import SystemClock
from billbridge.store.db import make_engine
from billbridge.web import HubServer
from billing_story import INVOICE, PERIOD_END, TOTAL, erp_invoices, story_hub
from browser import browser_page  # noqa: F401 (a fixture)


def test_finance_runs_the_month_end_and_drills_to_a_time_entry(
        browser_page: object, tmp_path: Path, ledger_erp: LedgerEmulator) -> None:  # noqa: F811
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    hub = story_hub(make_engine(f"sqlite:///{tmp_path / 'hub.db'}"), ledger_erp, SystemClock())
    with hub.engine.begin() as conn:
        _, fiona = tokens.create(conn, name="fiona", role=tokens.Role.FINANCE,
                                 expires_in=timedelta(hours=1), actor="t",
                                 at=datetime.now(UTC))
    server = HubServer(hub, port=0)
    server.start()
    try:
        page.goto(f"{server.url}/console/")
        page.fill("input[name=token]", fiona)
        page.click("button[type=submit]")
        page.click("text=Billing runs")
        page.fill("#preview input[name=period_end]", PERIOD_END)
        page.click("#preview button")
        expect(page.locator("#planned")).to_contain_text(INVOICE)
        expect(page.locator("#totals")).to_contain_text(f"{TOTAL} USD")
        expect(page.locator("#held")).to_contain_text("NO_RATE")
        assert erp_invoices(ledger_erp) == []  # a preview writes nothing

        page.click("#commit button")
        expect(page.locator("#flash")).to_contain_text("billing run run-2026-03-31 committed")
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not erp_invoices(ledger_erp):
            assert datetime.now(UTC) < deadline, "the committed run never reached the ERP"
            page.wait_for_timeout(100)
        page.click("text=Billing runs")
        run = page.locator("#runs tr[data-run='run-2026-03-31']")
        expect(run).to_contain_text("fiona")
        run.locator(f"a:text('{INVOICE}')").click()
        [held] = erp_invoices(ledger_erp)
        expect(page.locator("h1")).to_contain_text(INVOICE)
        expect(page.locator(".cards")).to_contain_text(f"{TOTAL} USD")
        expect(page.locator(".cards")).to_contain_text(held["id"])  # the ERP's own id
        alice = page.locator("li.charge[data-charge='tc_te-1']")
        expect(alice).to_contain_text("175.00")
        expect(alice).to_contain_text("harvest/te-1:v1")
        alice.locator("a.origin").click()
        expect(page).to_have_url(f"{server.url}/console/lineage?id=te-1")
        expect(page.locator("main")).to_contain_text("te-1")
        assert len(erp_invoices(ledger_erp)) == 1
    finally:
        server.stop()
        hub.engine.dispose()
