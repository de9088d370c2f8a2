"""Canonical records ↔ Tryton records, and the markers that let the target
find what it wrote.

Tryton's ``create`` has no idempotency key and its own unique codes (a work's
``number``, a timesheet line's ``uuid``) cannot be written over RPC, so every
record billbridge creates carries a marker in a field the connector owns:

- customer: ``party.party``, ``code`` = the canonical customer id (unique in Tryton);
- project: ``project.work`` of type project, ``name`` starting ``"{code} - "``;
- task: ``project.work`` of type task under it, ``name`` starting ``"{task id} - "``;
- time charge: ``timesheet.line``, ``description`` =
  ``"{charge id} {hours} h at {rate} {currency} [{idempotency key}]"``;
- invoice: ``account.invoice`` of type out, ``reference`` = the canonical invoice id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from billbridge.connectors.base import LivePosting, Malformed
from billbridge.domain.money import quantize_hours, round_money

SEPARATOR = " - "
INVOICE_PREFIX = "inv_"
"""The hub names every invoice it raises ``inv_…`` (docs/decisions.md): the
source reads back only invoices whose reference starts so."""

# Canonical project status → the name of a ``project.work.status`` record.
# Tryton ships "Open" and "Done"; a firm can map to statuses it adds.
DEFAULT_STATUSES = {"pending": "Open", "active": "Open", "on_hold": "Open", "closed": "Done"}

# Tryton invoice state → canonical invoice status. Draft and validated
# invoices are not issued yet: the hub already holds them as drafts.
INVOICE_STATES = {"posted": "issued", "paid": "paid", "cancelled": "void"}


@dataclass(frozen=True, slots=True)
class Settings:
    """What the firm configured in Tryton that the mapping names (connection
    options): the labour product and revenue account for invoice lines, the
    employee for each worker, the taxes for each canonical tax code."""

    labour_product: int
    revenue_account: int
    employees: Mapping[str, int] = field(default_factory=dict)
    default_employee: int | None = None
    taxes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    payment_term: int | None = None
    statuses: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_STATUSES))
    accept_warnings: tuple[str, ...] = ("invoice_taxes", "invoice_payment_term")
    """Tryton warnings the connector confirms, as a user would by clicking
    yes: ``invoice_taxes`` says the lines' taxes differ from the product's
    defaults, which is the point when the hub's governed tax table decides;
    ``invoice_payment_term`` says a due date falls in the past, as it does
    when a month-end run is posted after its invoice date."""

    def employee(self, worker: str) -> int | None:
        return self.employees.get(worker, self.default_employee)


class MappingError(ValueError):
    """A command whose payload cannot become a Tryton record; the message
    names the field and what to configure."""


def like_prefix(text: str) -> str:
    """A LIKE pattern matching ``text`` at the start, wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def work_name(code: str, name: str) -> str:
    return f"{code}{SEPARATOR}{name}"


def work_code(name: str) -> str:
    """The canonical code (or task id) a work's name starts with."""
    return name.split(SEPARATOR, 1)[0]


# -- customers -------------------------------------------------------------------
def party_values(payload: Mapping[str, Any]) -> dict[str, Any]:
    if not payload.get("id") or not payload.get("name"):
        raise MappingError("customer.upsert needs id and name")
    values: dict[str, Any] = {"name": payload["name"], "code": payload["id"],
                              # Tryton invoices need an address; the country is
                              # left to Tryton, whose country list is optional data.
                              "addresses": [["create", [{}]]]}
    if payload.get("tax_id"):
        values["identifiers"] = [["create", [{"code": payload["tax_id"]}]]]
    return values


# -- projects --------------------------------------------------------------------
def task_values(task: Mapping[str, Any], company: int) -> dict[str, Any]:
    return {"name": work_name(str(task["id"]), str(task.get("name") or task["id"])),
            "type": "task", "company": company, "timesheet_available": True}


def project_values(payload: Mapping[str, Any], *, party: int | None, status: int | None,
                   company: int) -> dict[str, Any]:
    if not payload.get("code") or not payload.get("name"):
        raise MappingError("project.upsert needs code and name")
    values: dict[str, Any] = {"name": work_name(payload["code"], payload["name"]),
                              "type": "project", "company": company,
                              "timesheet_available": True}
    if party is not None:
        values["party"] = party
    if status is not None:
        values["status"] = status
    tasks = [task_values(t, company) for t in payload.get("tasks") or ()]
    if tasks:
        values["children"] = [["create", tasks]]
    return values


# -- time ------------------------------------------------------------------------
def charge_marker(payload: Mapping[str, Any], key: str) -> str:
    """The timesheet line's description: readable in Tryton, and exact, so a
    resend looks its marker up with ``in`` rather than a pattern."""
    return (f"{payload['id']} {payload['hours']} h at {payload['rate']} "
            f"{payload['currency']} [{key}]")


CHARGE_MARKER = re.compile(r"^(?P<id>.+) (?P<hours>\d+(?:\.\d+)?) h at "
                           r"(?P<rate>\d+(?:\.\d+)?) (?P<currency>[A-Z]{3}) \[[^\]\s]+\]$")
CHARGE_PATTERN = "% h at % [%]"  # a LIKE pattern every charge marker matches


