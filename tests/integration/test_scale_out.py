"""Four `billbridge worker` processes share one PostgreSQL queue; one is
killed with SIGKILL in the middle of its work. Nothing is lost, nothing is
applied twice, and each project's charges reach the ledger in source order.

The ledger deduplicates nothing (the hub looks its markers up on a resend, as
it must with such an ERP): a command sent twice as new is a twin it holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

import pytest
from sqlalchemy import Engine, text

from billbridge.connectors.base import IdempotencyMode
from billbridge.connectors.generic.emulator import LedgerEmulator
from billbridge.emulation.faults import Fault, FaultRule
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

PROJECTS = [f"P-{i}" for i in range(8)]
PER_PROJECT = 60
BATCH = "/v1/postings:batch"

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _workers(pg_url: str, ledger_url: str, n: int) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "billbridge", "worker", "--database-url", pg_url,
               "--target", f"ledger={ledger_url}", "--lease-seconds", "2",
               "--batch-size", "10", "--idle-exit", "6"]
    env = {**os.environ, "BILLBRIDGE_LEDGER_TOKEN": "t",
           "BILLBRIDGE_LEDGER_IDEMPOTENCY": IdempotencyMode.MARKER_LOOKUP.value}
    return [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE) for _ in range(n)]


def _sender(engine: Engine, idempotency_key: str) -> str | None:
    """The worker whose batch carrying ``idempotency_key`` is in flight."""
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT a.owner FROM delivery_attempts a JOIN outbox o ON o.id = a.outbox_id "
            "WHERE o.idempotency_key = :k AND a.outcome = 'sent'"),
            {"k": idempotency_key}).scalar()


def test_sigkill_mid_batch_loses_and_duplicates_nothing(pg_url: str) -> None:
    engine = make_engine(pg_url)
    hub = Hub(engine, {"ledger": FakeTarget()})  # only to migrate, configure and ingest
    hub.activate_config(CONFIG)
    hub.ingest([project_event(p) for p in PROJECTS], source="psa")
    hub.ingest([time_entry(f"{p}-te-{i:03}", project=p, hours="1")
                for i in range(PER_PROJECT) for p in PROJECTS], source="harvest")
    expected = len(PROJECTS) * (PER_PROJECT + 1)

    ledger = LedgerEmulator(token="t", idempotency="none", latency=0.1, max_batch=100)
    ledger.start()
    workers = _workers(pg_url, ledger.url, 4)
    try:
        deadline = time.monotonic() + 60
        while len(ledger.effects) < expected // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Hold the next batch call: its worker is mid-batch until the call is
        # released, so the kill cannot land between two batches.
        ledger.faults.script([FaultRule(Fault.HOLD, delay=60, path_prefix=BATCH)])
        held = ledger.faults.wait_held(timeout=60)
        assert held is not None, "no batch call came after the hold was set"
        owner = _sender(engine, json.loads(held.body)["items"][0]["idempotency_key"])
        assert owner is not None, "the held call's batch has no attempt in flight"
        [victim] = [w for w in workers if w.pid == int(owner.split(":")[1])]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        ledger.faults.release()  # the victim's held call is applied, its answer unread
        assert len(ledger.effects) < expected, "the work finished before the kill"

        for w in workers:
            w.wait(timeout=120)
        assert victim.returncode == -signal.SIGKILL
        for w in workers:
            if w is not victim:
                assert w.returncode == 0, w.stderr.read().decode() if w.stderr else ""
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        ledger.stop()

    effects = ledger.effects
    twins = {k: n for k, n in Counter(e["idempotency_key"] for e in effects).items() if n > 1}
    assert twins == {}, "the ledger holds twins: a command was sent twice as new"
    charges = [e for e in effects if e["kind"] == "time_charge.post"]
    assert Counter(e["data"]["time_entry"] for e in charges) == \
        {f"{p}-te-{i:03}": 1 for i in range(PER_PROJECT) for p in PROJECTS}
    per_project: dict[str, list[str]] = defaultdict(list)
    for effect in charges:
        per_project[effect["data"]["project"]].append(effect["data"]["time_entry"])
    for project, entries in per_project.items():
        assert entries == sorted(entries), f"{project}'s charges arrived out of order"
    with engine.connect() as conn:
        statuses: dict[str, int] = dict(conn.execute(text(
            "SELECT status, count(*) FROM inbox GROUP BY status")).tuples().all())
        outbox: dict[str, int] = dict(conn.execute(text(
            "SELECT status, count(*) FROM outbox GROUP BY status")).tuples().all())
    # Every event is done, including the hub's own confirmation of each project.
    assert statuses == {"done": expected + len(PROJECTS)}
    with engine.connect() as conn:
        unsettled = conn.execute(text("SELECT count(*) FROM delivery_attempts "
                                      "WHERE owner = :o AND outcome = 'sent'"), {"o": owner}
                                 ).scalar()
    assert unsettled, "the victim was not killed in the middle of a batch"
    assert outbox == {"done": expected}
    engine.dispose()
