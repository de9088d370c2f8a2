"""Canonical commands ↔ Xero's accounting records, and Xero invoices back to
canonical ``invoice.status_changed`` events. Pure: no I/O.

How the hub's records land in Xero (docs/connectors/xero.md says why):
customers are Contacts (``ContactNumber`` = the canonical id), projects are
options of one tracking category, time charges are manual journals tagged with
their project's option (billable time accrues unbilled revenue, cost lines move
labour cost into cost of sales), reversals are journals with the signs turned,
and invoices are ACCREC invoices numbered with the canonical invoice id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.connectors.fields import (
    MappingError,
    blank,
    command_record,
    decimal_of,
    invoice_record,
    mapped_tax,
    marker,
    option_mapping,
)
from billbridge.domain.records import Customer, ProjectStatus, TimeCharge

CONTACT_NUMBER_MAX = 50
_XERO_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{2,4})?\)/$")

# Xero invoice status → canonical status; drafts are still the hub's "draft"
# and emit nothing.
INVOICE_STATUS = {"AUTHORISED": "issued", "PAID": "paid", "VOIDED": "void", "DELETED": "void"}
QUIET_STATUSES = frozenset({"DRAFT", "SUBMITTED"})


@dataclass(frozen=True, slots=True)
class XeroSettings:
    """How one Xero organisation is set up to receive the hub's records."""

    tax_types: Mapping[str, str] = field(default_factory=dict)
    """Canonical tax code → Xero ``TaxType`` (e.g. ``{"VAT20": "OUTPUT2"}``)."""
    sales_account: str = "200"
    wip_account: str = "1210"
    time_revenue_account: str = "200"
    labour_cost_account: str = "310"
    labour_offset_account: str = "477"
    tracking_category: str = "Project"
    invoice_status: str = "DRAFT"
    journal_status: str = "POSTED"
    payment_terms_days: int = 30
    base_currency: str | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> XeroSettings:
        """Connection options; every key is optional (see docs/connectors/xero.md)."""
        names = ("sales_account", "wip_account", "time_revenue_account", "labour_cost_account",
                 "labour_offset_account", "tracking_category")
        given: dict[str, Any] = {n: str(options[n]) for n in names if options.get(n)}
        for name, allowed in (("invoice_status", ("DRAFT", "SUBMITTED", "AUTHORISED")),
                              ("journal_status", ("DRAFT", "POSTED"))):
            if options.get(name):
                value = str(options[name]).upper()
                if value not in allowed:
                    raise ValueError(f"option {name} must be one of {', '.join(allowed)}, "
                                     f"got {options[name]!r}")
                given[name] = value
        if options.get("payment_terms_days") not in (None, ""):
            given["payment_terms_days"] = int(options["payment_terms_days"])
        if options.get("base_currency"):
            given["base_currency"] = str(options["base_currency"]).upper()
        return cls(tax_types=option_mapping(options.get("tax_types"), "tax_types"), **given)

    def tax_type(self, tax_code: str | None) -> str | None:
        """The Xero TaxType for a canonical code (None: the account's default)."""
        return mapped_tax(tax_code, self.tax_types, vendor_code="Xero TaxType",
                          option="tax_types")


# -- values on the wire -------------------------------------------------------------

def parse_xero_datetime(value: Any) -> datetime | None:
    """Xero's ``/Date(1751328000000+0000)/`` or an ISO 8601 string, as UTC."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    found = _XERO_DATE.match(text)
    if found:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _tracking(settings: XeroSettings, project: str) -> list[dict[str, str]]:
    return [{"Name": settings.tracking_category, "Option": project}]


# -- commands → Xero records --------------------------------------------------------

def contact(payload: Mapping[str, Any], contact_id: str | None = None) -> dict[str, Any]:
    """A ``customer.upsert`` as a Contact; ``ContactNumber`` carries the
    canonical id (Xero shows it as the contact code and it is searchable)."""
    customer = command_record(Customer, payload, "customer.upsert")
    if len(customer.id) > CONTACT_NUMBER_MAX:
        raise MappingError(f"customer id {customer.id!r} is longer than Xero's "
                           f"{CONTACT_NUMBER_MAX}-character ContactNumber")
    record: dict[str, Any] = {"Name": customer.name, "ContactNumber": customer.id,
                              "DefaultCurrency": customer.currency,
                              "Addresses": [{"AddressType": "POBOX",
                                             "Country": customer.billing_country}]}
    if customer.tax_id:
        record["TaxNumber"] = customer.tax_id
    if contact_id:
        record["ContactID"] = contact_id
    return record


def tracking_option(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A ``project.upsert`` as an option named with the project code, ARCHIVED
    once the project is closed (archived options keep their history and free
    one of the category's 100 active slots)."""
    code, status = payload.get("code"), payload.get("status")
    if blank(code):
        raise MappingError("project.upsert without a project code")
    try:
        project_status = ProjectStatus(str(status))
    except ValueError:
        raise MappingError(f"project {code}: unknown status {status!r}") from None
    archived = project_status is ProjectStatus.CLOSED
    return {"Name": str(code), "Status": "ARCHIVED" if archived else "ACTIVE"}


