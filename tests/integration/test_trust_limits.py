"""Trust boundaries, finding 3: limits before work. A body over the cap is
refused before it is read; a caller is authenticated (a delivery verified)
before its body is parsed; a signed delivery too large or too deep to parse is
kept raw, truncated with its digest, and acknowledged so the vendor stops
sending it; no exception listing carries a payload of megabytes."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from billbridge.connectors.generic.webhooks import GenericWebhooks, sign
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.tables import exceptions, inbox
from billbridge.web import HubServer, create_app
from conftest import CONFIG
from fakes import FakeTarget

SECRET = "limits-secret-8d2e"
CAP = 256 * 1024


@pytest.fixture
def hub(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    return hub


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub, webhooks={"generic": GenericWebhooks(SECRET)})) as test:
        yield test


def signed(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {"X-Generic-Timestamp": stamp, "X-Generic-Signature": sign(SECRET, stamp, body)}


def test_a_declared_length_over_the_cap_is_refused_before_a_byte_is_read(hub: Hub) -> None:
    server = HubServer(hub, port=0, engine=False, webhooks={"generic": GenericWebhooks(SECRET)})
    server.start()
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            # 50 MB announced, none sent: the answer must come without waiting for it.
            conn.sendall(b"POST /v1/webhooks/generic HTTP/1.1\r\nHost: hub\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")
            head = conn.recv(4096)
    finally:
        server.stop()
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def test_a_stream_over_the_cap_is_refused_as_it_passes_the_cap(hub: Hub) -> None:
    app = create_app(hub, max_body_bytes=CAP, webhooks={"generic": GenericWebhooks(SECRET)})
    chunk, chunks = b"x" * 65536, 64  # 4 MiB offered with no Content-Length
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/webhooks/generic",
             "raw_path": b"/v1/webhooks/generic", "root_path": "", "query_string": b"",
             "headers": [(b"host", b"hub"), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("hub", 80)}
    anyio.run(app, scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert pulled <= CAP // len(chunk) + 1, f"{pulled} chunks read of a body over the cap"


def test_an_unauthenticated_call_is_refused_before_its_body_is_parsed(
        client: TestClient) -> None:
    # Nested far past any parser's recursion: parsing it first would fail differently.
    answer = client.post("/v1/events/harvest", content=b"[" * 200_000,
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 401, answer.text
    forged = client.post("/v1/webhooks/generic", content=b"[" * 200_000,
                         headers={"X-Generic-Timestamp": str(int(time.time())),
                                  "X-Generic-Signature": "sha256=00"})
    assert forged.status_code == 401, forged.text


def malformed(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(exceptions.c.reason, exceptions.c.raw, inbox.c.event_id)
                                 .join(inbox, inbox.c.id == exceptions.c.inbox_id)))


def test_a_signed_delivery_nested_too_deep_is_kept_raw_and_acknowledged_once(
        engine: Engine, client: TestClient) -> None:
    body = b'{"time_entry": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    first = client.post("/v1/webhooks/generic", content=body, headers=signed(body))
    again = client.post("/v1/webhooks/generic", content=body, headers=signed(body))
    assert (first.status_code, again.status_code) == (202, 202), first.text
    assert [r["status"] for r in first.json()["results"] + again.json()["results"]] == \
        ["malformed", "duplicate"]  # the vendor's retry changes nothing
    [(reason, raw, event_id)] = malformed(engine)
    digest = hashlib.sha256(body).hexdigest()
    assert reason == "MALFORMED_PAYLOAD" and event_id == f"sha256:{digest[:40]}"
    assert raw == body.decode()


def test_a_signed_delivery_over_the_parse_limit_is_kept_truncated_with_its_digest(
        engine: Engine, client: TestClient) -> None:
    body = json.dumps({"time_entry": {"id": "te-1", "notes": "n" * 2_000_000}}).encode()
    answer = client.post("/v1/webhooks/generic", content=body, headers=signed(body))
    assert answer.status_code == 202 and answer.json()["results"][0]["status"] == "malformed"
    [(reason, raw, _)] = malformed(engine)
    assert reason == "MALFORMED_PAYLOAD" and len(raw) < 70_000
    assert raw.startswith(body[:1000].decode())
    assert hashlib.sha256(body).hexdigest() in raw


def test_no_exception_listing_carries_a_payload_of_megabytes(
        hub: Hub, client: TestClient) -> None:
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name="harvest-push", role=tokens.Role.INGEST,
                                 expires_in=timedelta(hours=1), actor="t", at=datetime.now(UTC),
                                 scope=tokens.Scope.of(["harvest"], ["time_entry.upserted"]))
    # A valid JSON event the canonical model refuses (no worker, no hours): kept whole.
    event = {"type": "time_entry.upserted", "id": "big-1", "at": "2026-03-02T10:00:00Z",
             "data": {"id": "big-1", "notes": "n" * 900_000}}
    auth = {"Authorization": f"Bearer {token}"}
    pushed = client.post("/v1/events/harvest", json=[event], headers=auth)
    assert pushed.json()["results"][0]["status"] == "malformed", pushed.text
    with hub.engine.begin() as conn:
        _, admin = tokens.create(conn, name="ops", role=tokens.Role.ADMIN,
                                 expires_in=timedelta(hours=1), actor="t", at=datetime.now(UTC))
    auth = {"Authorization": f"Bearer {admin}"}
    listing = client.get("/v1/exceptions", headers=auth)
    [item] = listing.json()["items"]
    one = client.get(f"/v1/exceptions/{item['id']}", headers=auth)
    for answer in (listing, one):
        assert answer.status_code == 200 and len(answer.content) < 100_000, len(answer.content)
    assert "truncated for display" in one.json()["raw"] and "900" in one.json()["raw"][-200:]
