"""Invoices and billing runs through the use cases (services/invoices.py,
services/billing_runs.py) on SQLite and PostgreSQL, judged by what the ERP
emulator holds: a preview writes nothing and says what a run would raise and
what it holds back; a committed run raises the previewed invoice at the ERP
once, and a second commit of the same period raises nothing and says so; an
invoice drills down to the time entries, expense, events, rate card,
configuration, tax rule and FX rate that made it, with its status history."""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from billbridge.connectors.generic.emulator.server import LedgerEmulator
from billbridge.engine.hub import Hub
from billbridge.errors import Invalid, NotFound
from billbridge.services import billing_runs, invoices
from billbridge.store.db import make_engine
from billbridge.store.tables import audit_log, inbox, outbox, records
from billing_story import (
    INVOICE,
    PERIOD_END,
    STORY_CONFIG,
    SUBTOTAL,
    TAX,
    TOTAL,
    erp_invoices,
    story_hub,
)

END = date.fromisoformat(PERIOD_END)
AT = datetime(2026, 4, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def hub(engine: Engine, ledger_erp: LedgerEmulator) -> Hub:
    return story_hub(engine, ledger_erp)


def stored(hub: Hub) -> list[int]:
    """Rows in every table a run writes to."""
    with hub.engine.connect() as conn:
        return [conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (records, inbox, outbox, audit_log)]


def test_a_preview_shows_the_invoice_and_what_is_held_and_writes_nothing(
        hub: Hub, ledger_erp: LedgerEmulator) -> None:
    before = stored(hub)
    seen = billing_runs.preview(hub.engine, END, at=AT)
    [planned] = seen.invoices
    assert (planned.id, planned.project, planned.subtotal, planned.tax, planned.total) == \
        (INVOICE, "GLX-001", SUBTOTAL, TAX, TOTAL)
    assert planned.lines == 3 and planned.tax_code == "US-SALES"
    assert planned.customer_name == "Globex LLC"
    assert seen.totals == {"USD": TOTAL}
    assert [(h.reason, h.record) for h in seen.held] == [("NO_RATE", "te-3")]
    assert seen.committed is None and seen.run == "run-2026-03-31"
    assert erp_invoices(ledger_erp) == []
    assert stored(hub) == before
    assert billing_runs.preview(hub.engine, date(2026, 4, 30), at=AT).totals == \
        {"USD": Decimal("3189.05")}  # to April: Bob's 2 h too (2946.00 + 8.25 %)


def test_a_committed_run_raises_the_previewed_invoice_at_the_erp_once(
        hub: Hub, ledger_erp: LedgerEmulator) -> None:
    previewed = billing_runs.preview(hub.engine, END, at=AT)
    done = billing_runs.commit(hub.engine, END, actor="paul", at=AT)
    assert done.new and done.run.status == "queued" and done.run.requested_by == "paul"
    hub.run_until_idle()
    [held] = erp_invoices(ledger_erp)
    assert (held["data"]["id"], Decimal(held["data"]["total"])) == \
        (INVOICE, previewed.totals["USD"])

    again = billing_runs.commit(hub.engine, END, actor="paul", at=AT)
    hub.run_until_idle()
    assert not again.new and "committed already" in again.message
    assert "nothing new" in again.message
    assert len(erp_invoices(ledger_erp)) == 1, "a second commit raised a second invoice at the ERP"
    with hub.engine.connect() as conn:
        [run] = billing_runs.runs(conn)
    assert (run.id, run.status, run.requested_by, run.invoices, run.totals) == \
        ("run-2026-03-31", "done", "paul", [INVOICE], {"USD": TOTAL})
    assert billing_runs.preview(hub.engine, END, at=AT).committed == run
    with hub.engine.connect() as conn:
        audited = conn.execute(select(audit_log.c.actor, audit_log.c.action,
                                      audit_log.c.subject)).all()
    assert [tuple(a) for a in audited if a.action == "billing.run"] == \
        [("paul", "billing.run", "run-2026-03-31")]


def test_each_store_previews_under_its_own_configuration(hub: Hub,
                                                         ledger_erp: LedgerEmulator) -> None:
    """Version 1 of one store is not version 1 of another (one process may
    serve both, as the tests and a preview's throwaway hubs do)."""
    zero = {**STORY_CONFIG, "tax_rules": [{**STORY_CONFIG["tax_rules"][0],
                                           "tax_code": "US-ZERO", "rate": "0"}]}
    other = story_hub(make_engine("sqlite://"), ledger_erp, config=zero)
    assert [i.tax_code for i in billing_runs.preview(hub.engine, END, at=AT).invoices] == \
        ["US-SALES"]
    assert [(i.tax_code, i.total) for i in billing_runs.preview(other.engine, END,
                                                                 at=AT).invoices] == \
        [("US-ZERO", SUBTOTAL)]
    assert [i.tax_code for i in billing_runs.preview(hub.engine, END, at=AT).invoices] == \
        ["US-SALES"]


def test_a_run_made_by_the_scheduler_is_not_made_again(hub: Hub,
                                                        ledger_erp: LedgerEmulator) -> None:
    """A run ingested under another id for the same period end (a scheduler's)
    is the period's run: a commit says so and stores no second run."""
    hub.ingest([{"type": "billing.run", "id": "cron-2026-03", "at": "2026-04-01T06:00:00Z",
                 "data": {"period_end": PERIOD_END}}], source="billbridge")
    hub.run_until_idle()
    again = billing_runs.commit(hub.engine, END, actor="paul", at=AT)
    assert not again.new and again.run.id == "cron-2026-03"
    assert "by the scheduler" in again.message
    with hub.engine.connect() as conn:
        assert [r.id for r in billing_runs.runs(conn)] == ["cron-2026-03"]
    assert len(erp_invoices(ledger_erp)) == 1


def test_an_invoice_drills_down_to_its_entries_events_rates_tax_and_fx(
        hub: Hub, ledger_erp: LedgerEmulator) -> None:
    billing_runs.commit(hub.engine, END, actor="paul", at=AT)
    hub.run_until_idle()
    [held] = erp_invoices(ledger_erp)
    hub.ingest([{"type": "invoice.status_changed", "id": "inv-1:paid",
                 "at": "2026-04-20T10:00:00Z",
                 "data": {"invoice": INVOICE, "erp_id": held["id"], "status": "paid"}}],
               source="ledger")
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        shown = invoices.show(conn, INVOICE)
    assert shown.invoice.status == "paid" and shown.invoice.erp_id == held["id"]
    assert shown.tax_rule is not None and shown.tax_rule["tax_code"] == "US-SALES"
    assert shown.tax_rule["rate"] == "8.25"
    charges = {c.record: c for line in shown.lines for c in line.charges}
    alice = charges["te-1"]
    assert (alice.kind, alice.hours, alice.rate, alice.amount, alice.currency) == \
        ("time", Decimal(8), Decimal("175.00"), Decimal("1400.00"), "USD")
    assert (alice.priced_by, alice.rate_card, alice.rate_card_version,
            alice.config_version, alice.fx_rate) == ("harvest/te-1:v1", "rc-standard", 1, 1,
                                                     None)
    travel = charges["ex-1"]
    assert (travel.kind, travel.amount, travel.fx_rate, travel.claimed, travel.markup_pct) == \
        ("expense", Decimal("121.00"), Decimal("1.10"), "100.00 EUR", Decimal(10))
    assert travel.priced_by == "harvest/ex-1:v1"
    assert [(s.status, s.erp_id) for s in shown.history] == \
        [("draft", None), ("posted", held["id"]), ("paid", held["id"])]
    assert shown.history[0].by == "billing run run-2026-03-31"


def test_invoices_are_listed_by_filter_with_totals_per_currency(hub: Hub) -> None:
    billing_runs.commit(hub.engine, END, actor="paul", at=AT)
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        every = invoices.list_invoices(conn)
        assert [i.id for i in every.items] == [INVOICE] and every.totals == {"USD": TOTAL}
        assert every.items[0].status == "posted" and every.items[0].customer_name == \
            "Globex LLC"
        for match in ({"project": "GLX-001"}, {"customer": "Globex LLC"},
                      {"customer": "cust_hubspot_co-1"}, {"period_end": END}, {"status": "posted"},
                      {"currency": "usd"}):
            assert [i.id for i in invoices.list_invoices(conn, **match).items] == [INVOICE], \
                (match, every.items[0])
        for miss in ({"project": "NEW-002"}, {"customer": "Initech"},
                     {"period_end": date(2026, 2, 28)}, {"status": "paid"},
                     {"currency": "EUR"}):
            found = invoices.list_invoices(conn, **miss)
            assert (found.items, found.totals) == ([], {})
        with pytest.raises(Invalid, match="unknown invoice status 'payed'"):
            invoices.list_invoices(conn, status="payed")
        with pytest.raises(Invalid, match="ISO 4217"):
            invoices.list_invoices(conn, currency="dollars")
        with pytest.raises(NotFound, match="no invoice 'inv_nowhere'"):
            invoices.show(conn, "inv_nowhere")


def test_the_records_the_scenarios_compare_are_the_invoices_finance_reads(
        hub: Hub, ledger_erp: LedgerEmulator) -> None:
    """One module reads invoices back (services.invoices): the invoices and
    live charges a scenario compares are those finance lists and drills into."""
    assert importlib.util.find_spec("billbridge.services.billing") is None
    billing_runs.commit(hub.engine, END, actor="paul", at=AT)
    hub.run_until_idle()
    [held] = erp_invoices(ledger_erp)
    with hub.engine.connect() as conn:
        [raised] = invoices.recorded(conn)
        [listed] = invoices.list_invoices(conn).items
        billed = {c.id for line in invoices.show(conn, INVOICE).lines for c in line.charges
                  if c.kind == "time"}
        live = {c["id"]: c for c in invoices.live_charges(conn)}
    assert (raised["id"], Decimal(raised["total"])) == (listed.id, listed.total) == \
        (held["data"]["id"], Decimal(held["data"]["total"]))
    assert billed and billed <= set(live)
    assert all(c["work_date"] > PERIOD_END for i, c in live.items() if i not in billed)


@pytest.mark.parametrize("typed", ["31/03/2026", "2026-02-30", "20260331", "", "２０２６-03-31"])
def test_a_period_end_is_a_date_written_yyyy_mm_dd(typed: str) -> None:
    with pytest.raises(Invalid, match="YYYY-MM-DD"):
        invoices.parse_period_end(typed)
    assert invoices.parse_period_end(" 2026-03-31 ") == END


def test_totals_are_summed_per_currency_never_across() -> None:
    def made(currency: str, total: str) -> invoices.InvoiceSummary:
        return invoices.InvoiceSummary(
            id=f"inv_{currency}_{total}", customer="c", customer_name=None, project=None,
            currency=currency, subtotal=Decimal(total), tax=Decimal(0), total=Decimal(total),
            status="draft", erp_id=None, period_end=None, invoice_date=None,
            billing_run=None, lines=1)

    assert invoices.totals([made("USD", "10.00"), made("EUR", "5.50"), made("USD", "0.25"),
                            made("JPY", "700")]) == \
        {"EUR": Decimal("5.50"), "JPY": Decimal(700), "USD": Decimal("10.25")}
