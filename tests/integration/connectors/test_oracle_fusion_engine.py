"""Oracle Fusion Cloud ERP as the hub's ERP, end to end: won deals, 1,000
approved time entries and a billing run go through the real engine to the
Fusion emulator over HTTP, with lost acknowledgements, timeouts, 5xx and
429s injected. The emulator's own items are then read: one party, one
project, one cost per charge (imported or not) and one invoice per project,
none missing and none twice. The emulator takes a repeated cost reference
or transaction number (the facts leave Fusion's behaviour unverified), so
only the connector's look-up before a resend keeps them single. And
reconcile, reading Fusion's live costs, reports a cost deleted in Fusion as
a missing posting.

A manual clock drives backoff and rate pacing, so the waiting takes no real time."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from xero_story import BILLING_RUN, ENTRIES, PROJECTS, TAXED, entries, won

from billbridge.connectors.oracle_fusion.client import FSCM, OracleClient
from billbridge.connectors.oracle_fusion.emulator import OracleEmulator
from billbridge.connectors.oracle_fusion.mapping import OracleSettings
from billbridge.connectors.oracle_fusion.target import OracleTarget
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.engine.reconcile import erp_ledgers, reconcile_three_ways
from billbridge.store.db import make_engine, migrate

CHARGE = re.compile(r"^billbridge (tc_\S+) .*\[bb:([0-9a-f]+)\]$")
BATCH = "/fscmRestApi/resources"  # the batch root; the prefix of every fscm call too
PARTIES = "/crmRestApi/"
PROJECTS_PATH = f"{FSCM}/projects"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def oracle() -> Iterator[OracleEmulator]:
    with OracleEmulator() as emulator:
        yield emulator


def make_hub(engine: Engine, oracle: OracleEmulator, clock: ManualClock, timeout: float,
             max_batch: int = 100, use_batch: bool = True) -> tuple[Hub, OracleTarget]:
    client = OracleClient(oracle.url, username=oracle.username, password=oracle.password,
                          clock=clock, timeout=timeout)
    target = OracleTarget(client, OracleSettings(tax_codes={"US-EXEMPT": "EXEMPT"},
                                                 use_batch=use_batch),
                          max_batch=max_batch, today=lambda: clock.now().date())
    hub = Hub(engine, {"oracle-fusion": target}, clock=clock, seed=11,
              settings=HubSettings(routes={"erp": "oracle-fusion"},
                                   retry=RetryPolicy(base_seconds=1, cap_seconds=30,
                                                     max_attempts=1000)))
    hub.activate_config(TAXED)
    return hub, target


def costs(oracle: OracleEmulator) -> list[dict[str, object]]:
    return oracle.all("unprocessedProjectCosts") + oracle.all("projectCosts")


def assert_exactly_once(oracle: OracleEmulator, count: int = ENTRIES) -> None:
    parties = Counter(p["PartyNumber"] for p in oracle.all("hubOrganizations")
                      if str(p["PartyNumber"]).startswith("cust_"))
    assert parties == {f"cust_hubspot_co-{i}": 1 for i in range(PROJECTS)}
    projects = Counter(p["ProjectNumber"] for p in oracle.all("projects")
                       if str(p["ProjectNumber"]).startswith("P-"))
    assert projects == {f"P-{i}": 1 for i in range(PROJECTS)}
    charges = Counter(CHARGE.match(str(c["ExpenditureComment"])).group(1)  # type: ignore[union-attr]
                      for c in costs(oracle))
    assert len(charges) == count, f"{count - len(charges)} charges missing"
    assert set(charges.values()) == {1}, \
        f"charges booked twice: {[c for c, n in charges.items() if n > 1][:5]}"
    invoices = Counter(i["TransactionNumber"] for i in oracle.all("receivablesInvoices"))
    assert invoices == {f"inv_P-{i}_2026-03-31": 1 for i in range(PROJECTS)}
    lines = {i["TransactionNumber"]: len(i["receivablesInvoiceLines"])
             for i in oracle.all("receivablesInvoices")}
    assert set(lines.values()) == {count // PROJECTS}


def run_story(hub: Hub, oracle: OracleEmulator, count: int) -> None:
    oracle.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=PARTIES),
                          FaultRule(Fault.LOST_ACK, path_prefix=PROJECTS_PATH)])
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.run_until_idle()  # customers and projects: an acknowledgement of each lost
    oracle.faults.script([
        FaultRule(Fault.LOST_ACK, path_prefix=BATCH),
        FaultRule(Fault.TIMEOUT, delay=2.0, path_prefix=BATCH),
        FaultRule(Fault.RATE_LIMITED, retry_after=7, path_prefix=BATCH),
        FaultRule(Fault.LOST_ACK, path_prefix=BATCH),
        FaultRule(Fault.SERVER_ERROR, status=503, path_prefix=BATCH)])
    oracle.faults.set_random(seed=4, rates={Fault.LOST_ACK: 0.08, Fault.RATE_LIMITED: 0.05,
                                            Fault.SERVER_ERROR: 0.03})
    hub.ingest(entries(count), source="harvest")
    hub.run_until_idle()
    oracle.import_costs()  # Fusion imports what arrived; resends must look there too
    oracle.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=BATCH),
                          FaultRule(Fault.RATE_LIMITED, retry_after=3, path_prefix=BATCH)])
    hub.ingest([BILLING_RUN], source="operator")
    hub.run_until_idle()


def assert_settled(engine: Engine, oracle: OracleEmulator, target: OracleTarget) -> None:
    injected = oracle.faults.injected
    assert injected[Fault.LOST_ACK] >= 4 and injected[Fault.TIMEOUT] >= 1
    assert injected[Fault.RATE_LIMITED] >= 2 and injected[Fault.SERVER_ERROR] >= 1
    assert target.found_by_reference > 0, "no resend had to find its record"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE status != 'done'")
                            ).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM exceptions")).scalar() == 0


def test_one_of_each_record_reaches_fusion_through_lost_acks_timeouts_5xx_and_429s(
        engine: Engine, oracle: OracleEmulator, clock: ManualClock) -> None:
    # Shorter than the scripted delay, so that call times out; long enough that
    # a busy machine's ordinary batch of 100 does not.
    hub, target = make_hub(engine, oracle, clock, timeout=1.5)
    count = ENTRIES if engine.dialect.name == "sqlite" else ENTRIES // 5
    run_story(hub, oracle, count)
    assert_exactly_once(oracle, count)
    assert_settled(engine, oracle, target)


def test_one_post_a_record_when_batches_are_off_is_exactly_once_too(
        tmp_path: Path, oracle: OracleEmulator, clock: ManualClock) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    hub, target = make_hub(engine, oracle, clock, timeout=1.5, use_batch=False)
    run_story(hub, oracle, ENTRIES // 5)
    assert_exactly_once(oracle, ENTRIES // 5)
    assert_settled(engine, oracle, target)
    assert oracle.batches == []


def test_calls_for_1000_time_charges_are_within_ten_percent_of_the_batch_minimum(
        tmp_path: Path, oracle: OracleEmulator, clock: ManualClock) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    hub, target = make_hub(engine, oracle, clock, timeout=10.0)
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.run_until_idle()
    before = oracle.api_calls()
    hub.ingest(entries(), source="harvest")
    hub.run_until_idle()
    calls = oracle.api_calls() - before
    minimum = math.ceil(ENTRIES / target.max_batch)
    hub.ingest([BILLING_RUN], source="operator")
    hub.run_until_idle()
    assert_exactly_once(oracle)
    print(f"\noracle-fusion: {before} calls for {PROJECTS} customers and projects; {calls} "
          f"calls for {ENTRIES} time charges ({len(oracle.batches) - 1} batches; minimum "
          f"{minimum} at {target.max_batch} a call); {oracle.api_calls() - before - calls} "
          f"calls for {PROJECTS} invoices")
    assert calls <= minimum * 1.1


def test_reconcile_reads_fusion_costs_and_a_deleted_cost_is_a_missing_posting(
        engine: Engine, oracle: OracleEmulator, clock: ManualClock) -> None:
    from conftest import time_entry

    hub, _target = make_hub(engine, oracle, clock, timeout=5)
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.ingest(entries(40), source="harvest")
    hub.run_until_idle()
    oracle.import_costs()
    hub.ingest([time_entry("te-7", project="P-2", hours="1.5", version=2,
                           status="rejected")], source="harvest")  # a reversal
    hub.run_until_idle()

    def findings() -> list[tuple[str, str, object, object]]:
        with engine.connect() as conn:
            result = reconcile_three_ways(conn, period_end=date(2026, 2, 28), now=clock.now(),
                                          ledgers=erp_ledgers(hub))
        assert [e.error for e in result.erps] == [None]
        return sorted((f.kind, f.record, f.amount, f.currency) for f in result.findings)

    assert findings() == []
    by_charge = {CHARGE.match(str(c["ExpenditureComment"])).group(1): c  # type: ignore[union-attr]
                 for c in oracle.all("projectCosts")
                 if not str(c["ExpenditureComment"]).startswith("billbridge rev")}
    oracle.remove("projectCosts", str(by_charge["tc_te-3"]["projectCostsUniqID"]))
    assert findings() == [("ERP posting missing", "tc_te-3", Decimal("225.00"), "USD")]
