"""Vendor drift, end to end: the Salesforce emulator answers in a changed
shape (a field renamed, a new field, a type changed, and on two deals a
required field renamed). The read goes on: the drift shows in /metrics'
counter, on the console's Vendor contracts page and as an alert, with the
right counts; the deals that still map are activated and their time billed
at the ERP, and the two that do not are exceptions that name their drift."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from billbridge.connectors.base import RateLimit
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.source import SalesforceSource
from billbridge.engine import exception_queue, tokens
from billbridge.engine.alerts import evaluate
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.sync import sync
from billbridge.web import create_app
from conftest import CONFIG, time_entry
from fakes import FakeTarget
from salesforce_org import seed_won_deals

DEALS = 6
UNMAPPED = {"P-4", "P-5"}  # their Project_Code__c comes back as Project_Key__c
HOOK = "http://alerts.example.invalid/hook"


@pytest.fixture
def org() -> Iterator[SalesforceEmulator]:
    emulator = SalesforceEmulator()
    seed_won_deals(emulator, DEALS)
    emulator.start()
    yield emulator
    emulator.stop()


def changed_shape(sobject: str, row: dict[str, Any]) -> dict[str, Any]:
    """The org after its vendor changed: Tax_Id__c renamed TaxId__c, Region__c new,
    Amount a string, and two deals' Project_Code__c renamed Project_Key__c."""
    if "Tax_Id__c" in row:
        row["TaxId__c"] = row.pop("Tax_Id__c")
    if sobject == "Opportunity":
        row["Region__c"] = "AMER"
        row["Amount"] = f"{row['Amount']:.2f}"
        if row.get("Project_Code__c") in UNMAPPED:
            row["Project_Key__c"] = row.pop("Project_Code__c")
    return row


def drift_counter(record_type: str, field: str, kind: str) -> float:
    return REGISTRY.get_sample_value("billbridge_vendor_drift_total", {
        "connection": "salesforce", "record_type": record_type, "field": field,
        "kind": kind}) or 0.0


EXPECTED = {  # (record type, field, kind) → findings in one poll of six deals
    ("Account", "Tax_Id__c", "missing_optional"): DEALS,
    ("Account", "TaxId__c", "unknown_field"): DEALS,
    ("Opportunity", "Account.Tax_Id__c", "missing_optional"): DEALS,
    ("Opportunity", "Account.TaxId__c", "unknown_field"): DEALS,
    ("Opportunity", "Region__c", "unknown_field"): DEALS,
    ("Opportunity", "Amount", "type_changed"): DEALS,
    ("Opportunity", "Project_Code__c", "missing_required"): len(UNMAPPED),
    ("Opportunity", "Project_Key__c", "unknown_field"): len(UNMAPPED),
}


def test_a_changed_response_shape_is_counted_shown_and_alerted_while_billing_goes_on(
        engine: Engine, org: SalesforceEmulator) -> None:
    clock = ManualClock()
    client = SalesforceClient(org.url, client_id="billbridge", client_secret="s3cret",
                              refresh_token="refresh-token",
                              rate_limit=RateLimit(1000, 1, burst=1000))
    erp = FakeTarget("ledger")
    hub = Hub(engine, {"ledger": erp}, clock=clock, seed=5,
              settings=HubSettings(routes={"erp": "ledger"}))
    hub.activate_config({**CONFIG, "alerts": {"webhook_url": HOOK}})
    before = {key: drift_counter(*key) for key in EXPECTED}

    org.reshape = changed_shape
    result = sync(engine, SalesforceSource(client), clock)
    assert result.malformed == len(UNMAPPED) and result.accepted == 2 * DEALS - len(UNMAPPED)
    assert result.drift == sum(EXPECTED.values())
    hub.ingest([time_entry(f"te-{i}", project=f"P-{i}") for i in range(DEALS)],
               source="harvest")
    hub.run_until_idle()

    # The ERP: the deals that still map are billed (8 h each), the others are not.
    billed = {str(c.payload["project"]) for c in erp.effects if c.kind == "time_charge.post"}
    assert billed == {f"P-{i}" for i in range(DEALS)} - UNMAPPED
    with engine.connect() as conn:
        problems = [e for e in exception_queue.list_open(conn)
                    if e.reason == "MALFORMED_PAYLOAD"]
    assert len(problems) == len(UNMAPPED)
    assert all("vendor drift: " in p.message and "required field Project_Code__c missing"
               in p.message for p in problems)

    # The alert: one, for the connection, posted once.
    posted: list[tuple[str, dict[str, Any]]] = []
    fired = evaluate(engine, clock.now(), poster=lambda url, body: posted.append((url, body)))
    assert [a.key for a in fired] == ["drift:salesforce"]
    assert posted[0][0] == HOOK and f"{sum(EXPECTED.values())} finding(s)" in \
        posted[0][1]["message"] and f"{len(EXPECTED)} field change(s)" in posted[0][1]["message"]

    # The console page: a row per record type, field and kind with its count.
    with engine.begin() as conn:
        _, token = tokens.create(conn, name="fiona", role=tokens.Role.FINANCE,
                                 expires_in=timedelta(hours=1), actor="test",
                                 at=datetime.now(UTC))
    with TestClient(create_app(hub)) as console:
        assert console.get("/console/contracts").url.path == "/console/login"
        console.post("/console/login", data={"token": token})
        page = console.get("/console/contracts")
        metrics = console.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    scraped = {(s.labels["record_type"], s.labels["field"], s.labels["kind"]): s.value
               for family in text_string_to_metric_families(metrics.text)
               if family.name == "billbridge_vendor_drift" for s in family.samples
               if s.name.endswith("_total") and s.labels["connection"] == "salesforce"}
    assert page.status_code == 200 and page.url.path == "/console/contracts"
    rows = page.text.split('<table id="drift">')[1].split("</table>")[0].split("<tr>")[2:]
    shown = {}
    for row in rows:
        cells = [c.split(">", 1)[1].split("<", 1)[0] for c in row.split("<td")[1:]]
        shown[(cells[2], cells[3], cells[4])] = int(cells[7])
    assert shown == EXPECTED
    assert "v61.0" in page.text and "Vendor contracts" in page.text
    assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=", page.text)  # the CSP holds
    # /metrics: each field and kind counted once per record read.
    assert {key: scraped[key] - before[key] for key in EXPECTED} == EXPECTED


def test_an_answer_in_the_contracts_shape_is_no_drift(
        engine: Engine, org: SalesforceEmulator) -> None:
    client = SalesforceClient(org.url, client_id="billbridge", client_secret="s3cret",
                              refresh_token="refresh-token",
                              rate_limit=RateLimit(1000, 1, burst=1000))
    result = sync(engine, SalesforceSource(client), ManualClock())
    assert (result.accepted, result.malformed, result.drift) == (2 * DEALS, 0, 0)