def labour_journal(payload: Mapping[str, Any], idempotency_key: str,
                   settings: XeroSettings, base_currency: str) -> dict[str, Any]:
    """A ``time_charge.post`` as a balanced manual journal on the work date.

    Billable time accrues revenue (debit unbilled WIP, credit time revenue);
    the invoice later credits WIP. Cost lines move the labour cost into the
    project's cost of sales (debit labour cost, credit the wages offset).
    """
    charge = command_record(TimeCharge, payload, "time_charge.post")
    if charge.currency != base_currency:
        raise MappingError(f"charge {charge.id} is in {charge.currency}, but Xero manual "
                           f"journals post in the organisation's base currency "
                           f"{base_currency}: convert it before posting",
                           code="CURRENCY_NOT_BASE")
    debit, credit = ((settings.wip_account, settings.time_revenue_account) if charge.billable
                     else (settings.labour_cost_account, settings.labour_offset_account))
    what = "billable time" if charge.billable else "labour cost"
    description = (f"{charge.time_entry} {charge.worker} {charge.hours} h @ {charge.rate} "
                   f"{what}")
    tracked = _tracking(settings, charge.project)
    lines = [{"Description": description, "LineAmount": charge.amount,
              "AccountCode": debit, "Tracking": tracked},
             {"Description": description, "LineAmount": -charge.amount,
              "AccountCode": credit, "Tracking": tracked if charge.billable else []}]
    return {"Narration": f"billbridge {charge.id}: {charge.worker} {charge.hours} h on "
                         f"{charge.project} {marker(idempotency_key)}",
            "Date": charge.work_date.isoformat(), "Status": settings.journal_status,
            "LineAmountTypes": "NoTax", "JournalLines": lines}


POSTING_NARRATION = re.compile(r"^billbridge (?!reversal of )(\S+): \S+ (\S+) h on (\S+) ")
REVERSAL_NARRATION = re.compile(r"^billbridge reversal of (\S+) \(journal ([^)\s]+)\)")
DEAD_JOURNALS = frozenset({"VOIDED", "DELETED"})


def live_labour(journals: Sequence[Mapping[str, Any]], currency: str) -> list[LivePosting]:
    """The labour journals billbridge wrote (their narration names the
    charge) that are neither voided, deleted nor undone by a reversing
    journal that names them; manual journals post in the base currency."""
    alive = [j for j in journals if str(j.get("Status")) not in DEAD_JOURNALS]
    undone = {m.group(2) for j in alive
              if (m := REVERSAL_NARRATION.match(str(j.get("Narration") or "")))}
    out = []
    for journal in alive:
        found = POSTING_NARRATION.match(str(journal.get("Narration") or ""))
        journal_id = str(journal.get("ManualJournalID"))
        if found is None or journal_id in undone:
            continue
        debit = next((decimal_of(line.get("LineAmount"), "LineAmount")
                      for line in journal.get("JournalLines") or []
                      if decimal_of(line.get("LineAmount"), "LineAmount") > 0), Decimal(0))
        out.append(LivePosting(found.group(1), journal_id, Decimal(found.group(2)), debit,
                               currency, found.group(3)))
    return out


