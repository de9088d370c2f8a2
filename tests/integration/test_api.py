"""The /v1 API: every route refuses a missing, expired, revoked or wrong-role
token; nobody approves their own configuration change; errors are JSON with a
stable code and a correlation id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from starlette.routing import Match

from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Role
from billbridge.web import create_app
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

# Every protected route, an example call, and which roles may call it,
# written out by hand from docs/security.md: never derived from
# api/auth.py:GRANTS, the table under test, so a grant widened or narrowed
# there fails here.
ROLES = (Role.ADMIN, Role.OPERATOR, Role.FINANCE, Role.AUDITOR, Role.INGEST)
Y, N = True, False
ROUTES: list[tuple[str, str, Any, tuple[bool, bool, bool, bool, bool]]] = [
    # method path                                body                  admin op fin aud ingest
    ("GET", "/v1/inbox", None,                                          (Y, Y, Y, Y, N)),
    ("GET", "/v1/outbox", None,                                         (Y, Y, Y, Y, N)),
    ("GET", "/v1/exceptions", None,                                     (Y, Y, Y, Y, N)),
    ("GET", "/v1/exceptions/1", None,                                   (Y, Y, Y, Y, N)),
    ("POST", "/v1/exceptions/1/retry", None,                            (Y, Y, N, N, N)),
    ("POST", "/v1/exceptions/1/replay", None,                           (Y, Y, N, N, N)),
    ("POST", "/v1/exceptions/1/dismiss", {"note": "noise"},             (Y, Y, N, N, N)),
    ("GET", "/v1/lineage/te-1", None,                                   (Y, Y, Y, Y, N)),
    ("GET", "/v1/config/versions", None,                                (Y, Y, Y, Y, N)),
    ("GET", "/v1/config/versions/1", None,                              (Y, Y, Y, Y, N)),
    ("GET", "/v1/config/versions/1/preview", None,                      (Y, Y, Y, Y, N)),
    ("POST", "/v1/config/proposals", {"document": CONFIG},              (Y, N, Y, N, N)),
    ("POST", "/v1/config/versions/1/approve", None,                     (Y, N, Y, N, N)),
    ("POST", "/v1/config/versions/1/reject", {"reason": "no"},          (Y, N, Y, N, N)),
    ("POST", "/v1/config/rollback", {"to_version": 1},                  (Y, N, Y, N, N)),
    ("GET", "/v1/reconcile", None,                                      (Y, Y, Y, Y, N)),
    ("GET", "/v1/audit", None,                                          (Y, N, Y, Y, N)),
    ("POST", "/v1/events/harvest", [time_entry("te-9")],                (Y, N, N, N, Y)),
    ("POST", "/v1/files/harvest?name=march.csv", None,                  (Y, N, N, N, Y)),
    ("GET", "/v1/schemas", None,                                        (Y, Y, Y, Y, Y)),
    ("GET", "/v1/schemas/time_entry.upserted", None,                    (Y, Y, Y, Y, Y)),
    ("GET", "/metrics", None,                                           (Y, Y, Y, Y, N)),
    ("GET", "/v1/invoices", None,                                       (Y, Y, Y, Y, N)),
    ("GET", "/v1/invoices/inv-1", None,                                 (Y, Y, Y, Y, N)),
    ("GET", "/v1/billing/runs", None,                                   (Y, Y, Y, Y, N)),
    ("GET", "/v1/billing/runs/run-1", None,                             (Y, Y, Y, Y, N)),
    ("POST", "/v1/billing/preview", {"period_end": "2026-03-31"},       (Y, Y, Y, Y, N)),
    ("POST", "/v1/billing/commit", {"period_end": "2026-03-31"},        (Y, N, Y, N, N)),
]


@pytest.fixture
def hub(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    return hub


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as test_client:
        yield test_client


def make_token(hub: Hub, role: Role, name: str | None = None,
               expires_in: timedelta = timedelta(days=1)) -> str:
    # A token that may submit events is bound to what it submits (tests/integration/test_trust_*).
    scope = tokens.Scope.of(["harvest"], ["time_entry.upserted", "expense.upserted",
                                          "project.updated"]) \
        if role in tokens.INGEST_ROLES else None
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name=name or f"{role.value}-user", role=role,
                                 expires_in=expires_in, actor="test", at=datetime.now(UTC),
                                 scope=scope)
    return token


def call(client: TestClient, method: str, path: str, body: Any, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers)


def test_the_role_matrix_has_a_column_for_every_role_and_a_row_for_every_route(
        client: TestClient) -> None:
    assert sorted(ROLES) == sorted(Role)
    open_routes = {"/healthz", "/readyz"}
    # Through the routers the app includes; the console's pages are not the API.
    for route in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        if (not isinstance(route.original_route, APIRoute) or not route.include_in_schema
                or route.path in open_routes):
            continue
        for verb in route.methods or ():
            assert any(route.matches({"type": "http", "method": verb, "path": path})[0]
                       is Match.FULL for method, path, _, _ in ROUTES if method == verb), \
                f"{verb} {route.path} has no row in ROUTES"


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_route_refuses_missing_expired_revoked_and_wrong_role_tokens(
        hub: Hub, client: TestClient, method: str, path: str, body: Any,
        allowed: tuple[bool, ...]) -> None:
    may = dict(zip(ROLES, allowed, strict=True))
    missing = call(client, method, path, body, None)
    assert missing.status_code == 401 and missing.json()["code"] == "UNAUTHENTICATED"
    assert missing.json()["correlation_id"]

    allowed_role = next(role for role, ok in may.items() if ok)
    expired = make_token(hub, allowed_role, expires_in=timedelta(seconds=-1))
    assert call(client, method, path, body, expired).status_code == 401
    assert "expired" in call(client, method, path, body, expired).json()["message"]

    revoked = make_token(hub, allowed_role)
    with hub.engine.begin() as conn:
        token_id = tokens.authenticate(conn, revoked, at=datetime.now(UTC)).token_id
        assert token_id is not None
        tokens.revoke(conn, token_id, actor="test", at=datetime.now(UTC))
    assert "revoked" in call(client, method, path, body, revoked).json()["message"]
    assert call(client, method, path, body, "bb_forged").status_code == 401

    for role, ok in may.items():
        response = call(client, method, path, body, make_token(hub, role))
        if ok:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["code"] == "FORBIDDEN"


def test_nobody_approves_their_own_change(hub: Hub, client: TestClient) -> None:
    alice = make_token(hub, Role.FINANCE, "alice")
    bob = make_token(hub, Role.FINANCE, "bob")
    card = {**CONFIG["rate_cards"][0], "rates": {"consultant": "160.00"}}
    proposed = call(client, "POST", "/v1/config/proposals",
                    {"document": {**CONFIG, "rate_cards": [card]}, "note": "2026 rates"}, alice)
    assert proposed.status_code == 201
    version = proposed.json()["version"]
    own = call(client, "POST", f"/v1/config/versions/{version}/approve", None, alice)
    assert own.status_code == 409 and "cannot also approve" in own.json()["message"]
    assert call(client, "POST", f"/v1/config/versions/{version}/approve", None,
                bob).json() == {"version": version, "status": "active"}
    versions = call(client, "GET", "/v1/config/versions", None, bob).json()["items"]
    assert (versions[0]["status"], versions[0]["proposed_by"], versions[0]["approved_by"]) == \
        ("active", "alice", "bob")
    # Rolling back is itself a change that needs a second person.
    back = call(client, "POST", "/v1/config/rollback", {"to_version": 1}, alice).json()
    assert back["status"] == "proposed"
    assert call(client, "POST", f"/v1/config/versions/{back['version']}/approve", None,
                alice).status_code == 409


def test_a_version_that_does_not_exist_is_not_found_on_every_route(
        hub: Hub, client: TestClient) -> None:
    finance = make_token(hub, Role.FINANCE)
    for method, path, body in (("GET", "/v1/config/versions/99", None),
                               ("GET", "/v1/config/versions/99/preview", None),
                               ("POST", "/v1/config/versions/99/approve", None),
                               ("POST", "/v1/config/versions/99/reject", {"reason": "no"}),
                               ("POST", "/v1/config/rollback", {"to_version": 99})):
        response = call(client, method, path, body, finance)
        assert response.status_code == 404, (path, response.text)
        assert (response.json()["code"], response.json()["detail"]) == \
            ("NOT_FOUND", "there is no configuration version 99"), path
    # A version that exists but is no proposal is a conflict, not a 404.
    active = call(client, "POST", "/v1/config/versions/1/reject", {"reason": "no"}, finance)
    assert (active.status_code, active.json()["code"]) == (409, "APPROVAL_REFUSED")


def test_an_invalid_proposal_is_refused_with_its_problems(hub: Hub, client: TestClient) -> None:
    finance = make_token(hub, Role.FINANCE)
    bad = {**CONFIG, "workers": [{**CONFIG["workers"][0], "legal_entity": "XX"}]}
    response = call(client, "POST", "/v1/config/proposals", {"document": bad}, finance)
    assert response.status_code == 422 and response.json()["code"] == "INVALID_CONFIGURATION"
    assert "legal entity 'XX'" in response.json()["message"]


def test_operator_works_the_exception_queue(hub: Hub, client: TestClient) -> None:
    hub.ingest([project_event(), time_entry("te-1", worker="w-carol")], source="harvest")
    hub.run_until_idle()
    operator = make_token(hub, Role.OPERATOR, "olga")
    page = call(client, "GET", "/v1/exceptions?limit=1", None, operator).json()
    [item] = page["items"]
    assert item["reason"] == "NO_RATE" and page["next_cursor"] == item["id"]
    done = call(client, "POST", f"/v1/exceptions/{item['id']}/dismiss",
                {"note": "carol is not billable"}, operator).json()
    assert done == {"id": item["id"], "status": "dismissed"}
    audit_page = call(client, "GET", "/v1/audit", None, make_token(hub, Role.AUDITOR)).json()
    assert any(e["action"] == "exception.dismissed" and e["actor"] == "olga"
               for e in audit_page["items"])


def test_schemas_are_published_per_event_type(hub: Hub, client: TestClient) -> None:
    client.headers["Authorization"] = f"Bearer {make_token(hub, Role.AUDITOR)}"
    listing = client.get("/v1/schemas").json()
    assert listing["version"] == "v1" and "time_entry.upserted" in listing["events"]
    schema = client.get("/v1/schemas/time_entry.upserted").json()
    assert {"id", "worker", "hours", "status"} <= set(schema["properties"])
    assert client.get("/v1/schemas/nope").json()["code"] == "NOT_FOUND"
