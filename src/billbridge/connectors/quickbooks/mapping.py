"""Canonical records ↔ QuickBooks Online entities: mostly data.

Every record billbridge writes carries a marker, ``[billbridge <canonical id>
<idempotency key>]``, in a free-text field QuickBooks keeps (a customer's
``Notes``, a time activity's ``Description``, an invoice's ``PrivateNote``):
how a resend finds what an earlier attempt wrote, and how an invoice read back
names its canonical id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.connectors.fields import blank
from billbridge.domain.money import quantize_hours, round_money, to_decimal
from billbridge.domain.records import Invoice, InvoiceStatus, ProjectStatus, TimeCharge

MARKER = re.compile(r"\[billbridge (?P<id>.+?) (?P<key>[0-9a-f]{16,64})\]")
NAME_LIMIT = 100  # characters QuickBooks keeps in a name on every entity that has one
VOIDED = "Voided"  # QuickBooks prefixes a voided invoice's PrivateNote with it
# What ``time_activity_body`` states before the marker: hours, rate, amount, currency, kind.
STATED = re.compile(r"(?P<hours>\d+(?:\.\d+)?) h at \S+ = \S+ (?P<currency>[A-Z]{3}) "
                    r"\((?P<kind>billable|cost)\) \[billbridge ")


def marker(canonical_id: str, key: str) -> str:
    return f"[billbridge {canonical_id} {key}]"


@dataclass(frozen=True, slots=True)
class Marker:
    canonical_id: str
    key: str


def read_marker(text: Any) -> Marker | None:
    found = MARKER.search(text) if isinstance(text, str) else None
    return Marker(found.group("id"), found.group("key")) if found else None


def display_name(text: str) -> str:
    """A QuickBooks name: one line, no colon (QuickBooks' own separator
    between a customer and its sub-customers), at most 100 characters."""
    cleaned = re.sub(r"\s+", " ", text.replace(":", "-")).strip()
    return cleaned[:NAME_LIMIT].rstrip()


def ref(value: str) -> dict[str, str]:
    return {"value": value}


# -- outbound ----------------------------------------------------------------------
def customer_body(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A top-level Customer. Its currency is fixed at creation in QuickBooks."""
    name = display_name(str(payload["name"]))
    body: dict[str, Any] = {
        "DisplayName": name, "CompanyName": name,
        "CurrencyRef": ref(str(payload["currency"])),
        "BillAddr": {"Country": str(payload["billing_country"])},
        "Notes": marker(str(payload["id"]), key),
    }
    if not blank(payload.get("tax_id")):
        body["PrimaryTaxIdentifier"] = str(payload["tax_id"])
    return body


def project_name(payload: Mapping[str, Any]) -> str:
    """A project's name in QuickBooks: its code, then its name when they differ
    (names are unique across customers, vendors and employees, codes are ours)."""
    code, name = str(payload["code"]), str(payload.get("name") or "")
    return display_name(code if not name or name == code else f"{code} {name}")


def project_active(payload: Mapping[str, Any]) -> bool:
    return str(payload.get("status")) != ProjectStatus.CLOSED.value


def project_body(payload: Mapping[str, Any], key: str, parent: str) -> dict[str, Any]:
    """A project as a sub-customer (``Job``) of its customer; invoices to it
    are billed with the parent."""
    return {"DisplayName": project_name(payload), "Job": True, "ParentRef": ref(parent),
            "BillWithParent": True, "Active": project_active(payload),
            "Notes": marker(str(payload["code"]), key)}


