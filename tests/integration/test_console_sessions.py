"""The console's doors: a server-side session behind a cookie that holds only
its random id, logout by POST that revokes it, expiry, `Secure` over TLS,
and the security headers on every answer of the console and the API; the
endpoints that were open (/metrics, /v1/schemas) ask for a token."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from billbridge.console.views import NAV
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.tables import console_sessions
from billbridge.web import create_app
from conftest import CONFIG

LOGIN = "/console/login"


def hub_of(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": RecordingTarget("ledger")})
    hub.activate_config(CONFIG)
    return hub


def token(hub: Hub, role: tokens.Role = tokens.Role.ADMIN, name: str = "ada",
          lifetime: timedelta = timedelta(days=90)) -> tuple[int, str]:
    with hub.engine.begin() as conn:
        return tokens.create(conn, name=name, role=role, expires_in=lifetime, actor="test",
                             at=datetime.now(UTC))


def log_in(client: TestClient, bearer: str) -> str:
    """Log in; return the Set-Cookie header the console answered with."""
    answer = client.post(LOGIN, data={"token": bearer}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["set-cookie"])


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/console/").text)
    assert found is not None
    return found.group(1)


def test_the_cookie_holds_a_random_session_id_stored_hashed_never_the_token(
        engine: Engine) -> None:
    hub = hub_of(engine)
    _, bearer = token(hub)
    client = TestClient(create_app(hub))
    cookie = log_in(client, bearer)
    session_id = client.cookies["bb_session"]
    assert bearer not in cookie and session_id != bearer
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    with engine.connect() as conn:
        [row] = conn.execute(select(console_sessions)).all()
    assert row.id_hash == hashlib.sha256(session_id.encode()).hexdigest()
    assert session_id not in str(tuple(row))
    assert (row.name, row.role) == ("ada", "admin")
    # Eight hours, not the token's ninety days.
    lifetime = _aware(row.expires_at) - _aware(row.created_at)
    assert lifetime == timedelta(hours=8)
    assert client.get("/console/").url.path == "/console/"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_logout_is_a_post_with_csrf_that_revokes_the_session_server_side(
        engine: Engine) -> None:
    hub = hub_of(engine)
    _, bearer = token(hub)
    client = TestClient(create_app(hub))
    log_in(client, bearer)
    session_id = client.cookies["bb_session"]
    # A link or an image cannot log anyone out, and neither can a forged form.
    assert client.get("/console/logout", follow_redirects=False).status_code in (404, 405)
    forged = client.post("/console/logout", data={"csrf": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
    assert client.get("/console/").url.path == "/console/"
    out = client.post("/console/logout", data={"csrf": csrf_of(client)},
                      follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == LOGIN
    # The id a copied cookie still carries opens nothing: the store revoked it.
    stolen = TestClient(create_app(hub), cookies={"bb_session": session_id})
    assert stolen.get("/console/").url.path == LOGIN
    with engine.connect() as conn:
        assert conn.execute(select(console_sessions.c.revoked_at)).scalar_one() is not None


def test_an_expired_session_or_one_whose_token_was_revoked_is_a_login_page(
        engine: Engine) -> None:
    hub = hub_of(engine)
    _, bearer = token(hub)
    client = TestClient(create_app(hub))
    log_in(client, bearer)
    assert client.get("/console/exceptions").url.path == "/console/exceptions"
    with engine.begin() as conn:
        conn.execute(update(console_sessions).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert client.get("/console/exceptions").url.path == LOGIN

    token_id, other = token(hub, name="olga", role=tokens.Role.OPERATOR)
    log_in(client, other)
    assert client.get("/console/exceptions").url.path == "/console/exceptions"
    with engine.begin() as conn:
        tokens.revoke(conn, token_id, actor="test", at=datetime.now(UTC))
    assert client.get("/console/exceptions").url.path == LOGIN


def test_a_session_ends_no_later_than_its_token(engine: Engine) -> None:
    hub = hub_of(engine)
    _, bearer = token(hub, lifetime=timedelta(minutes=30))
    log_in(TestClient(create_app(hub)), bearer)
    with engine.connect() as conn:
        row = conn.execute(select(console_sessions)).one()
    assert _aware(row.expires_at) - _aware(row.created_at) <= timedelta(minutes=30)


def test_the_cookie_is_secure_over_tls_or_when_configured(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = hub_of(engine)
    _, bearer = token(hub)
    over_tls = TestClient(create_app(hub), base_url="https://testserver")
    assert "Secure" in log_in(over_tls, bearer)
    behind_proxy = TestClient(create_app(hub, secure_cookies=True))
    assert "Secure" in log_in(behind_proxy, bearer)
    monkeypatch.setenv("BILLBRIDGE_SECURE_COOKIES", "1")
    assert "Secure" in log_in(TestClient(create_app(hub)), bearer)
    monkeypatch.setenv("BILLBRIDGE_SECURE_COOKIES", "0")
    assert "Secure" not in log_in(TestClient(create_app(hub)), bearer)


def test_every_console_and_api_answer_carries_the_security_headers(engine: Engine) -> None:
    hub = hub_of(engine)
    _, bearer = token(hub)
    client = TestClient(create_app(hub))
    answers = {"login page": client.get(LOGIN),
               "refused API call": client.get("/v1/inbox"),
               "health": client.get("/healthz")}
    log_in(client, bearer)
    answers["console page"] = client.get("/console/exceptions")
    answers["API page"] = client.get("/v1/inbox", headers={"Authorization": f"Bearer {bearer}"})
    for what, answer in answers.items():
        assert answer.headers.get("x-frame-options") == "DENY", what
        assert answer.headers.get("x-content-type-options") == "nosniff", what
        assert answer.headers.get("referrer-policy") == "no-referrer", what
        assert answer.headers.get("cache-control") == "no-store", what
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", ""), what
    page = answers["console page"]
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp
    # What the policy forbids, the pages do not use: no inline script, style or handler.
    # Every page of the console's menu, so a page added to it is checked too.
    for path in [p for p, _ in NAV] + ["/console/lineage?id=x", LOGIN]:
        html = client.get(path).text
        assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=", html), path
    sheet = client.get("/console/static/console.css")
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/css")


def test_metrics_and_schemas_need_a_token_unless_metrics_are_opened(engine: Engine) -> None:
    hub = hub_of(engine)
    _, auditor = token(hub, role=tokens.Role.AUDITOR, name="audrey")
    client = TestClient(create_app(hub))
    for path in ("/metrics", "/v1/schemas", "/v1/schemas/time_entry.upserted"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer bb_forged"}
                          ).status_code == 401, path
    read = {"Authorization": f"Bearer {auditor}"}
    assert "billbridge_" in client.get("/metrics", headers=read).text
    assert "time_entry.upserted" in client.get("/v1/schemas", headers=read).json()["events"]
    assert client.get("/v1/schemas/time_entry.upserted", headers=read).status_code == 200
    # Opened for a scraper on a private network: /metrics only.
    scraped = TestClient(create_app(hub, open_metrics=True))
    assert "billbridge_" in scraped.get("/metrics").text
    assert scraped.get("/v1/schemas").status_code == 401
