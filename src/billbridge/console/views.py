"""Console pages. A login checks the API token (or OIDC token) once and opens a
server-side session (engine.sessions): the HttpOnly, SameSite=Strict cookie
holds only the session's random id, `Secure` over TLS or when configured.
Every page checks the session and the API's grants table; every form, logout
included, carries a CSRF value derived from the session."""

from __future__ import annotations

import hashlib
import hmac
import os
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select, text

from billbridge.api.auth import GRANTS, Permission
from billbridge.engine import audit, config_store, exception_queue, lineage, sessions, tokens
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Identity
from billbridge.errors import BillbridgeError
from billbridge.store.tables import dispatch_lanes, exceptions, inbox, outbox, target_leases

COOKIE = "bb_session"
NAV = [("/console/", "Overview"), ("/console/exceptions", "Exceptions"),
       ("/console/lineage", "Lineage"), ("/console/leakage", "Leakage"),
       ("/console/executive", "Executive"), ("/console/config", "Configuration"),
       ("/console/audit", "Audit")]
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
STYLE_SHEET = Path(__file__).with_name("templates").joinpath("console.css").read_text()
router = APIRouter(prefix="/console", include_in_schema=False)


class LoginRequired(Exception):
    pass


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _who(request: Request, permission: Permission = Permission.READ) -> Identity:
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise LoginRequired
    try:
        with _hub(request).engine.connect() as conn:
            identity = sessions.identify(conn, session_id, at=datetime.now(UTC))
    except sessions.SessionEnded:
        raise LoginRequired from None
    if identity.role not in GRANTS[permission]:
        raise PermissionError(f"role {identity.role.value} may not {permission.value}")
    return identity


def _authenticate(request: Request, token: str) -> Identity:
    """A billbridge token, or (when configured) a person's OIDC token."""
    settings = getattr(request.app.state, "oidc", None)
    if settings is not None and not token.startswith(tokens.PREFIX):
        from billbridge.api.oidc import authenticate

        return authenticate(token, settings)
    with _hub(request).engine.begin() as conn:
        return tokens.authenticate(conn, token, at=datetime.now(UTC))


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
        "title": dict(NAV).get(here, "billbridge"), "nav": NAV if who else [], "here": here,
        "who": who, "csrf": _csrf(request), **context})


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
    try:
        who = _authenticate(request, token.strip())
    except tokens.TokenError as exc:
        return page(request, "login.html", "/console/login", None, error=f"Not accepted: {exc}")
    with _hub(request).engine.begin() as conn:
        session_id = sessions.open_session(conn, who, at=datetime.now(UTC))
    response = RedirectResponse("/console/", status_code=303)
    response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict",
                        secure=secure_cookies(request),
                        max_age=int(sessions.LIFETIME.total_seconds()))
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    session_id = request.cookies.get(COOKIE)
    if session_id:
        _check_csrf(request, csrf)
        with _hub(request).engine.begin() as conn:
            sessions.close(conn, session_id, at=datetime.now(UTC))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict",
                           secure=secure_cookies(request))
    return response


def _latency(conn: Any) -> dict[str, str]:
    rows = conn.execute(
        select(inbox.c.received_at, outbox.c.done_at)
        .join(outbox, outbox.c.inbox_id == inbox.c.id)
        .where(outbox.c.status == "done", outbox.c.kind == "time_charge.post")
        .order_by(outbox.c.id.desc()).limit(5000)).all()
    seconds = sorted((r.done_at - r.received_at).total_seconds() for r in rows
                     if r.done_at and r.received_at)
    if not seconds:
        return {"p50": "—", "p95": "—"}
    p95 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))]
    return {"p50": f"{statistics.median(seconds):.2f} s", "p95": f"{p95:.2f} s"}


def _per_hour(conn: Any) -> list[tuple[str, int, int]]:
    """(hour, events in, postings out) over the last 24 hours with activity."""
    def bucket(column: Any) -> Any:
        if conn.dialect.name == "postgresql":
            return func.to_char(column, "YYYY-MM-DD HH24:00")
        return func.strftime("%Y-%m-%d %H:00", column)

    since = datetime.now(UTC) - timedelta(hours=24)
    # Grouped by position: PostgreSQL sees two bound format strings as two
    # different expressions otherwise.
    events = dict(conn.execute(select(bucket(inbox.c.received_at), func.count())
                               .where(inbox.c.received_at >= since)
                               .group_by(text("1"))).all())
    postings = dict(conn.execute(select(bucket(outbox.c.done_at), func.count())
                                 .where(outbox.c.status == "done", outbox.c.done_at >= since)
                                 .group_by(text("1"))).all())
    return [(h, events.get(h, 0), postings.get(h, 0))
            for h in sorted(set(events) | set(postings))]


