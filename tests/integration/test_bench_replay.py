"""`bench replay` and the bulk replay it times: the backlog is cleared by one
approved configuration change, every entry reaches the ERP exactly once
(read from the ERP emulator), and what cannot be replayed stays open."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from billbridge.bench.replay import run
from billbridge.engine import audit, exception_queue
from billbridge.engine.hub import Hub
from billbridge.store.tables import audit_log
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget


def test_a_small_backlog_is_replayed_to_the_erp_exactly_once() -> None:
    result = run(60)
    assert result["backlog"] == 60
    assert result["replayed"] == 60
    assert result["left_open"] == 0
    assert result["posted_before_fix"] == 0
    assert (result["erp_postings"], result["erp_entries_posted"]) == (60, 60)
    assert result["erp_entries_posted_twice"] == 0
    assert result["missing_at_erp"] == 0


def test_bulk_replay_takes_every_open_exception_of_a_reason_and_audits_each(
        engine: Engine) -> None:
    target = FakeTarget()
    hub = Hub(engine, {"ledger": target})
    hub.activate_config(CONFIG)
    hub.ingest([project_event()], source="psa")
    # Carol is a designer; the rate card has no designer rate.
    hub.ingest([time_entry(f"te-{i}", worker="w-carol") for i in range(7)], source="harvest")
    hub.ingest([{"type": "time_entry.upserted", "id": "broken", "data": {}}], source="harvest")
    hub.run_until_idle()
    fixed = {**CONFIG, "rate_cards": [{**CONFIG["rate_cards"][0], "rates": {
        **CONFIG["rate_cards"][0]["rates"], "designer": "100.00"}}]}
    hub.activate_config(fixed)
    with engine.connect() as conn:
        audited_before = conn.execute(select(func.count()).select_from(audit_log)).scalar()

    replayed, refused = exception_queue.replay_backlog(
        engine, reason="NO_RATE", actor="ops", now=lambda: datetime.now(UTC), chunk=3)
    hub.run_until_idle()

    assert (replayed, refused) == (7, [])
    assert sorted(p["time_entry"] for p in target.payloads("time_charge.post")) == \
        sorted(f"te-{i}" for i in range(7))
    with engine.connect() as conn:
        assert exception_queue.open_by_reason(conn) == {"MALFORMED_PAYLOAD": 1}
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar() == \
            audited_before + 7
        assert audit.verify(conn) == []  # the rows appended together still chain


def test_bulk_replay_leaves_what_cannot_be_replayed_open(engine: Engine) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    hub.ingest([{"type": "time_entry.upserted", "id": f"broken-{i}", "data": {}}
                for i in range(3)], source="harvest")
    replayed, refused = exception_queue.replay_backlog(
        engine, reason="MALFORMED_PAYLOAD", actor="ops", now=lambda: datetime.now(UTC),
        chunk=2)
    assert replayed == 0
    assert len(refused) == 3
    with engine.connect() as conn:
        assert exception_queue.open_by_reason(conn) == {"MALFORMED_PAYLOAD": 3}
