"""Reconciliation finds each kind of difference, with hours and amounts; the
ERP's column is what the ERP holds live, read from it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from billbridge.connectors.generic.client import LedgerTarget
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.reconcile import Reconciliation, erp_ledgers, reconcile, reconcile_three_ways
from conftest import CONFIG, time_entry


def won(code: str = "GLX-001") -> dict[str, object]:
    return {"type": "opportunity.closed_won", "id": f"won-{code}", "at": "2026-03-01T09:00:00Z",
            "data": {"opportunity": {"id": f"d-{code}", "name": code, "amount": "1000",
                                     "currency": "USD", "close_date": "2026-03-01"},
                     "customer": {"id": "c1", "name": "Globex", "currency": "USD",
                                  "billing_country": "US", "tax_id": "T1"},
                     "contract": {"id": f"ct-{code}", "billing_model": "time_and_materials",
                                  "currency": "USD", "legal_entity": "US01",
                                  "start": "2026-03-01", "rate_card": "rc-standard"},
                     "project": {"code": code, "name": code,
                                 "tasks": [{"id": "dev", "name": "Dev"}]}}}


def test_reconcile_lists_unbilled_unpriced_parked_and_stale(engine: Engine) -> None:
    erp = RecordingTarget("erp")
    hub = Hub(engine, {"erp": erp}, clock=ManualClock(datetime(2026, 3, 5, tzinfo=UTC)),
              settings=HubSettings(routes={"erp": "erp"}))
    hub.activate_config(CONFIG)
    hub.ingest([won()], source="hubspot")
    hub.ingest([time_entry("te-1"), time_entry("te-2", worker="w-carol", hours="3"),
                time_entry("te-3", project="NEW-404", hours="2")], source="harvest")
    hub.run_until_idle()
    card = dict(CONFIG["rate_cards"][0])
    card["worker_overrides"] = {"w-alice": "180.00"}
    hub.activate_config({**CONFIG, "rate_cards": [card]})
    hub.clock.sleep(10 * 86400)  # type: ignore[attr-defined]

    with engine.connect() as conn:
        findings = reconcile(conn, period_end=date(2026, 3, 31), now=hub.clock.now(),
                             parked_days=7)
    by_kind = {(f.kind, f.record): f for f in findings}
    unbilled = by_kind[("unbilled approved time", "te-1")]
    assert (unbilled.hours, unbilled.amount) == (8, 1400)
    assert "NO_RATE" in by_kind[("unpriced approved time", "te-2")].detail
    assert by_kind[("parked work older than 7 days", "te-3")].hours == 2
    assert by_kind[("stale rate card", "te-1")].amount == 40  # 8 h x (180 - 175)
    assert len(findings) == 4


def test_reconcile_finds_postings_the_hub_no_longer_has(engine: Engine) -> None:
    erp = RecordingTarget("erp")
    hub = Hub(engine, {"erp": erp}, clock=ManualClock(), settings=HubSettings(
        routes={"erp": "erp"}))
    hub.activate_config(CONFIG)
    hub.ingest([won(), time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    with engine.begin() as conn:  # the hub's charge disappears (a bad manual fix)
        conn.execute(text("UPDATE records SET status = 'reversed' WHERE kind = 'time_charge'"))
    with engine.connect() as conn:
        findings = reconcile(conn, period_end=date(2026, 3, 31), now=hub.clock.now())
    # The ERP still holds the posting, and the approved entry has no live charge.
    assert sorted((f.kind, f.record) for f in findings) == [
        ("ERP posting with no source", "tc_te-1"), ("unpriced approved time", "te-1")]


# -- the ERP's own answer: the generic ledger over HTTP -------------------------------------
@pytest.fixture
def ledger() -> Iterator[LedgerEmulator]:
    emulator = LedgerEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


def ledger_hub(engine: Engine, ledger: LedgerEmulator) -> Hub:
    """Two approved entries posted through the real engine and dispatcher."""
    hub = Hub(engine, {"ledger": LedgerTarget(ledger.url, "ledger-token")}, clock=ManualClock(
        datetime(2026, 3, 5, tzinfo=UTC)))
    hub.activate_config(CONFIG)
    hub.ingest([won(), time_entry("te-1"), time_entry("te-2", hours="2")], source="harvest")
    hub.run_until_idle()
    return hub


def three_ways(hub: Hub) -> Reconciliation:
    with hub.engine.connect() as conn:
        return reconcile_three_ways(conn, period_end=date(2026, 2, 28), now=hub.clock.now(),
                                    ledgers=erp_ledgers(hub))


def posting_of(ledger: LedgerEmulator, charge: str) -> dict[str, Any]:
    (found,) = [e for e in ledger.postings("time_charge.post") if e["data"]["id"] == charge]
    return found


def test_a_posting_deleted_in_the_erp_is_reported_missing(engine: Engine,
                                                          ledger: LedgerEmulator) -> None:
    hub = ledger_hub(engine, ledger)
    assert three_ways(hub).findings == []
    gone = posting_of(ledger, "tc_te-1")["id"]
    # Behind the hub's back, with the ledger's own API.
    httpx.delete(f"{ledger.url}/v1/postings/{gone}",
                 headers={"Authorization": "Bearer ledger-token"}).raise_for_status()

    result = three_ways(hub)
    assert [(f.kind, f.record, f.hours, f.amount, f.currency) for f in result.findings] == [
        ("ERP posting missing", "tc_te-1", Decimal(8), Decimal("1400.00"), "USD")]
    assert "restore it there" in result.findings[0].fix
    (row,) = result.projects
    assert (row.approved_hours, row.hub_hours, row.erp_hours) == (Decimal(10), Decimal(10),
                                                                  Decimal(2))
    assert (row.hub_amounts, row.erp_amounts) == ({"USD": Decimal(1750)}, {"USD": Decimal(350)})


def test_a_twin_posting_made_in_the_erp_is_reported(engine: Engine,
                                                    ledger: LedgerEmulator) -> None:
    hub = ledger_hub(engine, ledger)
    first = posting_of(ledger, "tc_te-2")
    # Someone keys the same charge in again by hand, under another reference.
    httpx.post(f"{ledger.url}/v1/postings:batch", headers={
        "Authorization": "Bearer ledger-token"}, json={"items": [
            {"idempotency_key": "by-hand-1", "kind": "time_charge.post",
             "aggregate": first["aggregate"], "data": first["data"]}]}).raise_for_status()
    twin = ledger.postings("time_charge.post")[-1]["id"]

    findings = three_ways(hub).findings
    assert [(f.kind, f.record, f.amount, f.currency) for f in findings] == [
        ("twin postings", "tc_te-2", Decimal("350.00"), "USD")]
    assert findings[0].fix == f"reverse posting {twin} in ledger by hand"


def test_a_posting_of_a_charge_the_hub_reversed_or_never_had_has_no_source(
        engine: Engine, ledger: LedgerEmulator) -> None:
    hub = ledger_hub(engine, ledger)
    hub.ingest([time_entry("te-2", hours="2", version=2, status="rejected")], source="harvest")
    hub.run_until_idle()
    assert three_ways(hub).findings == []  # the ledger applied the reversal
    reversed_one = ledger.postings("time_charge.post")[-1]
    stray = {**reversed_one["data"], "id": "tc_te-9"}
    httpx.post(f"{ledger.url}/v1/postings:batch", headers={
        "Authorization": "Bearer ledger-token"}, json={"items": [
            {"idempotency_key": key, "kind": "time_charge.post", "aggregate": "x", "data": data}
            for key, data in (("by-hand-2", reversed_one["data"]), ("by-hand-9", stray))]}
               ).raise_for_status()

    findings = three_ways(hub).findings
    assert sorted((f.kind, f.record, f.amount) for f in findings) == [
        ("ERP posting with no source", "tc_te-2", Decimal("350.00")),
        ("ERP posting with no source", "tc_te-9", Decimal("350.00"))]
    assert all(f.fix.startswith("reverse posting L-") for f in findings)


def test_an_erp_that_cannot_be_read_is_one_line_and_the_hub_findings_stay(
        engine: Engine, ledger: LedgerEmulator) -> None:
    hub = ledger_hub(engine, ledger)
    hub.ingest([time_entry("te-3", worker="w-carol", hours="3")], source="harvest")
    hub.run_until_idle()
    ledger.faults.script(["503"])  # the ERP is down for the read
    result = three_ways(hub)
    (erp,) = result.erps
    assert erp.name == "ledger" and "HTTP 503" in str(erp.error) and "\n" not in str(erp.error)
    assert [(f.kind, f.record) for f in result.findings] == [("unpriced approved time", "te-3")]
    assert result.projects[0].erp_amounts is None  # unread, not zero


def test_reconcile_json_lists_the_postings_read_from_the_erp(tmp_path: Any,
                                                             ledger: LedgerEmulator) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    hub = ledger_hub(Hub(url, {}).engine, ledger)
    hub.engine.dispose()
    gone = posting_of(ledger, "tc_te-1")["id"]
    assert ledger.delete(gone)
    out = subprocess.run([sys.executable, "-m", "billbridge", "reconcile", "--database-url", url,
                          "--target", f"ledger={ledger.url}", "--period-end", "2026-02-28",
                          "--json"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    report = json.loads(out)
    (erp,) = report["erps"]
    assert erp["error"] is None
    assert [(p["charge"], p["external_id"], p["amount"], p["currency"])
            for p in erp["postings"]] == [
        ("tc_te-2", posting_of(ledger, "tc_te-2")["id"], "350.00", "USD")]
    assert [(f["kind"], f["record"]) for f in report["findings"]] == [
        ("ERP posting missing", "tc_te-1")]
    assert report["totals"] == {"USD": {"hub": "1750.00", "erp": "350.00"}}
