"""Billing rules through the hub, judged by what the ERP holds: its live
labour postings (posted and not reversed) and every record written to it,
on a fake ERP that keeps whatever it is sent (tests/fakes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from billbridge.engine import exception_queue
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub
from billbridge.engine.inbox import IngestStatus
from billbridge.store.tables import inbox, outbox
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget


@pytest.fixture
def target() -> Iterator[FakeTarget]:
    target = FakeTarget()
    yield target
    assert target.twins() == {}, "the ERP holds twins: a command was sent twice as new"


@pytest.fixture
def hub(engine: Engine, target: FakeTarget) -> Hub:
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7)
    hub.activate_config(CONFIG)
    return hub


def open_exceptions(hub: Hub) -> list[tuple[str, str | None]]:
    with hub.engine.connect() as conn:
        return sorted((e.reason, e.record_id) for e in exception_queue.list_open(conn))


def inbox_rows(hub: Hub) -> dict[str, tuple[str, str | None]]:
    with hub.engine.connect() as conn:
        return {r.event_id: (r.status, r.waiting_on) for r in conn.execute(
            select(inbox.c.event_id, inbox.c.status, inbox.c.waiting_on))}


def won_deal(budget_cap: str) -> dict[str, Any]:
    """GLX-001 won with a time-and-materials contract capped at ``budget_cap`` USD."""
    return {
        "type": "opportunity.closed_won", "id": "deal-1-won", "at": "2026-03-01T09:00:00Z",
        "data": {
            "opportunity": {"id": "deal-1", "name": "GLX-001 deal", "amount": "50000.00",
                            "currency": "USD", "close_date": "2026-03-01"},
            "customer": {"id": "co-1", "name": "Globex LLC", "currency": "USD",
                         "billing_country": "US", "tax_id": "US-12-3456789"},
            "contract": {"id": "ct-GLX-001", "billing_model": "time_and_materials",
                         "currency": "USD", "legal_entity": "US01", "start": "2026-03-01",
                         "end": "2026-12-31", "rate_card": "rc-standard",
                         "budget_cap": budget_cap},
            "project": {"code": "GLX-001", "name": "Project GLX-001",
                        "tasks": [{"id": "dev", "name": "Development", "billable": True}]},
        },
    }


def test_the_same_version_again_under_a_new_event_id_changes_nothing_at_the_erp(
        hub: Hub, target: FakeTarget) -> None:
    """A poll reads again what a webhook already delivered: a new event id,
    so the inbox takes it, but the entry's version is the one applied."""
    hub.ingest([project_event(), time_entry("te-1", event_id="webhook:te-1")], source="harvest")
    hub.run_until_idle()
    held = list(target.effects)
    assert target.live_charges() == {"te-1": ["1400.00"]}

    [polled] = hub.ingest([time_entry("te-1", event_id="poll:te-1")], source="harvest")
    assert polled.status is IngestStatus.ACCEPTED
    hub.run_until_idle()
    assert target.effects == held  # no reversal, no second posting: nothing written
    assert target.live_charges() == {"te-1": ["1400.00"]}
    assert open_exceptions(hub) == []
    assert inbox_rows(hub)["poll:te-1"] == ("done", None)


def test_time_parked_on_a_pending_project_stays_parked_until_it_is_active_then_posts_once(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([time_entry("te-1", project="NEW-002")], source="harvest")
    hub.run_until_idle()
    hub.ingest([project_event("NEW-002", status="pending")], source="psa")
    hub.run_until_idle()
    assert inbox_rows(hub)["te-1:v1"] == ("parked", "project:NEW-002")
    assert target.live_charges() == {}
    assert open_exceptions(hub) == []  # parking is not failure

    hub.ingest([project_event("NEW-002", status="active")], source="psa")
    hub.run_until_idle()
    assert target.live_charges() == {"te-1": ["1400.00"]}
    assert len(target.payloads("time_charge.post")) == 1
    assert open_exceptions(hub) == []
    assert inbox_rows(hub)["te-1:v1"] == ("done", None)


def test_time_released_from_parking_is_done_even_when_the_erp_rejects_the_project(
        hub: Hub, target: FakeTarget) -> None:
    """The release comes from the project's activation, not from the ERP's
    confirmation of it: an entry released runs to done; its charge waits in
    the outbox for the project, whose refusal is the only exception."""
    target.reject = lambda c: "project code refused" if c.kind == "project.upsert" else None
    hub.ingest([time_entry("te-1", project="NEW-002")], source="harvest")
    hub.run_until_idle()
    hub.ingest([project_event("NEW-002")], source="psa")
    hub.run_until_idle()
    rows = inbox_rows(hub)
    assert rows == {"te-1:v1": ("done", None), "project:NEW-002:active": ("done", None)}
    assert open_exceptions(hub) == [("TARGET_REJECTED", "NEW-002")]
    assert target.live_charges() == {}
    with hub.engine.connect() as conn:
        waiting = conn.execute(select(outbox.c.kind, outbox.c.status)
                               .where(outbox.c.kind == "time_charge.post")).all()
    assert [tuple(w) for w in waiting] == [("time_charge.post", "pending")]

    # The ERP is fixed and the operator retries the project: the charge follows, once.
    target.reject = lambda c: None
    with hub.engine.begin() as conn:
        [exc] = exception_queue.list_open(conn)
        exception_queue.retry(conn, exc.id, actor="ops", at=hub.clock.now())
    hub.run_until_idle()
    assert target.live_charges() == {"te-1": ["1400.00"]}
    assert open_exceptions(hub) == []


def test_an_entry_that_brings_the_budget_exactly_to_its_cap_posts(
        hub: Hub, target: FakeTarget) -> None:
    """Cap 2800.00: 1400.00 + 1400.00 reaches it and posts; 1.50 more would
    pass it and is held whole."""
    hub.ingest([won_deal(budget_cap="2800.00")], source="hubspot")
    hub.ingest([time_entry("te-1", hours="8"), time_entry("te-2", hours="8"),
                time_entry("te-3", worker="w-bob", hours="0.01")], source="harvest")
    hub.run_until_idle()
    assert target.live_charges() == {"te-1": ["1400.00"], "te-2": ["1400.00"]}
    assert open_exceptions(hub) == [("BUDGET_EXCEEDED", "te-3")]
