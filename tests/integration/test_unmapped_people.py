"""Approved hours from a time-tool user the connection does not map are
leakage: any time source that says so (connectors.base.UnmappedPerson on its
Malformed) gets them counted by reconcile and on the leakage page, with the
mapping to add, until the entry comes through mapped."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.emulation.recording import RecordingTarget
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.engine.reconcile import UNMAPPED_KIND, reconcile
from billbridge.services import figures
from billbridge.web import create_app
from conftest import CONFIG, project_event, time_entry


def unmapped_entry(entry: str, hours: str, *, approved: bool = True) -> Malformed:
    person = UnmappedPerson("tempo", "u-77", "Dana Eve", entry, hours, approved, "GLX-001",
                            "2026-03-02")
    return Malformed({"worker": {"accountId": "u-77"}, "timeSpentSeconds": 10800},
                     "Tempo worklog: user u-77 is not mapped", f"worklog:{entry}", person)


def test_unmapped_approved_hours_are_counted_with_the_mapping_to_add_until_mapped(
        engine: Engine) -> None:
    hub = Hub(engine, {"ledger": RecordingTarget("ledger")})
    hub.activate_config(CONFIG)
    hub.ingest([project_event()], source="psa")
    hub.ingest([unmapped_entry("te-dana-1", "3"),
                unmapped_entry("te-dana-2", "1.5", approved=False)], source="tempo")
    hub.run_until_idle()
    now = datetime.now(UTC)
    with engine.connect() as conn:
        found = [f for f in reconcile(conn, period_end=date(2026, 3, 31), now=now)
                 if f.kind == UNMAPPED_KIND]
        leak = figures.leakage(conn, date(2026, 4, 1))
    assert [(f.record, f.hours, f.project) for f in found] == [
        ("te-dana-1", Decimal(3), "GLX-001")]  # the submitted 1.5 h is not approved yet
    assert found[0].fix.startswith("map user u-77 to a worker under workers in the tempo "
                                   "connection")
    assert ("user not mapped", 1, Decimal(3)) in leak.held
    assert [(c, u, n, h) for c, u, n, h, _fix in leak.unmapped] == [
        ("tempo", "u-77", 1, Decimal(3))]

    client = TestClient(create_app(hub))
    with engine.begin() as conn:
        token = tokens.create(conn, name="fiona", role=tokens.Role.FINANCE,
                              expires_in=timedelta(hours=1), actor="test", at=now)[1]
    client.post("/console/login", data={"token": token})
    page = client.get("/console/leakage").text
    table = page.split('id="unmapped"', 1)[1].split("</table>", 1)[0]
    assert "u-77" in table and "under workers in the tempo connection" in table

    # Mapped at last: the entry comes through and is no longer leakage of this kind.
    hub.ingest([time_entry("te-dana-1", worker="w-alice", hours="3")], source="tempo")
    hub.run_until_idle()
    with engine.connect() as conn:
        assert [f for f in reconcile(conn, period_end=date(2026, 3, 31), now=now)
                if f.kind == UNMAPPED_KIND] == []
