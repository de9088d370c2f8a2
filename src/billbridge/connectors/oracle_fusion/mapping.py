"""Canonical commands ↔ Oracle Fusion Cloud ERP resources, and Fusion's
receivables invoices back to canonical ``invoice.status_changed`` events.
Pure: no I/O.

How the hub's records land in Fusion (docs/connectors/oracle-fusion.md):
customers are ``hubOrganizations`` parties numbered by the canonical id with
a ``SourceSystemReference``; projects are ``projects`` numbered by the
project code; time charges are ``unprocessedProjectCosts`` whose
``OriginalTransactionReference`` is the command's idempotency key and whose
comment names the charge, its hours and amount; reversals are the same cost
with the quantity turned negative; invoices are ``receivablesInvoices``
numbered by the canonical invoice id. What the sources leave unverified is
an ``OracleSettings`` field with a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.connectors.fields import (
    MappingError,
    blank,
    decimal_of,
    explain,
    mapped_tax,
    marker,
    settings_from_options,
)
from billbridge.domain.records import Customer, Invoice, ProjectStatus, TimeCharge

POSTING_TEXT = re.compile(r"^billbridge (tc_\S+) (-?[0-9.]+) h (-?[0-9.]+) ([A-Z]{3}) ")
REVERSAL_TEXT = re.compile(r"^billbridge reversal of (\S+) \(cost ([0-9a-f]+)\)")
COMMENT = "ExpenditureComment"
REFERENCE = "OriginalTransactionReference"


def _statuses() -> dict[str, str]:
    return {"pending": "Draft", "active": "Active", "on_hold": "On Hold", "closed": "Closed"}


@dataclass(frozen=True, slots=True)
class OracleSettings:
    """Where and how one Fusion pod takes the hub's records. Every name the
    sources leave unverified is here, so a pod set up otherwise is configured,
    not patched."""

    business_unit: str = "US1 Business Unit"
    customer_source_system: str = "BILLBRIDGE"
    """``SourceSystemReference[].SourceSystem`` of the parties billbridge creates [HUB]."""
    project_statuses: Mapping[str, str] = field(default_factory=_statuses)
    """Canonical project status → ``ProjectStatus`` (the POST payload is unverified)."""
    cost_source: str = "BILLBRIDGE"
    """The third-party transaction source of the costs (set up in Project Costing)."""
    cost_document: str = "Time Cards"
    cost_document_entry: str = "Labor"
    expenditure_type: str = "Professional Labor"
    task_number: str = "1"
    unit_of_measure: str = "Hours"
    invoice_source: str = "BILLBRIDGE"
    """The Receivables ``TransactionSource`` of the hub's invoices (the poll reads only these)."""
    invoice_type: str = "Invoice"
    payment_terms: str = "30 Net"
    payment_terms_days: int = 30
    invoice_status: str = "Incomplete"
    """``Incomplete`` (a finance supervisor completes it in Fusion, as Oracle's
    "Complete an Invoice" example has it) or ``Complete``."""
    tax_codes: Mapping[str, str] = field(default_factory=dict)
    """Canonical tax code → ``TaxClassificationCode``."""
    upsert_mode: bool = True
    """Send ``Upsert-Mode: true`` with the POSTs of parties and projects [UPC]."""
    use_batch: bool = True
    """Costs and invoices in one batch call [BATCH]; False: one POST each, in parallel."""
    modified_field: str = "LastUpdateDate"
    total_field: str = "EnteredAmount"
    """The invoice's total in a ``receivablesInvoices`` item (unverified)."""
    balance_field: str = "InvoiceBalanceAmount"
    """What is still owed on the invoice (unverified); paid once it reaches zero."""
    receipt_references: str = "remittanceReferences"
    """The receipt's child naming the invoices it pays ([ARUN]; field names unverified)."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> OracleSettings:
        """Connection options; every key is optional (docs/connectors/oracle-fusion.md)."""
        given = settings_from_options(cls, options)
        if "project_statuses" in given:
            given["project_statuses"] = {**_statuses(), **given["project_statuses"]}
        return cls(**given)

    def tax_code(self, code: str | None) -> str | None:
        return mapped_tax(code, self.tax_codes, vendor_code="TaxClassificationCode",
                          option="tax_codes")


def quoted(value: Any) -> str:
    """A string literal for the ``q`` parameter (quotes doubled)."""
    return "'" + str(value).replace("'", "''") + "'"


def any_of(name: str, values: Sequence[str]) -> str:
    return " or ".join(f"{name} = {quoted(v)}" for v in values)


# -- commands → Fusion payloads -----------------------------------------------------

def organization(payload: Mapping[str, Any], settings: OracleSettings) -> dict[str, Any]:
    """A ``customer.upsert`` as a ``hubOrganizations`` party numbered by the canonical id."""
    try:
        record = Customer.model_validate(dict(payload))
    except ValidationError as exc:
        raise MappingError(f"customer.upsert: {explain(exc)}") from None
    return {"PartyNumber": record.id, "OrganizationName": record.name,
            "SourceSystemReference": [{"SourceSystem": settings.customer_source_system,
                                       "SourceSystemReferenceValue": record.id}],
            "Address": [{"Country": record.billing_country}]}


def project(payload: Mapping[str, Any], settings: OracleSettings) -> dict[str, Any]:
    """A ``project.upsert`` as a ``projects`` item numbered by the project code."""
    code, status = payload.get("code"), payload.get("status")
    if blank(code):
        raise MappingError("project.upsert without a project code")
    try:
        wanted = ProjectStatus(str(status)).value
    except ValueError:
        raise MappingError(f"project {code}: unknown status {status!r}") from None
    return {"ProjectNumber": str(code), "ProjectName": str(payload.get("name") or code),
            "ProjectStatus": settings.project_statuses.get(wanted, "Active"),
            "BusinessUnitName": settings.business_unit,
            "SourceProjectReference": str(code)}


def cost(payload: Mapping[str, Any], idempotency_key: str,
         settings: OracleSettings) -> dict[str, Any]:
    """A ``time_charge.post`` as an unprocessed project cost: its reference
    is the command's key, its comment names the charge, hours and amount."""
    try:
        charge = TimeCharge.model_validate(dict(payload))
    except ValidationError as exc:
        raise MappingError(f"time_charge.post: {explain(exc)}") from None
    return {"BusinessUnit": settings.business_unit, "TransactionSource": settings.cost_source,
            "Document": settings.cost_document, "DocumentEntry": settings.cost_document_entry,
            "ProjectNumber": charge.project, "TaskNumber": settings.task_number,
            "ExpenditureType": settings.expenditure_type,
            "ExpenditureItemDate": charge.work_date.isoformat(), "PersonNumber": charge.worker,
            "Quantity": charge.hours, "UnitOfMeasure": settings.unit_of_measure,
            "BillableFlag": charge.billable, REFERENCE: idempotency_key,
            COMMENT: f"billbridge {charge.id} {charge.hours} h {charge.amount} "
                     f"{charge.currency} {marker(idempotency_key)}"}


