"""Canonical commands ↔ Sage Intacct objects, and Intacct's AR invoices back
to canonical ``invoice.status_changed`` events. Pure: no I/O.

How the hub's records land in Intacct (docs/connectors/sage-intacct.md):
customers are ``CUSTOMER`` records whose ``CUSTOMERID`` is the canonical id,
projects are ``PROJECT`` records whose ``PROJECTID`` is the project code, a
time charge is a ``TIMESHEET`` of one ``TIMESHEETENTRY`` whose description
names the charge and carries the command's marker, a reversal is a timesheet
of the same hours turned negative naming the one it undoes, and an invoice
is the legacy ``create_invoice`` whose ``invoiceno`` (``ARINVOICE.RECORDID``)
is the canonical invoice id. In a multi-entity company each record is
created in its entity's session (``locationid``), and the ERP id the hub
keeps is ``ID@ENTITY``, so what hangs off a customer goes to its entity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.connectors.fields import (
    MappingError,
    OptionSettings,
    blank,
    command_record,
    decimal_of,
    invoice_record,
    marker,
)
from billbridge.connectors.sage_intacct.client import decimal_text
from billbridge.domain.records import Customer, ProjectStatus, TimeCharge

POSTING_TEXT = re.compile(r"^billbridge (tc_\S+) (-?[\d.]+) h (-?[\d.]+) ([A-Z]{3}) ")
REVERSAL_TEXT = re.compile(r"^billbridge reversal of (\S+) \(timesheet ([^)\s]+)\)")
STAMP_FORMAT = "%m/%d/%Y %H:%M:%S"


@dataclass(frozen=True, slots=True)
class IntacctSettings(OptionSettings):
    """Where and how one Intacct company takes the hub's records; what the
    facts leave unverified is here, each with a default."""

    location_id: str = ""
    """The entity (``locationid``) a record goes to when its legal entity is
    not mapped; empty: the top level."""
    entities: Mapping[str, str] = field(default_factory=dict)
    """Canonical legal entity code → Intacct entity id (``locationid``)."""
    employees: Mapping[str, str] = field(default_factory=dict)
    """Canonical worker → ``EMPLOYEEID`` (a worker not named is its own id)."""
    revenue_account: str = "4000"
    tax_account: str = "2200"
    """The GL account an invoice's tax is a line on (create_invoice takes amounts)."""
    timesheet_state: str = ""
    """``STATE`` sent on a new timesheet; empty leaves it to the company's default."""
    modified_field: str = "WHENMODIFIED"
    """The timestamp the invoice status read pages by (its name is unverified)."""
    resend_lookup: bool = True
    """Look up what an earlier attempt wrote before sending a resend again."""

    def location_of(self, legal_entity: str | None) -> str:
        if legal_entity and legal_entity in self.entities:
            return self.entities[legal_entity]
        return self.location_id


def external(record_id: str, location: str) -> str:
    """The ERP id the hub keeps: the record's id, and its entity when it has one."""
    return f"{record_id}@{location}" if location else record_id


def split(external_id: str) -> tuple[str, str]:
    """(record id, entity) of an ERP id the hub keeps."""
    record_id, _, location = external_id.rpartition("@")
    return (record_id, location) if record_id else (external_id, "")


def us_date(day: date) -> str:
    return day.strftime("%m/%d/%Y")


# -- commands → Intacct records -----------------------------------------------------

def customer(payload: Mapping[str, Any], settings: IntacctSettings) -> tuple[str, dict[str, Any]]:
    """A ``customer.upsert`` as (entity, ``CUSTOMER`` fields)."""
    record = command_record(Customer, payload, "customer.upsert")
    body: dict[str, Any] = {
        "CUSTOMERID": record.id, "NAME": record.name,
        "DISPLAYCONTACT": {"PRINTAS": record.name, "COMPANYNAME": record.name,
                           "MAILADDRESS": {"COUNTRYCODE": record.billing_country}},
        "CURRENCY": record.currency,
        "STATUS": "active" if record.status.value == "active" else "inactive"}
    if record.tax_id:
        body["TAXID"] = record.tax_id
    return settings.location_of(record.legal_entity), body


