"""Finance's console pages: invoices (filtered, with totals per currency), one
invoice drilled down to the time entries and events behind each line, and
billing runs: a preview for a period end, then a commit button shown only to
a role that may commit (checked again when pressed), behind the CSRF check
every console form has."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from billbridge.console.views import _check_csrf, _hub, _who, page
from billbridge.engine.tokens import Identity
from billbridge.errors import BillbridgeError, Forbidden
from billbridge.services import auth, billing_runs, invoices
from billbridge.services.auth import Permission

router = APIRouter(prefix="/console", include_in_schema=False)
FILTERS = ("project", "customer", "period_end", "status", "currency")


def may(who: Identity, permission: Permission) -> bool:
    try:
        auth.authorize(who, permission)
    except Forbidden:
        return False
    return True


@router.get("/invoices")
def invoice_list(request: Request, project: str = "", customer: str = "", period_end: str = "",
                 status: str = "", currency: str = "") -> HTMLResponse:
    who = _who(request)
    asked = {"project": project, "customer": customer, "period_end": period_end,
             "status": status, "currency": currency}
    found, error = None, None
    try:
        end = invoices.parse_period_end(period_end) if period_end else None
        with _hub(request).engine.connect() as conn:
            found = invoices.list_invoices(conn, project=project or None,
                                           customer=customer or None, period_end=end,
                                           status=status or None, currency=currency or None)
    except BillbridgeError as exc:
        error = exc.message
    return page(request, "invoices.html", "/console/invoices", who, found=found, error=error,
                asked=asked, statuses=invoices.STATUSES)


@router.get("/invoices/{invoice_id}")
def invoice_page(request: Request, invoice_id: str) -> HTMLResponse:
    who = _who(request)
    with _hub(request).engine.connect() as conn:
        try:
            shown = invoices.show(conn, invoice_id)
        except BillbridgeError as exc:
            return page(request, "invoice.html", "/console/invoices", who, shown=None,
                        error=exc.message)
    return page(request, "invoice.html", "/console/invoices", who, shown=shown, error=None,
                quote=quote)


def _billing(request: Request, who: Identity, *, message: str = "",
             seen: billing_runs.Preview | None = None, period_end: str = "") -> HTMLResponse:
    with _hub(request).engine.connect() as conn:
        runs = billing_runs.runs(conn)
    return page(request, "billing.html", "/console/billing", who, runs=runs, seen=seen,
                message=message, period_end=period_end,
                may_commit=may(who, Permission.BILLING_RUN))


@router.get("/billing")
def billing_page(request: Request, message: str = "") -> HTMLResponse:
    return _billing(request, _who(request), message=message)


@router.post("/billing/preview")
def billing_preview(request: Request, period_end: str = Form(""),
                    csrf: str = Form("")) -> HTMLResponse:
    who = _who(request)
    _check_csrf(request, csrf)
    try:
        end = invoices.parse_period_end(period_end)
        seen = billing_runs.preview(_hub(request).engine, end, at=datetime.now(UTC))
    except BillbridgeError as exc:
        return _billing(request, who, message=f"no preview: {exc.message}",
                        period_end=period_end)
    return _billing(request, who, seen=seen, period_end=end.isoformat())


@router.post("/billing/commit")
def billing_commit(request: Request, period_end: str = Form(""),
                   csrf: str = Form("")) -> Response:
    who = _who(request, Permission.BILLING_RUN)
    _check_csrf(request, csrf)
    try:
        end = invoices.parse_period_end(period_end)
        note = billing_runs.commit(_hub(request).engine, end, actor=who.name,
                                   at=datetime.now(UTC)).message
    except BillbridgeError as exc:
        note = f"not committed: {exc.message}"
    return RedirectResponse(f"/console/billing?message={quote(note)}", status_code=303)