def reversal(original: Mapping[str, Any], charge_id: str, idempotency_key: str
             ) -> dict[str, Any]:
    """The cost that undoes ``original``: the same cost with its quantity turned."""
    found = POSTING_TEXT.match(str(original.get(COMMENT) or ""))
    if found is None:
        raise MappingError(f"charge {charge_id}: its cost in Fusion has no billbridge comment "
                           "to reverse from", code="NOTHING_TO_REVERSE")
    hours, amount, currency = Decimal(found.group(2)), Decimal(found.group(3)), found.group(4)
    copied = ("BusinessUnit", "TransactionSource", "Document", "DocumentEntry",
              "ProjectNumber", "TaskNumber", "ExpenditureType", "ExpenditureItemDate",
              "PersonNumber", "UnitOfMeasure", "BillableFlag")
    return {**{k: original.get(k) for k in copied}, "Quantity": -hours,
            REFERENCE: idempotency_key,
            COMMENT: f"billbridge reversal of {charge_id} (cost {original.get(REFERENCE)}) "
                     f"{-hours} h {-amount} {currency} {marker(idempotency_key)}"}


def live_labour(costs: Sequence[Mapping[str, Any]]) -> list[LivePosting]:
    """The costs billbridge wrote (processed or not) that no reversal names,
    once each (a cost read from both collections is one posting)."""
    undone = {m.group(2) for row in costs if (m := REVERSAL_TEXT.match(str(row.get(COMMENT))))}
    out: dict[str, LivePosting] = {}
    for row in costs:
        found = POSTING_TEXT.match(str(row.get(COMMENT) or ""))
        reference = str(row.get(REFERENCE) or "")
        if found is None or not reference or reference in undone:
            continue
        out.setdefault(reference, LivePosting(
            found.group(1), reference, Decimal(found.group(2)), Decimal(found.group(3)),
            found.group(4), None if row.get("ProjectNumber") is None
            else str(row["ProjectNumber"])))
    return list(out.values())