def reversal_journal(original: Mapping[str, Any], charge_id: str,
                     idempotency_key: str) -> dict[str, Any]:
    """The journal that undoes ``original``: the same lines with the signs
    turned, dated as the original so the month it touched nets to nothing."""
    status = str(original.get("Status") or "POSTED")
    if status not in ("DRAFT", "POSTED"):
        raise MappingError(f"journal {original.get('ManualJournalID')} of charge {charge_id} "
                           f"is {status} in Xero: there is nothing left to reverse",
                           code="NOTHING_TO_REVERSE")
    lines = []
    for line in original.get("JournalLines") or []:
        tracking = [{"Name": t.get("Name"), "Option": t.get("Option")}
                    for t in line.get("Tracking") or []]
        lines.append({"Description": f"Reversal: {line.get('Description') or ''}".strip(),
                      "LineAmount": -decimal_of(line.get("LineAmount"), "LineAmount"),
                      "AccountCode": line.get("AccountCode"), "Tracking": tracking})
    if not lines:
        raise MappingError(f"journal {original.get('ManualJournalID')} of charge {charge_id} "
                           "has no lines to reverse")
    when = parse_xero_datetime(original.get("Date"))
    return {"Narration": f"billbridge reversal of {charge_id} (journal "
                         f"{original.get('ManualJournalID')}) {marker(idempotency_key)}",
            "Date": (when or datetime.now(UTC)).date().isoformat(),
            "Status": status, "LineAmountTypes": "NoTax",
            "JournalLines": lines}


def invoice(payload: Mapping[str, Any], contact_id: str, settings: XeroSettings,
            today: date) -> dict[str, Any]:
    """An ``invoice.create`` as an ACCREC invoice numbered with the canonical
    id. Time lines credit the WIP their charges accrued; other lines (fees,
    expenses, milestones) go to sales."""
    bill = invoice_record(payload)
    lines = []
    for line in bill.lines:
        from_time = (line.source or "").startswith("tc_")
        # No LineAmount: Xero computes quantity x unit amount itself and refuses
        # a line whose figure differs from its own.
        item: dict[str, Any] = {
            "Description": line.description, "Quantity": line.quantity,
            "UnitAmount": line.unit_price,
            "AccountCode": settings.wip_account if from_time else settings.sales_account}
        tax_type = settings.tax_type(line.tax_code)
        if tax_type is not None:
            item["TaxType"] = tax_type
        if bill.project:
            item["Tracking"] = _tracking(settings, bill.project)
        lines.append(item)
    record: dict[str, Any] = {
        "Type": "ACCREC", "Contact": {"ContactID": contact_id}, "InvoiceNumber": bill.id,
        "Reference": bill.po_number or bill.project or "", "CurrencyCode": bill.currency,
        "Status": settings.invoice_status, "LineAmountTypes": "Exclusive",
        "Date": (bill.invoice_date or today).isoformat(),
        "DueDate": ((bill.invoice_date or today)
                    + timedelta(days=settings.payment_terms_days)).isoformat(),
        "LineItems": lines}
    return record


# -- Xero invoices → canonical events -------------------------------------------------

def status_event(record: Mapping[str, Any], *, source: str) -> dict[str, Any] | Malformed | None:
    """``invoice.status_changed`` for an ACCREC invoice the hub raised; None
    while it is a draft. The event id is the invoice id, status and amount
    paid, so the same state read through Invoices and through Payments is one
    event, and each payment is a new one."""
    invoice_id = record.get("InvoiceID")
    status = str(record.get("Status") or "")
    stamp = record.get("UpdatedDateUTC")
    fallback_id = f"xero-invoice:{invoice_id}:{stamp}"
    if blank(invoice_id):
        return Malformed(dict(record), "Xero invoice without an InvoiceID", None)
    if status in QUIET_STATUSES:
        return None
    if status not in INVOICE_STATUS:
        return Malformed(dict(record), f"Xero invoice {invoice_id}: unknown Status {status!r}",
                         fallback_id)
    number = record.get("InvoiceNumber")
    if blank(number):
        return Malformed(dict(record), f"Xero invoice {invoice_id} has no InvoiceNumber, so "
                         "it names no billbridge invoice", fallback_id)
    try:
        paid = decimal_of(record.get("AmountPaid", 0), "AmountPaid")
        at = parse_xero_datetime(stamp)
    except ValueError as exc:
        return Malformed(dict(record), f"Xero invoice {invoice_id}: {exc}", fallback_id)
    if at is None:
        return Malformed(dict(record), f"Xero invoice {invoice_id} has no UpdatedDateUTC",
                         fallback_id)
    canonical = INVOICE_STATUS[status]
    return {"type": "invoice.status_changed", "source": source,
            "id": f"xero-invoice:{invoice_id}:{status}:{paid}", "at": at.isoformat(),
            "data": {"invoice": str(number), "erp_id": str(invoice_id), "status": canonical,
                     "amount_paid": str(paid)}}