def live_line(line: Mapping[str, Any]) -> LivePosting | None:
    """A timesheet line billbridge wrote (its description is a charge marker)
    as a live posting, None for any other line. Hours are the line's own
    duration; the amount is those hours at the rate the marker states, in its
    currency: a timesheet line carries neither."""
    found = CHARGE_MARKER.match(str(line.get("description") or ""))
    duration = line.get("duration")
    if found is None or not isinstance(duration, timedelta):
        return None
    hours = quantize_hours(Decimal(str(duration.total_seconds())) / 3600)
    currency = found.group("currency")
    return LivePosting(found.group("id"), str(line.get("id")), hours,
                       round_money(hours * Decimal(found.group("rate")), currency), currency)


def charge_prefix(charge_id: str) -> str:
    """Every timesheet line posted for a charge starts so (for reversals)."""
    return f"{charge_id} "


def timesheet_values(payload: Mapping[str, Any], key: str, *, work: int, employee: int,
                     company: int) -> dict[str, Any]:
    try:
        hours = Decimal(str(payload["hours"]))
        day = date.fromisoformat(str(payload["work_date"]))
    except (KeyError, ValueError, ArithmeticError) as exc:
        raise MappingError(f"time_charge.post needs hours and work_date: {exc}") from None
    return {"company": company, "employee": employee, "work": work, "date": day,
            "duration": timedelta(seconds=float(hours * 3600)),
            "description": charge_marker(payload, key)}


# -- invoices --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InvoiceTargets:
    """Tryton ids an invoice needs that come from Tryton, not from the payload."""

    party: int
    address: int
    currency: int
    receivable: int
    unit: int
    journal: int


def invoice_values(payload: Mapping[str, Any], settings: Settings,
                   ids: InvoiceTargets) -> dict[str, Any]:
    lines = []
    for number, line in enumerate(payload.get("lines") or (), start=1):
        tax_code = line.get("tax_code")
        taxes = settings.taxes.get(tax_code) if tax_code else ()
        if taxes is None:
            raise MappingError(f"invoice {payload.get('id')} line {number}: tax code "
                               f"{tax_code!r} has no Tryton taxes: map it in the connection's "
                               "taxes option (an empty list for none)")
        values: dict[str, Any] = {
            "description": line["description"],
            # Tryton's quantity is a Float field; hours have two places, and
            # the amount is Tryton's Decimal quantity x unit price, checked
            # against the hub's total before the invoice is posted.
            "quantity": float(Decimal(str(line["quantity"]))),
            "unit_price": Decimal(str(line["unit_price"])),
            "account": settings.revenue_account,
            "taxes": [["add", list(taxes)]],
        }
        if str(line.get("source") or "").startswith("tc_"):
            # Time is sold as the labour product, by the hour.
            values |= {"product": settings.labour_product, "unit": ids.unit}
        lines.append(values)
    if not lines:
        raise MappingError(f"invoice {payload.get('id')} has no lines")
    values = {"type": "out", "party": ids.party, "invoice_address": ids.address,
              "currency": ids.currency, "account": ids.receivable, "journal": ids.journal,
              "reference": payload["id"],
              "description": f"{payload.get('project') or payload.get('customer')}",
              "lines": [["create", lines]]}
    if settings.payment_term is not None:
        values["payment_term"] = settings.payment_term
    if payload.get("invoice_date"):
        values["invoice_date"] = date.fromisoformat(str(payload["invoice_date"]))
    return values


def totals_differ(payload: Mapping[str, Any], tryton: Mapping[str, Any]) -> str | None:
    """Why Tryton's computed totals are not the hub's, or None when they agree."""
    wanted = {"untaxed_amount": "subtotal", "tax_amount": "tax", "total_amount": "total"}
    differences = [f"{ours} {payload[ours]} (Tryton {tryton[theirs]})"
                   for theirs, ours in wanted.items()
                   if Decimal(str(tryton[theirs])) != Decimal(str(payload[ours]))]
    return "; ".join(differences) or None


def invoice_event(invoice: Mapping[str, Any], *, source: str) -> dict[str, Any] | Malformed:
    """An ``invoice.status_changed`` event for a Tryton customer invoice."""
    state = invoice.get("state")
    reference = invoice.get("reference")
    stamp = invoice.get("write_date") or invoice.get("create_date")
    event_id = f"invoice:{invoice.get('id')}:{state}:{_iso(stamp)}"
    status = INVOICE_STATES.get(str(state))
    if not reference or status is None or not isinstance(stamp, datetime):
        return Malformed(dict(invoice), f"Tryton invoice {invoice.get('id')}: state {state!r} "
                         f"and reference {reference!r} do not make an invoice status", event_id)
    total = Decimal(str(invoice.get("total_amount") or 0))
    to_pay = Decimal(str(invoice.get("amount_to_pay") or 0))
    paid = total if status == "paid" else total - to_pay if status == "issued" else Decimal(0)
    return {"type": "invoice.status_changed", "source": source, "id": event_id,
            "at": f"{_iso(stamp)}+00:00",
            "data": {"invoice": reference, "erp_id": str(invoice["id"]), "status": status,
                     "amount_paid": str(paid)}}


def _iso(stamp: Any) -> str:
    return stamp.isoformat() if isinstance(stamp, datetime) else str(stamp)
