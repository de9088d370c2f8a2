"""Canonical commands ↔ Dynamics 365 Finance data entities, and Finance's
invoices and payments back to canonical ``invoice.status_changed`` events.
Pure: no I/O.

How the hub's records land in Finance (docs/connectors/dynamics-finance.md):
customers are ``CustomersV3`` rows keyed by the canonical id, projects are
project rows keyed by the project code, time charges are project hour
journal lines whose text names the charge and carries the command's marker,
reversals are lines with the hours turned negative, and invoices are
free-text invoices (a header and numbered lines) keyed by the canonical
invoice id. Entity names, key fields and the fields the sources leave
unverified are ``FinanceSettings``, each with a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.connectors.fields import (
    MappingError,
    OptionSettings,
    blank,
    command_record,
    decimal_of,
    invoice_record,
    mapped_tax,
    marker,
)
from billbridge.domain.records import Customer, ProjectStatus, TimeCharge

POSTING_TEXT = re.compile(r"^billbridge (tc_\S+) ")
REVERSAL_TEXT = re.compile(r"^billbridge reversal of (\S+) \(line ([^)\s]+)\)")
ENUM = "Microsoft.Dynamics.DataEntities"


@dataclass(frozen=True, slots=True)
class FinanceSettings(OptionSettings):
    """Where and how one Finance environment takes the hub's records. The
    entity names and key fields the vendor's documentation leaves unverified
    are here, so an environment whose ``$metadata`` says otherwise is set up,
    not patched."""

    company: str = "usmf"
    """The ``dataAreaId`` a record goes to when its legal entity is not mapped."""
    companies: Mapping[str, str] = field(default_factory=dict)
    """Canonical legal entity code → ``dataAreaId``."""
    customers_entity: str = "CustomersV3"
    customer_key: str = "CustomerAccount"
    customer_group: str = "30"
    projects_entity: str = "Projects"
    project_key: str = "ProjectID"
    hour_lines_entity: str = "ProjectHourJournalLines"
    hour_journal: str = "BB-HOURS"
    """The hour journal (``JournalBatchNumber``) the lines are written to."""
    hour_category: str = "Hours"
    billable_line_property: str = "Billable"
    cost_line_property: str = "NonBill"
    invoice_headers_entity: str = "FreeTextInvoiceHeaders"
    invoice_lines_entity: str = "FreeTextInvoiceLines"
    invoice_key: str = "InvoiceIdentifier"
    revenue_account: str = "401100"
    tax_groups: Mapping[str, str] = field(default_factory=dict)
    """Canonical tax code → item sales tax group."""
    payments_entity: str = "CustomerPaymentJournalLines"
    payment_invoice_field: str = "MarkedInvoice"
    modified_field: str = "ModifiedDateTime"
    """The UTC date-time field the status reads page by (no OData change
    tracking on ``/data`` is documented)."""

    def company_of(self, legal_entity: str | None) -> str:
        if legal_entity and legal_entity in self.companies:
            return self.companies[legal_entity]
        return self.company

    def tax_group(self, tax_code: str | None) -> str | None:
        return mapped_tax(tax_code, self.tax_groups, vendor_code="item sales tax group",
                          option="tax_groups")


def enum(name: str, member: str) -> str:
    """An enum literal for ``$filter``: ``Microsoft.Dynamics.DataEntities.NoYes'Yes'``."""
    return f"{ENUM}.{name}'{member}'"


# -- commands → Finance rows ---------------------------------------------------------

def customer(payload: Mapping[str, Any], settings: FinanceSettings
             ) -> tuple[dict[str, str], dict[str, Any]]:
    """A ``customer.upsert`` as a ``CustomersV3`` (key, fields); the customer
    account is the canonical id."""
    record = command_record(Customer, payload, "customer.upsert")
    key = {"dataAreaId": settings.company_of(record.legal_entity),
           settings.customer_key: record.id}
    body: dict[str, Any] = {"OrganizationName": record.name,
                            "SalesCurrencyCode": record.currency,
                            "AddressCountryRegionId": record.billing_country,
                            "CustomerGroupId": settings.customer_group}
    if record.tax_id:
        body["VATNum"] = record.tax_id
    return key, body


PROJECT_STAGE = {ProjectStatus.PENDING: "Created", ProjectStatus.ACTIVE: "InProcess",
                 ProjectStatus.ON_HOLD: "InProcess", ProjectStatus.CLOSED: "Finished"}


def project(payload: Mapping[str, Any], customer_account: str | None,
            settings: FinanceSettings) -> tuple[dict[str, str], dict[str, Any]]:
    """A ``project.upsert`` as a project row keyed by the project code."""
    code, status = payload.get("code"), payload.get("status")
    if blank(code):
        raise MappingError("project.upsert without a project code")
    try:
        stage = PROJECT_STAGE[ProjectStatus(str(status))]
    except ValueError:
        raise MappingError(f"project {code}: unknown status {status!r}") from None
    body: dict[str, Any] = {"ProjectName": str(payload.get("name") or code),
                            "ProjectStage": stage}
    if customer_account:
        body["CustomerAccount"] = customer_account
    return {"dataAreaId": settings.company, settings.project_key: str(code)}, body


def hour_line(payload: Mapping[str, Any], idempotency_key: str,
              settings: FinanceSettings) -> dict[str, Any]:
    """A ``time_charge.post`` as a project hour journal line; its text names
    the charge, its hours and rate, and carries the marker."""
    charge = command_record(TimeCharge, payload, "time_charge.post")
    return {"dataAreaId": settings.company, "JournalBatchNumber": settings.hour_journal,
            "ProjectID": charge.project, "ProjectDate": charge.work_date.isoformat(),
            "Worker": charge.worker, "CategoryId": settings.hour_category,
            "Hours": charge.hours, "SalesPrice": charge.rate, "CurrencyCode": charge.currency,
            "LinePropertyId": (settings.billable_line_property if charge.billable
                               else settings.cost_line_property),
            "Text": f"billbridge {charge.id} {charge.hours} h {charge.amount} "
                    f"{marker(idempotency_key)}"}


def reversal_line(original: Mapping[str, Any], charge_id: str, idempotency_key: str,
                  settings: FinanceSettings) -> dict[str, Any]:
    """The line that undoes ``original``: the same line with its hours turned."""
    hours = decimal_of(original.get("Hours"), "Hours")
    amount = _text_amount(original)
    return {"dataAreaId": str(original.get("dataAreaId") or settings.company),
            "JournalBatchNumber": settings.hour_journal,
            "ProjectID": original.get("ProjectID"),
            "ProjectDate": original.get("ProjectDate"), "Worker": original.get("Worker"),
            "CategoryId": original.get("CategoryId"), "Hours": -hours,
            "SalesPrice": decimal_of(original.get("SalesPrice"), "SalesPrice"),
            "CurrencyCode": original.get("CurrencyCode"),
            "LinePropertyId": original.get("LinePropertyId"),
            "Text": f"billbridge reversal of {charge_id} (line {line_id(original)}) "
                    f"{-hours} h {-amount} {marker(idempotency_key)}"}


def line_id(row: Mapping[str, Any]) -> str:
    """A journal line's id as the hub keeps it: company/journal/line number."""
    return f"{row.get('dataAreaId')}/{row.get('JournalBatchNumber')}/{row.get('LineNumber')}"


