"""Reconciliation finds each kind of difference, with hours and amounts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import Engine, text

from billbridge.emulation.recording import RecordingTarget
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.reconcile import reconcile
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
