"""Invoices and billing runs over /v1, as finance works them: preview a period
end, commit it (201), commit it again (200, nothing new), and find at the ERP
emulator one invoice of the previewed total; list invoices by filter with
totals per currency and open one down to its time entries; the routes are in
the published OpenAPI document with their problem bodies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from billbridge.connectors.generic.emulator.server import LedgerEmulator
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Role
from billbridge.web import create_app
from billing_story import INVOICE, PERIOD_END, TOTAL, erp_invoices, story_hub

on_sqlite = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def make_token(hub: Hub, role: Role, name: str) -> str:
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name=name, role=role, expires_in=timedelta(days=1),
                                 actor="test", at=datetime.now(UTC))
    return token


@pytest.fixture
def hub(engine: Engine, ledger_erp: LedgerEmulator) -> Hub:
    return story_hub(engine, ledger_erp)


@pytest.fixture
def client(hub: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(hub)) as test_client:
        yield test_client


def test_finance_previews_commits_once_and_the_erp_holds_one_invoice(
        hub: Hub, client: TestClient, ledger_erp: LedgerEmulator) -> None:
    paul = {"Authorization": f"Bearer {make_token(hub, Role.FINANCE, 'paul')}"}
    body = {"period_end": PERIOD_END}
    preview = client.post("/v1/billing/preview", json=body, headers=paul)
    assert preview.status_code == 200, preview.text
    seen = preview.json()
    assert [i["id"] for i in seen["invoices"]] == [INVOICE]
    assert seen["totals"] == {"USD": str(TOTAL)}
    assert [(h["reason"], h["record"]) for h in seen["held"]] == [("NO_RATE", "te-3")]
    assert erp_invoices(ledger_erp) == []

    first = client.post("/v1/billing/commit", json=body, headers=paul)
    assert first.status_code == 201 and first.json()["new"] is True
    hub.run_until_idle()
    again = client.post("/v1/billing/commit", json=body, headers=paul)
    assert again.status_code == 200 and again.json()["new"] is False
    assert "nothing new" in again.json()["message"]
    hub.run_until_idle()
    [held] = erp_invoices(ledger_erp)
    assert Decimal(held["data"]["total"]) == TOTAL

    [run] = client.get("/v1/billing/runs", headers=paul).json()
    assert (run["requested_by"], run["status"], run["invoices"], run["totals"]) == \
        ("paul", "done", [INVOICE], {"USD": str(TOTAL)})
    assert client.get(f"/v1/billing/runs/{run['id']}", headers=paul).json() == run


def test_invoices_are_filtered_and_drilled_down_over_the_api(
        hub: Hub, client: TestClient, ledger_erp: LedgerEmulator) -> None:
    paul = {"Authorization": f"Bearer {make_token(hub, Role.FINANCE, 'paul')}"}
    client.post("/v1/billing/commit", json={"period_end": PERIOD_END}, headers=paul)
    hub.run_until_idle()
    listed = client.get("/v1/invoices?status=posted&currency=USD&project=GLX-001"
                        f"&period_end={PERIOD_END}", headers=paul).json()
    assert [i["id"] for i in listed["items"]] == [INVOICE]
    assert listed["totals"] == {"USD": str(TOTAL)}
    assert client.get("/v1/invoices?status=paid", headers=paul).json() == \
        {"items": [], "totals": {}}
    shown = client.get(f"/v1/invoices/{INVOICE}", headers=paul).json()
    [held] = erp_invoices(ledger_erp)
    assert shown["invoice"]["erp_id"] == held["id"]
    entries = {c["record"]: c for line in shown["lines"] for c in line["charges"]}
    assert entries["te-2"]["amount"] == "1125.00" and entries["te-2"]["rate"] == "150.00"
    assert entries["te-2"]["priced_by"] == "harvest/te-2:v1"
    assert entries["ex-1"]["fx_rate"] == "1.10"
    assert [s["status"] for s in shown["history"]] == ["draft", "posted"]


@on_sqlite
def test_the_invoice_and_billing_routes_are_documented_with_their_problems(
        client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    for path, verb in (("/v1/invoices", "get"), ("/v1/invoices/{invoice_id}", "get"),
                       ("/v1/billing/preview", "post"), ("/v1/billing/commit", "post"),
                       ("/v1/billing/runs", "get"), ("/v1/billing/runs/{run_id}", "get")):
        operation = paths[path][verb]
        assert operation["tags"] in (["invoices"], ["billing"])
        assert operation["description"] or operation["summary"]
        assert "application/problem+json" in operation["responses"]["422"]["content"]
    assert "InvoiceDetail" in document["components"]["schemas"]
    assert "200" in paths["/v1/billing/commit"]["post"]["responses"]