def invoice(payload: Mapping[str, Any], customer_number: str, settings: OracleSettings,
            today: date) -> dict[str, Any]:
    """An ``invoice.create`` as a ``receivablesInvoices`` item with its lines [ARI]."""
    try:
        bill = Invoice.model_validate(dict(payload))
    except ValidationError as exc:
        raise MappingError(f"invoice.create: {explain(exc)}") from None
    if not bill.lines:
        raise MappingError(f"invoice {bill.id} has no lines")
    day = bill.invoice_date or today
    lines = []
    for number, line in enumerate(bill.lines, start=1):
        item: dict[str, Any] = {"LineNumber": number, "Description": line.description[:240],
                                "Quantity": line.quantity, "UnitSellingPrice": line.unit_price}
        tax = settings.tax_code(line.tax_code)
        if tax is not None:
            item["TaxClassificationCode"] = tax
        lines.append(item)
    return {"BillToCustomerNumber": customer_number, "BusinessUnit": settings.business_unit,
            "TransactionSource": settings.invoice_source,
            "TransactionType": settings.invoice_type, "TransactionDate": day.isoformat(),
            "TransactionNumber": bill.id, "PaymentTerms": settings.payment_terms,
            "InvoiceCurrencyCode": bill.currency,
            "DueDate": (day + timedelta(days=settings.payment_terms_days)).isoformat(),
            "InvoiceStatus": settings.invoice_status, "receivablesInvoiceLines": lines}


# -- Fusion invoices → canonical events -------------------------------------------------

def _amount(row: Mapping[str, Any], name: str) -> Decimal:
    try:
        return decimal_of(row.get(name), name)
    except (ValueError, InvalidOperation):
        raise ValueError(f"{name} is {row.get(name)!r}, not a number") from None


def status_event(row: Mapping[str, Any], *, settings: OracleSettings,
                 source: str) -> dict[str, Any] | Malformed | None:
    """``invoice.status_changed`` for an invoice the hub raised; None while it
    is incomplete. Issued once complete, paid once nothing is owed. The event
    id is the invoice's state, so the same state read through the invoice and
    through a receipt is one event."""
    number, erp_id = row.get("TransactionNumber"), row.get("CustomerTransactionId")
    stamp = row.get(settings.modified_field)
    if blank(number) or blank(erp_id):
        return Malformed(dict(row), "Fusion invoice without TransactionNumber or "
                         "CustomerTransactionId", None)
    fallback = f"oracle-invoice:{erp_id}:{stamp}"
    state = str(row.get("InvoiceStatus") or "")
    if state not in ("Complete", "Incomplete"):
        return Malformed(dict(row), f"Fusion invoice {number}: InvoiceStatus is {state!r}",
                         fallback)
    if state == "Incomplete":
        return None
    try:
        total = _amount(row, settings.total_field)
        owed = _amount(row, settings.balance_field)
    except ValueError as exc:
        return Malformed(dict(row), f"Fusion invoice {number}: {exc}", fallback)
    if blank(stamp):
        return Malformed(dict(row), f"Fusion invoice {number} has no {settings.modified_field}",
                         fallback)
    paid = total - owed
    status = "paid" if total > 0 and owed <= 0 else "issued"
    return {"type": "invoice.status_changed", "source": source,
            "id": f"oracle-invoice:{erp_id}:{status}:{paid}", "at": str(stamp),
            "data": {"invoice": str(number), "erp_id": str(erp_id), "status": status,
                     "amount_paid": str(paid)}}
