"""Errors as data: every 4xx and 5xx of the API is the JSON problem body
(RFC 9457 with the hub's stable `code`), a 405 names the allowed methods,
ids and query values outside their documented shape are refused before they
reach the store, and a signed timestamp must be a finite Unix time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from structlog.testing import capture_logs

from billbridge.api.problems import MEDIA_TYPE
from billbridge.connectors.base import SignatureError, WebhookRequest
from billbridge.connectors.generic.webhooks import GenericWebhooks, sign
from billbridge.connectors.hubspot.webhooks import sign_v3, verify_v3
from billbridge.engine import config_store, tokens
from billbridge.engine.hub import Hub
from billbridge.services import lineage
from billbridge.web import create_app
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

SECRET = "s3cret"
# The answer's shape does not depend on the store: these run on SQLite only.
on_sqlite = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def hub(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    return hub


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    app = create_app(hub, webhooks={"generic": GenericWebhooks(SECRET)})
    # Unexpected faults must come back as answers, not as exceptions in the test.
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin(hub: Hub) -> dict[str, str]:
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name="ada", role=tokens.Role.ADMIN,
                                 expires_in=timedelta(days=1), actor="test",
                                 at=datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == "https://billbridge.dev/problems/" + code.lower().replace("_", "-")
    assert body["title"] and body["detail"] and body["message"] == body["detail"]
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body


@pytest.mark.parametrize("ident", ["9" * 30, "%C2%B2", "9223372036854775808"])
def test_lineage_of_a_number_no_row_can_have_is_not_found(
        client: TestClient, admin: dict[str, str], ident: str) -> None:
    """Thirty digits overflow a 64-bit row id and '²' is a digit int() cannot
    read: both used to fail inside the store as a plain-text 500."""
    body = assert_problem(client.get(f"/v1/lineage/{ident}", headers=admin), 404, "NOT_FOUND")
    assert "nothing is known by" in body["detail"]
    assert client.get("/v1/lineage/te-1", headers=admin).status_code == 200


@pytest.mark.parametrize("ident", ["9" * 30, "²"])
def test_console_lineage_of_a_number_no_row_can_have_shows_nothing_found(
        hub: Hub, client: TestClient, ident: str) -> None:
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name="fiona", role=tokens.Role.FINANCE,
                                 expires_in=timedelta(days=1), actor="test",
                                 at=datetime.now(UTC))
    client.post("/console/login", data={"token": token})
    page = client.get("/console/lineage", params={"id": ident})
    assert page.status_code == 200 and page.url.path == "/console/lineage"
    assert "nothing is known by" in page.text and "Trace" in page.text


@on_sqlite
def test_an_unexpected_fault_is_a_problem_body_and_its_cause_is_logged(
        client: TestClient, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(lineage, "trace", broken)
    with capture_logs() as logs:
        response = client.get("/v1/lineage/te-1", headers={**admin, "x-correlation-id": "c-1"})
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    assert body["correlation_id"] == "c-1"
    assert "disk on fire" not in response.text  # internals stay in the log
    failed = [e for e in logs if e["event"] == "request failed"]
    assert len(failed) == 1 and failed[0]["correlation_id"] == "c-1"
    assert "disk on fire" in failed[0]["error"] and "RuntimeError" in failed[0]["traceback"]
    assert "Bearer" not in json.dumps(failed[0])


@on_sqlite
@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/v1/inbox", "GET"),
    ("PUT", "/v1/config/rollback", "POST"),
    ("TRACE", "/healthz", "GET"),
    ("GET", "/v1/webhooks/generic", "POST"),
])
def test_a_method_not_allowed_names_the_allowed_ones(
        client: TestClient, admin: dict[str, str], method: str, path: str,
        allowed: str) -> None:
    response = client.request(method, path, headers=admin)
    body = assert_problem(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == allowed
    assert allowed in body["detail"]


@on_sqlite
def test_an_unknown_route_is_a_problem_body(client: TestClient,
                                            admin: dict[str, str]) -> None:
    body = assert_problem(client.get("/v1/nowhere", headers=admin), 404, "NOT_FOUND")
    assert "/v1/nowhere" in body["detail"]


@on_sqlite
@pytest.mark.parametrize("query", [
    "/v1/reconcile?period_end=0", "/v1/reconcile?period_end=20250131",
    "/v1/inbox?cursor=%2B0.0", "/v1/inbox?cursor=1.5", "/v1/outbox?limit=1e-2",
    "/v1/outbox?limit=0x10", "/v1/outbox?limit=1_0", "/v1/outbox?limit=NaN",
    "/v1/exceptions?status=open%00", "/v1/reconcile?parked_days=%207",
    "/v1/exceptions/1.5", "/v1/exceptions/99999999999999999999", "/v1/config/versions/+1",
    "/v1/config/versions/2147483648", "/v1/inbox?cursor=1e999999999",
])
def test_values_outside_their_documented_shape_are_refused(
        client: TestClient, admin: dict[str, str], query: str) -> None:
    assert_problem(client.get(query, headers=admin), 422, "INVALID_REQUEST")


@on_sqlite
def test_a_date_and_a_cursor_in_their_documented_shape_are_taken(
        client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/v1/reconcile?period_end=2025-01-31&parked_days=7",
                      headers=admin).status_code == 200
    assert client.get("/v1/inbox?cursor=0&limit=1", headers=admin).json()["next_cursor"] == 1
    # OpenAPI's integers are JSON's: a zero fraction or an exponent is still one.
    assert client.get("/v1/inbox?cursor=1.0&limit=1e0", headers=admin).json()["next_cursor"] == 2


@pytest.mark.parametrize("body", [{"to_version": True}, {"to_version": 1.0},
                                  {"to_version": "1"}])
def test_a_rollback_to_something_not_a_version_number_is_refused_and_proposes_nothing(
        hub: Hub, client: TestClient, admin: dict[str, str], body: dict[str, Any]) -> None:
    """`true` used to be read as version 1 and proposed a rollback."""
    hub.activate_config({**CONFIG, "workers": CONFIG["workers"][:2]})  # version 2
    with hub.engine.connect() as conn:
        before = config_store.versions(conn)
    assert_problem(client.post("/v1/config/rollback", json=body, headers=admin),
                   422, "INVALID_REQUEST")
    with hub.engine.connect() as conn:
        assert config_store.versions(conn) == before
    assert client.post("/v1/config/rollback", json={"to_version": 1},
                       headers=admin).status_code == 201


@on_sqlite
def test_every_error_a_caller_meets_is_a_problem_body(
        client: TestClient, admin: dict[str, str]) -> None:
    assert_problem(client.get("/v1/inbox"), 401, "UNAUTHENTICATED")
    assert_problem(client.get("/v1/exceptions/12345", headers=admin), 404, "NOT_FOUND")
    assert_problem(client.post("/v1/exceptions/1/dismiss", json={}, headers=admin),
                   422, "INVALID_REQUEST")
    assert_problem(client.post("/v1/webhooks/nobody", content=b"{}"), 404, "UNKNOWN_SOURCE")
    assert_problem(client.post("/v1/webhooks/generic", content=b"{}"), 401, "BAD_SIGNATURE")


@on_sqlite
def test_a_rate_limited_delivery_is_a_problem_body_with_retry_after(hub: Hub) -> None:
    from billbridge.connectors.base import RateLimit

    app = create_app(hub, webhooks={"generic": GenericWebhooks(SECRET)},
                     webhook_rate=RateLimit(1, 60, burst=1))
    with TestClient(app) as client:
        client.post("/v1/webhooks/generic", content=b"{}")
        response = client.post("/v1/webhooks/generic", content=b"{}")
    assert_problem(response, 429, "RATE_LIMITED")
    assert int(response.headers["retry-after"]) >= 1


@on_sqlite
def test_the_openapi_document_describes_every_error_as_the_problem_body(
        client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])
    errors = [(path, method, status, response)
              for path, operations in document["paths"].items()
              for method, operation in operations.items()
              for status, response in operation["responses"].items() if status[0] in "45"]
    operations = {(path, method) for path, methods in document["paths"].items()
                  for method in methods}
    assert {(path, method) for path, method, *_ in errors} == operations
    for path, method, status, response in errors:
        assert response["content"] == {MEDIA_TYPE: {"schema": {
            "$ref": "#/components/schemas/Problem"}}}, (path, method, status)
    # The bounds the API enforces are the ones it publishes.
    inbox = {p["name"]: p["schema"] for p in document["paths"]["/v1/inbox"]["get"]["parameters"]}
    assert (inbox["limit"]["minimum"], inbox["limit"]["maximum"]) == (1, 1000)
    assert inbox["cursor"]["anyOf"][0]["minimum"] == 0
    row = document["paths"]["/v1/exceptions/{exc_id}"]["get"]["parameters"][0]["schema"]
    assert (row["minimum"], row["maximum"]) == (1, 2**63 - 1)


@on_sqlite
@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e3", "-5", " 1", ""])
def test_a_signed_timestamp_must_be_a_finite_unix_time(
        hub: Hub, client: TestClient, stamp: str) -> None:
    """The body is signed correctly over the stamp: only the stamp is wrong.
    `nan` used to pass the replay window, as every comparison with it is false."""
    body = json.dumps([time_entry("te-9")]).encode()
    response = client.post("/v1/webhooks/generic", content=body, headers={
        "X-Generic-Timestamp": stamp, "X-Generic-Signature": sign(SECRET, stamp, body)})
    problem = assert_problem(response, 401, "BAD_SIGNATURE")
    assert "X-Generic-Timestamp" in problem["detail"]


@pytest.mark.parametrize("stamp", ["nan", "inf", "1e15"])
def test_a_hubspot_timestamp_must_be_a_finite_unix_time(stamp: str) -> None:
    url = "https://hub.example.com/v1/webhooks/hubspot"
    body = b'[{"eventId":1,"subscriptionType":"deal.creation","objectId":42}]'
    delivery = WebhookRequest("POST", url, {
        "x-hubspot-signature-v3": sign_v3("secret", "POST", url, body, stamp),
        "x-hubspot-request-timestamp": stamp}, body)
    with pytest.raises(SignatureError, match="X-HubSpot-Request-Timestamp"):
        verify_v3("secret", delivery, now=1e12)


@on_sqlite
def test_a_delivery_the_store_cannot_keep_is_503_and_kept_nowhere(
        hub: Hub, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The inbox's transaction failed whole: the sender is told to deliver
    again, with the problem body, and nothing of the delivery was stored."""
    import time

    from sqlalchemy.exc import OperationalError

    from billbridge.engine.group_commit import GroupCommitter

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("INSERT INTO inbox", {}, Exception("disk I/O error"))

    monkeypatch.setattr(GroupCommitter, "_store", broken)
    stamp = str(int(time.time()))
    body = json.dumps([time_entry("te-9")]).encode()
    response = client.post("/v1/webhooks/generic", content=body, headers={
        "X-Generic-Timestamp": stamp, "X-Generic-Signature": sign(SECRET, stamp, body)})
    problem = assert_problem(response, 503, "STORE_UNAVAILABLE")
    assert "send it again" in problem["detail"]
    assert hub.ingest([time_entry("te-9")], source="generic")[0].status.value == "accepted"
