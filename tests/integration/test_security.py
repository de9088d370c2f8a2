"""OIDC tokens for people, the per-source webhook limit, and no credential
ever showing in logs or API answers."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from billbridge.api.routes.ingress import DOOR_RATE, door_rate
from billbridge.connectors.base import Connection, RateLimit
from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator
from billbridge.connectors.generic.webhooks import GenericWebhooks, sign
from billbridge.connectors.registry import connector
from billbridge.engine import secrets, tokens
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.logs import configure_logging
from billbridge.services.oidc import OidcSettings
from billbridge.web import HubServer, create_app
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

ISSUER = "https://login.example.test/"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def oidc_settings(key: rsa.RSAPrivateKey) -> OidcSettings:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return OidcSettings(ISSUER, "billbridge", {"keys": [{**public, "kid": "k1",
                                                        "use": "sig", "alg": "RS256"}]})


def person(key: rsa.RSAPrivateKey, roles: Any, *, expires_in: int = 600,
           issuer: str = ISSUER) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "u-42", "email": "fiona@firm.test", "roles": roles,
                       "iss": issuer, "aud": "billbridge", "iat": now,
                       "exp": now + expires_in}, key, algorithm="RS256",
                      headers={"kid": "k1"})


def test_oidc_people_get_the_role_their_claim_grants(engine: Engine,
                                                     signing_key: rsa.RSAPrivateKey) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    client = TestClient(create_app(hub, oidc=oidc_settings(signing_key)))

    def get(path: str, token: str) -> Any:
        return client.get(path, headers={"Authorization": f"Bearer {token}"})

    assert get("/v1/audit", person(signing_key, ["finance"])).status_code == 200
    assert get("/v1/audit", person(signing_key, ["operator"])).status_code == 403
    expired = get("/v1/inbox", person(signing_key, ["admin"], expires_in=-60))
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    wrong_issuer = get("/v1/inbox", person(signing_key, ["admin"], issuer="https://evil/"))
    assert wrong_issuer.status_code == 401
    assert get("/v1/inbox", person(signing_key, ["marketing"])).status_code == 401
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert get("/v1/inbox", person(other_key, ["admin"])).status_code == 401
    # People can log in to the console with the same OIDC token.
    console = TestClient(create_app(hub, oidc=oidc_settings(signing_key)))
    console.post("/console/login", data={"token": person(signing_key, ["operator"])})
    assert "fiona@firm.test" in console.get("/console/").text
    # billbridge's own tokens still work alongside OIDC.
    with engine.begin() as conn:
        _, token = tokens.create(conn, name="ci", role=tokens.Role.AUDITOR,
                                 expires_in=timedelta(hours=1), actor="t", at=datetime.now(UTC))
    assert get("/v1/audit", token).status_code == 200


def test_a_flood_from_one_source_is_limited_with_retry_after(engine: Engine) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    app = create_app(hub, webhooks={"generic": GenericWebhooks("s")},
                     webhook_rate=RateLimit(5, 60, burst=5), open_metrics=True)
    client = TestClient(app)
    body = b'{"time_entry": {"id": "x"}}'
    codes = []
    for _ in range(8):
        stamp = str(int(time.time()))
        codes.append(client.post("/v1/webhooks/generic", content=body, headers={
            "X-Generic-Timestamp": stamp, "X-Generic-Signature": sign("s", stamp, body)}))
    assert [r.status_code for r in codes] == [202] * 5 + [429] * 3
    assert int(codes[-1].headers["Retry-After"]) >= 1
    assert "billbridge_webhooks_rejected_total" in client.get("/metrics").text


def test_no_credential_shows_in_logs_or_api_answers(engine: Engine, tmp_path: Any) -> None:
    ledger_token, webhook_secret = "ledger-SECRET-7f3a9c", "hook-SECRET-51bd02"
    log = io.StringIO()
    configure_logging(stream=log)
    vault = secrets.Vault(secrets.new_key())
    with LedgerEmulator(token=ledger_token) as erp, TimeSourceEmulator() as tool:
        with engine.begin() as conn:
            secrets.save(conn, vault, Connection("ledger", "generic", erp.url,  # type: ignore[attr-defined]
                                                 {"token": ledger_token}),
                         actor="ops", at=datetime.now(UTC))
            secrets.save(conn, vault, Connection("wrong", "generic", erp.url,  # type: ignore[attr-defined]
                                                 {"token": "bad-SECRET-0000"}),
                         actor="ops", at=datetime.now(UTC))
        with engine.connect() as conn:
            good = secrets.load(conn, vault, "ledger")
            bad = secrets.load(conn, vault, "wrong")
        spec = connector("generic")
        assert spec.target is not None
        targets = {"ledger": spec.target(good)}
        hub = Hub(engine, targets, settings=HubSettings(retry=RetryPolicy(base_seconds=0.01,
                                                                          max_attempts=2)))
        hub.activate_config(CONFIG)
        server = HubServer(hub, port=0, webhooks={"generic": GenericWebhooks(webhook_secret)})
        server.start()
        try:
            hub.ingest([project_event(), time_entry("te-1")], source="harvest")
            tool.upsert({"id": "te-2", "worker": "w-bob", "project": "GLX-001", "task": "dev",  # type: ignore[attr-defined]
                         "work_date": "2026-03-02", "hours": "1", "billable": True,
                         "notes": "", "status": "approved"})
            tool.send_webhook(f"{server.url}/v1/webhooks/generic", secret=webhook_secret)  # type: ignore[attr-defined]
            forged = httpx.post(f"{server.url}/v1/webhooks/generic", content=b"{}",
                                headers={"X-Generic-Timestamp": "1",
                                         "X-Generic-Signature": "sha256=00"})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(erp.effects) < 3:  # type: ignore[attr-defined]
                time.sleep(0.05)
            # A target with a wrong credential fails: its error must not echo the token.
            failing = Hub(engine, {"ledger": spec.target(bad)}, settings=HubSettings(
                retry=RetryPolicy(base_seconds=0.01, max_attempts=1)))
            failing.ingest([project_event("OTHER-1")], source="psa")
            failing.run_until_idle()
            with engine.begin() as conn:
                _, admin = tokens.create(conn, name="auditor", role=tokens.Role.ADMIN,
                                         expires_in=timedelta(hours=1), actor="t",
                                         at=datetime.now(UTC))
            auth = {"Authorization": f"Bearer {admin}"}
            answers = [forged.text] + [httpx.get(f"{server.url}{path}", headers=auth).text
                                       for path in ("/v1/inbox", "/v1/outbox",
                                                    "/v1/exceptions", "/v1/audit",
                                                    "/v1/lineage/te-1", "/metrics")]
            with engine.connect() as conn:
                answers.append(str(secrets.listing(conn)))
        finally:
            server.stop()
    everything = log.getvalue() + "\n".join(answers)
    assert len(erp.effects) >= 3  # type: ignore[attr-defined]
    assert "te-1" in everything  # the answers are real
    for credential in (ledger_token, webhook_secret, "bad-SECRET-0000"):
        assert credential not in everything


def test_each_source_is_limited_at_its_own_rate(engine: Engine) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    app = create_app(hub, webhooks={"generic": GenericWebhooks("s"), "psa": GenericWebhooks("s")},
                     webhook_rate=RateLimit(3, 60, burst=3),
                     webhook_rates={"generic": RateLimit(2, 60, burst=2)})
    client = TestClient(app)
    body = b'{"time_entry": {"id": "x"}}'

    def codes(source: str, n: int) -> list[int]:
        found = []
        for _ in range(n):
            stamp = str(int(time.time()))
            found.append(client.post(f"/v1/webhooks/{source}", content=body, headers={
                "X-Generic-Timestamp": stamp,
                "X-Generic-Signature": sign("s", stamp, body)}).status_code)
        return found

    assert codes("generic", 4) == [202, 202, 429, 429]
    assert codes("psa", 5) == [202, 202, 202, 429, 429]  # the default, untouched by generic's


def test_a_door_rate_comes_from_the_connection_settings() -> None:
    assert door_rate({}) == DOOR_RATE
    assert door_rate({"webhook_rate_per_second": "250", "webhook_burst": "500"}) == \
        RateLimit(250.0, 1, burst=500)
    assert door_rate({"webhook_burst": "10"}) == RateLimit(DOOR_RATE.per_second, 1, burst=10)
    with pytest.raises(ValueError, match=r"^webhook_burst must be a positive whole number, "
                                         r"not 'lots'$"):
        door_rate({"webhook_burst": "lots"})
    with pytest.raises(ValueError, match="webhook_rate_per_second must be a positive number"):
        door_rate({"webhook_rate_per_second": "-5"})
