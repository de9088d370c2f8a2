"""Invoices as finance reads them: a filtered list with totals per currency,
and one invoice with its lines, each line's charges back to the time entry,
expense or milestone, the event that priced it, the rate card, configuration
version, tax rule and FX rate used, and the invoice's status history (draft,
posted with the ERP's id, then issued, paid or void as the ERP reports); and,
for the scenario suite, the invoices and live time charges as the flows
recorded them. Billing runs, which raise invoices, are services.billing_runs."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from billbridge.domain.money import MoneyError, check_currency
from billbridge.domain.records import InvoiceStatus
from billbridge.domain.times import as_utc
from billbridge.engine.reconcile import LIVE
from billbridge.errors import Invalid, NotFound
from billbridge.store.tables import inbox, outbox, records

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
POSTED = "posted"
STATUSES = (InvoiceStatus.DRAFT.value, POSTED, *(s.value for s in InvoiceStatus
                                                  if s is not InvoiceStatus.DRAFT))
"""What a list may filter on: the invoice's own status, where a draft the ERP
has taken is ``posted``."""


class Shown(BaseModel):
    model_config = ConfigDict(frozen=True)


class InvoiceSummary(Shown):
    id: str
    customer: str
    customer_name: str | None
    project: str | None
    currency: str
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    status: str
    erp_id: str | None
    period_end: date | None
    invoice_date: date | None
    billing_run: str | None
    lines: int


class InvoiceList(Shown):
    items: list[InvoiceSummary]
    totals: dict[str, Decimal]
    """The items' totals summed per currency: never one figure across currencies."""


class ChargeDetail(Shown):
    """What one line bills, back to its origin."""

    id: str
    kind: str  # time, expense, milestone, retainer
    record: str | None  # the time entry, expense, milestone or contract
    description: str
    worker: str | None = None
    work_date: date | None = None
    hours: Decimal | None = None
    rate: Decimal | None = None
    amount: Decimal
    currency: str
    priced_by: str | None = None  # source/event id of the event that priced it
    rate_card: str | None = None
    rate_card_version: int | None = None
    config_version: int | None = None
    fx_rate: Decimal | None = None  # None: no conversion (priced in the invoice's currency)
    claimed: str | None = None  # an expense as claimed, in its own currency
    markup_pct: Decimal | None = None
    status: str | None = None


class LineDetail(Shown):
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    tax_code: str | None
    source: str | None
    charges: list[ChargeDetail]


class StatusStep(Shown):
    status: str
    at: datetime | None
    erp_id: str | None = None
    by: str  # the billing run, the command or the ERP's event


class InvoiceDetail(Shown):
    invoice: InvoiceSummary
    legal_entity: str | None
    po_number: str | None
    config_version: int | None
    tax_rule: dict[str, Any] | None
    lines: list[LineDetail]
    history: list[StatusStep]


