"""`bench ingest` measures what it claims: its loss counter reads the store
(a delivery removed from the inbox after its acknowledgement is counted lost),
unanswered deliveries count as lost, and latency runs from the due time."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import delete

from billbridge.bench.ingest import (
    SECRET,
    ServeProcess,
    percentile,
    run,
    stored_event_ids,
    summarise,
)
from billbridge.bench.loadgen import generate
from billbridge.store.db import make_engine
from billbridge.store.tables import inbox

pytestmark = pytest.mark.slow


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([7.0], 0.999) == 7.0


def test_a_small_run_stores_every_acknowledged_delivery() -> None:
    result = run(100, 1)
    assert result["sent"] == 100
    assert result["acknowledged"] == 100
    assert result["lost"] == 0
    assert 0 < result["ack_ms"]["p50"] <= result["ack_ms"]["p99"] <= result["ack_ms"]["max"]


def test_the_loss_counter_catches_a_delivery_missing_from_the_inbox(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    server = ServeProcess(url, extra=["--no-engine"])
    try:
        deliveries, _ = generate(f"{server.url}/v1/webhooks/generic", secret=SECRET, rate=50,
                                 seconds=0.6, run="t")
    finally:
        server.stop()
    assert len(deliveries) == 30
    dropped = deliveries[7].event_id
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(inbox).where(inbox.c.event_id == dropped))
    engine.dispose()
    summary = summarise(deliveries, stored_event_ids(url), 0.6)
    assert summary["acknowledged"] == 30
    assert (summary["lost"], summary["lost_after_ack"]) == (1, 1)
    assert summary["lost_examples"] == [dropped]


def test_deliveries_nobody_answers_are_lost() -> None:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    deliveries, _ = generate(f"http://127.0.0.1:{port}/v1/webhooks/generic", secret=SECRET,
                             rate=20, seconds=0.5, run="t")
    summary = summarise(deliveries, set(), 0.5)
    assert (summary["sent"], summary["acknowledged"], summary["lost"]) == (10, 0, 10)
    assert summary["not_acknowledged_by_status"] == {"no answer": 10}
    assert summary["no_answer_by_error"] == {"ConnectionRefusedError": 10}
    assert summary["ack_ms"] is None
