"""What the flows record where they decide a figure (D70), so that finance's
drill-down reads it back instead of recomputing it: the event that priced a
time charge or an expense line, an expense's claimed amount, markup and FX
rate, and on the hub's invoice record the tax rule applied, the legal entity
and the billing run, while the ERP is sent the invoice alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billbridge.domain.config import load_configuration
from billbridge.domain.events import CanonicalEvent
from billbridge.domain.records import Invoice
from billbridge.flows.base import Outcome
from billbridge.flows.invoicing import on_billing_run
from billbridge.flows.milestones import on_expense_upserted
from billbridge.flows.time_billing import on_time_entry_upserted
from billing_story import EXPENSE, STORY_CONFIG
from conftest import time_entry

CONFIG = load_configuration(STORY_CONFIG)
PROJECT = {"code": "GLX-001", "name": "GLX", "status": "active", "contract": "ct-1",
           "tasks": [{"id": "dev", "name": "Development", "billable": True}]}
CONTRACT = {"id": "ct-1", "billing_model": "time_and_materials", "currency": "USD",
            "legal_entity": "US01", "start": "2026-03-01", "rate_card": "rc-standard",
            "expense_markup_pct": "10"}
CUSTOMER = {"id": "cust-1", "name": "Globex LLC", "currency": "USD", "billing_country": "US"}


class Store:
    """The flows' read port over dicts, with each outcome's changes applied."""

    config = CONFIG
    config_version = 3
    replay = False

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], tuple[Mapping[str, Any], str | None]] = {
            ("project", "GLX-001"): (PROJECT, "active"), ("contract", "ct-1"): (CONTRACT, None),
            ("customer", "cust-1"): (CUSTOMER, None),
            ("activation", "GLX-001"): ({"customer": "cust-1"}, None)}

    def record(self, kind: str, record_id: str) -> Mapping[str, Any] | None:
        found = self.held.get((kind, record_id))
        return None if found is None else found[0]

    def find(self, kind: str, status: str | None = None) -> list[Mapping[str, Any]]:
        return [data for (k, _), (data, s) in sorted(self.held.items())
                if k == kind and status in (None, s)]

    def resolve(self, system: str, kind: str, external_id: str) -> str | None:
        return None

    def external_id(self, system: str, kind: str, canonical_id: str) -> str | None:
        return None

    def run(self, handler: Any, raw: dict[str, Any], source: str) -> Outcome:
        outcome: Outcome = handler(CanonicalEvent.model_validate({**raw, "source": source}),
                                   self)
        for change in outcome.changes:
            self.held[(change.kind, change.id)] = (change.data, change.status)
        return outcome


def test_a_time_charge_keeps_the_event_that_priced_it() -> None:
    outcome = Store().run(on_time_entry_upserted, time_entry("te-1"), "harvest")
    [charge] = [c for c in outcome.changes if c.kind == "time_charge"]
    assert charge.data["priced_by"] == "harvest/te-1:v1"
    assert (charge.data["rate_card"], charge.data["rate_card_version"],
            charge.data["config_version"]) == ("rc-standard", 1, 3)
    [post] = outcome.commands
    assert "priced_by" not in post.payload  # the ERP is sent the charge, not our bookkeeping


def test_an_expense_line_keeps_what_it_was_claimed_at_its_markup_and_fx_rate() -> None:
    outcome = Store().run(on_expense_upserted, EXPENSE, "harvest")
    [line] = [c for c in outcome.changes if c.kind == "billable_line"]
    assert {k: line.data[k] for k in ("amount", "currency", "claimed", "claimed_currency",
                                      "markup_pct", "fx_rate", "priced_by", "expense")} == {
        "amount": "121.00", "currency": "USD", "claimed": "100.00", "claimed_currency": "EUR",
        "markup_pct": "10", "fx_rate": "1.10", "priced_by": "harvest/ex-1:v1",
        "expense": "ex-1"}


def test_the_invoice_record_keeps_its_tax_rule_entity_and_run_and_the_erp_gets_the_invoice(
        ) -> None:
    store = Store()
    store.run(on_time_entry_upserted, time_entry("te-1"), "harvest")
    outcome = store.run(on_billing_run, {
        "type": "billing.run", "id": "run-2026-03-31", "at": "2026-04-01T06:00:00Z",
        "data": {"period_end": "2026-03-31", "requested_by": "paul"}}, "billbridge")
    [invoice] = [c for c in outcome.changes if c.kind == "invoice"]
    assert invoice.data["tax_rule"] == {"entity_country": "US", "customer_country": "US",
                                        "customer_has_tax_id": False, "tax_code": "US-SALES",
                                        "rate": "8.25"}
    assert (invoice.data["billing_run"], invoice.data["legal_entity"]) == \
        ("run-2026-03-31", "US01")
    [create] = [c for c in outcome.commands if c.kind == "invoice.create"]
    Invoice.model_validate(create.payload)  # exactly the canonical invoice: nothing extra
    assert create.payload["total"] == "1515.50"  # 1400.00 + 8.25 %