def hours_and_minutes(hours: Decimal) -> tuple[int, int]:
    """QuickBooks keeps whole minutes: canonical hours (0.01 h) round half-up
    to the minute."""
    minutes = int((hours * 60).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return divmod(minutes, 60)


def time_activity_body(charge: TimeCharge, key: str, *, employee: str, project: str,
                       item: str | None) -> dict[str, Any]:
    """A TimeActivity of the worker's employee for the project's sub-customer.
    Billable time carries its rate as ``HourlyRate``; a cost line is
    NotBillable with the cost rate as ``CostRate``."""
    whole, minutes = hours_and_minutes(charge.hours)
    kind = "billable" if charge.billable else "cost"
    body: dict[str, Any] = {
        "NameOf": "Employee", "EmployeeRef": ref(employee), "CustomerRef": ref(project),
        "TxnDate": charge.work_date.isoformat(), "Hours": whole, "Minutes": minutes,
        "BillableStatus": "Billable" if charge.billable else "NotBillable",
        "Description": f"{charge.time_entry} {charge.worker}: {charge.hours} h at {charge.rate}"
                       f" = {charge.amount} {charge.currency} ({kind}) "
                       + marker(charge.id, key),
    }
    body["HourlyRate" if charge.billable else "CostRate"] = charge.rate
    if item:
        body["ItemRef"] = ref(item)
    return body


def live_labour(activities: Sequence[Mapping[str, Any]]) -> list[LivePosting]:
    """The time activities billbridge wrote (the marker in the description
    names the charge); a reversal deletes its activity, so each one found is
    live. Hours are the activity's own ``Hours``/``Minutes`` (the hours the
    description states when they round to those minutes, as QuickBooks keeps
    whole minutes) and the amount those hours at its ``HourlyRate`` (billable)
    or ``CostRate`` (cost line), rounded once; a time activity has no
    currency of its own, so the one the description states is taken."""
    out = []
    for activity in activities:
        description = str(activity.get("Description") or "")
        found, stated = read_marker(description), STATED.search(description)
        if found is None or stated is None:
            continue
        currency = stated.group("currency")
        whole, minutes = int(activity.get("Hours") or 0), int(activity.get("Minutes") or 0)
        hours = Decimal(stated.group("hours"))
        if hours_and_minutes(hours) != (whole, minutes):
            hours = quantize_hours(Decimal(whole) + Decimal(minutes) / 60)
        rate = activity.get("HourlyRate" if stated.group("kind") == "billable" else "CostRate")
        amount = round_money(hours * to_decimal(rate or 0, what="rate"), currency)
        out.append(LivePosting(found.canonical_id, str(activity.get("Id")), hours, amount,
                               currency))
    return out


def invoice_body(invoice: Invoice, key: str, *, customer: str, item: str,
                 tax_codes: Mapping[str, str]) -> dict[str, Any] | str:
    """An Invoice of sales-item lines; or why it cannot be one (a canonical
    tax code with no QuickBooks tax code configured)."""
    lines = []
    for line in invoice.lines:
        detail: dict[str, Any] = {"ItemRef": ref(item), "Qty": line.quantity,
                                  "UnitPrice": line.unit_price}
        if line.tax_code is not None:
            if line.tax_code not in tax_codes:
                return (f"invoice {invoice.id}: no QuickBooks tax code is configured for "
                        f"canonical tax code {line.tax_code!r} (connection option tax_codes)")
            detail["TaxCodeRef"] = ref(tax_codes[line.tax_code])
        lines.append({"DetailType": "SalesItemLineDetail", "Amount": line.amount,
                      "Description": line.description, "SalesItemLineDetail": detail})
    body: dict[str, Any] = {"CustomerRef": ref(customer), "CurrencyRef": ref(invoice.currency),
                            "Line": lines, "PrivateNote": marker(invoice.id, key)}
    if invoice.tax:
        body["TxnTaxDetail"] = {"TotalTax": invoice.tax}
    if invoice.po_number:
        body["CustomerMemo"] = {"value": f"PO {invoice.po_number}"}
    if invoice.invoice_date:
        body["TxnDate"] = invoice.invoice_date.isoformat()
    return body


# -- inbound -----------------------------------------------------------------------
def invoice_status(record: Mapping[str, Any]) -> InvoiceStatus:
    """Voided: zeroed with ``Voided`` in front of the private note; paid: no
    balance left on a non-zero total; otherwise issued (a partial payment
    included)."""
    total = to_decimal(record.get("TotalAmt"), what="TotalAmt")
    balance = to_decimal(record.get("Balance"), what="Balance")
    if str(record.get("PrivateNote") or "").startswith(VOIDED) and total == 0:
        return InvoiceStatus.VOID
    if total > 0 and balance <= 0:
        return InvoiceStatus.PAID
    return InvoiceStatus.ISSUED


def status_event(record: Mapping[str, Any], *, source: str) -> dict[str, Any] | Malformed | None:
    """``invoice.status_changed`` for an invoice billbridge raised (its marker
    names the canonical invoice); None for invoices made in QuickBooks itself.

    The event id is the invoice's observable state (status and amount paid),
    so the same state read twice (a poll boundary, the payment and the invoice
    streams) is one event, and each new payment is a new one."""
    found = read_marker(record.get("PrivateNote"))
    if found is None:
        return None
    invoice_id = str(record.get("Id") or "")
    try:
        status = invoice_status(record)
        currency = str((record.get("CurrencyRef") or {}).get("value") or "")
        paid = round_money(to_decimal(record.get("TotalAmt"), what="TotalAmt")
                           - to_decimal(record.get("Balance"), what="Balance"), currency)
        at = datetime.fromisoformat(str((record.get("MetaData") or {}).get("LastUpdatedTime")))
        if at.tzinfo is None:
            raise ValueError("LastUpdatedTime has no UTC offset")
    except ValueError as exc:
        return Malformed(dict(record), f"QuickBooks invoice {invoice_id} "
                         f"({found.canonical_id}): {exc}",
                         event_id=f"qbo-invoice:{invoice_id}:{record.get('SyncToken')}")
    return {"type": "invoice.status_changed", "source": source,
            "id": f"qbo-invoice:{invoice_id}:{status.value}:{paid}",
            "at": at.isoformat(),
            "data": {"invoice": found.canonical_id, "erp_id": invoice_id,
                     "status": status.value, "amount_paid": str(paid)}}