def parse_status(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    if text.lower() not in STATUSES:
        raise Invalid(f"unknown invoice status {text!r}: use one of {', '.join(STATUSES)}")
    return text.lower()


def parse_currency(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    try:
        return check_currency(text.upper())
    except MoneyError:
        raise Invalid(f"unknown currency {text!r}: give an ISO 4217 code, like USD") from None


def parse_period_end(text: str) -> date:
    """A period end as typed: YYYY-MM-DD, else one line saying so."""
    try:
        if not ISO_DATE.fullmatch(text.strip()):
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(f"period end {text!r} is not a date: write it YYYY-MM-DD, "
                      "like 2026-03-31") from None


class _Stored(NamedTuple):
    data: dict[str, Any]  # the record as the flows wrote it
    status: str  # the record's status in the store


def _stored(conn: Connection, kind: str, *, ids: Iterable[str] | None = None,
            statuses: Iterable[str] | None = None) -> dict[str, _Stored]:
    """The records of ``kind`` by id (only ``ids``, only in ``statuses``, when given):
    the one query this module reads records with."""
    query = select(records.c.id, records.c.data, records.c.status).where(records.c.kind == kind)
    if ids is not None:
        query = query.where(records.c.id.in_(list(ids)))
    if statuses is not None:
        query = query.where(records.c.status.in_(list(statuses)))
    return {r.id: _Stored(json.loads(r.data), r.status) for r in conn.execute(query)}


def recorded(conn: Connection) -> list[dict[str, Any]]:
    """Every invoice the hub raised, as the invoicing flow recorded it."""
    return [s.data for s in _stored(conn, "invoice").values()]


def live_charges(conn: Connection) -> list[dict[str, Any]]:
    """Every time charge the hub holds live (posted, or invoiced): what is billed
    or still to bill, as the pricing flow recorded it."""
    return [s.data for s in _stored(conn, "time_charge", statuses=LIVE).values()]


def _names(conn: Connection, ids: Iterable[str] | None = None) -> dict[str, str | None]:
    """Customer id → its name."""
    return {i: s.data.get("name") for i, s in _stored(conn, "customer", ids=ids).items()}


def _erp_ids(conn: Connection, ids: Iterable[str] | None = None) -> dict[str, str]:
    """Invoice → the ERP's id, for every invoice the ERP has taken."""
    query = select(outbox.c.record_id, outbox.c.external_id).where(
        outbox.c.kind == "invoice.create", outbox.c.status == "done")
    if ids is not None:
        query = query.where(outbox.c.record_id.in_(list(ids)))
    return {r.record_id: r.external_id for r in conn.execute(query) if r.external_id}


def _summary(data: Mapping[str, Any], erp_id: str | None,
             names: Mapping[str, str | None]) -> InvoiceSummary:
    status = str(data.get("status") or InvoiceStatus.DRAFT.value)
    if status == InvoiceStatus.DRAFT.value and erp_id:
        status = POSTED
    return InvoiceSummary(
        id=data["id"], customer=data["customer"], customer_name=names.get(data["customer"]),
        project=data.get("project"), currency=data["currency"],
        subtotal=Decimal(data["subtotal"]), tax=Decimal(data["tax"]),
        total=Decimal(data["total"]), status=status, erp_id=data.get("erp_id") or erp_id,
        period_end=data.get("period_end"), invoice_date=data.get("invoice_date"),
        billing_run=data.get("billing_run"), lines=len(data.get("lines") or ()))


class Totalled(Protocol):
    """Anything with a total in a currency (an invoice, a planned one)."""

    @property
    def currency(self) -> str: ...
    @property
    def total(self) -> Decimal: ...


def totals(items: Iterable[Totalled]) -> dict[str, Decimal]:
    """Totals per currency, currencies in order."""
    summed: dict[str, Decimal] = defaultdict(Decimal)
    for item in items:
        summed[item.currency] += item.total
    return dict(sorted(summed.items()))


def summaries(conn: Connection) -> list[InvoiceSummary]:
    """Every invoice, by period end then id."""
    names, erp = _names(conn), _erp_ids(conn)
    found = [_summary(s.data, erp.get(i), names) for i, s in _stored(conn, "invoice").items()]
    return sorted(found, key=lambda s: (s.period_end or date.min, s.id))


def list_invoices(conn: Connection, *, project: str | None = None,
                  customer: str | None = None, period_end: date | None = None,
                  status: str | None = None, currency: str | None = None) -> InvoiceList:
    """Invoices matching every filter given, with their totals per currency.
    ``customer`` matches the canonical id or the name; status and currency are
    checked (Invalid names the known ones)."""
    status, currency = parse_status(status), parse_currency(currency)
    items = [s for s in summaries(conn)
             if project in (None, "", s.project)
             and customer in (None, "", s.customer, s.customer_name)
             and period_end in (None, s.period_end)
             and status in (None, s.status)
             and currency in (None, s.currency)]
    return InvoiceList(items=items, totals=totals(items))


def show(conn: Connection, invoice_id: str) -> InvoiceDetail:
    """One invoice, drilled down; NotFound when no invoice has that id."""
    found = _stored(conn, "invoice", ids=[invoice_id]).get(invoice_id)
    if found is None:
        raise NotFound(f"there is no invoice {invoice_id!r}: `billbridge invoices list` "
                       "lists them")
    data = found.data
    erp = _erp_ids(conn, [invoice_id]).get(invoice_id)
    summary = _summary(data, erp, _names(conn, [data["customer"]]))
    return InvoiceDetail(
        invoice=summary, legal_entity=data.get("legal_entity"),
        po_number=data.get("po_number"), config_version=data.get("config_version"),
        tax_rule=data.get("tax_rule"), lines=_lines(conn, data),
        history=_history(conn, data))


def _lines(conn: Connection, invoice: Mapping[str, Any]) -> list[LineDetail]:
    lines = invoice.get("lines") or []
    sources = [s for line in lines for s in str(line.get("source") or "").split(",") if s]
    wanted = {"time_charge": [s for s in sources if s.startswith("tc_")],
              "billable_line": [s for s in sources if s.startswith(("ex_", "ms_"))]}
    held: dict[str, dict[str, Any]] = {}
    for kind, ids in wanted.items():
        if ids:
            held.update({i: {**s.data, "status": s.status}
                         for i, s in _stored(conn, kind, ids=ids).items()})
    out = []
    for line in lines:
        parts = [s for s in str(line.get("source") or "").split(",") if s]
        charges = [_charge(part, held.get(part), line, invoice) for part in parts]
        out.append(LineDetail(description=line["description"],
                              quantity=Decimal(line["quantity"]),
                              unit_price=Decimal(line["unit_price"]),
                              amount=Decimal(line["amount"]), tax_code=line.get("tax_code"),
                              source=line.get("source"), charges=charges))
    return out


def _charge(source: str, held: Mapping[str, Any] | None, line: Mapping[str, Any],
            invoice: Mapping[str, Any]) -> ChargeDetail:
    if held is not None and source.startswith("tc_"):
        return ChargeDetail(
            id=source, kind="time", record=held.get("time_entry"),
            description=f"{held.get('work_date')} {held.get('worker')} {held.get('hours')} h",
            worker=held.get("worker"), work_date=held.get("work_date"),
            hours=Decimal(str(held["hours"])), rate=Decimal(str(held["rate"])),
            amount=Decimal(str(held["amount"])), currency=held["currency"],
            priced_by=held.get("priced_by"), rate_card=held.get("rate_card"),
            rate_card_version=held.get("rate_card_version"),
            config_version=held.get("config_version"), status=held.get("status"))
    if held is not None:
        kind = str(held.get("kind") or "expense")
        claimed = held.get("claimed")
        return ChargeDetail(
            id=source, kind=kind, record=held.get(kind) or source[3:],
            description=str(held.get("description")), work_date=held.get("date"),
            amount=Decimal(str(held["amount"])), currency=held["currency"],
            priced_by=held.get("priced_by"), config_version=held.get("config_version"),
            fx_rate=_fx(held), markup_pct=held.get("markup_pct"), status=held.get("status"),
            claimed=f"{claimed} {held.get('claimed_currency')}" if claimed else None)
    # A retainer fee or its overage: billed per period from the contract's terms.
    kind, _, rest = source.partition(":")
    return ChargeDetail(id=source, kind="retainer" if kind in ("retainer", "overage") else kind,
                        record=rest.split(":")[0] or None, description=line["description"],
                        amount=Decimal(line["amount"]), currency=invoice["currency"],
                        config_version=invoice.get("config_version"))


def _fx(held: Mapping[str, Any]) -> Decimal | None:
    rate = held.get("fx_rate")
    if rate is None or held.get("claimed_currency") == held.get("currency"):
        return None
    return Decimal(str(rate))


def _history(conn: Connection, invoice: Mapping[str, Any]) -> list[StatusStep]:
    """Draft when its billing run raised it; posted when the ERP took it (its
    id); then each status the ERP reported, in the order it arrived."""
    steps: list[StatusStep] = []
    run = invoice.get("billing_run")
    raised = conn.execute(select(inbox.c.occurred_at, inbox.c.processed_at).where(
        inbox.c.event_type == "billing.run", inbox.c.event_id == run)).first() if run else None
    steps.append(StatusStep(status=InvoiceStatus.DRAFT.value,
                            at=as_utc(raised.processed_at) if raised else None,
                            by=f"billing run {run}" if run else "billing run"))
    for cmd in conn.execute(select(outbox.c.id, outbox.c.target, outbox.c.status,
                                   outbox.c.external_id, outbox.c.done_at)
                            .where(outbox.c.record_kind == "invoice",
                                   outbox.c.record_id == invoice["id"],
                                   outbox.c.kind == "invoice.create").order_by(outbox.c.id)):
        steps.append(StatusStep(
            status=POSTED if cmd.status == "done" else f"to post ({cmd.status})",
            at=as_utc(cmd.done_at), erp_id=cmd.external_id,
            by=f"command #{cmd.id} to {cmd.target}"))
    for event in conn.execute(select(inbox.c.source, inbox.c.event_id, inbox.c.payload,
                                     inbox.c.occurred_at)
                              .where(inbox.c.aggregate_key == f"invoice:{invoice['id']}",
                                     inbox.c.event_type == "invoice.status_changed")
                              .order_by(inbox.c.id)):
        data = json.loads(event.payload or "{}").get("data", {})
        steps.append(StatusStep(status=str(data.get("status")), at=as_utc(event.occurred_at),
                                erp_id=data.get("erp_id"),
                                by=f"{event.source}/{event.event_id}"))
    return steps
