"""Trust boundaries, findings 1 and 2: a token submits only the sources and
event types it is bound to, and nobody outside submits the hub's own or the
ERP's events; `serve` opens no webhook door with a built-in secret."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from billbridge.cli.app import app as cli
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine, migrate
from billbridge.store.tables import inbox
from billbridge.web import create_app
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget


@pytest.fixture
def hub(engine: Engine) -> Hub:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    return hub


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as test:
        yield test


def token(hub: Hub, role: tokens.Role, scope: tokens.Scope | None = None) -> dict[str, str]:
    with hub.engine.begin() as conn:
        _, made = tokens.create(conn, name=f"{role.value}-push", role=role, scope=scope,
                                expires_in=timedelta(hours=1), actor="t", at=datetime.now(UTC))
    return {"Authorization": f"Bearer {made}"}


def stored(hub: Hub) -> int:
    with hub.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())


def test_no_token_submits_erp_origin_or_hub_events(hub: Hub, client: TestClient) -> None:
    paid = {"type": "invoice.status_changed", "id": "inv-1:paid", "at": "2026-03-31T10:00:00Z",
            "data": {"invoice": "inv-1", "status": "paid"}}
    confirmed = {"type": "posting.confirmed", "id": "c-1", "at": "2026-03-31T10:00:00Z",
                 "data": {"kind": "project.upsert", "record": "proj_1", "external_id": "X-1"}}
    ingest = token(hub, tokens.Role.INGEST, tokens.Scope.of(["ledger"], ["time_entry.upserted"]))
    admin = token(hub, tokens.Role.ADMIN, tokens.Scope.of(["ledger"], ["time_entry.upserted"]))
    for who in (ingest, admin):
        answer = client.post("/v1/events/ledger", json=[paid], headers=who)
        assert answer.status_code == 403 and answer.json()["code"] == "OUT_OF_SCOPE", answer.text
        assert "never accepted from outside" in answer.json()["message"]
        hub_own = client.post("/v1/events/billbridge", json=[confirmed], headers=who)
        assert hub_own.status_code == 403 and "hub's own" in hub_own.json()["message"]
    assert stored(hub) == 0
    # Nor can a token be made that would carry them.
    for scope in ((["billbridge"], ["billing.run"]), (["ledger"], ["invoice.status_changed"]),
                  (["ledger"], ["posting.confirmed"])):
        with pytest.raises(tokens.TokenError):
            tokens.Scope.of(*scope)


def test_a_token_submits_only_its_sources_and_event_types(hub: Hub, client: TestClient) -> None:
    harvest = token(hub, tokens.Role.INGEST, tokens.Scope.of(["harvest"],
                                                             ["time_entry.upserted"]))
    accepted = client.post("/v1/events/harvest", json=[time_entry("te-1")], headers=harvest)
    assert accepted.status_code == 202 and \
        accepted.json()["results"][0]["status"] == "accepted", accepted.text
    other_type = client.post("/v1/events/harvest", json=[time_entry("te-2"), project_event()],
                             headers=harvest)
    assert other_type.status_code == 403 and "--event-type" in other_type.json()["message"]
    other_source = client.post("/v1/events/psa", json=[time_entry("te-3")], headers=harvest)
    assert other_source.status_code == 403 and "--source" in other_source.json()["message"]
    unscoped = client.post("/v1/events/harvest", json=[time_entry("te-4")],
                           headers=token(hub, tokens.Role.ADMIN))
    assert unscoped.status_code == 403 and "--source" in unscoped.json()["message"]
    assert stored(hub) == 1  # te-1 alone: a refused call stores none of its events


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)


def test_an_ingest_token_is_made_only_with_its_sources_and_event_types(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        _, admin = tokens.create(conn, name="root", role=tokens.Role.ADMIN, actor="t",
                                 expires_in=timedelta(hours=1), at=datetime.now(UTC))
    engine.dispose()
    db, env = ["--database-url", url], {"BILLBRIDGE_TOKEN": admin}
    refusals = {
        "--source": run("token", "create", "--role", "ingest", "--name", "a", *db, env=env),
        "--event-type": run("token", "create", "--role", "ingest", "--name", "b",
                            "--source", "harvest", *db, env=env),
        "--source billbridge": run("token", "create", "--role", "ingest", "--name", "c",
                                   "--source", "billbridge", "--event-type", "billing.run", *db,
                                   env=env),
        "invoice.status_changed": run("token", "create", "--role", "ingest", "--name", "d",
                                      "--source", "ledger", "--event-type",
                                      "invoice.status_changed", *db, env=env)}
    for named, result in refusals.items():
        assert result.exit_code != 0 and named in result.output, (named, result.output)
        assert "Traceback" not in result.output
    made = run("token", "create", "--role", "ingest", "--name", "e", "--source", "harvest",
               "--event-type", "time_entry.upserted", *db, env=env)
    assert made.exit_code == 0 and made.output.strip().splitlines()[-1].startswith("bb_")


def test_serve_refuses_to_open_a_webhook_door_without_a_secret(tmp_path: Path) -> None:
    result = run("serve", "--database-url", f"sqlite:///{tmp_path / 'hub.db'}", "--no-engine",
                 env={"BILLBRIDGE_WEBHOOK_SECRET": ""})
    assert result.exit_code == 2, result.output
    assert "BILLBRIDGE_WEBHOOK_SECRET" in result.output and len(result.output.splitlines()) == 1
