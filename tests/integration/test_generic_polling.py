"""Polling the generic time source into the inbox: boundaries, resumption,
termination, and deduplication against webhooks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from billbridge.api.limits import MAX_BODY_BYTES
from billbridge.connectors.base import PermanentError, TransientError
from billbridge.connectors.generic.client import TimeSourceClient
from billbridge.connectors.generic.emulator import TimeSourceEmulator
from billbridge.connectors.generic.source import GenericTimeSource
from billbridge.connectors.generic.webhooks import GenericWebhooks, sign
from billbridge.engine.clock import SystemClock
from billbridge.engine.hub import Hub
from billbridge.engine.sync import load_cursor, sync
from billbridge.store.tables import inbox
from billbridge.web import HubServer
from fakes import FakeTarget

SAME_INSTANT = "2026-03-05T10:00:00+00:00"


@pytest.fixture
def source() -> Iterator[TimeSourceEmulator]:
    with TimeSourceEmulator() as emulator:
        yield emulator  # type: ignore[misc]


def entry(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"te-{i}", "worker": "w-alice", "project": "GLX-001", "task": "dev",
            "work_date": "2026-03-02", "hours": "1", "billable": True, "notes": "",
            "status": "approved", **extra}


def stored_event_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(inbox.c.event_id)).scalars())


def test_entries_sharing_the_cursor_instant_across_pages_are_neither_skipped_nor_doubled(
        engine: Engine, source: TimeSourceEmulator) -> None:
    for i in range(7):
        source.upsert(entry(i), updated_at=SAME_INSTANT)
    for i in range(7, 10):
        source.upsert(entry(i))
    result = sync(engine, GenericTimeSource(source.url, per_page=3), SystemClock())
    assert stored_event_ids(engine) == sorted(f"te-{i}:v1" for i in range(10))
    assert result.accepted == 10
    # A second poll from the stored cursor re-reads only the boundary instant.
    again = sync(engine, GenericTimeSource(source.url, per_page=3), SystemClock())
    assert again.accepted == 0 and again.duplicates >= 1


def test_an_edit_during_the_poll_cannot_hide_another_entry(
        engine: Engine, source: TimeSourceEmulator) -> None:
    for i in range(6):
        source.upsert(entry(i))
    poller = GenericTimeSource(source.url, per_page=2)
    pages = poller.poll(None)
    first = next(pages)
    source.upsert(entry(0, hours="2"))  # te-0 moves to the end while we page
    events = [e["id"] for p in [first, *pages] for e in p.events]
    assert {f"te-{i}:v1" for i in range(1, 6)} <= set(events)
    assert "te-0:v2" in events


def test_an_interrupted_poll_resumes_from_its_last_stored_page(
        engine: Engine, source: TimeSourceEmulator) -> None:
    for i in range(9):
        source.upsert(entry(i))

    class FailsOnThirdPage(TimeSourceClient):
        calls = 0

        def fetch(self, updated_since: str | None, page: int) -> Any:
            FailsOnThirdPage.calls += 1
            if FailsOnThirdPage.calls == 3:
                raise TransientError("connection reset")
            return super().fetch(updated_since, page)

    flaky = GenericTimeSource(source.url, client=FailsOnThirdPage(source.url, per_page=3))
    with pytest.raises(TransientError):
        sync(engine, flaky, SystemClock())
    with engine.connect() as conn:
        cursor = load_cursor(conn, "generic", "default")
    # Two pages were stored (te-0..2, then te-2..4 asked again from te-2's instant).
    assert cursor == source.entries()[4]["updated_at"]
    assert len(stored_event_ids(engine)) == 5
    sync(engine, GenericTimeSource(source.url, per_page=3), SystemClock())
    assert stored_event_ids(engine) == sorted(f"te-{i}:v1" for i in range(9))


def test_pagination_that_repeats_itself_stops_with_an_error(source: TimeSourceEmulator) -> None:
    for i in range(4):
        source.upsert(entry(i), updated_at=SAME_INSTANT)

    class Stuck(TimeSourceClient):
        def fetch(self, updated_since: str | None, page: int) -> Any:
            return super().fetch(updated_since, 1)  # ignores the page it was asked for

    stuck = GenericTimeSource(source.url, client=Stuck(source.url, per_page=2))
    with pytest.raises(PermanentError, match="stopping instead of looping"):
        list(stuck.poll(SAME_INSTANT))


def test_webhook_and_poll_of_one_entry_version_store_one_event(
        engine: Engine, source: TimeSourceEmulator) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    server = HubServer(hub, port=0, webhooks={"generic": GenericWebhooks("s3cret")})
    server.start()
    try:
        source.upsert(entry(1))
        assert source.send_webhook(f"{server.url}/v1/webhooks/generic", secret="s3cret",
                                   duplicate=True) == [202, 202]
        result = sync(engine, GenericTimeSource(source.url), SystemClock())
    finally:
        server.stop()
    assert result.accepted == 0 and result.duplicates == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(inbox.c.duplicates))).scalar() == 2
    assert stored_event_ids(engine) == ["te-1:v1"]


def test_webhooks_with_bad_or_stale_signatures_are_refused_and_counted(
        engine: Engine) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    server = HubServer(hub, port=0, webhooks={"generic": GenericWebhooks("s3cret")},
                       open_metrics=True)
    server.start()
    url = f"{server.url}/v1/webhooks/generic"
    body = b'{"time_entry": {"id": "te-1"}}'
    now = str(int(time.time()))
    stale = str(int(time.time()) - 3600)
    try:
        unsigned = httpx.post(url, content=body)
        forged = httpx.post(url, content=body, headers={
            "X-Generic-Timestamp": now, "X-Generic-Signature": sign("wrong", now, body)})
        old = httpx.post(url, content=body, headers={
            "X-Generic-Timestamp": stale, "X-Generic-Signature": sign("s3cret", stale, body)})
        # Unsigned and over the body cap: refused on its length, before a byte is read.
        huge = httpx.post(url, content=b"x" * (MAX_BODY_BYTES + 1))
        metrics = httpx.get(f"{server.url}/metrics").text
        health = httpx.get(f"{server.url}/healthz").json()
    finally:
        server.stop()
    assert [r.status_code for r in (unsigned, forged, old, huge)] == [401, 401, 401, 413]
    assert "not signed" in unsigned.json()["message"]
    assert "does not match" in forged.json()["message"]
    assert "stale" in old.json()["message"]
    assert stored_event_ids(engine) == []
    assert 'billbridge_webhooks_rejected_total{source="generic",why="signature"}' in metrics
    assert health == {"status": "ok", "database": engine.dialect.name}


def test_a_webhook_delivery_may_carry_several_entries(
        engine: Engine, source: TimeSourceEmulator) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    server = HubServer(hub, port=0, webhooks={"generic": GenericWebhooks("s3cret")})
    server.start()
    try:
        for i in range(3):
            source.upsert(entry(i))
        statuses = source.send_webhook(f"{server.url}/v1/webhooks/generic", secret="s3cret",
                                       per_delivery=2)
    finally:
        server.stop()
    assert statuses == [202, 202]
    assert stored_event_ids(engine) == ["te-0:v1", "te-1:v1", "te-2:v1"]
