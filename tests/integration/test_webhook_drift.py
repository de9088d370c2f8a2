"""Vendor drift on webhooks: a delivery whose records depart from the
connector's contract is stored as before, and the drift it showed is counted
(/metrics) and kept per connection, record type, field and kind (the console's
Vendor contracts page reads it), in the delivery's own transaction. The
generic source's deliveries carry the time entry itself; a Salesforce
Outbound Message read without an API client carries the sObject's fields as
text, checked as text."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from billbridge.connectors.base import WebhookRequest
from billbridge.connectors.contracts import Drift, DriftKind
from billbridge.connectors.generic.webhooks import GenericWebhooks, sign
from billbridge.connectors.salesforce.webhooks import (
    SalesforceOutboundMessages,
    outbound_message_xml,
)
from billbridge.engine import drift
from billbridge.engine.hub import Hub
from billbridge.web import create_app
from fakes import FakeTarget

ENTRY = {"id": "te-1", "worker": "w-alice", "project": "GLX-001", "task": "dev",
         "work_date": "2026-03-02", "hours": "8", "billable": True, "notes": "",
         "status": "approved", "version": 1, "updated_at": "2026-03-02T18:00:00+00:00"}


def counted(field: str, kind: str) -> float:
    return REGISTRY.get_sample_value("billbridge_vendor_drift_total", {
        "connection": "timesheets", "record_type": "time_entry", "field": field,
        "kind": kind}) or 0.0


def deliver(client: TestClient, body: dict[str, Any]) -> Any:
    raw = json.dumps(body).encode()
    now = str(int(time.time()))
    return client.post("/v1/webhooks/timesheets", content=raw, headers={
        "X-Generic-Timestamp": now, "X-Generic-Signature": sign("s3cret", now, raw)})


def test_a_delivered_entry_in_a_changed_shape_is_stored_and_its_drift_counted_and_kept(
        engine: Engine) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    keys = [("hours", "type_changed"), ("approver", "unknown_field"),
            ("worker", "missing_required")]
    before = {key: counted(*key) for key in keys}
    changed = [{**ENTRY, "id": f"te-{i}", "hours": 8, "approver": "w-boss"} for i in (1, 2)]
    no_worker = {k: v for k, v in ENTRY.items() if k != "worker"} | {"id": "te-3"}
    with TestClient(create_app(hub, webhooks={
            "timesheets": GenericWebhooks("s3cret", source="timesheets")})) as client:
        answer = deliver(client, {"events": [*({"time_entry": e} for e in changed),
                                             {"time_entry": no_worker}]})
        clean = deliver(client, {"time_entry": {**ENTRY, "id": "te-4"}})
    # The read goes on: every entry is answered, the three that map stored.
    assert answer.status_code == clean.status_code == 202
    assert [r["status"] for r in answer.json()["results"]] == \
        ["accepted", "accepted", "malformed"]
    # Counted per field and kind, once per record read; the clean one adds nothing.
    assert {key: counted(*key) - before[key] for key in keys} == {
        ("hours", "type_changed"): 2, ("approver", "unknown_field"): 2,
        ("worker", "missing_required"): 1}
    with engine.connect() as conn:
        kept = {(r["record_type"], r["field"], r["kind"]): r for r in drift.rows(
            conn, "timesheets")}
    assert set(kept) == {("time_entry", field, kind) for field, kind in keys}
    hours = kept[("time_entry", "hours", "type_changed")]
    assert (hours["count"], hours["expected"], hours["seen"], hours["api_version"]) == \
        (2, "string", "number", "v1")
    assert '"approver": "w-boss"' in hours["sample"]


def test_an_outbound_message_read_without_a_client_is_checked_as_text() -> None:
    heard: list[Drift] = []
    door = SalesforceOutboundMessages("00D000000000001AAA")
    door.contracts.observer = heard.append
    deal = {"Id": "006000000000001AAA", "SystemModstamp": "2026-03-02T10:00:00.000+0000",
            "StageName": "Closed Won", "IsWon": True, "AccountId": "001000000000001AAA",
            "Name": "Globex deal", "Amount": 1000.0, "CloseDate": "2026-03-02",
            "CurrencyIsoCode": "USD", "Billing_Model__c": "time_and_materials",
            "Legal_Entity__c": "US01", "Contract_Start__c": "2026-03-01",
            "Contract_End__c": None, "Rate_Card__c": "rc-standard", "Budget_Cap__c": None,
            "Project_Code__c": "GLX-001", "Project_Name__c": "Globex"}
    body = outbound_message_xml("00D000000000001AAA", "Opportunity", [deal])
    door.events(WebhookRequest("POST", "http://hub/v1/webhooks/sf", {}, body))
    assert heard == []  # every value is text on this wire: no type is "changed"
    renamed = {("Project_Key__c" if k == "Project_Code__c" else k): v for k, v in deal.items()}
    body = outbound_message_xml("00D000000000001AAA", "Opportunity", [renamed])
    [event] = door.events(WebhookRequest("POST", "http://hub/v1/webhooks/sf", {}, body))
    [seen] = heard
    assert {(f.field, f.kind) for f in seen.findings} >= {
        ("Project_Code__c", DriftKind.MISSING_REQUIRED),
        ("Project_Key__c", DriftKind.UNKNOWN_FIELD)}
    assert "vendor drift: required field Project_Code__c missing" in event.reason