@router.get("/")
def overview(request: Request) -> HTMLResponse:
    who = _who(request)
    hub = _hub(request)
    now = hub.clock.ms()
    with hub.engine.connect() as conn:
        by_status = {r[0]: r[1] for r in conn.execute(
            select(inbox.c.status, func.count()).group_by(inbox.c.status))}
        by_reason = exception_queue.open_by_reason(conn)
        depth = {r[0]: r[1] for r in conn.execute(
            select(outbox.c.target, func.count()).where(outbox.c.status == "pending")
            .group_by(outbox.c.target))}
        targets = conn.execute(select(target_leases)).all()
        sending: dict[str, list[str]] = {}  # target → who holds its lanes now
        for lane in conn.execute(select(dispatch_lanes.c.target, dispatch_lanes.c.lease_owner)
                                 .where(dispatch_lanes.c.lease_owner.is_not(None),
                                        dispatch_lanes.c.lease_until_ms >= now)
                                 .order_by(dispatch_lanes.c.lane)):
            sending.setdefault(lane.target, []).append(lane.lease_owner)
        latency = _latency(conn)
        hours = _per_hour(conn)
    ordered = by_reason.most_common()
    return page(request, "overview.html", "/console/", who, inbox=by_status,
                parked=by_status.get("parked", 0), open_total=sum(by_reason.values()),
                by_reason=ordered, max_reason=max((n for _, n in ordered), default=1),
                depth=depth, targets=targets, sending=sending, latency=latency, hours=hours,
                max_hour=max((max(i, o) for _, i, o in hours), default=1) or 1)


@router.get("/exceptions")
def exception_list(request: Request, reason: str = "", message: str = "") -> HTMLResponse:
    who = _who(request)
    with _hub(request).engine.connect() as conn:
        items = exception_queue.list_open(conn, reason=reason or None, limit=500)
        reasons = sorted(Counter(r.reason for r in conn.execute(
            select(exceptions.c.reason).where(exceptions.c.status == "open"))))
    return page(request, "exceptions.html", "/console/exceptions", who, items=items,
                reasons=reasons, reason=reason, message=message)


@router.post("/exceptions/act")
def exception_act(request: Request, action: str = Form(...), csrf: str = Form(""),
                  ids: list[int] = Form(default=[]), reason_text: str = Form("")) -> Response:
    who = _who(request, Permission.ACT)
    _check_csrf(request, csrf)
    done, refused = 0, []
    for exc_id in ids:
        try:
            with _hub(request).engine.begin() as conn:
                now = datetime.now(UTC)
                if action == "retry":
                    exception_queue.retry(conn, exc_id, actor=who.name, at=now)
                elif action == "replay":
                    exception_queue.replay(conn, exc_id, actor=who.name, at=now)
                else:
                    exception_queue.dismiss(conn, exc_id, actor=who.name, at=now,
                                            reason=reason_text)
            done += 1
        except (exception_queue.ActionRefused, exception_queue.ExceptionNotFound) as exc:
            refused.append(f"#{exc_id}: {exc}")
    note = f"{action}: {done} done" + (f"; refused {'; '.join(refused)}" if refused else "")
    return RedirectResponse(f"/console/exceptions?message={note}", status_code=303)


@router.get("/lineage")
def lineage_page(request: Request, id: str = "") -> HTMLResponse:
    who = _who(request)
    found = None
    if id:
        with _hub(request).engine.connect() as conn:
            traced = lineage.trace(conn, id)
        found = traced if traced.found else None
    return page(request, "lineage.html", "/console/lineage", who, ident=id, found=found)


@router.get("/config")
def config_page(request: Request, message: str = "") -> HTMLResponse:
    who = _who(request)
    with _hub(request).engine.connect() as conn:
        versions = config_store.versions(conn)
        documents = {v["version"]: config_store.document(conn, v["version"]) for v in versions}
    for v in versions:
        before = documents.get(v["version"] - 1, {})
        after = documents[v["version"]]
        v["changed"] = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return page(request, "config.html", "/console/config", who, versions=versions,
                message=message)


@router.post("/config/{version}/approve")
def config_approve(request: Request, version: int, csrf: str = Form("")) -> Response:
    who = _who(request, Permission.CONFIG_APPROVE)
    _check_csrf(request, csrf)
    try:
        with _hub(request).engine.begin() as conn:
            config_store.approve(conn, version, actor=who.name, at=datetime.now(UTC))
        note = f"version {version} is active"
    except BillbridgeError as exc:
        note = f"not approved: {exc}"
    return RedirectResponse(f"/console/config?message={note}", status_code=303)


@router.get("/audit")
def audit_page(request: Request) -> HTMLResponse:
    who = _who(request, Permission.AUDIT)
    with _hub(request).engine.connect() as conn:
        entries = audit.entries(conn, limit=200)
        breaks = audit.verify(conn)
    return page(request, "audit.html", "/console/audit", who, entries=entries,
                intact=not breaks, breaks=", ".join(str(b.row_id) for b in breaks))


@router.get("/leakage")
def leakage_page(request: Request) -> HTMLResponse:
    from billbridge.console.figures import leakage

    who = _who(request)
    today = datetime.now(UTC).date()
    with _hub(request).engine.connect() as conn:
        figures = leakage(conn, today)
    return page(request, "leakage.html", "/console/leakage", who, leak=figures, today=today)


@router.get("/executive")
def executive_page(request: Request) -> HTMLResponse:
    from billbridge.console.figures import activation_lags, executive, lag_summary

    who = _who(request)
    with _hub(request).engine.connect() as conn:
        figures = executive(conn, datetime.now(UTC).date())
        lags = activation_lags(conn)
    return page(request, "executive.html", "/console/executive", who, ex=figures, lags=lags,
                lag=lag_summary(lags))
