"""Finance's console pages over HTTP (the browser test drives the same pages in
chromium): invoices filtered with totals per currency, an invoice down to its
time entries and events, a billing run previewed then committed by finance
behind the CSRF check; an operator sees the preview without a commit button
and is refused the commit itself. The run's invoice is judged at the ERP
emulator."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from billbridge.connectors.generic.emulator.server import LedgerEmulator
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from billbridge.web import create_app
from billing_story import INVOICE, PERIOD_END, TOTAL, erp_invoices, story_hub


def log_in(console: TestClient, hub: Hub, role: tokens.Role, name: str) -> str:
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name=name, role=role, expires_in=timedelta(hours=1),
                                 actor="test", at=datetime.now(UTC))
    console.post("/console/login", data={"token": token})
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', console.get("/console/billing").text)
    assert found is not None
    return found.group(1)


@pytest.fixture
def hub(ledger_erp: LedgerEmulator) -> Hub:
    return story_hub(make_engine("sqlite://"), ledger_erp)


def test_finance_previews_and_commits_a_run_and_opens_its_invoice(
        hub: Hub, ledger_erp: LedgerEmulator) -> None:
    with TestClient(create_app(hub)) as console:
        csrf = log_in(console, hub, tokens.Role.FINANCE, "fiona")
        assert console.post("/console/billing/preview",
                            data={"period_end": PERIOD_END, "csrf": "0" * 64}).status_code == 403
        previewed = console.post("/console/billing/preview",
                                 data={"period_end": PERIOD_END, "csrf": csrf}).text
        assert INVOICE in previewed and f"{TOTAL} USD" in previewed
        assert "NO_RATE" in previewed and 'action="/console/billing/commit"' in previewed
        bad = console.post("/console/billing/preview", data={"period_end": "31/03/2026",
                                                             "csrf": csrf}).text
        assert "write it YYYY-MM-DD" in bad
        assert erp_invoices(ledger_erp) == []

        committed = console.post("/console/billing/commit",
                                 data={"period_end": PERIOD_END, "csrf": csrf})
        assert "billing run run-2026-03-31 committed" in committed.text
        hub.run_until_idle()
        assert [e["data"]["id"] for e in erp_invoices(ledger_erp)] == [INVOICE]
        runs = console.get("/console/billing").text
        assert f'href="/console/invoices/{INVOICE}"' in runs and "fiona" in runs
        again = console.post("/console/billing/commit",
                             data={"period_end": PERIOD_END, "csrf": csrf}).text
        assert "nothing new is raised" in again
        hub.run_until_idle()
        assert len(erp_invoices(ledger_erp)) == 1

        listed = console.get("/console/invoices?status=posted&currency=USD").text
        assert INVOICE in listed and f"{TOTAL} USD" in listed
        assert "unknown invoice status" in console.get("/console/invoices?status=payed").text
        shown = console.get(f"/console/invoices/{INVOICE}").text
        assert 'href="/console/lineage?id=te-1"' in shown and "harvest/te-1:v1" in shown
        assert "US-SALES at 8.25 %" in shown and "FX 1.10" in shown
        assert erp_invoices(ledger_erp)[0]["id"] in shown
        assert "there is no invoice" in console.get("/console/invoices/inv_nowhere").text


def test_an_operator_may_preview_but_not_commit(hub: Hub, ledger_erp: LedgerEmulator) -> None:
    with TestClient(create_app(hub)) as console:
        csrf = log_in(console, hub, tokens.Role.OPERATOR, "olga")
        previewed = console.post("/console/billing/preview",
                                 data={"period_end": PERIOD_END, "csrf": csrf}).text
        assert INVOICE in previewed and "/console/billing/commit" not in previewed
        assert "may preview but not commit" in previewed
        refused = console.post("/console/billing/commit",
                               data={"period_end": PERIOD_END, "csrf": csrf})
        assert refused.status_code == 403
        hub.run_until_idle()
        assert erp_invoices(ledger_erp) == []
