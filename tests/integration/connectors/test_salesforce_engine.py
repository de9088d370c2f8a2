"""Salesforce as the hub's CRM, end to end: Accounts and won Opportunities
polled from the org emulator go through the real engine to an ERP, and the
ERP's ids come back to each Opportunity as ``crm.writeback`` commands while
lost acknowledgements, timeouts and 5xx hit sObject Collections. The org's
own records are then read: every Opportunity holds the ids the ERP gave, none
was created by a write-back, and one deleted meanwhile was not recreated."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from billbridge.connectors.base import IdempotencyMode, RateLimit
from billbridge.connectors.salesforce.client import SalesforceClient
from billbridge.connectors.salesforce.emulator import SalesforceEmulator
from billbridge.connectors.salesforce.source import SalesforceSource
from billbridge.connectors.salesforce.target import SalesforceTarget
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.emulation.tls import self_signed
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.sync import sync
from conftest import CONFIG
from fakes import FakeTarget
from salesforce_org import seed_won_deals

DEALS = 24
GONE = 7  # deleted in Salesforce before its write-back is sent
COLLECTIONS = "/services/data/v61.0/composite/sobjects"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed(Path(tmp_path_factory.mktemp("salesforce-tls")))


@pytest.fixture
def org(cert: tuple[str, str]) -> Iterator[SalesforceEmulator]:
    emulator = SalesforceEmulator(tls=cert)
    seed_won_deals(emulator, DEALS)
    emulator.start()
    yield emulator
    emulator.stop()


def test_write_backs_reach_salesforce_once_each_through_lost_acks_timeouts_and_5xx(
        engine: Engine, org: SalesforceEmulator, cert: tuple[str, str]) -> None:
    clock = ManualClock()
    client = SalesforceClient(org.url, client_id="billbridge", client_secret="s3cret",
                              refresh_token="refresh-token", verify=cert[0], batch_size=10,
                              rate_limit=RateLimit(1000, 1, burst=1000), timeout=0.4)
    erp = FakeTarget("ledger", idempotency=IdempotencyMode.NATIVE)
    crm = SalesforceTarget(client, max_batch=5)
    hub = Hub(engine, {"ledger": erp, "salesforce": crm}, clock=clock, seed=5,
              settings=HubSettings(routes={"erp": "ledger", "crm": "salesforce"},
                                   retry=RetryPolicy(base_seconds=1, cap_seconds=30,
                                                     max_attempts=1000)))
    hub.activate_config(CONFIG)
    deals = {r["Project_Code__c"]: r["Id"] for r in org.objects["Opportunity"].values()}
    gone = deals[f"P-{GONE}"]

    sync(engine, SalesforceSource(client), clock)
    org.delete("Opportunity", gone)
    accounts_before = {i: dict(r) for i, r in org.objects["Account"].items()}
    org.faults.script([
        FaultRule(Fault.LOST_ACK, path_prefix=COLLECTIONS),
        FaultRule(Fault.TIMEOUT, delay=0.6, path_prefix=COLLECTIONS),
        FaultRule(Fault.SERVER_ERROR, status=503, path_prefix=COLLECTIONS),
        FaultRule(Fault.LOST_ACK, path_prefix=COLLECTIONS)])
    org.faults.set_random(seed=3, rates={Fault.LOST_ACK: 0.15, Fault.SERVER_ERROR: 0.1})
    hub.run_until_idle()

    projects = {str(c.payload["code"]): erp.applied[c.idempotency_key]
                for c in erp.effects if c.kind == "project.upsert"}
    customers = {str(c.payload["name"]): erp.applied[c.idempotency_key]
                 for c in erp.effects if c.kind == "customer.upsert"}
    assert len(projects) == DEALS and len(customers) == DEALS and not erp.twins()
    # The org's own records: none created (one deleted), each with the ERP's ids.
    opportunities = org.objects["Opportunity"]
    assert len(opportunities) == DEALS - 1 and gone not in opportunities
    for i in range(DEALS):
        if i == GONE:
            continue
        row = opportunities[deals[f"P-{i}"]]
        assert (row.get("BillBridge_ERP_Project_Id__c"), row.get("BillBridge_Project_Code__c"),
                row.get("BillBridge_ERP_Customer_Id__c")) == (
            projects[f"P-{i}"], f"P-{i}", customers[f"Client {i}"])
    # Accounts are read, never written: the ERP owns the customer master.
    assert {i: {k: v for k, v in r.items()} for i, r in org.objects["Account"].items()} \
        == accounts_before
    # Each write-back is the same absolute values however often it was sent.
    values = Counter((record_id, fields.get("BillBridge_ERP_Project_Id__c"))
                     for sobject, record_id, fields in org.writes if sobject == "Opportunity")
    assert set(values) == {(deals[f"P-{i}"], projects[f"P-{i}"])
                           for i in range(DEALS) if i != GONE}
    assert any(n > 1 for n in values.values()), "no write-back was ever sent twice"
    injected = org.faults.injected
    assert injected[Fault.LOST_ACK] >= 2 and injected[Fault.TIMEOUT] >= 1
    assert injected[Fault.SERVER_ERROR] >= 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE status NOT IN "
                                 "('done', 'failed')")).scalar() == 0
        problems = conn.execute(text("SELECT reason, message FROM exceptions")).all()
    assert [p.reason for p in problems] == ["TARGET_REJECTED"]
    assert f"no Opportunity {gone} in Salesforce" in problems[0].message