def line_key(external_id: str) -> dict[str, Any] | None:
    company, _, rest = external_id.partition("/")
    journal, _, number = rest.rpartition("/")
    if not (company and journal and number):
        return None
    try:
        return {"dataAreaId": company, "JournalBatchNumber": journal,
                "LineNumber": Decimal(number)}
    except InvalidOperation:
        return None


def _text_amount(row: Mapping[str, Any]) -> Decimal:
    """The amount the line's text states (hours × rate as the hub priced it)."""
    words = str(row.get("Text") or "").split()
    try:
        return Decimal(words[words.index("h") + 1])
    except (ValueError, IndexError, InvalidOperation):
        return (decimal_of(row.get("Hours"), "Hours")
                * decimal_of(row.get("SalesPrice"), "SalesPrice")).quantize(Decimal("0.01"))


def live_labour(lines: Sequence[Mapping[str, Any]]) -> list[LivePosting]:
    """The hour lines billbridge wrote that no reversal line names."""
    undone = {m.group(2) for row in lines
              if (m := REVERSAL_TEXT.match(str(row.get("Text") or "")))}
    out = []
    for row in lines:
        found = POSTING_TEXT.match(str(row.get("Text") or ""))
        if found is None or line_id(row) in undone:
            continue
        out.append(LivePosting(found.group(1), line_id(row),
                               decimal_of(row.get("Hours"), "Hours"), _text_amount(row),
                               str(row.get("CurrencyCode") or ""),
                               None if row.get("ProjectID") is None else str(row["ProjectID"])))
    return out


