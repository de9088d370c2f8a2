"""SAP S/4HANA Cloud as the hub's ERP, end to end: won deals, 1,000
approved time entries and a billing run go through the real engine to the
SAP emulator over HTTP, with lost acknowledgements, timeouts, 5xx, 429s and
expired CSRF tokens injected. The emulator's own rows are then read: one
business partner, one enterprise project, one timesheet record per charge
and one debit memo request per project, none missing and none twice. The
emulator takes a duplicate where SAP would (business partners, timesheet
records and debit memo requests are numbered by SAP), so only the
connector's look-up by reference keeps a resend from making a twin; the
readings the public sources leave open are run both ways.

A manual clock drives backoff and rate pacing, so the waiting takes no real time."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

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

from billbridge.connectors.sap_s4hana.client import SapClient
from billbridge.connectors.sap_s4hana.emulator import SapEmulator
from billbridge.connectors.sap_s4hana.mapping import POSTING_NOTE, SapSettings
from billbridge.connectors.sap_s4hana.target import SapTarget
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from billbridge.store.db import make_engine, migrate

BP = ("API_BUSINESS_PARTNER", "A_BusinessPartner")
PROJECT = ("API_ENTERPRISE_PROJECT_SRV;v=0002", "A_EnterpriseProject")
TIMESHEET = ("API_MANAGE_WORKFORCE_TIMESHEET", "TimeSheetEntryCollection")
MEMO = ("API_DEBIT_MEMO_REQUEST_SRV", "A_DebitMemoRequest")
MEMO_ITEM = ("API_DEBIT_MEMO_REQUEST_SRV", "A_DebitMemoRequestItem")
BATCH = "$batch"
ROOT = "/sap/opu/odata/sap/"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sap(clock: ManualClock) -> Iterator[SapEmulator]:
    emulator = SapEmulator(clock=clock.monotonic)
    with emulator:
        yield emulator


def batches(service: str) -> str:
    return f"{ROOT}{service}/{BATCH}"


def make_hub(engine: Engine, sap: SapEmulator, clock: ManualClock, timeout: float,
             max_batch: int = 200, page_size: int = 1000) -> tuple[Hub, SapTarget]:
    client = SapClient(sap.url, user=sap.user, password=sap.password, clock=clock,
                       timeout=timeout, page_size=page_size)
    target = SapTarget(client, SapSettings(tax_number_type="US01"), max_batch=max_batch,
                       today=lambda: clock.now().date())
    hub = Hub(engine, {"sap-s4hana": target}, clock=clock, seed=11,
              settings=HubSettings(routes={"erp": "sap-s4hana"},
                                   retry=RetryPolicy(base_seconds=1, cap_seconds=30,
                                                     max_attempts=1000)))
    hub.activate_config(TAXED)
    return hub, target


def charges(sap: SapEmulator) -> Counter[str]:
    found = Counter()
    for row in sap.all(*TIMESHEET):
        match = POSTING_NOTE.match(row["TimeSheetDataFields"]["TimeSheetNote"])
        assert match is not None, row
        found[match.group(1)] += 1
    return found


def assert_exactly_once(sap: SapEmulator, count: int = ENTRIES) -> None:
    partners = Counter(p.get("BusinessPartnerIDByExtSystem") for p in sap.all(*BP)
                       if p.get("BusinessPartnerIDByExtSystem"))
    assert partners == {f"cust_hubspot_co-{i}": 1 for i in range(PROJECTS)}
    taxed = sap.all("API_BUSINESS_PARTNER", "A_BusinessPartnerTaxNumber")
    assert sorted(t["BPTaxNumber"] for t in taxed) == [f"TAX-{i}" for i in range(PROJECTS)]
    projects = Counter(p["Project"] for p in sap.all(*PROJECT) if p["Project"].startswith("P-"))
    assert projects == {f"P-{i}": 1 for i in range(PROJECTS)}
    partner = {p["BusinessPartner"]: p.get("BusinessPartnerIDByExtSystem") for p in sap.all(*BP)}
    assert {p["Project"]: partner.get(p["Customer"]) for p in sap.all(*PROJECT)
            if p["Project"].startswith("P-")} == {
        f"P-{i}": f"cust_hubspot_co-{i}" for i in range(PROJECTS)}  # each on its customer
    booked = charges(sap)
    assert len(booked) == count, f"{count - len(booked)} charges missing"
    assert set(booked.values()) == {1}, \
        f"charges booked twice: {[c for c, n in booked.items() if n > 1][:5]}"
    memos = Counter(m["PurchaseOrderByCustomer"] for m in sap.all(*MEMO))
    assert memos == {f"inv_P-{i}_2026-03-31": 1 for i in range(PROJECTS)}
    items = Counter(i["DebitMemoRequest"] for i in sap.all(*MEMO_ITEM))
    assert set(items.values()) == {count // PROJECTS}


def no_leftovers(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE status != 'done'")
                            ).scalar() == 0
        assert conn.execute(text("SELECT reason, message FROM exceptions")).all() == []


def test_one_of_each_record_reaches_sap_through_lost_acks_timeouts_5xx_429s_and_expired_csrf(
        engine: Engine, sap: SapEmulator, clock: ManualClock) -> None:
    # Shorter than the scripted delay, so that call times out; long enough that
    # a busy machine's ordinary $batch of 100 does not.
    hub, target = make_hub(engine, sap, clock, timeout=1.5, max_batch=100)
    sap.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=batches(BP[0])),
                       FaultRule(Fault.LOST_ACK, path_prefix=batches(PROJECT[0]))])
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.run_until_idle()  # customers and projects: an acknowledgement of each lost
    sap.expire_csrf()
    sap.csrf_expiry_rate = 0.1
    timesheets = batches(TIMESHEET[0])
    sap.faults.script([
        FaultRule(Fault.LOST_ACK, path_prefix=timesheets),
        FaultRule(Fault.TIMEOUT, delay=2.0, path_prefix=timesheets),
        FaultRule(Fault.RATE_LIMITED, retry_after=7, path_prefix=timesheets),
        FaultRule(Fault.LOST_ACK, path_prefix=timesheets),
        FaultRule(Fault.SERVER_ERROR, status=503, path_prefix=timesheets)])
    sap.faults.set_random(seed=4, rates={Fault.LOST_ACK: 0.08, Fault.RATE_LIMITED: 0.05,
                                         Fault.SERVER_ERROR: 0.03})
    count = ENTRIES if engine.dialect.name == "sqlite" else ENTRIES // 5
    hub.ingest(entries(count), source="harvest")
    hub.run_until_idle()
    sap.faults.script([FaultRule(Fault.LOST_ACK, path_prefix=batches(MEMO[0])),
                       FaultRule(Fault.RATE_LIMITED, retry_after=3,
                                 path_prefix=batches(MEMO[0]))])
    hub.ingest([BILLING_RUN], source="operator")
    hub.run_until_idle()

    assert_exactly_once(sap, count)
    injected = sap.faults.injected
    assert injected[Fault.LOST_ACK] >= 5 and injected[Fault.TIMEOUT] >= 1
    assert injected[Fault.RATE_LIMITED] >= 2 and injected[Fault.SERVER_ERROR] >= 1
    assert sap.csrf_refused >= 3, "no CSRF token expired on the way"
    assert target.found_by_reference > 0, "no resend had to find its record"
    no_leftovers(engine)


READINGS = {
    # more-vendors.md section 6 leaves each of these open; the emulator takes either side.
    "project ids not unique, no If-Match, server pages of 7": dict(
        unique_project_ids=False, require_if_match=False, server_page_size=7),
    "duplicate customer reference refused, $batch of at most 30": dict(
        duplicate_po_check=True, max_batch=30),
}


@pytest.mark.parametrize("reading", list(READINGS))
def test_exactly_once_holds_under_either_reading_of_what_sap_leaves_unsaid(
        tmp_path: Path, clock: ManualClock, reading: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    options: dict[str, Any] = READINGS[reading]
    with SapEmulator(clock=clock.monotonic, **options) as sap:
        hub, target = make_hub(engine, sap, clock, timeout=5, max_batch=30, page_size=9)
        sap.faults.set_random(seed=9, rates={Fault.LOST_ACK: 0.15})
        hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
        hub.ingest([won(i) for i in range(PROJECTS)][:2], source="hubspot")  # delivered again
        hub.run_until_idle()
        sap.csrf_expiry_rate = 0.2
        hub.ingest(entries(100), source="harvest")
        hub.run_until_idle()
        hub.ingest([BILLING_RUN], source="operator")
        hub.run_until_idle()
        assert_exactly_once(sap, 100)  # type: ignore[arg-type]
        assert sap.faults.injected[Fault.LOST_ACK] >= 3
        assert target.found_by_reference > 0
        no_leftovers(engine)


def test_calls_for_1000_time_charges_are_within_ten_percent_of_the_batch_minimum(
        tmp_path: Path, sap: SapEmulator, clock: ManualClock) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    hub, target = make_hub(engine, sap, clock, timeout=10.0)
    hub.ingest([won(i) for i in range(PROJECTS)], source="hubspot")
    hub.run_until_idle()
    before = sap.api_calls()
    hub.ingest(entries(), source="harvest")
    hub.run_until_idle()
    calls = sap.api_calls() - before
    minimum = math.ceil(ENTRIES / target.max_batch)
    hub.ingest([BILLING_RUN], source="operator")
    hub.run_until_idle()
    assert_exactly_once(sap)
    print(f"\nsap-s4hana: {before} calls for {PROJECTS} customers and projects; {calls} calls "
          f"for {ENTRIES} time charges (minimum {minimum} at {target.max_batch} a $batch); "
          f"{sap.api_calls() - before - calls} calls for {PROJECTS} invoices")
    assert calls <= minimum * 1.1


def test_reconcile_reads_sap_timesheet_records_and_a_deleted_one_is_a_missing_posting(
        engine: Engine, sap: SapEmulator, clock: ManualClock) -> None:
    hub, _target = make_hub(engine, sap, clock, timeout=5)
    month_with_a_rejection(hub, 40)  # te-7's record cancelled
    assert "tc_te-7" not in charges(sap)
    assert reconcile_findings(engine, hub, clock.now()) == []
    (row,) = [r for r in sap.all(*TIMESHEET)
              if r["TimeSheetDataFields"]["TimeSheetNote"].startswith("billbridge tc_te-3 ")]
    sap.remove(*TIMESHEET, sap.key_of(sap_entity(), row))
    assert reconcile_findings(engine, hub, clock.now()) == [
        ("ERP posting missing", "tc_te-3", Decimal("225.00"), "USD")]


def sap_entity() -> Any:
    from billbridge.connectors.sap_s4hana.emulator.schema import SERVICES

    return SERVICES[TIMESHEET[0]].sets[TIMESHEET[1]]
