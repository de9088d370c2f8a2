"""The /v1 API: every route refuses a missing, expired, revoked or wrong-role
token; nobody approves their own configuration change; errors are JSON with a
stable code and a correlation id."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from billbridge.api.app import create_app
from billbridge.api.auth import GRANTS, Permission
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Role
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

# Every protected route, with the permission it needs and an example call.
ROUTES: list[tuple[str, str, Permission, Any]] = [
    ("GET", "/v1/inbox", Permission.READ, None),
    ("GET", "/v1/outbox", Permission.READ, None),
    ("GET", "/v1/exceptions", Permission.READ, None),
    ("GET", "/v1/exceptions/1", Permission.READ, None),
    ("POST", "/v1/exceptions/1/retry", Permission.ACT, None),
    ("POST", "/v1/exceptions/1/replay", Permission.ACT, None),
    ("POST", "/v1/exceptions/1/dismiss", Permission.ACT, {"reason": "noise"}),
    ("GET", "/v1/lineage/te-1", Permission.READ, None),
    ("GET", "/v1/config/versions", Permission.READ, None),
    ("GET", "/v1/config/versions/1", Permission.READ, None),
    ("GET", "/v1/config/versions/1/preview", Permission.READ, None),
    ("POST", "/v1/config/proposals", Permission.CONFIG_PROPOSE, {"document": CONFIG}),
    ("POST", "/v1/config/versions/1/approve", Permission.CONFIG_APPROVE, None),
    ("POST", "/v1/config/versions/1/reject", Permission.CONFIG_APPROVE, {"reason": "no"}),
    ("POST", "/v1/config/rollback", Permission.CONFIG_PROPOSE, {"to_version": 1}),
    ("GET", "/v1/reconcile", Permission.READ, None),
    ("GET", "/v1/audit", Permission.AUDIT, None),
    ("POST", "/v1/events/harvest", Permission.INGEST, [time_entry("te-9")]),
    ("GET", "/v1/schemas", Permission.SCHEMAS, None),
    ("GET", "/v1/schemas/time_entry.upserted", Permission.SCHEMAS, None),
    ("GET", "/metrics", Permission.METRICS, None),
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
    scope = tokens.Scope.of(["harvest"], ["time_entry.upserted", "project.updated"]) \
        if role in tokens.INGEST_ROLES else None
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name=name or f"{role.value}-user", role=role,
                                 expires_in=expires_in, actor="test", at=datetime.now(UTC),
                                 scope=scope)
    return token


def call(client: TestClient, method: str, path: str, body: Any, token: str | None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "permission", "body"), ROUTES,
                         ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_route_refuses_missing_expired_revoked_and_wrong_role_tokens(
        hub: Hub, client: TestClient, method: str, path: str, permission: Permission,
        body: Any) -> None:
    missing = call(client, method, path, body, None)
    assert missing.status_code == 401 and missing.json()["code"] == "UNAUTHENTICATED"
    assert missing.json()["correlation_id"]

    allowed = sorted(GRANTS[permission])[0]
    expired = make_token(hub, allowed, expires_in=timedelta(seconds=-1))
    assert call(client, method, path, body, expired).status_code == 401
    assert "expired" in call(client, method, path, body, expired).json()["message"]

    revoked = make_token(hub, allowed)
    with hub.engine.begin() as conn:
        token_id = tokens.authenticate(conn, revoked, at=datetime.now(UTC)).token_id
        assert token_id is not None
        tokens.revoke(conn, token_id, actor="test", at=datetime.now(UTC))
    assert "revoked" in call(client, method, path, body, revoked).json()["message"]
    assert call(client, method, path, body, "bb_forged").status_code == 401

    for role in Role:
        response = call(client, method, path, body, make_token(hub, role))
        if role in GRANTS[permission]:
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
                {"reason": "carol is not billable"}, operator).json()
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
