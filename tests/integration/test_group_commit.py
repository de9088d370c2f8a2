"""Group commit of webhook deliveries and the inbox's batch insert, on a real
store (SQLite, and PostgreSQL in CI)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from billbridge.engine import group_commit
from billbridge.engine.clock import SystemClock
from billbridge.engine.group_commit import GroupCommitter
from billbridge.engine.inbox import IngestStatus, ingest_many
from billbridge.store.tables import exceptions, inbox
from conftest import time_entry


def stored(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.source, r.event_id) for r in conn.execute(
            select(inbox.c.source, inbox.c.event_id).order_by(inbox.c.id))]


def test_a_batch_keeps_arrival_order_and_counts_repeats_within_it(engine: Engine) -> None:
    raws = [time_entry("te-1"), time_entry("te-2"), time_entry("te-1"),
            {"type": "time_entry.upserted", "id": "bad-1", "data": {"hours": "x"}},
            time_entry("te-3")]
    with engine.begin() as conn:
        results = ingest_many(conn, raws, source="harvest", clock=SystemClock())
    assert [r.status for r in results] == [
        IngestStatus.ACCEPTED, IngestStatus.ACCEPTED, IngestStatus.DUPLICATE,
        IngestStatus.MALFORMED, IngestStatus.ACCEPTED]
    assert results[2].inbox_id == results[0].inbox_id
    # Inbox ids follow arrival: workers take an aggregate's events in id order.
    assert [e for _, e in stored(engine)] == ["te-1:v1", "te-2:v1", "bad-1", "te-3:v1"]
    with engine.connect() as conn:
        assert conn.execute(select(inbox.c.duplicates).where(
            inbox.c.event_id == "te-1:v1")).scalar() == 1
        assert conn.execute(select(exceptions.c.reason)).scalars().all() == [
            "MALFORMED_PAYLOAD"]


def test_concurrent_deliveries_each_get_their_own_results(engine: Engine) -> None:
    committer = GroupCommitter(engine, SystemClock())
    futures = [committer.submit([time_entry(f"te-{i}"), time_entry(f"te-{i % 5}")],
                                source="harvest") for i in range(40)]
    try:
        answers = [f.result(timeout=30) for f in futures]
    finally:
        committer.stop()
    for i, results in enumerate(answers):
        assert [r.event_id for r in results] == [f"te-{i}:v1", f"te-{i % 5}:v1"]
    assert len(stored(engine)) == 40
    assert sum(r.status is IngestStatus.ACCEPTED for a in answers for r in a) == 40


def test_a_delivery_the_store_refuses_fails_alone(engine: Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    real = group_commit.ingest_many

    def flaky(conn: Any, raws: Any, *, source: str, clock: Any) -> Any:
        gate.wait(10)  # hold the first group until the rest are queued together
        if source == "broken":
            raise RuntimeError("the store refused this delivery")
        return real(conn, raws, source=source, clock=clock)

    monkeypatch.setattr(group_commit, "ingest_many", flaky)
    committer = GroupCommitter(engine, SystemClock())
    try:
        first = committer.submit([time_entry("te-0")], source="harvest")
        rest = [committer.submit([time_entry(f"te-{i}")], source="harvest")
                for i in range(1, 4)]
        bad = committer.submit([time_entry("te-9")], source="broken")
        gate.set()
        for future in [first, *rest]:
            assert future.result(timeout=30)[0].status is IngestStatus.ACCEPTED
        with pytest.raises(RuntimeError, match="refused"):
            bad.result(timeout=30)
    finally:
        committer.stop()
    assert sorted(stored(engine)) == [("harvest", f"te-{i}:v1") for i in range(4)]


def test_coroutines_awaiting_their_deliveries_get_their_own_results(engine: Engine) -> None:
    committer = GroupCommitter(engine, SystemClock())

    async def deliver_all() -> list[list[Any]]:
        return await asyncio.gather(*(committer.store([time_entry(f"te-{i}")], source="harvest")
                                      for i in range(30)))

    try:
        answers = asyncio.run(deliver_all())
    finally:
        committer.stop()
    assert [a[0].event_id for a in answers] == [f"te-{i}:v1" for i in range(30)]
    assert len(stored(engine)) == 30