PROJECT_STATUS = {ProjectStatus.PENDING: "Not Started", ProjectStatus.ACTIVE: "In Progress",
                  ProjectStatus.ON_HOLD: "On Hold", ProjectStatus.CLOSED: "Completed"}


def project(payload: Mapping[str, Any], customer_id: str | None) -> dict[str, Any]:
    """A ``project.upsert`` as ``PROJECT`` fields keyed by the project code."""
    code, status = payload.get("code"), payload.get("status")
    if blank(code):
        raise MappingError("project.upsert without a project code")
    try:
        state = PROJECT_STATUS[ProjectStatus(str(status))]
    except ValueError:
        raise MappingError(f"project {code}: unknown status {status!r}") from None
    body: dict[str, Any] = {"PROJECTID": str(code), "NAME": str(payload.get("name") or code),
                            "PROJECTSTATUS": state,
                            "STATUS": "inactive" if state == "Completed" else "active"}
    if customer_id:
        body["CUSTOMERID"] = customer_id
    return body


def _text(charge_id: str, hours: Decimal, amount: Decimal, currency: str, key: str) -> str:
    return (f"billbridge {charge_id} {decimal_text(hours)} h {decimal_text(amount)} {currency} "
            f"{marker(key)}")


def timesheet(payload: Mapping[str, Any], idempotency_key: str, settings: IntacctSettings,
              project_id: str) -> dict[str, Any]:
    """A ``time_charge.post`` as a ``TIMESHEET`` of one entry on the project."""
    charge = command_record(TimeCharge, payload, "time_charge.post")
    text = _text(charge.id, charge.hours, charge.amount, charge.currency, idempotency_key)
    return _sheet(settings.employees.get(charge.worker, charge.worker), charge.work_date,
                  text, settings, {"ENTRYDATE": us_date(charge.work_date),
                                   "QTY": decimal_text(charge.hours), "PROJECTID": project_id,
                                   "BILLABLE": charge.billable, "DESCRIPTION": text})


def _sheet(employee: str, day: date, text: str, settings: IntacctSettings,
           entry: dict[str, Any]) -> dict[str, Any]:
    sheet: dict[str, Any] = {"EMPLOYEEID": employee, "BEGINDATE": us_date(day),
                             "DESCRIPTION": text}
    if settings.timesheet_state:
        sheet["STATE"] = settings.timesheet_state
    sheet["TIMESHEETENTRIES"] = {"TIMESHEETENTRY": [entry]}
    return sheet


def reversal(original: Mapping[str, Any], charge_id: str, idempotency_key: str,
             settings: IntacctSettings) -> dict[str, Any]:
    """The timesheet that undoes ``original`` (a ``TIMESHEETENTRY`` row):
    the same hours turned negative, naming the timesheet it reverses."""
    found = POSTING_TEXT.match(str(original.get("DESCRIPTION") or ""))
    if found is None:
        raise MappingError(f"charge {charge_id}: its timesheet entry was not written by "
                           "billbridge", code="NOTHING_TO_REVERSE")
    hours, amount = -Decimal(found.group(2)), -Decimal(found.group(3))
    text = (f"billbridge reversal of {charge_id} (timesheet {original.get('TIMESHEETKEY')}) "
            f"{decimal_text(hours)} h {decimal_text(amount)} {found.group(4)} "
            f"{marker(idempotency_key)}")
    day = datetime.strptime(str(original.get("ENTRYDATE")), "%m/%d/%Y").date()
    return _sheet(str(original.get("EMPLOYEEID")), day, text, settings, {
        "ENTRYDATE": us_date(day), "QTY": decimal_text(hours),
        "PROJECTID": original.get("PROJECTID"),
        "BILLABLE": str(original.get("BILLABLE")).lower() == "true", "DESCRIPTION": text})


