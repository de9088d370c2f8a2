"""Issue 4, NetSuite: customers, projects, 1,000 time charges and invoices
through the engine into the NetSuite emulator with lost acknowledgements,
timeouts, 5xx and 429s injected; NetSuite ends with exactly one of each. And
the number of calls 1,000 time charges cost, against the minimum the
asynchronous batch allows.

Both idempotency paths run: external-id upserts (time bills keyed by the
command's idempotency key) and, for an account whose time bills and invoices
take no external id, markers looked up before a resend.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, text

from billbridge.connectors.netsuite.client import BATCH_LIMIT, JobTiming, NetSuiteClient
from billbridge.connectors.netsuite.emulator import NetSuiteEmulator
from billbridge.connectors.netsuite.mapping import marker, memo_record
from billbridge.connectors.netsuite.target import NetSuiteTarget
from billbridge.connectors.netsuite.tba import TbaCredentials
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.policy import RetryPolicy
from conftest import CONFIG, time_entry

ACCOUNT = "1234567_SB1"
PROJECTS = ("GLX-001", "GLX-002", "INI-001", "INI-002", "UMB-001")
CUSTOMERS = {"GLX": "Globex", "INI": "Initech", "UMB": "Umbrella"}
ENTRIES = 1000
WORKERS = ("w-alice", "w-bob")
CONFIG_WITH_TAX: dict[str, Any] = {**CONFIG, "tax_rules": [
    {"entity_country": "US", "customer_country": "US", "tax_code": "US-EXEMPT", "rate": "0"}]}


def won(code: str) -> dict[str, Any]:
    prefix = code.split("-")[0]
    return {"type": "opportunity.closed_won", "id": f"won-{code}", "at": "2026-03-01T09:00:00Z",
            "data": {"opportunity": {"id": f"d-{code}", "name": code, "amount": "500000",
                                     "currency": "USD", "close_date": "2026-03-01"},
                     "customer": {"id": f"co-{prefix}", "name": CUSTOMERS[prefix],
                                  "currency": "USD", "billing_country": "US",
                                  "tax_id": f"TAX-{prefix}"},
                     "contract": {"id": f"ct-{code}", "billing_model": "time_and_materials",
                                  "currency": "USD", "legal_entity": "US01",
                                  "start": "2026-03-01", "rate_card": "rc-standard"},
                     "project": {"code": code, "name": f"Project {code}",
                                 "tasks": [{"id": "dev", "name": "Development"}]}}}


def entries() -> list[dict[str, Any]]:
    return [time_entry(f"te-{i}", project=PROJECTS[i % len(PROJECTS)],
                       worker=WORKERS[i % len(WORKERS)], hours=str(1 + i % 8),
                       work_date=f"2026-03-{2 + i % 20:02d}") for i in range(ENTRIES)]


@pytest.fixture(params=["external_id", "marker"])
def account(request: pytest.FixtureRequest) -> Iterator[tuple[NetSuiteEmulator, str]]:
    marker_types = ("timeBill", "invoice") if request.param == "marker" else ()
    emulator = NetSuiteEmulator(account=ACCOUNT, without_external_id=marker_types)
    emulator.start()
    yield emulator, request.param
    emulator.stop()


def hub_for(engine: Engine, emulator: NetSuiteEmulator, mode: str, *,
            timeout: float = 10.0, read_page: int = 1000) -> tuple[Hub, NetSuiteClient]:
    clock = ManualClock()
    client = NetSuiteClient(emulator.url, TbaCredentials(ACCOUNT, "ck", "cs", "tk", "ts"),
                            concurrency=5, clock=clock, timeout=timeout,
                            timing=JobTiming(first_wait=0.5, poll=1.0, timeout=30.0))
    target = NetSuiteTarget(client, name="netsuite",
                            marker_types=("timeBill", "invoice") if mode == "marker" else (),
                            read_page=read_page)
    settings = HubSettings(routes={"erp": "netsuite"},
                           retry=RetryPolicy(base_seconds=1, cap_seconds=20, max_attempts=1000))
    hub = Hub(engine, {"netsuite": target}, clock=clock, settings=settings, seed=7)
    hub.activate_config(CONFIG_WITH_TAX)
    return hub, client


def posted_keys(engine: Engine) -> dict[str, str]:
    """Every time charge the hub considers posted: idempotency key → the
    NetSuite internal id the dispatcher recorded."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT idempotency_key, external_id FROM outbox "
                                 "WHERE kind = 'time_charge.post' AND status = 'done'"))
        return {r.idempotency_key: r.external_id for r in rows}


