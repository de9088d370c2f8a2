"""Dynamics 365 Sales as the hub's CRM, end to end: won opportunities polled
from the Dataverse emulator go through the real engine to an ERP, and the
ERP's ids come back to Dynamics as write-backs while lost acknowledgements,
timeouts, 5xx and 429s are injected. The emulator's own rows are then read:
every opportunity and account carries the ids the ERP gave, none was created
by a write-back, and an opportunity deleted meanwhile was not recreated."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from billbridge.connectors.base import IdempotencyMode
from billbridge.connectors.dynamics_sales.client import DataverseClient
from billbridge.connectors.dynamics_sales.emulator import API, DataverseEmulator
from billbridge.connectors.dynamics_sales.emulator.company import USD, won
from billbridge.connectors.dynamics_sales.source import DynamicsSource
from billbridge.connectors.dynamics_sales.target import DynamicsTarget
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.sync import sync
from conftest import CONFIG
from fakes import FakeTarget

DEALS = 24
GONE = 7  # deleted in Dynamics before its write-back is sent


def opp_id(i: int) -> str:
    return f"0bb00000-0000-4000-8000-{i:012d}"


def acc_id(i: int) -> str:
    return f"a11ce000-0000-4000-8000-{i:012d}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def dataverse(clock: ManualClock) -> Iterator[DataverseEmulator]:
    emulator = DataverseEmulator(company=False, clock=clock.monotonic)
    emulator.seed(transactioncurrencies=[{"transactioncurrencyid": USD,
                                          "isocurrencycode": "USD"}],
                  accounts=[{"accountid": acc_id(i), "name": f"Client {i}",
                             "address1_country": "US", "bb_taxid": f"TAX-{i}",
                             "_transactioncurrencyid_value": USD} for i in range(DEALS)],
                  opportunities=[won(opp_id(i), acc_id(i), f"P-{i}", name=f"Deal {i}")
                                 for i in range(DEALS)])
    emulator.start()
    yield emulator
    emulator.stop()


def test_write_backs_reach_dynamics_once_each_through_lost_acks_timeouts_5xx_and_429s(
        engine: Engine, dataverse: DataverseEmulator, clock: ManualClock) -> None:
    client = DataverseClient(dataverse.url, tenant="billbridge-tenant",
                             client_id="billbridge-app", client_secret="dataverse-secret",
                             authority=dataverse.url, clock=clock, timeout=0.4)
    erp = FakeTarget("ledger", idempotency=IdempotencyMode.NATIVE)
    crm = DynamicsTarget(client, max_batch=5)
    hub = Hub(engine, {"ledger": erp, "dynamics": crm}, clock=clock, seed=5,
              settings=HubSettings(routes={"erp": "ledger", "crm": "dynamics"},
                                   retry=RetryPolicy(base_seconds=1, cap_seconds=30,
                                                     max_attempts=1000)))
    hub.activate_config(CONFIG)
    rows_before = len(dataverse.all_rows("opportunities")), len(dataverse.all_rows("accounts"))

    sync(engine, DynamicsSource(client, page_size=10), clock)
    dataverse.delete("opportunities", opp_id(GONE))
    batch = f"{API}/$batch"
    dataverse.faults.script([
        FaultRule(Fault.LOST_ACK, path_prefix=batch),
        FaultRule(Fault.TIMEOUT, delay=0.6, path_prefix=batch),
        FaultRule(Fault.RATE_LIMITED, retry_after=7, path_prefix=batch),
        FaultRule(Fault.SERVER_ERROR, status=503, path_prefix=batch),
        FaultRule(Fault.LOST_ACK, path_prefix=batch)])
    dataverse.faults.set_random(seed=3, rates={Fault.LOST_ACK: 0.15, Fault.RATE_LIMITED: 0.1,
                                               Fault.SERVER_ERROR: 0.1})
    hub.run_until_idle()

    projects = {str(c.payload["code"]): erp.applied[c.idempotency_key]
                for c in erp.effects if c.kind == "project.upsert"}
    customers = {str(c.payload["name"]): erp.applied[c.idempotency_key]
                 for c in erp.effects if c.kind == "customer.upsert"}
    assert len(projects) == DEALS and not erp.twins()
    # Dynamics' own rows: none created (one deleted), each with the ERP's ids.
    opportunities = {r["opportunityid"]: r for r in dataverse.all_rows("opportunities")}
    accounts = {r["accountid"]: r for r in dataverse.all_rows("accounts")}
    assert (len(opportunities) + 1, len(accounts)) == rows_before
    assert opp_id(GONE) not in opportunities
    for i in range(DEALS):
        if i == GONE:
            continue
        row = opportunities[opp_id(i)]
        assert (row.get("bb_erpprojectid"), row.get("bb_projectcode")) == (projects[f"P-{i}"],
                                                                           f"P-{i}")
        assert accounts[acc_id(i)].get("bb_erpcustomerid") == customers[f"Client {i}"]
    # Each write-back applied as one change set: resends repeat the same values.
    values = Counter((row_id, fields.get("bb_erpprojectid"))
                     for table, row_id, fields in dataverse.writes
                     if table == "opportunities" and "bb_erpprojectid" in fields)
    assert set(values) == {(opp_id(i), projects[f"P-{i}"]) for i in range(DEALS) if i != GONE}
    injected = dataverse.faults.injected
    assert injected[Fault.LOST_ACK] >= 2 and injected[Fault.TIMEOUT] >= 1
    assert injected[Fault.RATE_LIMITED] >= 1 and injected[Fault.SERVER_ERROR] >= 1
    assert any(n > 1 for n in values.values()), "no write-back was ever sent twice"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE status NOT IN "
                                 "('done', 'failed')")).scalar() == 0
        problems = conn.execute(text("SELECT reason, message FROM exceptions")).all()
    assert [p.reason for p in problems] == ["TARGET_REJECTED"]
    assert f"no opportunity {opp_id(GONE)} in Dynamics" in problems[0].message
