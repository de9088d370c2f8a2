"""A month of billable work on one project, for the invoice and billing-run
tests of the use cases, the API and the command line: GLX-001 won (a US
customer without a tax id: US sales tax 8.25 %), Alice 8 h at her 175.00
override, Bob 7.5 h at the consultant's 150.00, a EUR 100.00 expense billed
in USD at the governed rate of its day (1.10, 10 % markup: 121.00), Carol's
6 h held (designers have no rate) and Bob's 2 h in April (after the period).
The ERP is the generic ledger's emulator with no idempotency of its own, so
a second invoice sent would be a second invoice held."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator.server import LedgerEmulator
from billbridge.engine.clock import Clock, ManualClock
from billbridge.engine.hub import Hub
from conftest import CONFIG, time_entry

PERIOD_END = "2026-03-31"
INVOICE = f"inv_GLX-001_{PERIOD_END}"
SUBTOTAL = Decimal("2646.00")  # 1400.00 + 1125.00 + 121.00
TAX = Decimal("218.30")  # 8.25 % of 2646.00 = 218.295, half up
TOTAL = SUBTOTAL + TAX
STORY_CONFIG: dict[str, Any] = {
    **CONFIG,
    "tax_rules": [{"entity_country": "US", "customer_country": "US",
                   "customer_has_tax_id": False, "tax_code": "US-SALES", "rate": "8.25"}],
    "fx_rates": [{"date": "2026-03-01", "from": "EUR", "to": "USD", "rate": "1.10"}],
}
WON: dict[str, Any] = {
    "type": "opportunity.closed_won", "id": "deal-1-won", "at": "2026-03-01T09:00:00Z",
    "data": {
        "opportunity": {"id": "deal-1", "name": "GLX-001 deal", "amount": "50000.00",
                        "currency": "USD", "close_date": "2026-03-01"},
        "customer": {"id": "co-1", "name": "Globex LLC", "currency": "USD",
                     "billing_country": "US"},
        "contract": {"id": "ct-GLX-001", "billing_model": "time_and_materials",
                     "currency": "USD", "legal_entity": "US01", "start": "2026-03-01",
                     "end": "2026-12-31", "rate_card": "rc-standard",
                     "expense_markup_pct": "10"},
        "project": {"code": "GLX-001", "name": "Project GLX-001",
                    "tasks": [{"id": "dev", "name": "Development", "billable": True}]},
    },
}
EXPENSE: dict[str, Any] = {
    "type": "expense.upserted", "id": "ex-1:v1", "at": "2026-03-06T10:00:00Z",
    "data": {"id": "ex-1", "worker": "w-bob", "project": "GLX-001", "date": "2026-03-05",
             "amount": "100.00", "currency": "EUR", "category": "travel", "billable": True,
             "status": "approved", "source_version": 1}}
WORK = [time_entry("te-1"), time_entry("te-2", worker="w-bob", hours="7.5"),
        time_entry("te-3", worker="w-carol", hours="6"),
        time_entry("te-4", worker="w-bob", hours="2", work_date="2026-04-01")]


def ledger() -> LedgerEmulator:
    return LedgerEmulator(token="t", idempotency="none")


def story_hub(engine: Any, erp: LedgerEmulator, clock: Clock | None = None,
              config: dict[str, Any] | None = None) -> Hub:
    """The hub with the month's work done and posted, before any billing run
    (on a manual clock unless given one: a served hub needs the system's)."""
    hub = Hub(engine, {"ledger": LedgerTarget(erp.url, "t")},  # type: ignore[attr-defined]
              clock=clock or ManualClock())
    hub.activate_config(config or STORY_CONFIG)
    hub.ingest([WON], source="hubspot")
    hub.run_until_idle()
    hub.ingest([*WORK, EXPENSE], source="harvest")
    hub.run_until_idle()
    return hub


def erp_invoices(erp: LedgerEmulator) -> list[dict[str, Any]]:
    """Every invoice the ERP holds (twins included)."""
    return [e for e in erp.effects if e["kind"] == "invoice.create"]
