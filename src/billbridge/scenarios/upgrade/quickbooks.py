"""A QuickBooks connection's upgrade, previewed: each invoice status the ERP
reports (``invoice.status_changed``) becomes an invoice of ours in the
QuickBooks emulator, in that state (issued, paid in full, voided), and is read
back by the QuickBooks source at the ``minorversion``, so a version that
changes how an invoice's state reads shows in the invoices' statuses and the
write-backs."""

from __future__ import annotations

from decimal import Decimal

from billbridge.connectors.base import Malformed
from billbridge.connectors.quickbooks.client import (
    MINOR_VERSION,
    QuickBooksClient,
    pinned_minor_version,
)
from billbridge.connectors.quickbooks.emulator import QuickBooksEmulator
from billbridge.connectors.quickbooks.mapping import marker
from billbridge.connectors.quickbooks.source import QuickBooksSource
from billbridge.scenarios.upgrade import reading
from billbridge.scenarios.upgrade.reading import Chosen, Event

TOTAL = Decimal("100.00")
"""A status event carries no amount; the state read does not depend on it."""
KEY = "0" * 32  # the marker's idempotency key: one write per invoice, never resent
TOKEN = "upgrade-preview"


def _invoice(company: QuickBooksEmulator, customer: str, event: Event) -> str:
    """The invoice the event reports, as QuickBooks holds it; its Id."""
    data = event["data"]
    made = company.seed("Invoice", {
        "CustomerRef": {"value": customer}, "CurrencyRef": {"value": "USD"},
        "TotalAmt": str(TOTAL), "Balance": str(TOTAL),
        "PrivateNote": marker(str(data.get("invoice")), KEY)})
    status = data.get("status")
    if status == "paid":
        company.pay(made["Id"], TOTAL)
    elif status == "void":
        company.void(made["Id"])
    return str(made["Id"])  # issued: nothing paid (a part payment reads as issued too)


def read(reports: Chosen, version: str) -> dict[int, Event]:
    company = QuickBooksEmulator(access_token=TOKEN)
    with reading.running(company):
        customer = str(company.seed("Customer", {"DisplayName": "Upgrade preview"})["Id"])
        by_invoice = {_invoice(company, customer, event): n for n, event in reports}
        client = QuickBooksClient(company.url, company.realm_id,
                                  access_token=TOKEN, token_url=company.token_url,
                                  minor_version=pinned_minor_version(version),
                                  rate_limit=reading.UNLIMITED, batch_limit=reading.UNLIMITED)
        items = reading.read_all(QuickBooksSource(client))

    def place(item: Event | Malformed) -> int:
        return by_invoice[str(item.raw.get("Id")) if isinstance(item, Malformed)
                          else str(item["data"]["erp_id"])]

    # The state is what the connector read; which invoice, and its ERP id, stay
    # the scenario's (the emulator numbers its invoices its own way).
    return reading.placed(items, place, reports, lambda original, item: {
        **original, "data": {**original["data"], "status": item["data"]["status"]}})


PREVIEW = reading.VendorPreview("invoice.status_changed", str(MINOR_VERSION), read,
                                check=pinned_minor_version)