def invoice(payload: Mapping[str, Any], customer_account: str, settings: FinanceSettings,
            today: date) -> tuple[tuple[dict[str, str], dict[str, Any]],
                                  list[tuple[dict[str, Any], dict[str, Any]]]]:
    """An ``invoice.create`` as a free-text invoice: the header (key, fields)
    and its lines (key, fields), numbered from 1."""
    bill = invoice_record(payload)
    company = settings.company
    header_key = {"dataAreaId": company, settings.invoice_key: bill.id}
    header: dict[str, Any] = {"CustomerAccount": customer_account,
                              "InvoiceDate": (bill.invoice_date or today).isoformat(),
                              "CurrencyCode": bill.currency}
    if bill.project:
        header["ProjectID"] = bill.project
    lines = []
    for number, line in enumerate(bill.lines, start=1):
        fields_: dict[str, Any] = {"Description": line.description, "Quantity": line.quantity,
                                   "UnitPrice": line.unit_price, "LineAmount": line.amount,
                                   "MainAccountDisplayValue": settings.revenue_account}
        group = settings.tax_group(line.tax_code)
        if group is not None:
            fields_["ItemSalesTaxGroup"] = group
        lines.append(({**header_key, "LineNumber": number}, fields_))
    return (header_key, header), lines


# -- Finance invoices → canonical events -------------------------------------------------

def status_event(header: Mapping[str, Any], paid: Decimal, *, settings: FinanceSettings,
                 source: str) -> dict[str, Any] | Malformed | None:
    """``invoice.status_changed`` for a free-text invoice the hub raised; None
    while it is not posted. Issued once posted, paid once the payments marked
    against it reach its total. The event id is the invoice's state, so the
    same state read through invoices and through payments is one event."""
    number = header.get(settings.invoice_key)
    company = header.get("dataAreaId")
    stamp = header.get(settings.modified_field)
    if blank(number) or blank(company):
        return Malformed(dict(header), f"Finance invoice without {settings.invoice_key} or "
                         "dataAreaId", None)
    fallback = f"d365fo-invoice:{company}:{number}:{stamp}"
    posted = str(header.get("IsPosted") or "No")
    if posted not in ("Yes", "No"):
        return Malformed(dict(header), f"Finance invoice {number}: IsPosted is {posted!r}",
                         fallback)
    if posted == "No":
        return None
    try:
        total = decimal_of(header.get("TotalInvoiceAmount"), "TotalInvoiceAmount")
    except ValueError as exc:
        return Malformed(dict(header), f"Finance invoice {number}: {exc}", fallback)
    if blank(stamp):
        return Malformed(dict(header), f"Finance invoice {number} has no "
                         f"{settings.modified_field}", fallback)
    status = "paid" if total > 0 and paid >= total else "issued"
    at = str(stamp)
    return {"type": "invoice.status_changed", "source": source,
            "id": f"d365fo-invoice:{company}:{number}:{status}:{paid}",
            "at": at if at.endswith("Z") or "+" in at[10:] else f"{at}Z",
            "data": {"invoice": str(number), "erp_id": f"{company}/{number}",
                     "status": status, "amount_paid": str(paid)}}
