"""Console pages. A login checks the API token (or OIDC token) once and opens a
server-side session (engine.sessions): the HttpOnly, SameSite=Strict cookie
holds only the session's random id, `Secure` over TLS or when configured.
Every page checks the session and the API's grants table; every form, logout
included, carries a CSRF value derived from the session."""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Identity
from billbridge.errors import BillbridgeError, Forbidden, Unauthenticated
from billbridge.services import (
    audit,
    auth,
    config_versions,
    contracts,
    exceptions,
    figures,
    lineage,
    queues,
)
from billbridge.services.auth import Permission
from billbridge.services.exceptions import Acted

COOKIE = "bb_session"
NAV = [("/console/", "Overview"), ("/console/exceptions", "Exceptions"),
       ("/console/lineage", "Lineage"), ("/console/leakage", "Leakage"),
       ("/console/executive", "Executive"), ("/console/invoices", "Invoices"),
       ("/console/billing", "Billing runs"), ("/console/config", "Configuration"),
       ("/console/audit", "Audit"), ("/console/contracts", "Vendor contracts"),
       ("/console/files", "Upload time")]
NEEDS = {"/console/audit": Permission.AUDIT, "/console/files": Permission.INGEST}
"""What a menu entry needs, when not READ: the menu shows a role what it may open."""
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def _when(value: Any) -> str:
    """An ISO 8601 time as a person reads it: ``2026-03-31 14:05 UTC``."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


templates.env.filters["when"] = _when
STYLE_SHEET = Path(__file__).with_name("templates").joinpath("console.css").read_text()
router = APIRouter(prefix="/console", include_in_schema=False)


class LoginRequired(Exception):
    pass


def install(app: FastAPI) -> None:
    """Mount the console's pages on ``app``: a page without a session sends the
    browser to the login, one the role may not see answers 403 in HTML."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    @app.exception_handler(PermissionError)
    async def _forbidden(request: Request, exc: PermissionError) -> Response:
        return HTMLResponse(f"<p>{exc}</p><p><a href='/console/'>back</a></p>", status_code=403)

    from billbridge.console import files, finance

    app.include_router(router)
    app.include_router(finance.router)
    app.include_router(files.router)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _who(request: Request, permission: Permission = Permission.READ) -> Identity:
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise LoginRequired
    try:
        identity = auth.session_identity(_hub(request).engine, session_id, at=datetime.now(UTC))
    except Unauthenticated:
        raise LoginRequired from None
    try:
        auth.authorize(identity, permission)
    except Forbidden as exc:
        raise PermissionError(exc.message) from None
    return identity


def _csrf(request: Request) -> str:
    session_id = request.cookies.get(COOKIE, "")
    return hmac.new(session_id.encode(), b"console-csrf", hashlib.sha256).hexdigest()


def secure_cookies(request: Request) -> bool:
    """Mark the cookie `Secure` when the request came over TLS (uvicorn reads
    X-Forwarded-Proto from a trusted proxy), or when told to: serve
    --secure-cookies, or BILLBRIDGE_SECURE_COOKIES=1 behind a proxy that
    does not say."""
    configured = getattr(request.app.state, "secure_cookies", None)
    if configured is None:
        configured = os.environ.get("BILLBRIDGE_SECURE_COOKIES", "").lower() in (
            "1", "true", "yes")
    return bool(configured) or request.url.scheme == "https"


def _check_csrf(request: Request, value: str) -> None:
    if not hmac.compare_digest(_csrf(request), value):
        raise PermissionError("the form is stale or forged (CSRF check failed)")


def page(request: Request, name: str, here: str, who: Identity | None,
         **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {
        "title": dict(NAV).get(here, "billbridge"), "nav": menu(who), "here": here,
        "who": who, "csrf": _csrf(request), **context})


def menu(who: Identity | None) -> list[tuple[str, str]]:
    """The menu entries ``who``'s role may open (none before the login)."""
    if who is None:
        return []
    return [(href, label) for href, label in NAV
            if auth.allowed(who, NEEDS.get(href, Permission.READ))]


@router.get("/static/console.css")
def style_sheet() -> Response:
    # A file, not an inline <style>: the CSP allows style from 'self' only.
    return Response(STYLE_SHEET, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", "/console/login", None, error=None)


@router.post("/login")
def login(request: Request, token: str = Form("")) -> Response:
    engine = _hub(request).engine
    try:
        who = auth.authenticate(engine, token.strip(), at=datetime.now(UTC),
                                oidc_settings=getattr(request.app.state, "oidc", None))
    except Unauthenticated as exc:
        return page(request, "login.html", "/console/login", None, error=f"Not accepted: {exc}")
    session_id = auth.open_session(engine, who, at=datetime.now(UTC))
    # The first page the role may open: the overview, or the upload page for
    # a token that may only submit time.
    response = RedirectResponse(next(iter(menu(who)), NAV[0])[0], status_code=303)
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict",
                        secure=secure_cookies(request),
                        max_age=int(auth.SESSION_LIFETIME.total_seconds()))
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        _check_csrf(request, csrf)
        auth.close_session(_hub(request).engine, session_id, at=datetime.now(UTC))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict",
                           secure=secure_cookies(request))
    return response


@router.get("/")
def overview(request: Request) -> HTMLResponse:
    who = _who(request)
    hub = _hub(request)
    seen = queues.overview(hub.engine, now_ms=hub.clock.ms())
    return page(request, "overview.html", "/console/", who, inbox=seen.inbox,
                parked=seen.parked, open_total=seen.open_total,
                by_reason=seen.by_reason, max_reason=max((n for _, n in seen.by_reason),
                                                         default=1),
                depth=seen.depth, targets=seen.targets, sending=seen.sending,
                latency=seen.latency, hours=seen.hours,
                max_hour=max((max(i, o) for _, i, o in seen.hours), default=1) or 1)


