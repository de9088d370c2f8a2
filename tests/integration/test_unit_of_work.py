"""A planned unit of work: the flows' reads see the batch's own pending
changes laid over the store, and nothing reaches the store until
``write_to``, which writes in the order the events ran."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, select

from billbridge.domain.events import CanonicalEvent
from billbridge.engine.batch import BatchUnit
from billbridge.flows.base import Binding, Outcome, RecordChange
from billbridge.store.db import READ_ONLY
from billbridge.store.tables import inbox, records, xref

NOW = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)


def _event(event_id: str) -> CanonicalEvent:
    return CanonicalEvent.model_validate({"type": "project.updated", "id": event_id,
                                          "source": "test",
                                          "at": "2026-03-01T00:00:00Z",
                                          "data": {"code": "P-1"}})


def _inbox_row(engine: Engine, event_id: str) -> Any:
    with engine.begin() as conn:
        row_id = conn.execute(inbox.insert().values(
            source="test", event_id=event_id, event_type="project.updated",
            aggregate_key="project:P-1", correlation_id=f"c-{event_id}", payload="{}",
            status="pending", received_at=NOW, attempts=0, duplicates=0)).inserted_primary_key[0]
    return SimpleNamespace(id=row_id, correlation_id=f"c-{event_id}", payload="{}",
                           aggregate_key="project:P-1")


def test_planned_reads_see_pending_changes_and_nothing_is_written_until_write_to(
        engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(records.insert(), [
            {"kind": "contract", "id": "k-1", "data": '{"id": "k-1", "v": 1}', "version": 1,
             "status": "active", "updated_at": NOW, "correlation_id": "c-0"},
            {"kind": "contract", "id": "k-2", "data": '{"id": "k-2", "v": 1}', "version": 1,
             "status": "active", "updated_at": NOW, "correlation_id": "c-0"}])
    first, second = _inbox_row(engine, "e-1"), _inbox_row(engine, "e-2")
    with engine.connect().execution_options(**{READ_ONLY: True}) as reader, reader.begin():
        unit = BatchUnit(reader, {}, NOW, planned=True)
        unit.apply(first, _event("e-1"), Outcome(
            changes=[RecordChange("contract", "k-2", {"id": "k-2", "v": 2}, "closed"),
                     RecordChange("contract", "k-3", {"id": "k-3", "v": 1}, "active")],
            bindings=[Binding("ledger", "contract", "EXT-3", "k-3")]), 1)
        # The second event's flow searches: it sees the first event's changes.
        assert [r["id"] for r in unit.find("contract", "active")] == ["k-1", "k-3"]
        assert [r["v"] for r in unit.find("contract")] == [1, 2, 1]
        assert unit.external_id("ledger", "contract", "k-3") == "EXT-3"
        assert unit.resolve("ledger", "contract", "EXT-3") == "k-3"
        unit.apply(second, _event("e-2"), Outcome(
            changes=[RecordChange("contract", "k-3", {"id": "k-3", "v": 2}, "active")]), 1)
        # Nothing written yet: the snapshot still shows the store as it was.
        assert reader.execute(select(records.c.id).where(records.c.kind == "contract")
                              ).scalars().all() == ["k-1", "k-2"]
    with engine.begin() as conn:
        unit.write_to(conn)
    with engine.connect() as conn:
        stored = {r.id: (r.status, r.version) for r in conn.execute(
            select(records.c.id, records.c.status, records.c.version)
            .where(records.c.kind == "contract"))}
        bound = conn.execute(select(xref.c.canonical_id)
                             .where(xref.c.external_id == "EXT-3")).scalar()
        statuses = conn.execute(select(inbox.c.status).order_by(inbox.c.id)).scalars().all()
    assert stored == {"k-1": ("active", 1), "k-2": ("closed", 2), "k-3": ("active", 2)}
    assert bound == "k-3"
    assert statuses == ["done", "done"]
