"""Invoices and billing runs: list and filter invoices, one invoice drilled
down to the origin of every charge with its status history; a billing run
previewed for a period end, then committed by someone who may bill (once
per period end), and the runs made."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, BeforeValidator, Field

from billbridge.api.auth import Permission, require
from billbridge.api.params import PRINTABLE, iso_date
from billbridge.api.routes.common import Filter, Reader, now
from billbridge.domain.money import MINOR_UNITS
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Identity
from billbridge.services import billing_runs, invoices
from billbridge.services.billing_runs import Committed, Preview, RunSummary
from billbridge.services.invoices import InvoiceDetail, InvoiceList

Biller = Annotated[Identity, Depends(require(Permission.BILLING_RUN))]
InvoiceId = Annotated[str, PathParam(max_length=300, pattern=PRINTABLE,
                                     description="the invoice's id, e.g. inv_GLX-001_2026-03-31")]
RunId = Annotated[str, PathParam(max_length=200, pattern=PRINTABLE,
                                 description="the run's id, e.g. run-2026-03-31")]
PeriodEnd = Annotated[date | None, BeforeValidator(iso_date),
                      Query(description="the last work date invoiced, YYYY-MM-DD")]
# What the filters accept is in the OpenAPI document itself: the statuses, and
# the currencies billbridge knows (domain.money), upper case.
Status = Annotated[str | None, Query(pattern=f"^({'|'.join(invoices.STATUSES)})$",
                                     description=", ".join(invoices.STATUSES))]
CurrencyCode = Annotated[str | None, Query(
    pattern=f"^({'|'.join(sorted(MINOR_UNITS))})$", description="ISO 4217, e.g. USD")]


def _date_text(value: object) -> object:
    """A date written as JSON text, YYYY-MM-DD: not a number of seconds."""
    if not isinstance(value, str):
        raise ValueError("must be a date written YYYY-MM-DD, like 2026-03-31")
    return iso_date(value)


class RunBody(BaseModel):
    period_end: Annotated[date, BeforeValidator(_date_text)] = Field(
        description="the last work date to invoice, YYYY-MM-DD", examples=["2026-03-31"])


def router(hub: Hub) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/invoices", response_model=InvoiceList, tags=["invoices"])
    def list_invoices(who: Reader, project: Filter = None, customer: Filter = None,
                      period_end: PeriodEnd = None, status: Status = None,
                      currency: CurrencyCode = None) -> InvoiceList:
        """Invoices matching every filter given, with their totals per currency
        (`customer`: the canonical id or the name)."""
        with hub.engine.connect() as conn:
            return invoices.list_invoices(conn, project=project, customer=customer,
                                          period_end=period_end, status=status,
                                          currency=currency)

    @routes.get("/v1/invoices/{invoice_id}", response_model=InvoiceDetail, tags=["invoices"])
    def get_invoice(invoice_id: InvoiceId, who: Reader) -> InvoiceDetail:
        """One invoice: its lines, each with the charges it bills (time entry,
        expense or milestone, the event that priced it, rate card, configuration
        version, FX rate), the tax rule applied and its status history."""
        with hub.engine.connect() as conn:
            return invoices.show(conn, invoice_id)

    @routes.get("/v1/billing/runs", response_model=list[RunSummary], tags=["billing"])
    def list_runs(who: Reader) -> list[RunSummary]:
        """Every billing run, newest first: who asked, when, its status and the
        invoices it raised with their totals per currency."""
        with hub.engine.connect() as conn:
            return billing_runs.runs(conn)

    @routes.get("/v1/billing/runs/{run_id}", response_model=RunSummary, tags=["billing"])
    def get_run(run_id: RunId, who: Reader) -> RunSummary:
        """One billing run: who asked, when, its status, what it raised and
        what it held back (its open exceptions)."""
        with hub.engine.connect() as conn:
            return billing_runs.show(conn, run_id)

    @routes.post("/v1/billing/preview", response_model=Preview, tags=["billing"])
    def preview(body: RunBody, who: Reader) -> Preview:
        """What a run to the period end would invoice now, per project, with
        totals per currency, and what is held and why. Nothing is written."""
        return billing_runs.preview(hub.engine, body.period_end, at=now())

    @routes.post("/v1/billing/commit", response_model=Committed, tags=["billing"],
                 status_code=201,
                 responses={200: {"model": Committed,
                                  "description": "the period was run already: nothing new"}})
    def commit(body: RunBody, who: Biller, response: Response) -> Committed:
        """Commit the run to the period end (admin or finance): a worker raises
        its invoices and posts them to the ERP. Once per period end: the same
        period again answers 200 with the run already made."""
        done = billing_runs.commit(hub.engine, body.period_end, actor=who.name, at=now())
        if not done.new:
            response.status_code = 200
        return done

    return routes