@router.get("/exceptions")
def exception_list(request: Request, reason: str = "", message: str = "") -> HTMLResponse:
    who = _who(request)
    try:
        exceptions.known_reason(reason)
    except BillbridgeError as exc:
        message, reason = exc.message, ""
    with _hub(request).engine.connect() as conn:
        items = exceptions.open_list(conn, reason=reason or None, limit=500)
        reasons = exceptions.open_reasons(conn)
    return page(request, "exceptions.html", "/console/exceptions", who, items=items,
                reasons=reasons, reason=reason, message=message,
                may_act=auth.allowed(who, Permission.ACT))


@router.post("/exceptions/act")
def exception_act(request: Request, action: str = Form(...), csrf: str = Form(""),
                  ids: list[int] = Form(default=[]), note: str = Form("")) -> Response:
    who = _who(request, Permission.ACT)
    _check_csrf(request, csrf)
    # Anything but retry or replay dismisses, as the form's third button does.
    chosen: exceptions.Action = "retry" if action == "retry" else \
        "replay" if action == "replay" else "dismiss"
    results = exceptions.act_many(_hub(request).engine, ids, chosen, actor=who.name,
                                  now=lambda: datetime.now(UTC), reason=note)
    done = sum(isinstance(r, Acted) for r in results)
    refused = [f"#{r.id}: {r.why}" for r in results if not isinstance(r, Acted)]
    note = f"{action}: {done} done" + (f"; refused {'; '.join(refused)}" if refused else "")
    return RedirectResponse(f"/console/exceptions?message={note}", status_code=303)


@router.get("/lineage")
def lineage_page(request: Request, id: str = "") -> HTMLResponse:
    who = _who(request)
    found, missing = None, ""
    if id:
        try:
            with _hub(request).engine.connect() as conn:
                found = lineage.trace(conn, id)
        except BillbridgeError as exc:
            missing = exc.message
    return page(request, "lineage.html", "/console/lineage", who, ident=id, found=found,
                missing=missing, headline=lineage.headline, details=lineage.details,
                max_steps=lineage.MAX_STEPS)


@router.get("/config")
def config_page(request: Request, message: str = "") -> Response:
    who = _who(request)
    engine = _hub(request).engine
    with engine.connect() as conn:
        versions = config_versions.history(conn)
    active, proposals = config_versions.pending(engine)
    return page(request, "config.html", "/console/config", who, versions=versions,
                message=message, active=active, proposals=proposals)


def _suite(request: Request) -> list[Path]:
    """The scenario files a configuration preview runs."""
    folder = getattr(request.app.state, "scenarios", None)
    return sorted(folder.glob("*.yaml")) if folder else []


@router.get("/config/{version}")
def config_review(request: Request, version: int) -> Response:
    """One proposal before its approval: what it changes, and which postings of
    the scenario suite move (the preview), then the approve button."""
    who = _who(request)
    suite = _suite(request)
    try:
        proposal = config_versions.review(_hub(request).engine, version, suite)
    except BillbridgeError as exc:
        return RedirectResponse(f"/console/config?message={exc.message}", status_code=303)
    return page(request, "config_review.html", "/console/config", who, p=proposal,
                suite=len(suite), may_approve=auth.allowed(who, Permission.CONFIG_APPROVE))


@router.post("/config/{version}/approve")
def config_approve(request: Request, version: int, csrf: str = Form(""),
                   seen: str = Form("")) -> Response:
    """Approve the version whose preview the approver read (``seen``): refused
    if the preview has changed since."""
    who = _who(request, Permission.CONFIG_APPROVE)
    _check_csrf(request, csrf)
    read = config_versions.Seen(seen, _suite(request)) if seen else None
    try:
        config_versions.decide(_hub(request).engine, version, "approve", actor=who.name,
                               at=datetime.now(UTC), seen=read)
        note = f"version {version} is active"
    except BillbridgeError as exc:
        note = f"not approved: {exc}"
    return RedirectResponse(f"/console/config?message={note}", status_code=303)


@router.get("/audit")
def audit_page(request: Request) -> HTMLResponse:
    who = _who(request, Permission.AUDIT)
    chain = audit.recent(_hub(request).engine, limit=200)
    return page(request, "audit.html", "/console/audit", who, entries=chain.entries,
                intact=chain.intact, breaks=", ".join(str(b.row_id) for b in chain.breaks))


@router.get("/leakage")
def leakage_page(request: Request) -> HTMLResponse:
    who = _who(request)
    today = datetime.now(UTC).date()
    with _hub(request).engine.connect() as conn:
        leak = figures.leakage(conn, today)
    return page(request, "leakage.html", "/console/leakage", who, leak=leak, today=today)


@router.get("/executive")
def executive_page(request: Request) -> HTMLResponse:
    who = _who(request)
    with _hub(request).engine.connect() as conn:
        summary = figures.executive(conn, datetime.now(UTC).date())
        lags = figures.activation_lags(conn)
    return page(request, "executive.html", "/console/executive", who, ex=summary, lags=lags,
                lag=figures.lag_summary(lags))


@router.get("/contracts")
def contracts_page(request: Request) -> HTMLResponse:
    who = _who(request)
    with _hub(request).engine.connect() as conn:
        seen = contracts.drift_seen(conn)
    return page(request, "contracts.html", "/console/contracts", who, drift=seen)