def posted_charges(engine: Engine) -> dict[str, str]:
    """Idempotency key → the time charge each posting command carried."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT idempotency_key, record_id FROM outbox "
                                 "WHERE kind = 'time_charge.post'"))
        return {r.idempotency_key: r.record_id for r in rows}


def test_every_record_lands_in_netsuite_exactly_once_through_faults(
        engine: Engine, account: tuple[NetSuiteEmulator, str]) -> None:
    emulator, mode = account
    hub, _client = hub_for(engine, emulator, mode, timeout=0.3)
    # Seeded random faults on every call, and certain ones where they hurt
    # most: lost acknowledgements on a single upsert and on a batch submit, a
    # timeout on a batch submit (applied after the client gave up), a 429.
    emulator.faults.script([
        FaultRule(Fault.LOST_ACK, path_prefix="/services/rest/record/v1/customer/"),
        FaultRule(Fault.LOST_ACK, path_prefix="/services/rest/record/v1/timeBill"),
        FaultRule(Fault.TIMEOUT, delay=0.5, path_prefix="/services/rest/record/v1/timeBill"),
        FaultRule(Fault.RATE_LIMITED, retry_after=1, path_prefix="/services/rest/query")])
    emulator.faults.set_random(11, {"lost_ack": 0.1, "timeout": 0.03, "429": 0.08,
                                    "5xx": 0.06})
    hub.ingest([won(code) for code in PROJECTS], source="hubspot")
    hub.ingest(entries(), source="harvest")
    hub.run_until_idle()
    hub.ingest([{"type": "billing.run", "id": "run-2026-03", "at": "2026-04-01T06:00:00Z",
                 "data": {"period_end": "2026-03-31"}}], source="scheduler")
    hub.run_until_idle()
    emulator.faults.clear()

    injected = emulator.faults.injected
    assert all(injected[f] > 0 for f in injected) and len(injected) == 4, injected

    customers = emulator.all("customer")
    assert sorted(c["externalId"] for c in customers) == sorted(
        f"cust_hubspot_co-{p}" for p in CUSTOMERS)
    jobs = emulator.all("job")
    assert sorted(j["externalId"] for j in jobs) == sorted(PROJECTS)

    bills = emulator.all("timeBill")
    posted = posted_keys(engine)
    assert len(posted) == ENTRIES
    key_of = (lambda b: b["memo"].rsplit(" key:", 1)[1]) if mode == "marker" \
        else (lambda b: b["externalId"].removeprefix("bb-"))
    seen = Counter(key_of(b) for b in bills)
    assert len(bills) == ENTRIES, f"{len(bills) - ENTRIES} twins"
    assert set(seen) == set(posted) and max(seen.values()) == 1
    by_key = {key_of(b): b["id"] for b in bills}
    assert posted == by_key  # the hub's xref names the very record NetSuite holds
    if mode == "marker":
        charge_of = posted_charges(engine)
        assert all(b["memo"] == marker(k, charge_of[k]) and "externalId" not in b
                   for k, b in zip(map(key_of, bills), bills, strict=True))
    hours = sum(Decimal(b["hours"]) for b in bills)
    assert hours == sum(1 + i % 8 for i in range(ENTRIES))

    invoices = emulator.all("invoice")
    assert len(invoices) == len(PROJECTS)
    names = sorted(str(memo_record(i["memo"])) if mode == "marker"
                   else i["externalId"] for i in invoices)
    assert names == sorted(f"inv_{p}_2026-03-31" for p in PROJECTS)
    assert sum(len(i["item"]["items"]) for i in invoices) == ENTRIES

    with engine.connect() as conn:
        stuck = conn.execute(text("SELECT count(*) FROM outbox WHERE status != 'done' "
                                  "AND target = 'netsuite'")).scalar()
        problems = conn.execute(text("SELECT reason, message FROM exceptions")).all()
    assert stuck == 0 and problems == []


def test_a_thousand_time_charges_cost_within_ten_percent_of_the_batch_minimum(
        engine: Engine) -> None:
    emulator = NetSuiteEmulator(account=ACCOUNT)
    with emulator:
        hub, _client = hub_for(engine, emulator, "external_id")
        hub.ingest([won(code) for code in PROJECTS], source="hubspot")
        hub.run_until_idle()
        before = len(emulator.calls)
        hub.ingest(entries(), source="harvest")
        hub.run_until_idle()
        calls = emulator.calls[before:]
    # Each asynchronous job needs its submit and one read of its outcome.
    minimum = 2 * math.ceil(ENTRIES / BATCH_LIMIT)
    assert len(emulator.all("timeBill")) == ENTRIES
    print(f"netsuite: {len(calls)} calls for {ENTRIES} time charges; minimum {minimum}")
    assert minimum <= len(calls) <= minimum * 1.1, Counter(calls)
    submits = [c for c in calls if c == ("PUT", "/services/rest/record/v1/timeBill")]
    assert len(submits) == ENTRIES // BATCH_LIMIT


def test_reconcile_reads_time_bills_a_deleted_one_is_missing_a_copy_a_twin_an_edit_differs(
        engine: Engine, account: tuple[NetSuiteEmulator, str]) -> None:
    """In either mode the memo names the charge, the currency comes from the
    job's customer, and SuiteQL is read a page of 10 at a time."""
    from datetime import UTC, date, datetime

    from billbridge.engine.reconcile import erp_ledgers, reconcile_three_ways

    emulator, mode = account
    hub, _client = hub_for(engine, emulator, mode, read_page=10)
    hub.ingest([won(code) for code in PROJECTS], source="hubspot")
    hub.ingest(entries()[:40], source="harvest")
    hub.run_until_idle()
    hub.ingest([time_entry("te-7", project="INI-001", worker="w-bob", hours="9", version=2,
                           work_date="2026-03-09")], source="harvest")  # its bill rejected
    hub.run_until_idle()

    def read() -> tuple[Counter[str], list[tuple[str, str, object, object]]]:
        with engine.connect() as conn:
            result = reconcile_three_ways(conn, period_end=date(2026, 2, 28),
                                          now=datetime(2026, 4, 1, tzinfo=UTC),
                                          ledgers=erp_ledgers(hub))
        assert [e.error for e in result.erps] == [None]
        return (Counter(p.charge for p in result.erps[0].postings),
                sorted((f.kind, f.record, f.amount, f.currency) for f in result.findings))

    assert read() == (Counter(f"tc_te-{i}" for i in range(40)), [])
    assert len(emulator.all("timeBill")) == 41  # te-7's first bill is there, rejected
    by_charge = {memo_record(b["memo"]): b for b in emulator.all("timeBill")
                 if b["approvalStatus"] != {"id": "3"}}
    with emulator.lock:  # behind the hub's back: one deleted, one keyed in twice, one edited
        bills = emulator.records["timeBill"]
        del bills[by_charge["tc_te-3"]["id"]]
        copy = {k: v for k, v in by_charge["tc_te-4"].items() if k != "externalId"}
        bills["999"] = {**copy, "id": "999"}
        bills[by_charge["tc_te-5"]["id"]]["hours"] = "7"
    # te-3: 4 h at 150.00 (Bob); te-4: 5 h at 175.00 (Alice); te-5: 6 h, now 7 h, at 150.00
    held, findings = read()
    assert held == Counter([f"tc_te-{i}" for i in range(40) if i != 3] + ["tc_te-4"])
    assert findings == [("ERP posting missing", "tc_te-3", Decimal("600.00"), "USD"),
                        ("amount differs", "tc_te-5", Decimal("150.00"), "USD"),
                        ("twin postings", "tc_te-4", Decimal("875.00"), "USD")]