def live_labour(entries: Sequence[Mapping[str, Any]], location_of: Mapping[str, str]
                ) -> list[LivePosting]:
    """Timesheet entries billbridge wrote that no reversal names."""
    undone = {m.group(2) for row in entries
              if (m := REVERSAL_TEXT.match(str(row.get("DESCRIPTION") or "")))}
    out = []
    for row in entries:
        found = POSTING_TEXT.match(str(row.get("DESCRIPTION") or ""))
        sheet = str(row.get("TIMESHEETKEY") or "")
        if found is None or sheet in undone:
            continue
        out.append(LivePosting(found.group(1), external(sheet, location_of.get(sheet, "")),
                               decimal_of(row.get("QTY"), "QTY"), Decimal(found.group(3)),
                               found.group(4), str(row.get("PROJECTID") or "") or None))
    return out


def _split_date(day: date) -> dict[str, str]:
    return {"year": f"{day.year:04d}", "month": f"{day.month:02d}", "day": f"{day.day:02d}"}


def invoice(payload: Mapping[str, Any], customer_id: str, settings: IntacctSettings,
            today: date, terms_days: int = 30) -> dict[str, Any]:
    """An ``invoice.create`` as the legacy ``create_invoice``: ``invoiceno``
    is the canonical invoice id; tax, where there is any, is a line of its own."""
    bill = invoice_record(payload)
    day = bill.invoice_date or today
    items = []
    for line in bill.lines:
        item: dict[str, Any] = {"glaccountno": settings.revenue_account,
                                "amount": decimal_text(line.amount), "memo": line.description}
        if bill.project:
            item["projectid"] = bill.project
        items.append(item)
    if bill.tax:
        items.append({"glaccountno": settings.tax_account, "amount": decimal_text(bill.tax),
                      "memo": "tax"})
    due = date.fromordinal(day.toordinal() + terms_days)
    body: dict[str, Any] = {"customerid": customer_id, "datecreated": _split_date(day),
                            "datedue": _split_date(due), "invoiceno": bill.id,
                            "description": f"billbridge {bill.id}"}
    if bill.po_number:
        body["ponumber"] = bill.po_number
    body["currency"] = bill.currency
    body["invoiceitems"] = {"lineitem": items}
    return body


# -- Intacct invoices → canonical events ----------------------------------------------

STATES = {"Posted": "issued", "Partially Paid": "issued", "Paid": "paid",
          "Reversed": "void", "Reversal": "void"}


def stamp_iso(value: str) -> str:
    """``WHENMODIFIED`` (``MM/DD/YYYY HH:MM:SS``, read as UTC) as ISO 8601."""
    return datetime.strptime(value, STAMP_FORMAT).replace(tzinfo=UTC).isoformat()


def status_event(row: Mapping[str, Any], *, settings: IntacctSettings,
                 source: str) -> dict[str, Any] | Malformed | None:
    """``invoice.status_changed`` for an AR invoice the hub raised; None for a
    draft or an invoice billbridge did not raise. Partly paid stays issued,
    with what is paid so far; the event id is the invoice's state."""
    number, key = row.get("RECORDID"), row.get("RECORDNO")
    stamp = str(row.get(settings.modified_field) or "")
    if blank(number) or blank(key):
        return Malformed(dict(row), "Intacct AR invoice without RECORDID or RECORDNO", None)
    fallback = f"intacct-invoice:{key}:{stamp}"
    status = STATES.get(str(row.get("STATE") or ""))
    if status is None:
        return None
    try:
        paid = decimal_of(row.get("TOTALPAID") or "0", "TOTALPAID")
        at = stamp_iso(stamp)
    except ValueError as exc:
        return Malformed(dict(row), f"Intacct AR invoice {number}: {exc}", fallback)
    location = str(row.get("MEGAENTITYID") or "")
    return {"type": "invoice.status_changed", "source": source,
            "id": f"intacct-invoice:{key}:{status}:{decimal_text(paid)}", "at": at,
            "data": {"invoice": str(number), "erp_id": external(str(key), location),
                     "status": status, "amount_paid": decimal_text(paid)}}
