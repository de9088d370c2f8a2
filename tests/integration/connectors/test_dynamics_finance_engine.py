"""Dynamics 365 Finance as the hub's ERP, end to end: won deals, 1,000
approved time entries and a billing run go through the real engine to the
Finance emulator over HTTP, with lost acknowledgements, timeouts, 5xx and
429s injected. The emulator's own rows are then read: one customer, one
project, one hour line per charge and one free-text invoice per project,
none missing and none twice. And reconcile, reading Finance's live hour
lines, reports a line deleted in Finance as a missing posting.

A manual clock drives backoff, rate pacing, the token's expiry and the
emulator's limits, so the waiting takes no real time."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from xero_story import (
    BILLING_RUN,
    ENTRIES,
    PROJECTS,
    TAXED,
    entries,
    month_with_a_rejection,
    reconcile_findings,
    won,
)

from billbridge.connectors.dynamics_finance.client import FinanceClient
from billbridge.connectors.dynamics_finance.emulator import DATA, FinanceEmulator
from billbridge.connectors.dynamics_finance.mapping import FinanceSettings
from billbridge.connectors.dynamics_finance.target import FinanceTarget
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.store.db import make_engine, migrate

CHARGE = re.compile(r"^billbridge (tc_\S+) .*\[bb:([0-9a-f]+)\]$")
BATCH = f"{DATA}/$batch"
LINES = "ProjectHourJournalLines"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def finance(clock: ManualClock) -> Iterator[FinanceEmulator]:
    emulator = FinanceEmulator(clock=clock.monotonic)
    with emulator:
        yield emulator


def make_hub(engine: Engine, finance: FinanceEmulator, clock: ManualClock,
             timeout: float, max_batch: int = 1000) -> tuple[Hub, FinanceTarget]:
    client = FinanceClient(finance.url, tenant=finance.tenant, client_id=finance.client_id,
                           client_secret=finance.client_secret, token_url=finance.token_url,
                           clock=clock, timeout=timeout)
    target = FinanceTarget(client, FinanceSettings(tax_groups={"US-EXEMPT": "EXEMPT"}),
                           max_batch=max_batch, today=lambda: clock.now().date())
    hub = Hub(engine, {"dynamics-finance": target}, clock=clock, seed=11,
              settings=HubSettings(routes={"erp": "dynamics-finance"},
                                   retry=RetryPolicy(base_seconds=1, cap_seconds=30,
                                                     max_attempts=1000)))
    hub.activate_config(TAXED)
    return hub, target


def assert_exactly_once(finance: FinanceEmulator, count: int = ENTRIES) -> None:
    customers = Counter(c["CustomerAccount"] for c in finance.all("CustomersV3")
                        if c["CustomerAccount"].startswith("cust_"))
    assert customers == {f"cust_hubspot_co-{i}": 1 for i in range(PROJECTS)}
    projects = Counter(p["ProjectID"] for p in finance.all("Projects")
                       if p["ProjectID"].startswith("P-"))
    assert projects == {f"P-{i}": 1 for i in range(PROJECTS)}
    charges = Counter(CHARGE.match(line["Text"]).group(1)  # type: ignore[union-attr]
                      for line in finance.all(LINES))
    assert len(charges) == count, f"{count - len(charges)} charges missing"
    assert set(charges.values()) == {1}, \
        f"charges booked twice: {[c for c, n in charges.items() if n > 1][:5]}"
    invoices = Counter(i["InvoiceIdentifier"] for i in finance.all("FreeTextInvoiceHeaders"))
    assert invoices == {f"inv_P-{i}_2026-03-31": 1 for i in range(PROJECTS)}
    lines = Counter(line["InvoiceIdentifier"] for line in finance.all("FreeTextInvoiceLines"))
    assert set(lines.values()) == {count // PROJECTS}


def test_one_of_each_record_reaches_finance_through_lost_acks_timeouts_5xx_and_429s(
        engine: Engine, finance: FinanceEmulator, clock: ManualClock) -> None:
    # Shorter than the scripted delay, so that call times out; long enough that
    # a busy machine's ordinary $batch of 100 does not.
    hub, target = make_hub(engine, finance, clock, timeout=1.5, max_batch=100)
    finance.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=BATCH)])
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.run_until_idle()  # customers and projects: one acknowledgement lost
    finance.faults.script([
        FaultRule(Fault.LOST_ACK, path_prefix=BATCH),
        FaultRule(Fault.TIMEOUT, delay=2.0, path_prefix=BATCH),
        FaultRule(Fault.RATE_LIMITED, retry_after=7, path_prefix=BATCH),
        FaultRule(Fault.LOST_ACK, path_prefix=BATCH),
        FaultRule(Fault.SERVER_ERROR, status=503, path_prefix=BATCH)])
    finance.faults.set_random(seed=4, rates={Fault.LOST_ACK: 0.08, Fault.RATE_LIMITED: 0.05,
                                             Fault.SERVER_ERROR: 0.03})
    count = ENTRIES if engine.dialect.name == "sqlite" else ENTRIES // 5
    hub.ingest(entries(count), source="harvest")
    hub.run_until_idle()
    finance.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=BATCH),
                           FaultRule(Fault.RATE_LIMITED, retry_after=3, path_prefix=BATCH)])
    hub.ingest([BILLING_RUN], source="operator")
    hub.run_until_idle()

    assert_exactly_once(finance, count)
    injected = finance.faults.injected
    assert injected[Fault.LOST_ACK] >= 4 and injected[Fault.TIMEOUT] >= 1
    assert injected[Fault.RATE_LIMITED] >= 2 and injected[Fault.SERVER_ERROR] >= 1
    assert target.found_by_marker > 0, "no resend had to find its hour line"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE status != 'done'")
                            ).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM exceptions")).scalar() == 0


def test_calls_for_1000_time_charges_are_within_ten_percent_of_the_batch_minimum(
        tmp_path: Path, finance: FinanceEmulator, clock: ManualClock) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    hub, target = make_hub(engine, finance, clock, timeout=10.0)
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.run_until_idle()
    before = finance.api_calls()
    hub.ingest(entries(), source="harvest")
    hub.run_until_idle()
    calls = finance.api_calls() - before
    batches = finance.api_calls("POST", BATCH) - 2  # the customers' and projects' before
    minimum = math.ceil(ENTRIES / target.max_batch)
    hub.ingest([BILLING_RUN], source="operator")
    hub.run_until_idle()
    assert_exactly_once(finance)
    print(f"\ndynamics-finance: {before} calls for {PROJECTS} customers and projects; {calls} "
          f"calls for {ENTRIES} time charges ({batches} $batch; minimum {minimum} at "
          f"{target.max_batch} a call); {finance.api_calls() - before - calls} calls for "
          f"{PROJECTS} invoices")
    assert calls <= minimum * 1.1


def test_reconcile_reads_finance_hour_lines_and_a_deleted_line_is_a_missing_posting(
        engine: Engine, finance: FinanceEmulator, clock: ManualClock) -> None:
    hub, _target = make_hub(engine, finance, clock, timeout=5)
    month_with_a_rejection(hub, 40)  # te-7's reversal line
    assert reconcile_findings(engine, hub, clock.now()) == []
    by_charge = {CHARGE.match(r["Text"]).group(1): r  # type: ignore[union-attr]
                 for r in finance.all(LINES) if not r["Text"].startswith("billbridge rev")}
    line = by_charge["tc_te-3"]
    finance.remove(LINES, (line["dataAreaId"], line["JournalBatchNumber"], line["LineNumber"]))
    assert reconcile_findings(engine, hub, clock.now()) == [
        ("ERP posting missing", "tc_te-3", Decimal("225.00"), "USD")]
